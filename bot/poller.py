"""Poll: fetch → parse → dedupe → queue, once per feed per interval.

Each feed has one APScheduler job (python-telegram-bot's JobQueue) that runs
once and schedules the feed's next poll when it finishes, so every feed keeps
its own interval, backoff and Retry-After without a global tick. However many
chats follow a feed, it is fetched once; the fetcher bounds how many fetches
are in flight.

The scheduling rules are pure functions (``next_poll_delay`` and friends) so
they can be tested without a clock or a network.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from telegram.ext import ContextTypes, JobQueue

from bot.config import PollConfig
from bot.deliver import Deliverer
from bot.fetch import Fetcher, FetchError, FetchResult
from bot.identity import dedupe_keys, new_entries
from bot.models import Entry, Feed, FeedStatus, ParsedFeed
from bot.parse import ParseError, parse_feed
from bot.store import Store

log = logging.getLogger(__name__)

HOUR = 3600.0
DAY = 24 * HOUR
#: However rarely a feed posts, or however long its TTL, poll it at least this often.
MAX_INTERVAL = 6 * HOUR
#: A failing feed is retried at most this far apart, and polling never stops.
MAX_BACKOFF = 4 * HOUR
#: A failing feed's subscribers are told once, after this long.
FAILURE_NOTICE_AFTER = DAY
#: Seen keys of entries that left the feed are forgotten after this long.
SEEN_RETENTION = 90 * DAY
#: How many new-entry times a feed remembers for its adaptive interval.
RECENT_ENTRIES = 20
#: At start-up, overdue feeds are spread over this window (or their interval).
STARTUP_SPREAD = 60.0

Notify = Callable[[Sequence[int], str], Awaitable[None]]


class PollResult(Enum):
    NEW_ENTRIES = "new entries"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    GONE = "gone"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class PollReport:
    url: str
    result: PollResult
    new_entries: int = 0
    error: str | None = None


# -- pure scheduling rules -----------------------------------------------------


def jittered(
    seconds: float, rng: Callable[[], float] = random.random, spread: float = 0.1
) -> float:
    """``seconds`` ± ``spread`` (10%), so feeds that started together drift apart."""
    return seconds * (1 - spread + 2 * spread * rng())


def adaptive_interval(
    base: float,
    min_interval: float,
    recent_entry_times: Sequence[float],
    now: float,
    *,
    ttl: float | None = None,
    max_age: float | None = None,
) -> float:
    """How long to wait before the next poll of a healthy feed.

    Busy feeds are polled at the configured ``base``; a feed that posts rarely
    is polled about four times per gap between its entries, up to
    MAX_INTERVAL. The feed's own <ttl> and the server's Cache-Control max-age may
    stretch the interval (within MAX_INTERVAL). Never below ``min_interval``.
    """
    interval = base
    ceiling = max(base, MAX_INTERVAL)
    if len(recent_entry_times) >= 2:
        span = recent_entry_times[-1] - recent_entry_times[0]
        average_gap = span / (len(recent_entry_times) - 1)
        quiet_for = now - recent_entry_times[-1]
        interval = max(interval, min(ceiling, max(average_gap, quiet_for) / 4))
    elif recent_entry_times:
        interval = max(interval, min(ceiling, (now - recent_entry_times[-1]) / 4))
    for hint in (ttl, max_age):
        if hint:
            interval = max(interval, min(ceiling, hint))
    return max(interval, min_interval)


def backoff_interval(
    base: float, min_interval: float, error_count: int, retry_after: float | None
) -> float:
    """Exponential backoff after ``error_count`` consecutive failures, capped,
    and never sooner than the server's Retry-After."""
    step = base * 2 ** max(0, error_count - 1)
    delay = min(max(base, MAX_BACKOFF), step)
    if retry_after:
        delay = max(delay, min(retry_after, DAY))
    return max(delay, min_interval)


def startup_delay(
    feed: Feed, now: float, interval: float, rng: Callable[[], float] = random.random
) -> float:
    """When to poll a feed first after start-up: at its stored time if that is
    still ahead, otherwise soon, spread so all feeds do not fire at once."""
    if feed.next_poll > now:
        return feed.next_poll - now
    return rng() * min(interval, STARTUP_SPREAD)


# -- the poller ---------------------------------------------------------------


class Poller:
    def __init__(
        self,
        store: Store,
        fetcher: Fetcher,
        deliverer: Deliverer,
        config: PollConfig,
        job_queue: JobQueue[ContextTypes.DEFAULT_TYPE],
        notify: Notify,
        *,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._fetcher = fetcher
        self._deliverer = deliverer
        self._config = config
        self._jobs = job_queue
        self._notify = notify
        self._clock = clock
        self._rng = rng
        self._in_flight: set[str] = set()
        self._last_prune: dict[str, float] = {}

    def start(self) -> None:
        """Schedule every feed that someone follows."""
        now = self._clock()
        for feed in self._store.feeds():
            if feed.status is FeedStatus.GONE:
                continue
            if not self._store.feed_subscriptions(feed.url):
                continue
            interval = feed.interval or self._config.interval
            self.schedule(feed.url, startup_delay(feed, now, interval, self._rng))

    def schedule(self, url: str, delay: float) -> None:
        self.unschedule(url)
        self._jobs.run_once(self._job, when=max(0.0, delay), name=_job_name(url), data=url)

    def unschedule(self, url: str) -> None:
        for job in self._jobs.get_jobs_by_name(_job_name(url)):
            job.schedule_removal()

    def interval_for(self, feed: Feed) -> float:
        return max(feed.interval or self._config.interval, self._config.min_interval)

    async def _job(self, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert context.job is not None
        url = str(context.job.data)
        try:
            await self.poll(url)
        except Exception:
            # A bug must not end a feed's polling: log it and keep the schedule.
            log.exception("poll of %s crashed", url)
            feed = self._store.get_feed(url)
            if feed is not None and self._store.feed_subscriptions(url):
                self.schedule(url, self.interval_for(feed))

    async def poll(self, url: str) -> PollReport:
        """Poll one feed now; queue its new entries for every active subscriber."""
        if url in self._in_flight:
            return PollReport(url, PollResult.SKIPPED)
        self._in_flight.add(url)
        try:
            return await self._poll(url)
        finally:
            self._in_flight.discard(url)

    async def _poll(self, url: str) -> PollReport:
        feed = self._store.get_feed(url)
        if feed is None or feed.status is FeedStatus.GONE:
            return PollReport(url, PollResult.SKIPPED)
        if not self._store.feed_subscriptions(url):
            # Nobody follows it any more: forget it and its seen set.
            self._store.delete_feed(url)
            self._store.commit()
            return PollReport(url, PollResult.SKIPPED)

        try:
            result = await self._fetcher.fetch(
                url, etag=feed.etag, last_modified=feed.last_modified
            )
        except FetchError as exc:
            return await self._failed(feed, str(exc), exc.retry_after, gone=exc.gone)

        if result.permanent_url and result.permanent_url != url:
            feed = self._moved(feed, result.permanent_url)

        now = self._clock()
        new: list[Entry] = []
        parsed: ParsedFeed | None = None
        if result.status != 304 and result.body_hash != feed.body_hash:
            try:
                parsed = parse_feed(
                    result.body,
                    url=result.url,
                    content_type=result.content_type,
                    content_location=result.content_location,
                )
            except ParseError as exc:
                return await self._failed(feed, str(exc), None, gone=False)
            new = self._record_entries(feed, parsed, now)
        self._succeeded(feed, result, parsed, len(new), now)
        self._store.commit()
        if new:
            self._deliverer.wake()
            log.info("%s: %d new entries", feed.url, len(new))
        self.schedule(feed.url, feed.next_poll - now)
        return PollReport(
            feed.url, PollResult.NEW_ENTRIES if new else PollResult.UNCHANGED, len(new)
        )

    def _record_entries(self, feed: Feed, parsed: ParsedFeed, now: float) -> list[Entry]:
        """Queue the new entries and mark every entry of the document seen.

        Marking every present key (not just the new ones) refreshes their time,
        so pruning forgets only entries that left the feed long ago.
        """
        keys = [key for entry in parsed.entries for key in dedupe_keys(entry)]
        seen = self._store.seen(feed.url, keys)
        new = new_entries(parsed.entries, seen)
        chat_ids = self._active_chat_ids(feed.url)
        for entry in new:  # oldest first: the order chats receive them
            if chat_ids:
                self._store.enqueue(feed.url, entry, chat_ids)
        self._store.mark_seen(feed.url, keys, now)
        if now - self._last_prune.get(feed.url, 0.0) > DAY:
            self._last_prune[feed.url] = now
            self._store.prune_seen(feed.url, keys, now - SEEN_RETENTION)
        if parsed.title:
            feed.title = parsed.title
        feed.link = parsed.link or feed.link
        if new:
            feed.recent_entry_times = [*feed.recent_entry_times, now][-RECENT_ENTRIES:]
        return new

    def _active_chat_ids(self, url: str) -> list[int]:
        chat_ids = []
        for sub in self._store.feed_subscriptions(url):
            chat = self._store.get_chat(sub.chat_id)
            if chat is None or chat.active:
                chat_ids.append(sub.chat_id)
        return chat_ids

    def _succeeded(
        self,
        feed: Feed,
        result: FetchResult,
        parsed: ParsedFeed | None,
        new_count: int,
        now: float,
    ) -> None:
        feed.etag = result.etag or feed.etag
        feed.last_modified = result.last_modified or feed.last_modified
        if result.status != 304 and result.body_hash:
            feed.body_hash = result.body_hash
        if feed.error_count:
            log.info("%s: recovered after %d failed polls", feed.url, feed.error_count)
        feed.last_success = now
        feed.last_error = None
        feed.error_count = 0
        feed.failing_since = None
        feed.failure_notified = False
        ttl = parsed.ttl if parsed is not None else None
        interval = adaptive_interval(
            self._config.interval,
            self._config.min_interval,
            feed.recent_entry_times,
            now,
            ttl=ttl,
            max_age=result.max_age,
        )
        feed.interval = interval
        feed.next_poll = now + max(self._config.min_interval, jittered(interval, self._rng))
        self._store.put_feed(feed)

    async def _failed(
        self, feed: Feed, error: str, retry_after: float | None, *, gone: bool
    ) -> PollReport:
        now = self._clock()
        feed.error_count += 1
        feed.last_error = error
        feed.failing_since = feed.failing_since or now
        log.warning("poll %s failed (%d in a row): %s", feed.url, feed.error_count, error)
        subscribers = self._active_chat_ids(feed.url)
        if gone:
            feed.status = FeedStatus.GONE
            self._store.put_feed(feed)
            self._store.commit()
            self.unschedule(feed.url)
            await self._notify(
                subscribers,
                f"The feed {feed.title or feed.url} ({feed.url}) is gone: the server says it "
                "was removed (410). I stopped checking it; /unsubscribe it when you like.",
            )
            return PollReport(feed.url, PollResult.GONE, error=error)
        notify = not feed.failure_notified and now - feed.failing_since >= FAILURE_NOTICE_AFTER
        if notify:
            feed.failure_notified = True
        delay = backoff_interval(
            feed.interval or self._config.interval,
            self._config.min_interval,
            feed.error_count,
            retry_after,
        )
        feed.next_poll = now + jittered(delay, self._rng, spread=0.2)
        self._store.put_feed(feed)
        self._store.commit()
        self.schedule(feed.url, feed.next_poll - now)
        if notify:
            await self._notify(
                subscribers,
                f"The feed {feed.title or feed.url} ({feed.url}) has been failing for a day: "
                f"{error} I keep trying, less often; nothing is lost when it comes back.",
            )
        return PollReport(feed.url, PollResult.FAILED, error=error)

    def _moved(self, feed: Feed, new_url: str) -> Feed:
        log.info("%s moved permanently to %s; subscriptions follow", feed.url, new_url)
        self.unschedule(feed.url)
        self._store.move_feed(feed.url, new_url)
        moved = self._store.get_feed(new_url)
        assert moved is not None
        return moved


def _job_name(url: str) -> str:
    return f"poll:{url}"


async def poll_all(poller: Poller, urls: Sequence[str]) -> list[PollReport]:
    """Poll several feeds at once (the fetcher bounds concurrency): for tests and benches."""
    return list(await asyncio.gather(*(poller.poll(url) for url in urls)))
