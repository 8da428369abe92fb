"""What /subscribe, /unsubscribe, /list and /set do, independent of Telegram.

Command handlers parse arguments and check who may act; this module changes
the store and answers in Telegram HTML. Every failure is an answer, never an
exception, and changes nothing.
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from bot.config import format_duration
from bot.discover import FeedLink, discover_from_page
from bot.fetch import Fetcher, FetchError, InvalidURL, normalize_url
from bot.identity import dedupe_keys, newest
from bot.models import Chat, Entry, Feed, FeedStatus, Subscription
from bot.parse import ParseError, parse_response
from bot.settings import STYLE_KEYS, apply_setting, describe
from bot.slots import HostBusy, HostSlots
from bot.store import Store
from bot.texts import say

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    ADDED = "added"
    ALREADY = "already"
    FAILED = "failed"
    #: The chat has as many subscriptions as the operator allows.
    OVER_QUOTA = "over quota"
    #: A web page that names several feeds: the user picks one (``Answer.choices``).
    CHOOSE = "choose"


@dataclass(frozen=True, slots=True)
class Answer:
    ok: bool
    #: One line of Telegram HTML for the reply.
    text: str
    outcome: Outcome | None = None
    #: With CHOOSE: the feeds the page names, for the user to pick from.
    choices: tuple[FeedLink, ...] = ()

    @property
    def kind(self) -> Outcome:
        return self.outcome or (Outcome.ADDED if self.ok else Outcome.FAILED)


@dataclass(frozen=True, slots=True)
class BulkReport:
    """What a /subscribe of several URLs or an OPML import did, URL by URL."""

    answers: tuple[Answer, ...]
    #: The chat's subscription limit it ran against (None: none).
    quota: int | None = None

    def count(self, outcome: Outcome) -> int:
        return Counter(answer.kind for answer in self.answers)[outcome]

    def of(self, outcome: Outcome) -> list[Answer]:
        return [answer for answer in self.answers if answer.kind is outcome]


#: How many feeds one bulk subscribe fetches at once: one user's import must
#: not take every fetch slot from the other users.
BULK_CONCURRENCY = 4
#: The most feeds one bulk subscribe fetches for a chat without a quota (an admin's).
MAX_BULK = 1000

Progress = Callable[[int, int], Awaitable[None]]


def esc(text: str) -> str:
    return html.escape(text, quote=False)


def feed_label(feed: Feed | None, url: str) -> str:
    title = feed.title if feed is not None and feed.title else url
    return f"<b>{esc(title)}</b>"


class Subscriptions:
    def __init__(
        self,
        store: Store,
        fetcher: Fetcher,
        *,
        clock: Callable[[], float] = time.time,
        first_poll_after: float = 60.0,
        min_interval: float = 0.0,
    ) -> None:
        self._store = store
        #: The fetcher for what users ask (its slots are not the poller's).
        self.fetcher = fetcher
        self._clock = clock
        self._first_poll_after = first_poll_after
        self._min_interval = min_interval
        #: A stalling host must not hold up everyone else's /subscribe.
        self._hosts = HostSlots()
        #: chat id → subscriptions being made right now (counted against the quota).
        self._in_progress: Counter[int] = Counter()

    # -- subscribe -----------------------------------------------------------
    async def subscribe(
        self,
        chat: Chat,
        raw_url: str,
        *,
        sample: bool = True,
        quota: int | None = None,
        after: asyncio.Event | None = None,
    ) -> Answer:
        """Subscribe the chat. With ``sample``, a new feed's newest entry is
        queued as a sample; the caller wakes the deliverer once it has
        answered, so the answer arrives first. ``quota``: the most
        subscriptions the chat may have (None: no limit)."""
        try:
            url = normalize_url(raw_url)
        except InvalidURL as exc:
            return Answer(False, f"{esc(raw_url)}: {esc(str(exc))}")
        if await self._store.get_subscription(chat.id, url) is not None:
            label = feed_label(await self._store.get_feed(url), url)
            return Answer(False, f"Already subscribed to {label}.", Outcome.ALREADY)
        if quota is not None:
            have = len(await self._store.chat_subscriptions(chat.id))
            if have + self._in_progress[chat.id] >= quota:
                return Answer(
                    False,
                    f"Not subscribed to {esc(url)}: this chat has reached its limit of "
                    f"{quota} subscriptions. /unsubscribe one first.",
                    Outcome.OVER_QUOTA,
                )
        self._in_progress[chat.id] += 1
        try:
            return await self._subscribe(chat, url, sample, after)
        finally:
            self._in_progress[chat.id] -= 1
            if not self._in_progress[chat.id]:
                del self._in_progress[chat.id]

    async def subscribe_many(
        self,
        chat: Chat,
        urls: Sequence[str],
        *,
        quota: int | None = None,
        progress: Progress | None = None,
    ) -> BulkReport:
        """Subscribe to several feeds, a few fetches at a time, without
        samples (one message per feed would flood the chat). ``progress`` is
        awaited with (done, total) after each feed."""
        unique, left_out = await self._within_quota(chat, list(dict.fromkeys(urls)), quota)
        limit = asyncio.Semaphore(BULK_CONCURRENCY)
        done = 0
        # Fetched a few at a time, stored in the order given, so that /list
        # numbers them as the user listed them. (The semaphore admits them in
        # that order too, so none waits on one that has not started.)
        stored = [asyncio.Event() for _ in unique]

        async def one(index: int, url: str) -> Answer:
            nonlocal done
            after = stored[index - 1] if index else None
            try:
                async with limit:
                    answer = await self.subscribe(chat, url, sample=False, quota=quota, after=after)
            finally:
                stored[index].set()
            done += 1
            if progress is not None:
                await progress(done, len(unique))
            return answer

        answers = await asyncio.gather(*(one(i, url) for i, url in enumerate(unique)))
        return BulkReport((*answers, *left_out), quota)

    async def _within_quota(
        self, chat: Chat, urls: list[str], quota: int | None
    ) -> tuple[list[str], list[Answer]]:
        """The URLs worth fetching (those the chat follows already cost
        nothing), and an answer for each left out without fetching it: past
        the chat's quota, or past MAX_BULK for a chat without one. An import
        of 10,000 outlines must not make 10,000 fetches."""
        room = MAX_BULK if quota is None else quota
        if len(urls) <= room:
            return urls, []
        followed = {sub.feed_url for sub in await self._store.chat_subscriptions(chat.id)}
        room -= len(followed) if quota is not None else 0
        kept: list[str] = []
        left_out: list[Answer] = []
        new = 0
        for url in urls:
            try:
                known = normalize_url(url) in followed
            except InvalidURL:
                known = False
            if known or new < room:
                kept.append(url)
                new += not known
            else:
                left_out.append(Answer(False, esc(url), Outcome.OVER_QUOTA))
        return kept, left_out

    async def _subscribe(
        self, chat: Chat, url: str, sample: bool, after: asyncio.Event | None
    ) -> Answer:
        feed = await self._store.get_feed(url)
        if feed is not None and feed.status is FeedStatus.OK:
            return await self._add(chat, feed, after=after)
        try:
            async with self._hosts.slot(url):
                result = await self.fetcher.fetch(url)
        except HostBusy as exc:
            return Answer(False, say("subscribe.host_busy", url=esc(url), host=esc(str(exc))))
        except FetchError as exc:
            return Answer(False, f"Could not subscribe to {esc(url)}: {esc(str(exc))}")
        chosen = ""
        try:
            parsed = parse_response(result)
        except ParseError as exc:
            # A web page: subscribe to the feed it names (or one at a usual
            # path); several named: the user chooses.
            found = await discover_from_page(self.fetcher, result, pick_one=False)
            if found.choice_needed:
                text = say("subscribe.choose", page=esc(url), count=len(found.declared))
                return Answer(False, text, Outcome.CHOOSE, tuple(found.declared))
            if found.found is None:
                return Answer(False, f"Could not subscribe to {esc(url)}: {esc(str(exc))}")
            page, url = url, normalize_url(found.found.url)
            result, parsed = found.found.result, found.found.parsed
            code = (
                "subscribe.chosen_declared"
                if found.found.how == "declared"
                else "subscribe.chosen_guessed"
            )
            chosen = say(code, page=esc(page), url=esc(url))
            if await self._store.get_subscription(chat.id, url) is not None:
                label = feed_label(await self._store.get_feed(url), url)
                return Answer(False, f"Already subscribed to {label}.", Outcome.ALREADY)

        final_url = result.permanent_url or url
        if final_url != url and await self._store.get_subscription(chat.id, final_url) is not None:
            existing = await self._store.get_feed(final_url)
            label = feed_label(existing, final_url)
            return Answer(False, f"Already subscribed to {label}.", Outcome.ALREADY)
        # Another chat may have added the feed while we were fetching it.
        feed = await self._store.get_feed(final_url)
        if feed is not None and feed.status is FeedStatus.OK:
            return _noting(await self._add(chat, feed, after=after), chosen)

        now = self._clock()
        feed = Feed(
            url=final_url,
            title=parsed.title,
            link=parsed.link,
            etag=result.etag,
            last_modified=result.last_modified,
            body_hash=result.body_hash,
            ttl=parsed.ttl,
            last_success=now,
            next_poll=now + self._first_poll_after,
        )
        # The back catalogue is history, not news: remember it all as seen, and
        # show the newest entry alone, as a sample of what will arrive.
        # (A gone feed re-subscribed starts afresh: subscribe() replaces it.)
        keys = [key for entry in parsed.entries for key in dedupe_keys(entry)]
        first = newest(parsed.entries) if sample else None
        added = await self._add(chat, feed, new_feed=True, seen=keys, sample=first, after=after)
        return _noting(added, chosen)

    async def _add(
        self,
        chat: Chat,
        feed: Feed,
        *,
        new_feed: bool = False,
        seen: list[str] | None = None,
        sample: Entry | None = None,
        after: asyncio.Event | None = None,
    ) -> Answer:
        if after is not None:
            await after.wait()  # the subscription listed before this one is stored
        now = self._clock()
        stored = await self._store.subscribe(
            chat,
            Subscription(chat.id, feed.url, created=now),
            new_feed=feed if new_feed else None,
            seen=seen or (),
            sample=sample,
            now=now,
        )
        if stored is None:  # the same chat subscribed twice at once
            label = feed_label(feed, feed.url)
            return Answer(False, f"Already subscribed to {label}.", Outcome.ALREADY)
        log.info("chat %s subscribed to %s", chat.id, feed.url)
        return Answer(True, f"Subscribed to {feed_label(feed, feed.url)}\n{esc(feed.url)}")

    # -- unsubscribe ---------------------------------------------------------
    async def find(self, chat_id: int, ref: str) -> Subscription | None:
        """A chat's subscription by its /list number or its URL."""
        return _find(await self._store.chat_subscriptions(chat_id), ref)

    async def unsubscribe(self, chat_id: int, refs: list[str]) -> list[Answer]:
        """/unsubscribe 1 3 …: every number means what /list showed, so all
        are looked up before any is removed (removing 1 renumbers the rest)."""
        subs = await self._store.chat_subscriptions(chat_id)
        found = [(ref, _find(subs, ref)) for ref in refs]
        return [await self._remove(sub) if sub else _not_subscribed(ref) for ref, sub in found]

    async def _remove(self, sub: Subscription) -> Answer:
        feed = await self._store.get_feed(sub.feed_url)
        if not await self._store.unsubscribe(sub.chat_id, sub.feed_url):
            return _not_subscribed(sub.feed_url)  # named twice in one command
        log.info("chat %s unsubscribed from %s", sub.chat_id, sub.feed_url)
        return Answer(True, f"Unsubscribed from {feed_label(feed, sub.feed_url)}")

    # -- list ----------------------------------------------------------------
    async def listing(self, chat_id: int, chat_name: str) -> list[str]:
        """/list as lines of Telegram HTML, numbered as /unsubscribe N counts."""
        subs = await self._store.chat_subscriptions(chat_id)
        if not subs:
            return [f"{esc(chat_name)} has no subscriptions. Add one with /subscribe URL."]
        lines = [f"Subscriptions of {esc(chat_name)} ({len(subs)}):"]
        now = self._clock()
        for number, sub in enumerate(subs, 1):
            feed = await self._store.get_feed(sub.feed_url)
            status = ""
            if feed is not None and feed.status == FeedStatus.GONE:
                status = " (gone: the server removed it)"
            elif feed is not None and feed.error_count:
                status = f" (failing: {esc(feed.last_error or 'error')})"
            lines.append(
                f"{number}. {feed_label(feed, sub.feed_url)}{status}\n{esc(sub.feed_url)}"
                + _poll_times(feed, now)
            )
        return lines

    # -- settings ------------------------------------------------------------
    async def settings(self, chat_id: int, ref: str) -> Answer:
        sub = await self.find(chat_id, ref)
        if sub is None:
            return Answer(False, f"No subscription {esc(ref)}. /list shows the numbers.")
        feed = await self._store.get_feed(sub.feed_url)
        lines = [f"Settings of {feed_label(feed, sub.feed_url)}:"]
        for key, (field, _) in STYLE_KEYS.items():
            lines.append(f"{key}: {describe(getattr(sub.style, field))}")
        times = _poll_times(feed, self._clock())
        if times:
            lines.append(times.strip())
        return Answer(True, "\n".join(lines))

    async def set_style(self, chat_id: int, ref: str, key: str, value: str) -> Answer:
        sub = await self.find(chat_id, ref)
        if sub is None:
            return Answer(False, f"No subscription {esc(ref)}. /list shows the numbers.")
        try:
            style = apply_setting(sub.style, key, value, min_interval=self._min_interval)
        except ValueError as exc:
            return Answer(False, esc(str(exc)))
        if not await self._store.update_subscription(replace(sub, style=style)):
            return _not_subscribed(ref)
        log.info("chat %s set %s=%s for %s", chat_id, key, value, sub.feed_url)
        feed = await self._store.get_feed(sub.feed_url)
        return Answer(True, f"{feed_label(feed, sub.feed_url)}: {esc(key)} is now {esc(value)}.")


def _noting(answer: Answer, note: str) -> Answer:
    """A successful answer with a line saying which feed discovery chose."""
    return replace(answer, text=f"{answer.text}\n{note}") if note and answer.ok else answer


def _find(subs: list[Subscription], ref: str) -> Subscription | None:
    """The subscription /list numbered ``ref``, or whose URL it is."""
    if ref.isdigit():
        index = int(ref)
        return subs[index - 1] if 1 <= index <= len(subs) else None
    try:
        url = normalize_url(ref)
    except InvalidURL:
        url = ref
    return next((sub for sub in subs if sub.feed_url in (url, ref)), None)


def _not_subscribed(ref: str) -> Answer:
    if ref.isdigit():
        return Answer(False, f"No subscription number {esc(ref)}. /list shows the numbers.")
    return Answer(False, f"Not subscribed to {esc(ref)}. /list shows the subscriptions.")


def _poll_times(feed: Feed | None, now: float) -> str:
    """When the feed was last polled and will be next, as a short line."""
    if feed is None or feed.status == FeedStatus.GONE:
        return ""
    parts = []
    if feed.last_success:
        parts.append(f"checked {format_duration(max(0.0, now - feed.last_success))} ago")
    if feed.next_poll:
        parts.append(f"next in {format_duration(max(0.0, feed.next_poll - now))}")
    return f"\n{', '.join(parts)}" if parts else ""
