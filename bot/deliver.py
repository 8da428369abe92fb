"""Deliver: the outbox worker that turns queued (entry, chat) pairs into Telegram messages.

The poller records each delivery in the store *before* anything is sent
(``Store.enqueue`` + commit); this module removes it only once Telegram has
accepted the message (``Store.complete`` + commit). A crash in between means the
delivery is still queued at the next start and is sent then: nothing is lost,
and the only repeat possible is a message Telegram accepted in the instant
before the crash.

One asyncio task per chat sends that chat's deliveries in outbox order, so the
entries of a feed arrive oldest first and a chat waiting out a 429 or a backoff
does not hold up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import Enum

from telegram import (
    Bot,
    InputMediaAudio,
    InputMediaDocument,
    InputMediaPhoto,
    InputMediaVideo,
    LinkPreviewOptions,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter

from bot.models import Delivery, Style
from bot.render import Message, html_to_plain, render_entry, render_text_only
from bot.store import Store
from bot.subscriptions import pause_chat

log = logging.getLogger(__name__)

#: Telegram answers these when it cannot fetch or use a media URL; the entry then
#: goes out as text. Matched case-insensitively against the error description.
MEDIA_ERRORS = (
    "wrong file identifier",
    "failed to get http url content",
    "image_process_failed",
    "wrong type of the web page content",
    "file is too big",
    "webpage_media_empty",
    "webpage_curl_failed",
    "wrong remote file identifier",
    "photo_invalid_dimensions",
    "media_empty",
    "group send failed",
)

#: Spacing between two messages to the same chat, as Telegram asks of bots:
#: about one a second in a private chat, twenty a minute in a group or channel.
PRIVATE_CHAT_SPACING = 1.0
GROUP_CHAT_SPACING = 3.0

#: Backoff for 5xx, timeouts and network errors: 2, 4, 8 … seconds, capped.
BACKOFF_BASE = 2.0
BACKOFF_CAP = 600.0


class Outcome(Enum):
    SENT = "sent"
    #: The chat cannot be reached (blocked, kicked, deleted): subscriptions paused.
    CHAT_GONE = "chat gone"
    #: Telegram refused this message for good, even as plain text: dropped, logged.
    REJECTED = "rejected"


class _Retry(Exception):
    """A transient failure: try this delivery again after ``delay`` seconds."""

    def __init__(self, delay: float, reason: str, *, counts: bool = True) -> None:
        super().__init__(reason)
        self.delay = delay
        #: 429s are Telegram pacing us, not a failure; they don't grow the backoff.
        self.counts = counts


def chat_spacing(chat_id: int) -> float:
    # Private chats have positive ids; groups, supergroups and channels negative.
    return PRIVATE_CHAT_SPACING if chat_id > 0 else GROUP_CHAT_SPACING


def backoff_delay(attempts: int, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with full jitter in [50%, 150%] of the nominal step."""
    nominal = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempts - 1))
    return nominal * (0.5 + rng())


def is_media_error(description: str) -> bool:
    text = description.lower()
    return any(marker in text for marker in MEDIA_ERRORS)


@dataclass(slots=True)
class DeliveryStats:
    sent: int = 0
    retries: int = 0
    rate_limited: int = 0
    fallbacks: int = 0
    chats_gone: int = 0
    rejected: int = 0


class Deliverer:
    """Drains the store's outbox into Telegram."""

    def __init__(
        self,
        store: Store,
        bot: Bot,
        *,
        clock: Callable[[], float] = time.time,
        spacing: Callable[[int], float] = chat_spacing,
    ) -> None:
        self._store = store
        self._bot = bot
        self._clock = clock
        self._spacing = spacing
        self._wake = asyncio.Event()
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._last_send: dict[int, float] = {}
        self._main: asyncio.Task[None] | None = None
        self.stats = DeliveryStats()

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        if self._main is None:
            self._main = asyncio.create_task(self._run(), name="outbox")

    def wake(self) -> None:
        """New deliveries were committed: look at the outbox now."""
        self._wake.set()

    async def stop(self) -> None:
        tasks = [t for t in (self._main, *self._workers.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._main = None
        self._workers.clear()

    async def drain(self, timeout: float) -> bool:
        """Wait until the outbox is empty (for tests and `feedbot check`)."""
        deadline = self._clock() + timeout
        while self._store.pending():
            if self._clock() > deadline:
                return False
            self.wake()
            await asyncio.sleep(0.05)
        return True

    # -- scheduling ----------------------------------------------------------
    async def _run(self) -> None:
        while True:
            self._wake.clear()
            next_due = self._dispatch()
            timeout = None if next_due is None else max(0.0, next_due - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _dispatch(self) -> float | None:
        """Start a worker for every idle chat with a due delivery; return when
        the earliest not-yet-due delivery becomes due."""
        now = self._clock()
        next_due: float | None = None
        by_chat: dict[int, list[Delivery]] = {}
        for delivery in self._store.pending():
            by_chat.setdefault(delivery.chat_id, []).append(delivery)
        for chat_id, deliveries in by_chat.items():
            if chat_id in self._workers:
                continue
            first_due = deliveries[0].not_before
            if first_due > now:
                next_due = first_due if next_due is None else min(next_due, first_due)
                continue
            task = asyncio.create_task(self._chat_worker(chat_id, deliveries))
            self._workers[chat_id] = task
            task.add_done_callback(lambda _t, c=chat_id: self._worker_done(c))
        return next_due

    def _worker_done(self, chat_id: int) -> None:
        task = self._workers.pop(chat_id, None)
        if task is not None and not task.cancelled() and task.exception() is not None:
            log.error("delivery worker for chat %s crashed", chat_id, exc_info=task.exception())
        self.wake()

    async def _chat_worker(self, chat_id: int, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            # The chat may have been migrated or paused while we were sending.
            current = self._current(delivery)
            if current is None:
                continue
            try:
                outcome = await self._deliver(current)
            except _Retry as retry:
                attempts = current.attempts + (1 if retry.counts else 0)
                self._store.update_delivery(
                    replace(current, attempts=attempts, not_before=self._clock() + retry.delay)
                )
                self._store.commit()
                self.stats.retries += 1
                log.warning(
                    "delivery to chat %s delayed %.0fs: %s", current.chat_id, retry.delay, retry
                )
                return  # keep the chat's order: nothing after it goes first
            self._finish(current, outcome)
            if outcome is Outcome.CHAT_GONE:
                return

    def _current(self, delivery: Delivery) -> Delivery | None:
        """The delivery as the store has it now, or None if it was removed."""
        for pending in self._store.pending_for_chat(delivery.chat_id):
            if pending.seq == delivery.seq:
                return pending
        return None

    def _finish(self, delivery: Delivery, outcome: Outcome) -> None:
        # A gone chat was paused, its queue dropped, by _chat_gone already.
        if outcome is not Outcome.CHAT_GONE:
            self._store.complete(delivery)
            self._store.commit()

    # -- one delivery --------------------------------------------------------
    async def _deliver(self, delivery: Delivery) -> Outcome:
        sub = self._store.get_subscription(delivery.chat_id, delivery.feed_url)
        feed = self._store.get_feed(delivery.feed_url)
        style = sub.style if sub is not None else Style()
        feed_title = feed.title if feed is not None and feed.title else ""
        chat_id = delivery.chat_id
        try:
            for message in render_entry(delivery.entry, feed_title, style):
                fallback = render_text_only(delivery.entry, feed_title, style)
                chat_id = await self._send_with_fallbacks(chat_id, message, fallback, delivery)
        except Forbidden as exc:
            return self._chat_gone(chat_id, str(exc))
        except BadRequest as exc:
            if "chat not found" in str(exc).lower():
                return self._chat_gone(chat_id, str(exc))
            log.error(
                "chat %s: Telegram rejected entry %r of %s: %s",
                chat_id,
                delivery.entry.id,
                delivery.feed_url,
                exc,
            )
            self.stats.rejected += 1
            return Outcome.REJECTED
        self.stats.sent += 1
        return Outcome.SENT

    def _chat_gone(self, chat_id: int, reason: str) -> Outcome:
        pause_chat(self._store, chat_id)
        log.warning("chat %s unreachable, subscriptions paused: %s", chat_id, reason)
        self.stats.chats_gone += 1
        return Outcome.CHAT_GONE

    async def _send_with_fallbacks(
        self, chat_id: int, message: Message, text_only: Message, delivery: Delivery
    ) -> int:
        """Send one message, degrading rather than dropping it: media Telegram
        cannot fetch becomes text, markup it cannot parse becomes plain text.
        Returns the chat id it went to (it changes when a group became a
        supergroup)."""
        attempt: Message | str = message
        for _ in range(4):
            try:
                await self._paced_send(chat_id, attempt)
                return chat_id
            except ChatMigrated as exc:
                new_id = int(exc.new_chat_id)
                log.warning("chat %s migrated to %s; subscriptions moved", chat_id, new_id)
                self._store.migrate_chat(chat_id, new_id)
                self._store.commit()
                chat_id = new_id
            except RetryAfter as exc:
                self.stats.rate_limited += 1
                raise _Retry(_seconds(exc.retry_after), "flood control", counts=False) from exc
            except BadRequest as exc:
                description = str(exc)
                lowered = description.lower()
                if isinstance(attempt, Message) and attempt.media and is_media_error(lowered):
                    log.info("chat %s: media refused (%s); sending as text", chat_id, description)
                    attempt = text_only
                elif isinstance(attempt, Message) and (
                    "can't parse entities" in lowered or "too long" in lowered
                ):
                    log.warning("chat %s: %s; sending as plain text", chat_id, description)
                    attempt = (
                        html_to_plain(attempt.text) or delivery.entry.link or delivery.entry.id
                    )
                else:
                    raise
                self.stats.fallbacks += 1
            except Forbidden:
                raise
            except NetworkError as exc:
                # 5xx, timeouts, connection errors (BadRequest, a NetworkError
                # subclass, was handled above).
                step = backoff_delay(delivery.attempts + 1)
                raise _Retry(step, f"{type(exc).__name__}: {exc}") from exc
        raise BadRequest("gave up after repeated fallbacks")

    async def _paced_send(self, chat_id: int, message: Message | str) -> None:
        spacing = self._spacing(chat_id)
        last = self._last_send.get(chat_id)
        if last is not None:
            wait = last + spacing - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        try:
            await send_message(self._bot, chat_id, message)
        finally:
            self._last_send[chat_id] = time.monotonic()


def _seconds(value: object) -> float:
    # PTB gives retry_after as int or timedelta depending on its settings.
    total = getattr(value, "total_seconds", None)
    return float(total()) if callable(total) else float(value)  # type: ignore[arg-type]


async def send_message(bot: Bot, chat_id: int, message: Message | str) -> None:
    """Send one rendered message (or a plain-text fallback) with the right API method."""
    if isinstance(message, str):
        await bot.send_message(
            chat_id, message[:4096], link_preview_options=LinkPreviewOptions(is_disabled=True)
        )
        return
    common = {"disable_notification": message.silent}
    caption = message.text or None
    if not message.media:
        await bot.send_message(
            chat_id,
            message.text,
            parse_mode=ParseMode.HTML,
            link_preview_options=LinkPreviewOptions(is_disabled=not message.link_preview),
            **common,
        )
    elif len(message.media) == 1:
        item = message.media[0]
        send = {
            "photo": bot.send_photo,
            "video": bot.send_video,
            "audio": bot.send_audio,
            "document": bot.send_document,
        }[item.kind]
        await send(chat_id, item.url, caption=caption, parse_mode=ParseMode.HTML, **common)
    else:
        media_types = {
            "photo": InputMediaPhoto,
            "video": InputMediaVideo,
            "audio": InputMediaAudio,
            "document": InputMediaDocument,
        }
        group = [
            media_types[item.kind](
                item.url,
                caption=caption if index == 0 else None,
                parse_mode=ParseMode.HTML if index == 0 else None,
            )
            for index, item in enumerate(message.media)
        ]
        await bot.send_media_group(chat_id, group, **common)
