"""Deliver: the outbox worker that turns queued deliveries into Telegram messages.

A poll records its deliveries (entries, and notices about a feed) in the
store before anything is sent; this module removes one only once Telegram has
accepted it (``Store.complete_delivery``, awaited right after the answer). A
crash in between means the delivery is still queued at the next start and is
sent then: nothing is lost, and the only repeats possible are the messages
Telegram accepted whose answer was not yet recorded, at most the sends in
flight, which the limiter caps at 30 (bot/flood.py). A clean stop lets the
sends on the wire finish first.

One asyncio task per chat with queued deliveries (``Store.outbox_chats``)
sends that chat's oldest delivery (``Store.next_delivery``), then the next,
so the entries of a feed arrive oldest first, and a chat waiting out a
backoff does not hold up the others: its worker ends, and the outbox loop
starts a new one when the delivery's ``not_before`` comes. No send costs a
scan of the outbox.

Each answer from Telegram is classified by a pure rule (bot/delivery_rules.py);
:meth:`Deliverer._apply` is the one place that applies a verdict to the
store. Every send goes through the one limiter (bot/limiter.py), marked as
bulk, so that replies to people go first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from telegram.ext import ExtBot

from bot.delivery_rules import (
    ChatGone,
    Migrated,
    PlainText,
    Refused,
    Retry,
    Sent,
    TextOnly,
    Verdict,
    classify,
)
from bot.health import heartbeats
from bot.limiter import Limiter, SendingStopped
from bot.metrics import DeliveryOutcome, metrics
from bot.models import Delivery, Style
from bot.outgoing import Outgoing, fit_plain, kind_of, send_message
from bot.render import Message, html_to_plain, render_entry, render_text_only
from bot.store import Store
from bot.texts import say

log = logging.getLogger(__name__)

#: Chats sent to at once. More than the overall rate needs (30 a second, and
#: each chat about one a second), and it bounds the work of each outbox look.
MAX_CHATS = 256
#: Look at the outbox at least this often (another process may have queued).
IDLE_RECHECK = 5.0
#: How long a clean stop waits for the sends in flight to be answered.
STOP_GRACE = 5.0
#: Fallbacks tried for one message (text only, then plain text …) before giving up.
MAX_FALLBACKS = 4
#: The outbox loop's heartbeat (bot/health.py): it goes round at least every
#: IDLE_RECHECK seconds, so several missed rounds mean it died or hangs.
HEARTBEAT = "deliver"
HEARTBEAT_MAX_AGE = 6 * IDLE_RECHECK


@dataclass(frozen=True, slots=True)
class _Progress:
    """Telegram accepted the first ``sent_parts`` messages of an entry."""

    sent_parts: int


@dataclass(slots=True)
class DeliveryStats:
    sent: int = 0
    retries: int = 0
    #: 429s handed back by the limiter (long waits), rescheduled in the store.
    rate_limited: int = 0
    fallbacks: int = 0
    chats_gone: int = 0
    migrated: int = 0
    rejected: int = 0


class Deliverer:
    """Drains the store's outbox into Telegram."""

    def __init__(
        self,
        store: Store,
        bot: ExtBot[Any],
        *,
        clock: Callable[[], float] = time.time,
        max_chats: int = MAX_CHATS,
        media_allowed: Callable[[Sequence[Outgoing]], Awaitable[bool]] | None = None,
    ) -> None:
        self._store = store
        #: A self-hosted Bot API server fetches media from the operator's
        #: network: media it may not be handed makes the entry go as text.
        self._media_allowed = media_allowed
        self._bot = bot
        self._clock = clock
        self._max_chats = max_chats
        limiter = getattr(bot, "rate_limiter", None)
        self._limiter = limiter if isinstance(limiter, Limiter) else None
        self._wake = asyncio.Event()
        self._workers: dict[int, asyncio.Task[None]] = {}
        #: Chats whose worker is sending (a request on the wire, or waiting
        #: in the limiter): a clean stop lets these finish.
        self._sending: set[int] = set()
        self._stopping = False
        self._main: asyncio.Task[None] | None = None
        self.stats = DeliveryStats()

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        if self._main is None:
            self._stopping = False
            if self._limiter is not None:
                self._limiter.resume_bulk()
            self._main = asyncio.create_task(self._run(), name="outbox")

    def wake(self) -> None:
        """New deliveries were queued: look at the outbox now."""
        self._wake.set()

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop sending. A send on the wire may finish (up to ``grace``
        seconds) and be recorded, so that a clean stop repeats nothing."""
        self._stopping = True
        heartbeats.forget(HEARTBEAT)
        if self._main is not None:
            self._main.cancel()
        if self._limiter is not None:
            self._limiter.pause_bulk()  # sends still waiting for a place: refused
        busy = [t for c, t in self._workers.items() if c in self._sending]
        for chat_id, task in self._workers.items():
            if chat_id not in self._sending:
                task.cancel()
        if busy:
            await asyncio.wait(busy, timeout=grace)
        tasks = [t for t in (self._main, *self._workers.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._main = None
        self._workers.clear()
        self._sending.clear()

    async def drain(self, timeout: float) -> bool:
        """Wait until the outbox is empty (for tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        while await self._store.next_delivery_at() is not None:
            if time.monotonic() > deadline:
                return False
            self.wake()
            await asyncio.sleep(0.05)
        return True

    # -- scheduling ----------------------------------------------------------
    async def _run(self) -> None:
        while not self._stopping:
            heartbeats.beat(HEARTBEAT, HEARTBEAT_MAX_AGE)
            self._wake.clear()
            try:
                timeout = await self._dispatch()
            except Exception:
                log.exception("could not read the outbox; trying again")
                timeout = 1.0
            # asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancel
            # that comes as the event is set (a worker ending during stop()).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _dispatch(self) -> float:
        """Start a worker for each chat with a delivery due and none yet;
        return how long to wait before looking again (unless woken)."""
        room = self._max_chats - len(self._workers)
        if room > 0 and not self._stopping:
            for chat_id in await self._store.outbox_chats(self._clock(), self._max_chats):
                if room == 0:
                    break
                if chat_id not in self._workers:
                    task = asyncio.create_task(self._chat_worker(chat_id), name=f"chat {chat_id}")
                    self._workers[chat_id] = task
                    task.add_done_callback(functools.partial(self._worker_done, chat_id))
                    room -= 1
        at = await self._store.next_delivery_at()
        wait = IDLE_RECHECK if at is None else at - self._clock()
        # Due now but every such chat has a worker (or no room): their ends wake us.
        return IDLE_RECHECK if wait <= 0 else max(0.01, min(IDLE_RECHECK, wait))

    def _worker_done(self, chat_id: int, task: asyncio.Task[None]) -> None:
        if self._workers.get(chat_id) is task:
            del self._workers[chat_id]
        self._sending.discard(chat_id)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery worker for chat %s crashed", chat_id, exc_info=task.exception())
        self.wake()

    async def _chat_worker(self, chat_id: int) -> None:
        """Send the chat's deliveries one by one, oldest first, while they are due."""
        while not self._stopping:
            delivery = await self._store.next_delivery(chat_id)
            if delivery is None or delivery.not_before > self._clock():
                return  # done, or a retry later: the outbox loop comes back for it
            self._sending.add(chat_id)
            try:
                verdict = await self._deliver(delivery)
            except SendingStopped:
                return  # stopping: it stays queued as it is
            finally:
                self._sending.discard(chat_id)
            if isinstance(verdict, ChatGone | Migrated):
                return  # nothing left here (a migrated chat's new worker goes on)

    # -- one delivery --------------------------------------------------------
    async def _deliver(self, delivery: Delivery) -> Verdict | None:
        """Send a delivery's messages (those not yet accepted), degrading
        rather than dropping: refused media becomes text, refused markup plain
        text. Returns the verdict applied, None when stopped part-way."""
        try:
            messages, text_only = await self._render(delivery)
        except Exception as exc:  # a bug in rendering: retried a few times, then dropped
            log.exception("chat %s: rendering delivery %s failed", delivery.chat_id, delivery.seq)
            return await self._apply(delivery, classify(exc, "html", delivery.attempts))
        done = delivery.sent_parts if delivery.sent_parts < len(messages) else 0
        for index in range(done, len(messages)):
            attempt: Outgoing = messages[index]
            whole = False  # the text-only form carries the whole entry
            verdict: Verdict = Refused("gave up after repeated fallbacks")
            for _ in range(MAX_FALLBACKS):
                if self._stopping:
                    return None
                error = await self._send(delivery.chat_id, attempt)
                verdict = classify(error, kind_of(attempt), delivery.attempts)
                if isinstance(verdict, TextOnly) and text_only is not None:
                    log.info("chat %s: %s; sending as text", delivery.chat_id, verdict.reason)
                    attempt, whole = text_only(), True
                elif isinstance(verdict, PlainText) and isinstance(attempt, Message):
                    log.warning("chat %s: %s; plain text", delivery.chat_id, verdict.reason)
                    attempt = fit_plain(html_to_plain(attempt.text)) or _last_resort(delivery)
                else:
                    break
                self.stats.fallbacks += 1
                metrics.delivery_done("fallback")
            if isinstance(verdict, TextOnly | PlainText):  # no fallback left
                verdict = Refused(verdict.reason)
            if not isinstance(verdict, Sent) or whole or index + 1 == len(messages):
                return await self._apply(delivery, verdict)
            delivery = replace(delivery, sent_parts=index + 1)
            await self._apply(delivery, _Progress(index + 1))
        return None  # not reached: the loop ends in an _apply

    async def _render(
        self, delivery: Delivery
    ) -> tuple[list[Outgoing], Callable[[], Message] | None]:
        """The delivery's messages, and its text-only form (entries only)."""
        if delivery.notice is not None:
            return [say(delivery.notice.code, delivery.notice.params)], None
        entry = delivery.entry
        if entry is None:
            raise ValueError(f"delivery {delivery.seq} has neither entry nor notice")
        sub = await self._store.get_subscription(delivery.chat_id, delivery.feed_url)
        feed = await self._store.get_feed(delivery.feed_url)
        style = sub.style if sub is not None else Style()
        title = feed.title if feed is not None and feed.title else ""
        messages: list[Outgoing] = list(render_entry(entry, title, style))
        if self._media_allowed is not None and not await self._media_allowed(messages):
            return [render_text_only(entry, title, style)], None
        return messages, lambda: render_text_only(entry, title, style)

    async def _send(self, chat_id: int, message: Outgoing) -> BaseException | None:
        """Telegram's answer: None when it accepted the message, else the error."""
        try:
            await send_message(self._bot, chat_id, message)
        except (SendingStopped, asyncio.CancelledError):
            raise
        except Exception as exc:
            return exc
        return None

    # -- the one place verdicts reach the store -------------------------------
    async def _apply(self, delivery: Delivery, verdict: Verdict | _Progress) -> Verdict | None:
        store, chat_id = self._store, delivery.chat_id
        match verdict:
            case _Progress():
                # Durable, so that neither a retry nor a restart sends that part again.
                await store.reschedule_delivery(delivery)
                return None
            case Sent():
                await store.complete_delivery(delivery)
                self.stats.sent += 1
            case Retry(delay=delay, reason=reason, counts=counts):
                await store.reschedule_delivery(
                    replace(
                        delivery,
                        attempts=delivery.attempts + (1 if counts else 0),
                        not_before=self._clock() + delay,
                    )
                )
                self.stats.retries += 1
                self.stats.rate_limited += not counts
                log.warning("delivery to chat %s delayed %.1fs: %s", chat_id, delay, reason)
            case ChatGone(reason=reason):
                await store.pause_chat(chat_id)
                self.stats.chats_gone += 1
                log.warning("chat %s unreachable, subscriptions paused: %s", chat_id, reason)
            case Migrated(new_chat_id=new_id):
                # The delivery moves with the chat; the new chat's worker sends it.
                await store.migrate_chat(chat_id, new_id)
                self.stats.migrated += 1
                log.warning("chat %s migrated to %s; subscriptions moved", chat_id, new_id)
                self.wake()
            case Refused(reason=reason):
                await store.complete_delivery(delivery)
                self.stats.rejected += 1
                log.error(
                    "chat %s: dropping delivery %s of %s: %s",
                    chat_id,
                    delivery.seq,
                    delivery.feed_url,
                    reason,
                )
            case TextOnly() | PlainText():
                raise AssertionError(f"not a final verdict: {verdict!r}")
        metrics.delivery_done(_OUTCOMES[type(verdict)])
        return verdict


_OUTCOMES: dict[type, DeliveryOutcome] = {
    Sent: "sent",
    Retry: "retry",
    ChatGone: "chat_gone",
    Migrated: "migrated",
    Refused: "refused",
}


def _last_resort(delivery: Delivery) -> str:
    entry = delivery.entry
    if entry is None:
        return ""
    return fit_plain(entry.link or entry.title or entry.id)
