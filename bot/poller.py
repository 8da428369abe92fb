"""Poll: fetch → parse → dedupe → queue, once per feed per interval.

Each feed has one APScheduler job (python-telegram-bot's JobQueue) that runs
once and schedules the feed's next poll when it finishes, so every feed keeps
its own interval, backoff and Retry-After without a global tick. However many
chats follow a feed, it is fetched once; the fetcher bounds how many fetches
are in flight.

What a poll costs: an unchanged feed (304, or a 200 whose body hashes as
before) costs one request, two store reads and nothing else: no parse and no
store write. What changes on most polls (the next poll time, the adaptive
interval, the last success, validators a server rotates) lives in memory
(:class:`_Memo`) and reaches the store with the next write that happens anyway
(new entries, a failure, a recovery). A restart loses only that: feeds whose
stored next poll has passed are polled again soon, spread out.

The scheduling rules are pure functions (``adaptive_interval``,
``backoff_interval``, ``startup_delay``, ``jittered``) so they can be tested
without a clock or a network.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from apscheduler.jobstores.base import JobLookupError
from telegram.ext import ContextTypes, Job, JobQueue

from bot.config import PollConfig
from bot.deliver import Deliverer
from bot.fetch import Fetcher, FetchError, FetchResult
from bot.identity import dedupe_keys, new_entries
from bot.models import Entry, Feed, FeedStatus, ParsedFeed, Subscription
from bot.parse import ParseError, parse_response
from bot.store import Store

log = logging.getLogger(__name__)

HOUR = 3600.0
DAY = 24 * HOUR
#: However rarely a feed posts, or however long its TTL or max-age, poll it at least this often.
MAX_INTERVAL = 6 * HOUR
#: A failing feed is retried at most this far apart, and polling never stops.
MAX_BACKOFF = 4 * HOUR
#: A server's Retry-After is honoured up to this long (beyond it, it is a mistake).
MAX_RETRY_AFTER = DAY
#: Backoff delays are drawn from [1 - BACKOFF_JITTER, 1] × the exponential step,
#: so feeds that failed together (one host down) do not come back together.
BACKOFF_JITTER = 0.25
#: Healthy intervals are jittered by ± this fraction.
INTERVAL_JITTER = 0.1
#: A failing feed's subscribers are told once, after this long.
FAILURE_NOTICE_AFTER = DAY
#: Seen keys of entries that left the feed are forgotten after this long.
SEEN_RETENTION = 90 * DAY
#: How many new-entry times a feed remembers for its adaptive interval.
RECENT_ENTRIES = 20
#: How long a stop waits for the polls in flight before cancelling them.
STOP_GRACE = 5.0
#: At start-up, overdue feeds are spread over at least this window (or their
#: interval, if shorter) ...
STARTUP_SPREAD = 60.0
#: ... and over a longer one when there are many: about this many per second.
STARTUP_RATE = 20.0

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
    seconds: float, rng: Callable[[], float] = random.random, spread: float = INTERVAL_JITTER
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
    since: float | None = None,
) -> float:
    """How long to wait before the next poll of a healthy feed.

    Busy feeds are polled at the configured ``base``; a feed that posts rarely
    is polled about four times per gap between its entries (or per time it has
    been quiet), up to MAX_INTERVAL. ``since`` is when the bot started
    following the feed: a feed that has had nothing new since then is quiet
    for that long. The feed's own <ttl> and the server's Cache-Control max-age
    may stretch the interval (within MAX_INTERVAL). Never below
    ``min_interval``.
    """
    interval = base
    ceiling = max(base, MAX_INTERVAL)
    quiet = 0.0
    if len(recent_entry_times) >= 2:
        span = recent_entry_times[-1] - recent_entry_times[0]
        average_gap = span / (len(recent_entry_times) - 1)
        quiet = max(average_gap, now - recent_entry_times[-1])
    elif recent_entry_times:
        quiet = now - recent_entry_times[-1]
    elif since is not None:
        quiet = now - since
    interval = max(interval, min(ceiling, quiet / 4))
    for hint in (ttl, max_age):
        if hint and hint > 0:
            interval = max(interval, min(ceiling, hint))
    return max(interval, min_interval)


def backoff_interval(
    base: float,
    min_interval: float,
    error_count: int,
    retry_after: float | None,
    rng: Callable[[], float] | None = None,
) -> float:
    """How long to wait after ``error_count`` consecutive failures.

    Exponential from ``base`` (the feed's interval), capped at MAX_BACKOFF (or
    ``base`` if that is longer), jittered downwards with ``rng`` (so the cap
    holds), and never sooner than the server's Retry-After (itself honoured up
    to MAX_RETRY_AFTER) or ``min_interval``.
    """
    exponent = min(max(0, error_count - 1), 32)  # 2**32 × base is past any cap
    delay = min(max(base, MAX_BACKOFF), base * 2.0**exponent)
    if rng is not None:
        delay *= 1 - BACKOFF_JITTER * rng()
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return max(delay, min_interval)


def startup_delay(
    feed: Feed,
    now: float,
    interval: float,
    rng: Callable[[], float] = random.random,
    spread: float = STARTUP_SPREAD,
) -> float:
    """When to poll a feed first after start-up: at its stored time if that is
    still ahead, otherwise at a random point of the next ``spread`` seconds
    (or of its interval, if shorter), so all feeds do not fire at once."""
    if feed.next_poll > now:
        return feed.next_poll - now
    return rng() * min(interval, spread)


# -- the poller ---------------------------------------------------------------

#: Feed fields that change on most polls: kept in memory, written with the
#: next write that happens anyway.
_SOFT_FIELDS = frozenset({"etag", "last_modified", "interval", "next_poll", "last_success"})
_DURABLE_FIELDS = tuple(f.name for f in dataclasses.fields(Feed) if f.name not in _SOFT_FIELDS)


def _durable(feed: Feed) -> tuple[object, ...]:
    return tuple(
        tuple(value) if isinstance(value, list) else value
        for value in (getattr(feed, name) for name in _DURABLE_FIELDS)
    )


@dataclass(slots=True)
class _Memo:
    """What the poller knows of a feed beyond its stored record."""

    #: The stored validators this memo was taken against: it applies only
    #: while the store still holds them (nobody else rewrote the feed).
    stored: tuple[str | None, str | None]
    etag: str | None = None
    last_modified: str | None = None
    interval: float | None = None
    next_poll: float = 0.0
    last_success: float | None = None


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
        #: Wall clock and random source; tests may replace them on a running bot.
        self.clock = clock
        self.rng = rng
        #: url → the task polling it now.
        self._in_flight: dict[str, asyncio.Task[object]] = {}
        self._stopping = False
        self._last_prune: dict[str, float] = {}
        self._memos: dict[str, _Memo] = {}
        self._scheduled: dict[str, Job[ContextTypes.DEFAULT_TYPE]] = {}

    # -- scheduling ------------------------------------------------------------

    def start(self) -> None:
        """Schedule every feed that someone follows, spread over time."""
        now = self.clock()
        feeds = [
            feed
            for feed in self._store.feeds()
            if feed.status is not FeedStatus.GONE and self._store.feed_subscriptions(feed.url)
        ]
        spread = max(STARTUP_SPREAD, len(feeds) / STARTUP_RATE)
        for feed in feeds:
            delay = startup_delay(feed, now, self.interval_for(feed), self.rng, spread)
            self.schedule(feed.url, delay)

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Start no more polls; let those in flight finish for ``grace``
        seconds, then cancel them (harmless: a poll writes nothing before its
        one commit). Runs before the JobQueue stops, so that it has nothing
        left to cancel (it would log every cancelled job as an error)."""
        self._stopping = True
        for url in list(self._scheduled):
            self._cancel(url)
        running = list(self._in_flight.values())
        if running:
            _, late = await asyncio.wait(running, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    def schedule(self, url: str, delay: float) -> None:
        """Poll ``url`` in ``delay`` seconds (replacing its pending poll)."""
        if self._stopping:
            return
        self._cancel(url)
        self._scheduled[url] = self._jobs.run_once(
            self._job,
            when=max(0.0, delay),
            name=_job_name(url),
            data=url,
            # APScheduler drops a job that runs more than 1 s late by default:
            # a busy loop must delay a poll, never cancel it.
            job_kwargs={"misfire_grace_time": None},
        )

    def schedule_new(self, url: str) -> None:
        """A feed was just subscribed: poll it first at the time Subscriptions
        stored, jittered so the feeds of one OPML import spread out."""
        feed = self._store.get_feed(url)
        if feed is not None:
            self.schedule(url, jittered(max(0.0, feed.next_poll - self.clock()), self.rng))

    def unschedule(self, url: str) -> None:
        """Stop polling ``url`` (nobody follows it any more)."""
        self._cancel(url)
        self._memos.pop(url, None)
        self._last_prune.pop(url, None)

    def _cancel(self, url: str) -> None:
        job = self._scheduled.pop(url, None)
        if job is not None:
            with contextlib.suppress(JobLookupError):  # it is running or has run
                job.schedule_removal()

    def interval_for(self, feed: Feed) -> float:
        return max(feed.interval or self._config.interval, self._config.min_interval)

    async def _job(self, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert context.job is not None
        url = str(context.job.data)
        if self._scheduled.get(url) is context.job:
            del self._scheduled[url]
        if self._stopping:
            return
        try:
            await self.poll(url)
        except asyncio.CancelledError:
            if self._stopping:
                return  # stop() cancelled it: the job ends quietly
            raise
        except Exception:
            # A bug must not end a feed's polling: log it and keep the schedule.
            log.exception("poll of %s crashed", url)
            feed = self._store.get_feed(url)
            if feed is not None and self._store.feed_subscriptions(url):
                self.schedule(url, self.interval_for(feed))

    # -- polling ---------------------------------------------------------------

    async def poll(self, url: str) -> PollReport:
        """Poll one feed now; queue its new entries for every active subscriber."""
        task = asyncio.current_task()
        if url in self._in_flight or self._stopping or task is None:
            return PollReport(url, PollResult.SKIPPED)
        self._in_flight[url] = task
        try:
            return await self._poll(url)
        finally:
            del self._in_flight[url]

    async def _poll(self, url: str) -> PollReport:
        stored = self._store.get_feed(url)
        if stored is None or stored.status is FeedStatus.GONE:
            self._memos.pop(url, None)
            return PollReport(url, PollResult.SKIPPED)
        subs = self._store.feed_subscriptions(url)
        if not subs:
            # Nobody follows it any more: forget it and its seen set.
            self._store.delete_feed(url)
            self._store.commit()
            self.unschedule(url)
            return PollReport(url, PollResult.SKIPPED)

        feed = self._recall(stored)
        before = _durable(feed)
        try:
            result = await self._fetcher.fetch(
                url, etag=feed.etag, last_modified=feed.last_modified
            )
        except FetchError as exc:
            return await self._failed(feed, str(exc), exc.retry_after, gone=exc.gone)

        moved = bool(result.permanent_url and result.permanent_url != url)
        if moved:
            assert result.permanent_url is not None
            feed = self._moved(feed, result.permanent_url)

        now = self.clock()
        new: list[Entry] = []
        parsed: ParsedFeed | None = None
        if result.status != 304 and result.body_hash != feed.body_hash:
            try:
                parsed = parse_response(result)
            except ParseError as exc:
                return await self._failed(feed, str(exc), None, gone=False)
            new = self._record_entries(feed, parsed, now)
        told_failing = feed.failure_notified
        self._succeeded(feed, result, subs, now)
        if parsed is not None or moved or _durable(feed) != before:
            self._save(feed)
        if told_failing:
            await self._notify(
                self._active_chat_ids(feed.url),
                f"The feed {feed.title or feed.url} ({feed.url}) works again; "
                "what it published meanwhile follows.",
            )
        if new:
            self._deliverer.wake()
            log.debug("%s: %d new entries", feed.url, len(new))
        self._remember(feed)
        self.schedule(feed.url, feed.next_poll - now)
        return PollReport(
            feed.url, PollResult.NEW_ENTRIES if new else PollResult.UNCHANGED, len(new)
        )

    def _recall(self, stored: Feed) -> Feed:
        """The stored feed with what memory knows on top."""
        memo = self._memos.get(stored.url)
        if memo is None:
            memo = self._memos[stored.url] = _Memo((stored.etag, stored.last_modified))
        elif memo.stored == (stored.etag, stored.last_modified):
            stored.etag = memo.etag
            stored.last_modified = memo.last_modified
            stored.interval = memo.interval
            stored.next_poll = memo.next_poll
            stored.last_success = memo.last_success
        else:  # someone else rewrote the feed: the store wins
            memo.stored = (stored.etag, stored.last_modified)
        return stored

    def _remember(self, feed: Feed) -> None:
        """Keep what this poll learnt that was not written."""
        memo = self._memos.setdefault(feed.url, _Memo((feed.etag, feed.last_modified)))
        memo.etag = feed.etag
        memo.last_modified = feed.last_modified
        memo.interval = feed.interval
        memo.next_poll = feed.next_poll
        memo.last_success = feed.last_success

    def _save(self, feed: Feed) -> None:
        """Write the whole feed (what memory knows included) and commit."""
        self._store.put_feed(feed)
        self._store.commit()
        memo = self._memos.get(feed.url)
        if memo is not None:
            memo.stored = (feed.etag, feed.last_modified)

    def _record_entries(self, feed: Feed, parsed: ParsedFeed, now: float) -> list[Entry]:
        """Queue the new entries and mark every entry of the document seen.

        Marking every present key (not just the new ones) refreshes their time,
        so pruning forgets only entries that left the feed long ago.
        """
        keys = [key for entry in parsed.entries for key in dedupe_keys(entry)]
        seen = self._store.seen(feed.url, keys)
        new = new_entries(parsed.entries, seen)
        if new:
            chat_ids = self._active_chat_ids(feed.url)
            if chat_ids:
                for entry in new:  # oldest first: the order chats receive them
                    self._store.enqueue(feed.url, entry, chat_ids)
        self._store.mark_seen(feed.url, keys, now)
        if now - self._last_prune.get(feed.url, 0.0) > DAY:
            self._last_prune[feed.url] = now
            self._store.prune_seen(feed.url, keys, now - SEEN_RETENTION)
        feed.ttl = parsed.ttl
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
        subs: Sequence[Subscription],
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
        interval = adaptive_interval(
            self._config.interval,
            self._config.min_interval,
            feed.recent_entry_times,
            now,
            ttl=feed.ttl,
            max_age=result.max_age,
            since=min((sub.created for sub in subs), default=None),
        )
        feed.interval = interval
        feed.next_poll = now + max(self._config.min_interval, jittered(interval, self.rng))

    async def _failed(
        self,
        feed: Feed,
        error: str,
        retry_after: float | None,
        *,
        gone: bool,
    ) -> PollReport:
        now = self.clock()
        feed.error_count += 1
        feed.last_error = error
        feed.failing_since = feed.failing_since or now
        log.warning("poll %s failed (%d in a row): %s", feed.url, feed.error_count, error)
        if gone:
            feed.status = FeedStatus.GONE
            self._save(feed)
            self.unschedule(feed.url)
            await self._notify(
                self._active_chat_ids(feed.url),
                f"The feed {feed.title or feed.url} ({feed.url}) is gone: the server says it "
                "was removed (410). I stopped checking it; /unsubscribe it when you like.",
            )
            return PollReport(feed.url, PollResult.GONE, error=error)
        notify = not feed.failure_notified and now - feed.failing_since >= FAILURE_NOTICE_AFTER
        if notify:
            feed.failure_notified = True
        delay = backoff_interval(
            self.interval_for(feed),
            self._config.min_interval,
            feed.error_count,
            retry_after,
            self.rng,
        )
        feed.next_poll = now + delay
        self._save(feed)
        self._remember(feed)
        self.schedule(feed.url, delay)
        if notify:
            await self._notify(
                self._active_chat_ids(feed.url),
                f"The feed {feed.title or feed.url} ({feed.url}) has been failing for a day: "
                f"{error} I keep trying, less often; nothing is lost when it comes back.",
            )
        return PollReport(feed.url, PollResult.FAILED, error=error)

    def _moved(self, feed: Feed, new_url: str) -> Feed:
        """A permanent redirect: the feed, its seen set and its subscriptions
        move to ``new_url`` (written with this poll's commit)."""
        log.info("%s moved permanently to %s; subscriptions follow", feed.url, new_url)
        self.unschedule(feed.url)
        self._store.put_feed(feed)  # what memory knows moves too
        self._store.move_feed(feed.url, new_url)
        moved = self._store.get_feed(new_url)
        assert moved is not None
        return moved


def _job_name(url: str) -> str:
    return f"poll:{url}"


async def poll_all(poller: Poller, urls: Sequence[str]) -> list[PollReport]:
    """Poll several feeds at once (the fetcher bounds concurrency): for tests and benches."""
    return list(await asyncio.gather(*(poller.poll(url) for url in urls)))
