"""Deliver: the outbox worker that turns queued (entry, chat) pairs into Telegram messages.

The poller records each delivery in the store *before* anything is sent
(``Store.enqueue`` + commit); this module removes it only once Telegram has
accepted the message (``Store.complete`` + commit, synchronously, in the same
step of the event loop as the answer). A crash in between means the delivery
is still queued at the next start and is sent then: nothing is lost, and the
only repeats possible are the messages Telegram accepted whose answer was not
yet processed, at most the sends in flight, which the pacer caps at 30
(bot/pacing.py). A clean stop (SIGTERM) lets the sends in flight finish first.

One asyncio task per chat sends that chat's deliveries in outbox order, so the
entries of a feed arrive oldest first, and a chat waiting out a 429 or a
backoff does not hold up the others. Every send goes through the
:class:`~bot.pacing.Pacer` (30 a second overall, one a second per chat, 20 a
minute per group or channel, each item of a media group counted).

Telegram's answers, case by case:

* 429: wait its retry_after (that chat only), then retry;
* 403 (blocked, kicked, not a member) and 400 chat not found: the chat's
  subscriptions are paused and its queue dropped; /start or adding the bot
  again resumes them (bot/commands/basic.py);
* 400 group upgraded to a supergroup: everything moves to the new id, and the
  message goes there;
* 400 can't parse entities (or too long): sent again as plain text;
* 400 media failures: sent as text, the media as links;
* 5xx, timeouts, network errors: retried with exponential backoff and jitter,
  the delivery kept in the outbox.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
import warnings
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
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    RetryAfter,
    TelegramError,
)
from telegram.warnings import PTBDeprecationWarning

from bot.models import Delivery, Style
from bot.pacing import Pacer
from bot.render import MESSAGE_LIMIT, Message, html_to_plain, render_entry, render_text_only
from bot.store import Store
pause_chat: object = None  # placeholder until the new deliverer lands

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

#: 400s that mean the chat is gone for good (403s always do).
CHAT_GONE_ERRORS = (
    "chat not found",
    # The bot lost the right to post (a channel admin took it away, a group
    # restricted it): nothing can be sent until the rights come back.
    "need administrator rights",
    "not enough rights to send",
    "have no rights to send",
)

#: Backoff for 5xx, timeouts and network errors: 2, 4, 8 … seconds, capped.
BACKOFF_BASE = 2.0
BACKOFF_CAP = 600.0
#: A delivery that keeps failing in a way Telegram did not explain (a bug) is
#: dropped after this many attempts rather than block its chat for ever.
MAX_UNEXPECTED_ATTEMPTS = 5
#: How long a clean stop waits for the sends in flight to be answered.
STOP_GRACE = 5.0


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
        #: Where the delivery now goes (a migrated group's new id).
        self.chat_id: int | None = None


def backoff_delay(attempts: int, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with full jitter in [50%, 150%] of the nominal step."""
    nominal = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempts - 1))
    return nominal * (0.5 + rng())


def is_media_error(description: str) -> bool:
    text = description.lower()
    return any(marker in text for marker in MEDIA_ERRORS)


def message_items(message: Message | str) -> int:
    """How many messages Telegram counts for it: each item of a media group."""
    return len(message.media) if isinstance(message, Message) and message.media else 1


def fit_plain(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` cut to ``limit`` UTF-16 units (how Telegram measures), on a
    character boundary."""
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return text[:index]
    return text


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
        pacer: Pacer | None = None,
    ) -> None:
        self._store = store
        self._bot = bot
        self._clock = clock
        self.pacer = pacer if pacer is not None else Pacer()
        self._wake = asyncio.Event()
        self._workers: dict[int, asyncio.Task[None]] = {}
        #: Workers with a send admitted whose delivery is not yet committed.
        self._busy: set[asyncio.Task[None]] = set()
        #: seq → how many of its messages Telegram accepted (also written to
        #: the store, Delivery.sent_parts), so a retry of a media + text
        #: delivery does not send the media again.
        self._progress: dict[int, int] = {}
        self._stopping = False
        self._main: asyncio.Task[None] | None = None
        self.stats = DeliveryStats()

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        if self._main is None:
            self._stopping = False
            self._main = asyncio.create_task(self._run(), name="outbox")

    def wake(self) -> None:
        """New deliveries were committed: look at the outbox now."""
        self._wake.set()

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop sending. A worker whose send is on the wire may finish that
        delivery (up to ``grace`` seconds) so that a clean stop repeats nothing."""
        self._stopping = True
        if self._main is not None:
            self._main.cancel()
        busy = [t for t in self._workers.values() if t in self._busy]
        for task in self._workers.values():
            if task not in self._busy:
                task.cancel()
        if busy:
            await asyncio.wait(busy, timeout=grace)
        tasks = [t for t in (self._main, *self._workers.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._main = None
        self._workers.clear()
        self._busy.clear()

    async def drain(self, timeout: float) -> bool:
        """Wait until the outbox is empty (for tests and benchmarks)."""
        deadline = self._clock() + timeout
        while self._store.pending():
            if self._clock() > deadline:
                return False
            self.wake()
            await asyncio.sleep(0.05)
        return True

    async def notify(self, chat_ids: Sequence[int], text: str) -> None:
        """Tell chats something about a feed (gone, failing, back): plain text,
        paced like every other send; a notice that fails is logged, not retried."""
        for chat_id in chat_ids:
            for _ in range(2):
                try:
                    async with self.pacer.slot(chat_id, 1):
                        await send_message(self._bot, chat_id, text)
                    break
                except RetryAfter as exc:
                    await asyncio.sleep(_retry_after(exc))
                except TelegramError as exc:
                    log.warning("could not tell chat %s: %s", chat_id, exc)
                    break

    # -- scheduling ----------------------------------------------------------
    async def _run(self) -> None:
        while True:
            self._wake.clear()
            self._dispatch()
            await self._wake.wait()

    def _dispatch(self) -> None:
        """Start a worker for every chat with queued deliveries and none yet."""
        for delivery in self._store.pending():
            chat_id = delivery.chat_id
            if chat_id not in self._workers and not self._stopping:
                task = asyncio.create_task(self._chat_worker(chat_id), name=f"chat {chat_id}")
                self._workers[chat_id] = task
                task.add_done_callback(functools.partial(self._worker_done, chat_id))

    def _worker_done(self, chat_id: int, task: asyncio.Task[None]) -> None:
        if self._workers.get(chat_id) is task:
            del self._workers[chat_id]
        self._busy.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery worker for chat %s crashed", chat_id, exc_info=task.exception())
        self.wake()

    async def _chat_worker(self, chat_id: int) -> None:
        """Send the chat's deliveries one by one, in outbox order, until none is left."""
        me = asyncio.current_task()
        while not self._stopping:
            # Read the queue afresh each time: deliveries come and go (new
            # entries, /unsubscribe, a migration, a pause) while we send.
            queue = self._store.pending_for_chat(chat_id)
            if not queue:
                return
            delivery = queue[0]
            wait = delivery.not_before - self._clock()
            if wait > 0:
                # Retry later; nothing after it goes first (the chat's order).
                await asyncio.sleep(wait)
                continue
            try:
                outcome = await self._deliver(delivery)
            except _Retry as retry:
                self._retry_later(delivery, retry)
                if retry.chat_id is not None and retry.chat_id != chat_id:
                    return  # migrated: the new chat's worker takes it from here
                continue
            finally:
                self._busy.discard(me)
            self._finish(delivery, outcome)
            if outcome is Outcome.CHAT_GONE:
                return

    def _sent_parts(self, delivery: Delivery) -> int:
        return max(self._progress.get(delivery.seq, 0), delivery.sent_parts)

    def _record_progress(self, delivery: Delivery, chat_id: int, sent_parts: int) -> None:
        """Telegram accepted part of a multi-message entry: remember it durably,
        so that neither a retry nor a restart sends that part again."""
        self._progress[delivery.seq] = sent_parts
        self._store.update_delivery(replace(delivery, chat_id=chat_id, sent_parts=sent_parts))
        self._store.commit()

    def _retry_later(self, delivery: Delivery, retry: _Retry) -> None:
        attempts = delivery.attempts + (1 if retry.counts else 0)
        self._store.update_delivery(
            replace(
                delivery,
                chat_id=retry.chat_id if retry.chat_id is not None else delivery.chat_id,
                attempts=attempts,
                not_before=self._clock() + retry.delay,
                sent_parts=self._sent_parts(delivery),
            )
        )
        self._store.commit()
        self.stats.retries += 1
        log.warning("delivery to chat %s delayed %.1fs: %s", delivery.chat_id, retry.delay, retry)

    def _finish(self, delivery: Delivery, outcome: Outcome) -> None:
        self._progress.pop(delivery.seq, None)
        # A gone chat was paused, its queue dropped, by _chat_gone already.
        if outcome is not Outcome.CHAT_GONE:
            self._store.complete(delivery)
            self._store.commit()

    # -- one delivery --------------------------------------------------------
    async def _deliver(self, delivery: Delivery) -> Outcome:
        chat_id = delivery.chat_id
        try:
            sub = self._store.get_subscription(delivery.chat_id, delivery.feed_url)
            feed = self._store.get_feed(delivery.feed_url)
            style = sub.style if sub is not None else Style()
            feed_title = feed.title if feed is not None and feed.title else ""
            messages = render_entry(delivery.entry, feed_title, style)
            done = self._sent_parts(delivery)
            if done >= len(messages):  # the style changed since: send it all anew
                done = 0
            for index, message in enumerate(messages):
                if index < done:
                    continue
                chat_id, whole = await self._send_with_fallbacks(
                    chat_id,
                    message,
                    lambda: render_text_only(delivery.entry, feed_title, style),
                    fit_plain(delivery.entry.link or delivery.entry.title or delivery.entry.id),
                )
                if whole:  # the text-only fallback carries the whole entry
                    break
                if index + 1 < len(messages):
                    self._record_progress(delivery, chat_id, index + 1)
        except _Retry as retry:
            retry.chat_id = chat_id
            raise
        except Forbidden as exc:
            return self._chat_gone(chat_id, str(exc))
        except BadRequest as exc:
            if any(marker in str(exc).lower() for marker in CHAT_GONE_ERRORS):
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
        except TelegramError as exc:
            # 5xx, timeouts, connection errors (NetworkError), or an answer we
            # do not know: transient, retried with backoff.
            raise self._backoff(delivery, chat_id, exc) from exc
        except Exception as exc:
            # A bug (in rendering, say): retry a few times, then drop it rather
            # than hold up the chat's queue for ever.
            if delivery.attempts + 1 >= MAX_UNEXPECTED_ATTEMPTS:
                log.exception("chat %s: dropping entry %r", chat_id, delivery.entry.id)
                self.stats.rejected += 1
                return Outcome.REJECTED
            log.exception("chat %s: delivering entry %r failed", chat_id, delivery.entry.id)
            raise self._backoff(delivery, chat_id, exc) from exc
        self.stats.sent += 1
        return Outcome.SENT

    def _backoff(self, delivery: Delivery, chat_id: int, exc: Exception) -> _Retry:
        retry = _Retry(backoff_delay(delivery.attempts + 1), f"{type(exc).__name__}: {exc}")
        retry.chat_id = chat_id
        return retry

    def _chat_gone(self, chat_id: int, reason: str) -> Outcome:
        pause_chat(self._store, chat_id)
        log.warning("chat %s unreachable, subscriptions paused: %s", chat_id, reason)
        self.stats.chats_gone += 1
        return Outcome.CHAT_GONE

    async def _send_with_fallbacks(
        self,
        chat_id: int,
        message: Message,
        text_only: Callable[[], Message],
        last_resort: str,
    ) -> tuple[int, bool]:
        """Send one message, degrading rather than dropping it: media Telegram
        cannot fetch becomes text, markup it cannot parse becomes plain text.
        Returns the chat id it went to (it changes when a group became a
        supergroup) and whether the entry's text-only form went instead (which
        makes the entry's other messages redundant)."""
        attempt: Message | str = message
        whole = False
        for _ in range(6):
            try:
                await self._paced_send(chat_id, attempt)
                return chat_id, whole
            except ChatMigrated as exc:
                new_id = int(exc.new_chat_id)
                log.warning("chat %s migrated to %s; subscriptions moved", chat_id, new_id)
                self._store.migrate_chat(chat_id, new_id)
                self._store.commit()
                chat_id = new_id
            except RetryAfter as exc:
                self.stats.rate_limited += 1
                raise _Retry(_retry_after(exc), "flood control", counts=False) from exc
            except BadRequest as exc:
                description = str(exc)
                lowered = description.lower()
                if isinstance(attempt, Message) and attempt.media and is_media_error(lowered):
                    log.info("chat %s: media refused (%s); sending as text", chat_id, description)
                    attempt = text_only()
                    whole = True
                elif isinstance(attempt, Message) and (
                    "can't parse entities" in lowered or "too long" in lowered
                ):
                    log.warning("chat %s: %s; sending as plain text", chat_id, description)
                    attempt = fit_plain(html_to_plain(attempt.text)) or last_resort
                else:
                    raise
                self.stats.fallbacks += 1
            # Forbidden, and NetworkError (5xx, timeouts, connection errors;
            # BadRequest is a subclass, handled above) go to _deliver.
        raise BadRequest("gave up after repeated fallbacks")

    async def _paced_send(self, chat_id: int, message: Message | str) -> None:
        async with self.pacer.slot(chat_id, message_items(message)):
            task = asyncio.current_task()
            if self._stopping and task not in self._busy:
                raise asyncio.CancelledError  # stopping: start nothing new
            self._busy.add(task)  # type: ignore[arg-type]
            await send_message(self._bot, chat_id, message)


def _seconds(value: object) -> float:
    # PTB gives retry_after as int or timedelta depending on its settings (and
    # warns that the int is deprecated).
    total = getattr(value, "total_seconds", None)
    return float(total()) if callable(total) else float(value)  # type: ignore[arg-type]


def _retry_after(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        return _seconds(exc.retry_after)


async def send_message(bot: Bot, chat_id: int, message: Message | str) -> None:
    """Send one rendered message (or a plain-text fallback) with the right API method."""
    if isinstance(message, str):
        await bot.send_message(
            chat_id, fit_plain(message), link_preview_options=LinkPreviewOptions(is_disabled=True)
        )
        return
    silent = message.silent
    caption = message.text or None
    if not message.media:
        await bot.send_message(
            chat_id,
            message.text,
            parse_mode=ParseMode.HTML,
            link_preview_options=LinkPreviewOptions(is_disabled=not message.link_preview),
            disable_notification=silent,
        )
    elif len(message.media) == 1:
        item = message.media[0]
        html = ParseMode.HTML
        if item.kind == "photo":
            await bot.send_photo(
                chat_id, item.url, caption=caption, parse_mode=html, disable_notification=silent
            )
        elif item.kind == "video":
            await bot.send_video(
                chat_id, item.url, caption=caption, parse_mode=html, disable_notification=silent
            )
        elif item.kind == "audio":
            await bot.send_audio(
                chat_id, item.url, caption=caption, parse_mode=html, disable_notification=silent
            )
        else:
            await bot.send_document(
                chat_id, item.url, caption=caption, parse_mode=html, disable_notification=silent
            )
    else:
        media_types: dict[
            str, type[InputMediaAudio | InputMediaDocument | InputMediaPhoto | InputMediaVideo]
        ] = {
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
        await bot.send_media_group(chat_id, group, disable_notification=silent)
