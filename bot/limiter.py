"""The one limiter every call to Telegram goes through.

python-telegram-bot hands every Bot API call (command replies, getChatMember,
setMyCommands, deliveries, notices, media groups; getUpdates excepted) to
:meth:`Limiter.process_request`. The limiter holds each call until
Telegram's flood limits allow it (bot/flood.py has the rules), sends it,
and, when Telegram answers 429 all the same, waits out its ``retry_after``
for that chat and sends it again: a RetryAfter never reaches a handler, so a
reply to a person is never dropped.

Two lanes share the limits. Calls made without ``rate_limit_args`` (every
reply a handler makes) go in the reply lane; the deliverer marks its sends
``rate_limit_args=BULK``. Whenever the overall rate is the limit, a waiting
reply goes first, then bulk sends, each lane first come, first served. A
call held back only by its own chat's pace holds up nobody else.

A bulk send whose 429 asks for a long wait (over ``BULK_MAX_WAIT``) gets the
RetryAfter back instead: the deliverer reschedules it in the store and its
worker does other work. :meth:`pause_bulk` (a clean stop) refuses the bulk
sends not yet on the wire with :class:`SendingStopped`; those on the wire
finish.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import math
import time
import warnings
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter
from telegram.warnings import PTBDeprecationWarning

from bot.flood import ChatKey, Flood, chat_key, message_count
from bot.metrics import metrics

log = logging.getLogger(__name__)

#: ``rate_limit_args`` of a bulk send (a delivery); PTB passes only truthy values.
BULK = "bulk"
#: A bulk send answered 429 with a longer wait than this goes back to its caller.
BULK_MAX_WAIT = 30.0
#: Added to a 429's retry_after: Telegram rounds it, and the clocks differ.
RETRY_MARGIN = 0.1

_REPLY_LANE = 0
_BULK_LANE = 1


class SendingStopped(Exception):
    """The limiter refuses bulk sends: the bot is stopping."""


def retry_after_seconds(exc: RetryAfter) -> float:
    """A 429's wait in seconds (PTB gives an int or a timedelta, depending on
    its settings, and warns that the int is deprecated)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value: object = exc.retry_after
    total = getattr(value, "total_seconds", None)
    return float(total()) if callable(total) else float(value)  # type: ignore[arg-type]


@dataclass(eq=False, slots=True)
class _Waiter:
    lane: int
    seq: int
    chat: ChatKey | None
    items: int
    future: asyncio.Future[None] = field(repr=False)

    @property
    def order(self) -> tuple[int, int]:
        return (self.lane, self.seq)


@dataclass(slots=True)
class LimiterStats:
    calls: int = 0
    #: 429s Telegram answered (each waited out, or handed back to a bulk sender).
    rate_limited: int = 0


class Limiter(BaseRateLimiter[str]):
    """Telegram's flood limits for every call; replies before bulk sends."""

    def __init__(
        self, flood: Flood | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.flood = flood if flood is not None else Flood()
        self._clock = clock
        self._seq = itertools.count()
        #: Calls waiting to be admitted, in (lane, arrival) order.
        self._waiting: list[_Waiter] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._bulk_paused = False
        self.stats = LimiterStats()

    async def initialize(self) -> None:
        self._bulk_paused = False

    async def shutdown(self) -> None:
        self._cancel_timer()

    # -- stopping ------------------------------------------------------------
    def pause_bulk(self) -> None:
        """Refuse bulk sends not yet on the wire (they raise SendingStopped)."""
        self._bulk_paused = True
        for waiter in [w for w in self._waiting if w.lane == _BULK_LANE]:
            self._waiting.remove(waiter)
            if not waiter.future.done():
                waiter.future.set_exception(SendingStopped())
        self._pump()

    def resume_bulk(self) -> None:
        self._bulk_paused = False

    @property
    def in_flight(self) -> int:
        return self.flood.in_flight

    # -- PTB's entry point ---------------------------------------------------
    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: str | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        lane = _BULK_LANE if rate_limit_args == BULK else _REPLY_LANE
        items = message_count(endpoint, data)
        chat = chat_key(data)
        seq = next(self._seq)  # kept across retries: a retry keeps its place
        self.stats.calls += 1
        while True:
            if items:
                await self._admit(lane, seq, chat, items)
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                wait = retry_after_seconds(exc) + RETRY_MARGIN
                self.stats.rate_limited += 1
                metrics.rate_limited()
                if items:
                    self.flood.hold(chat, self._clock() + wait)
                if lane == _BULK_LANE and wait > BULK_MAX_WAIT:
                    raise
                log.info("%s to chat %s: 429, retrying in %.1fs", endpoint, chat, wait)
                if not items:
                    await asyncio.sleep(wait)  # not counted: nothing else to wait on
            finally:
                if items:
                    self.flood.answered(chat, items, self._clock())
                    self._pump()

    # -- admission -----------------------------------------------------------
    async def _admit(self, lane: int, seq: int, chat: ChatKey | None, items: int) -> None:
        if lane == _BULK_LANE and self._bulk_paused:
            raise SendingStopped()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(lane, seq, chat, items, future)
        bisect.insort(self._waiting, waiter, key=lambda w: w.order)
        self._pump()
        try:
            await future
        except asyncio.CancelledError:
            if waiter in self._waiting:
                self._waiting.remove(waiter)
            elif future.done() and not future.cancelled() and future.exception() is None:
                # Admitted in the same step as the cancel: give its places back.
                self.flood.answered(chat, items, self._clock())
            self._pump()
            raise

    def _pump(self) -> None:
        """Admit every waiter the limits allow, in order; set a timer for the
        earliest moment the next one may go (answers pump too)."""
        now = self._clock()
        overall_blocked = False
        next_at = math.inf
        admitted: list[_Waiter] = []
        for waiter in self._waiting:
            if waiter.future.done():
                admitted.append(waiter)  # cancelled meanwhile: just drop it
                continue
            wait = self.flood.wait(waiter.chat, waiter.items, now)
            if wait.chat is None:
                continue  # its chat's call in flight will pump when answered
            if wait.chat > 0:
                next_at = min(next_at, now + wait.chat)
                continue
            if overall_blocked:
                continue  # an earlier waiter (a reply, or older) has the next place
            if wait.overall != 0:
                overall_blocked = True
                if wait.overall is not None:
                    next_at = min(next_at, now + wait.overall)
                continue
            self.flood.admit(waiter.chat, waiter.items)
            waiter.future.set_result(None)
            admitted.append(waiter)
        if admitted:
            gone = set(map(id, admitted))
            self._waiting = [w for w in self._waiting if id(w) not in gone]
        self._schedule(next_at, now)

    def _schedule(self, at: float, now: float) -> None:
        if at == self._timer_at:
            return
        self._cancel_timer()
        if at < math.inf:
            self._timer_at = at
            self._timer = asyncio.get_running_loop().call_later(max(0.0, at - now), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        self._pump()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = math.inf
