"""Flood control as Telegram enforces it, so that a 429 stays rare.

Telegram's limits for a bot (https://core.telegram.org/bots/faq#broadcasting-to-users):

* about 30 messages a second overall;
* about one message a second in a single chat;
* at most 20 messages a minute in a group or channel;

and every item of a media group counts as a message.

:class:`Pacer` holds each send until all three allow it. The overall and the
group limits are sliding windows ("at most N in any P seconds"), the per-chat
one a spacing of one second per item after the previous send.

A send counts from the moment it is admitted until its answer: while the
request is on the wire it occupies its place in the windows, and once the
answer is in it is stamped with the time of the answer. Telegram saw the
request at some moment between the two, so a place is reused only when the
request that held it is surely more than a window old *on Telegram's side*:
no safety margin to guess, whatever the network latency. It also means that
at most ``per_second`` sends (30) are ever in flight at once, which bounds
how many messages a crash can repeat (see bot/deliver.py).

Entries go to a chat from one task only (bot/deliver.py runs one worker per
chat), so the per-chat state needs no lock; a notice about a feed
(Deliverer.notify) may race that worker at worst into one 429, which notify
waits out. The overall window is shared, and its lock is first come, first
served, so chats take turns in the order they became ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

#: Telegram's limits (see the module docstring).
MESSAGES_PER_SECOND = 30
CHAT_INTERVAL = 1.0
GROUP_MESSAGES_PER_MINUTE = 20

#: Forget the pace of chats that have been quiet for longer than every window.
_PRUNE_ABOVE = 4096


def is_group(chat_id: int) -> bool:
    """Groups, supergroups and channels have negative ids; private chats positive."""
    return chat_id < 0


class Window:
    """At most ``limit`` units in any ``period`` seconds.

    Units in flight (admitted, not yet answered) count as taking their place
    until :meth:`close` stamps them with the time of the answer.
    """

    __slots__ = ("_done", "_open", "limit", "period")

    def __init__(self, limit: int, period: float) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("a window needs limit >= 1 and period > 0")
        self.limit = limit
        self.period = period
        self._done: deque[float] = deque()
        self._open = 0

    def delay(self, now: float, units: int) -> float | None:
        """Seconds until ``units`` more fit (0: now); None when only the
        answer to a request in flight can make room."""
        units = min(units, self.limit)
        horizon = now - self.period
        while self._done and self._done[0] <= horizon:
            self._done.popleft()
        excess = len(self._done) + self._open + units - self.limit
        if excess <= 0:
            return 0.0
        if excess > len(self._done):
            return None
        return self._done[excess - 1] + self.period - now

    def open(self, units: int) -> None:
        self._open += units

    def close(self, now: float, units: int) -> None:
        self._open -= units
        self._done.extend([now] * units)

    @property
    def idle(self) -> bool:
        return not self._open and not self._done

    @property
    def in_flight(self) -> int:
        return self._open


class Pacer:
    """Holds each send until Telegram's limits allow it (see the module docstring)::

    async with pacer.slot(chat_id, items):
        await bot.send_message(chat_id, ...)
    """

    def __init__(
        self,
        *,
        per_second: int = MESSAGES_PER_SECOND,
        chat_interval: float = CHAT_INTERVAL,
        group_per_minute: int = GROUP_MESSAGES_PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
        second: float = 1.0,
        minute: float = 60.0,
    ) -> None:
        """``second`` and ``minute`` are the windows' lengths (tests shorten them)."""
        self.per_second = per_second
        self._chat_interval = chat_interval
        self._group_per_minute = group_per_minute
        self._minute = minute
        self._clock = clock
        self._overall = Window(per_second, second)
        self._groups: dict[int, Window] = {}
        #: Per chat: the earliest time of its next send.
        self._chat_free: dict[int, float] = {}
        self._lock = asyncio.Lock()
        self._answered = asyncio.Event()

    @property
    def in_flight(self) -> int:
        """Messages admitted and not yet answered (never more than ``per_second``)."""
        return self._overall.in_flight

    @contextlib.asynccontextmanager
    async def slot(self, chat_id: int, items: int = 1) -> AsyncIterator[None]:
        """Wait until ``items`` messages (a media group counts each item) may go
        to ``chat_id``, hold their place while the body runs (the request), and
        stamp them with the time it ends, whatever its outcome: Telegram may
        have counted a request even when its answer was lost."""
        items = max(1, items)
        # 1. The chat's own pace: only this chat's worker waits here.
        while True:
            now = self._clock()
            wait = self._chat_free.get(chat_id, now) - now
            if is_group(chat_id):
                group_wait = self._group(chat_id).delay(now, items)
                # None cannot happen (this worker has nothing in flight); be safe.
                wait = max(wait, 0.05 if group_wait is None else group_wait)
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        # 2. The bot's overall rate, first come first served.
        async with self._lock:
            while True:
                self._answered.clear()
                wait_overall = self._overall.delay(self._clock(), items)
                if wait_overall == 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._answered.wait(), wait_overall)
            self._overall.open(items)
            group = self._group(chat_id) if is_group(chat_id) else None
            if group is not None:
                group.open(items)
        try:
            yield
        finally:
            now = self._clock()
            self._overall.close(now, items)
            if group is not None:
                group.close(now, items)
            self._chat_free[chat_id] = now + items * self._chat_interval
            self._answered.set()
            if len(self._chat_free) > _PRUNE_ABOVE:
                self._prune(now)

    def _group(self, chat_id: int) -> Window:
        window = self._groups.get(chat_id)
        if window is None:
            window = self._groups[chat_id] = Window(self._group_per_minute, self._minute)
        return window

    def _prune(self, now: float) -> None:
        self._chat_free = {c: t for c, t in self._chat_free.items() if t > now}
        for chat_id, window in list(self._groups.items()):
            window.delay(now, 0)  # drops stamps older than the window
            if window.idle:
                del self._groups[chat_id]
