"""Telegram's flood limits as plain arithmetic, so that a 429 stays rare.

Telegram's limits for a bot (https://core.telegram.org/bots/faq#broadcasting-to-users):

* about 30 messages a second overall;
* about one message a second in a single chat;
* at most 20 messages a minute in a group or channel;

and every item of a media group counts as a message. Calls that send no
message (getChatMember, answerCallbackQuery, setMyCommands …) count against
none of these.

:class:`Flood` is the state of those limits; it never reads a clock (every
method takes ``now``), so its rules are tested with plain numbers, and
bot/limiter.py is the one place that applies it to real calls.

The overall and the group limits are sliding windows ("at most N in any P
seconds"), the per-chat one a spacing of one second per item after the
previous answer, with one call in flight per chat at a time.

A send counts from the moment it is admitted until its answer: while the
request is on the wire it occupies its place in the windows, and once the
answer is in it is stamped with the time of the answer. Telegram saw the
request at some moment between the two, so a place is reused only when the
request that held it is surely more than a window old *on Telegram's side*:
no safety margin to guess, whatever the network latency. It also means that
at most ``per_second`` sends (30) are ever in flight at once, which bounds
how many messages a crash can repeat (see bot/deliver.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Telegram's limits (see the module docstring).
MESSAGES_PER_SECOND = 30
CHAT_INTERVAL = 1.0
GROUP_MESSAGES_PER_MINUTE = 20

#: Forget the pace of chats that have been quiet for longer than every window.
_PRUNE_ABOVE = 4096

#: Methods that put messages in a chat, besides ``send*`` (sendChatAction puts none).
_SENDING = frozenset({"copyMessage", "copyMessages", "forwardMessage", "forwardMessages"})

#: A chat as the Bot API names it: its id, or "@username" of a public channel.
ChatKey = int | str


def is_group(chat: ChatKey) -> bool:
    """Groups, supergroups and channels have negative ids (or an @username);
    private chats positive ids."""
    return isinstance(chat, str) or chat < 0


def chat_key(data: Mapping[str, Any]) -> ChatKey | None:
    """The chat a call goes to, from its parameters."""
    value = data.get("chat_id")
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return str(value)


def message_count(endpoint: str, data: Mapping[str, Any]) -> int:
    """How many messages Telegram counts for one call: 0 for a call that sends
    none, each item of a media group, each message copied or forwarded."""
    if endpoint == "sendMediaGroup":
        return max(1, len(data.get("media") or ()))
    if endpoint in ("copyMessages", "forwardMessages"):
        return max(1, len(data.get("message_ids") or ()))
    if endpoint in _SENDING or (endpoint.startswith("send") and endpoint != "sendChatAction"):
        return 1
    return 0


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


@dataclass(frozen=True, slots=True)
class Wait:
    """What holds a send back. ``None``: only an answer to a call in flight
    can make room; a number: seconds from now (0: nothing)."""

    chat: float | None
    overall: float | None

    @property
    def ready(self) -> bool:
        return self.chat == 0 and self.overall == 0


class Flood:
    """The state of Telegram's limits for one bot (see the module docstring)."""

    def __init__(
        self,
        *,
        per_second: int = MESSAGES_PER_SECOND,
        chat_interval: float = CHAT_INTERVAL,
        group_per_minute: int = GROUP_MESSAGES_PER_MINUTE,
        second: float = 1.0,
        minute: float = 60.0,
    ) -> None:
        """``second`` and ``minute`` are the windows' lengths (tests may shorten them)."""
        self.per_second = per_second
        self._chat_interval = chat_interval
        self._group_per_minute = group_per_minute
        self._minute = minute
        self._overall = Window(per_second, second)
        self._groups: dict[ChatKey, Window] = {}
        #: Per chat: the earliest time of its next send.
        self._chat_free: dict[ChatKey, float] = {}
        #: Chats with a send in flight: the next waits for its answer.
        self._busy: set[ChatKey] = set()

    @property
    def in_flight(self) -> int:
        """Messages admitted and not yet answered (never more than ``per_second``)."""
        return self._overall.in_flight

    def wait(self, chat: ChatKey | None, items: int, now: float) -> Wait:
        """What holds back ``items`` messages to ``chat`` at ``now``."""
        items = max(1, items)
        chat_wait: float | None = 0.0
        if chat is not None:
            if chat in self._busy:
                chat_wait = None
            else:
                chat_wait = max(0.0, self._chat_free.get(chat, now) - now)
                if is_group(chat):
                    group_wait = self._group(chat).delay(now, items)
                    # None cannot happen (nothing of this chat is in flight); be safe.
                    chat_wait = max(chat_wait, 0.05 if group_wait is None else group_wait)
        return Wait(chat_wait, self._overall.delay(now, items))

    def admit(self, chat: ChatKey | None, items: int) -> None:
        """The send goes now: it holds its places until :meth:`answered`."""
        items = max(1, items)
        self._overall.open(items)
        if chat is not None:
            self._busy.add(chat)
            if is_group(chat):
                self._group(chat).open(items)

    def answered(self, chat: ChatKey | None, items: int, now: float) -> None:
        """Its answer came (whatever it was: Telegram may have counted a
        request even when its answer was lost)."""
        items = max(1, items)
        self._overall.close(now, items)
        if chat is None:
            return
        self._busy.discard(chat)
        if is_group(chat):
            self._group(chat).close(now, items)
        self._chat_free[chat] = max(
            self._chat_free.get(chat, 0.0), now + items * self._chat_interval
        )
        if len(self._chat_free) > _PRUNE_ABOVE:
            self._prune(now)

    def hold(self, chat: ChatKey | None, until: float) -> None:
        """Telegram answered 429: nothing more to ``chat`` before ``until``."""
        if chat is not None:
            self._chat_free[chat] = max(self._chat_free.get(chat, 0.0), until)

    def _group(self, chat: ChatKey) -> Window:
        window = self._groups.get(chat)
        if window is None:
            window = self._groups[chat] = Window(self._group_per_minute, self._minute)
        return window

    def _prune(self, now: float) -> None:
        self._chat_free = {c: t for c, t in self._chat_free.items() if t > now or c in self._busy}
        for chat, window in list(self._groups.items()):
            window.delay(now, 0)  # drops stamps older than the window
            if window.idle:
                del self._groups[chat]
