"""What Telegram's answer to one send means for the delivery: a pure verdict.

:func:`classify` takes the exception a send raised (None when Telegram
accepted it), what kind of message it was and how often the delivery has
been tried, and returns a verdict; bot/deliver.py is the one place that
applies verdicts (to the store, or by sending a fallback). No I/O here, so
every rule is tested with plain values (tests/test_delivery_rules.py).

The answers, case by case:

* accepted: :class:`Sent`;
* 429 (a long one: the limiter waits out short ones itself): :class:`Retry`
  after its retry_after, not counted as a failure;
* 403 (blocked, kicked, not a member) and the 400s that mean the chat cannot
  be posted to: :class:`ChatGone` (its subscriptions are paused);
* 400 group upgraded to a supergroup: :class:`Migrated` to the new id;
* 400 media Telegram cannot fetch or use: :class:`TextOnly` (the entry as
  text, its media as links);
* 400 can't parse entities, or too long: :class:`PlainText`;
* any other 400, or a fallback refused as well: :class:`Refused`, for good;
* 5xx, timeouts, network errors: :class:`Retry` with the one backoff rule,
  :func:`backoff_delay`;
* anything else (a bug, in rendering say): retried a few times, then
  :class:`Refused` rather than hold up the chat's queue for ever.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from telegram.error import BadRequest, ChatMigrated, Forbidden, RetryAfter, TelegramError

from bot.limiter import retry_after_seconds

#: What was sent: media (with or without a caption), HTML text, or plain text.
MessageKind = Literal["media", "html", "plain"]

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

#: Markup Telegram cannot take: the same words go again as plain text.
MARKUP_ERRORS = ("can't parse entities", "too long")

#: Backoff for 5xx, timeouts and network errors: 2, 4, 8 … seconds, capped.
BACKOFF_BASE = 2.0
BACKOFF_CAP = 600.0
#: A delivery that keeps failing in a way Telegram did not explain (a bug) is
#: refused after this many attempts rather than block its chat for ever.
MAX_UNEXPECTED_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Sent:
    pass


@dataclass(frozen=True, slots=True)
class Retry:
    """Try the delivery again in ``delay`` seconds; ``counts``: a failure
    (grows the backoff), not Telegram pacing us."""

    delay: float
    reason: str
    counts: bool = True


@dataclass(frozen=True, slots=True)
class ChatGone:
    reason: str


@dataclass(frozen=True, slots=True)
class Migrated:
    new_chat_id: int


@dataclass(frozen=True, slots=True)
class TextOnly:
    """The media was refused: send the entry as text, its media as links."""

    reason: str


@dataclass(frozen=True, slots=True)
class PlainText:
    """The markup was refused: send the same words without it."""

    reason: str


@dataclass(frozen=True, slots=True)
class Refused:
    """Telegram will never take this message: drop the delivery (logged)."""

    reason: str


Verdict = Sent | Retry | ChatGone | Migrated | TextOnly | PlainText | Refused


def backoff_delay(attempts: int, rng: Callable[[], float] = random.random) -> float:
    """The one backoff rule: exponential, with full jitter in [50%, 150%] of
    the nominal step (``attempts`` counts this failure)."""
    nominal = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempts - 1))
    return nominal * (0.5 + rng())


def classify(
    error: BaseException | None,
    kind: MessageKind,
    attempts: int = 0,
    rng: Callable[[], float] = random.random,
) -> Verdict:
    """The verdict on one send of a ``kind`` message of a delivery tried
    ``attempts`` times before (see the module docstring)."""
    if error is None:
        return Sent()
    reason = f"{type(error).__name__}: {error}"
    if isinstance(error, RetryAfter):
        return Retry(retry_after_seconds(error), reason, counts=False)
    if isinstance(error, ChatMigrated):
        return Migrated(int(error.new_chat_id))
    if isinstance(error, Forbidden):
        return ChatGone(reason)
    if isinstance(error, BadRequest):
        text = str(error).lower()
        if any(marker in text for marker in CHAT_GONE_ERRORS):
            return ChatGone(reason)
        if kind == "media" and any(marker in text for marker in MEDIA_ERRORS):
            return TextOnly(reason)
        if kind != "plain" and any(marker in text for marker in MARKUP_ERRORS):
            return PlainText(reason)
        return Refused(reason)
    if isinstance(error, TelegramError):
        # 5xx, timeouts, connection errors (NetworkError), or an answer we do
        # not know: transient.
        return Retry(backoff_delay(attempts + 1, rng), reason)
    if attempts + 1 >= MAX_UNEXPECTED_ATTEMPTS:
        return Refused(reason)
    return Retry(backoff_delay(attempts + 1, rng), reason)
