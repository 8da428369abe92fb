"""The gate every update passes before any command: who may use the bot, and
how fast.

It runs in handler group -1, before the commands. A user a private bot does
not serve is told so once, then ignored; a user who sends more than
``[limits] commands_per_minute`` commands in a minute is told once to slow
down and ignored until the minute is over, so that one person's flood never
delays everyone else's answers. Administrators pass always.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from telegram import Update
from telegram.ext import ApplicationHandlerStop, ContextTypes

from bot.commands.access import may_use_bot
from bot.commands.basic import PRIVATE_ONLY
from bot.commands.replies import reply
from bot.services import get_services

WINDOW = 60.0
#: Past this many users in memory, the idle ones are forgotten.
MAX_TRACKED = 10_000

TOO_FAST = "You are sending commands faster than I can answer everyone; wait a minute, please."


@dataclass(slots=True)
class CommandRate:
    """A sliding window of one minute per user: the pure rule, clock injected."""

    per_minute: int
    clock: Callable[[], float] = time.monotonic
    _times: dict[int, deque[float]] = field(default_factory=dict)
    _warned: set[int] = field(default_factory=set)

    def admit(self, user_id: int) -> tuple[bool, bool]:
        """(admitted, warn): whether the command may run, and whether this
        is the first refusal of the user's current flood (tell them once)."""
        now = self.clock()
        times = self._times.setdefault(user_id, deque())
        while times and now - times[0] >= WINDOW:
            times.popleft()
        if len(times) < self.per_minute:
            times.append(now)
            self._warned.discard(user_id)
            return True, False
        warn = user_id not in self._warned
        self._warned.add(user_id)
        if len(self._times) > MAX_TRACKED:
            self._forget_idle(now)
        return False, warn

    def _forget_idle(self, now: float) -> None:
        """Drop users with no command in the window (keeps memory bounded)."""
        for user_id in [u for u, t in self._times.items() if not t or now - t[-1] >= WINDOW]:
            del self._times[user_id]
            self._warned.discard(user_id)


RATE_KEY = "feedbot.command_rate"
REFUSED_KEY = "feedbot.refused"


def _is_command(update: Update) -> bool:
    if update.callback_query is not None:
        return True
    message = update.effective_message
    text = (message.text or message.caption or "") if message is not None else ""
    return text.startswith("/")


async def gate(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    services = get_services(context)
    user = update.effective_user
    if user is None or update.my_chat_member is not None:
        return  # channel posts and membership changes: the handlers decide
    config = services.config
    if user.id in config.telegram.admins:
        return
    if not may_use_bot(config.telegram, user.id):
        # One polite refusal per person and chat; after that, silence.
        refused: set[tuple[int, int]] = context.bot_data.setdefault(REFUSED_KEY, set())
        chat = update.effective_chat
        key = (chat.id if chat else 0, user.id)
        if key not in refused and _is_command(update):
            refused.add(key)
            await reply(update, PRIVATE_ONLY)
        raise ApplicationHandlerStop
    per_minute = config.limits.commands_per_minute
    if not per_minute or not _is_command(update):
        return
    rate: CommandRate = context.bot_data.setdefault(RATE_KEY, CommandRate(per_minute))
    admitted, warn = rate.admit(user.id)
    if admitted:
        return
    if warn:
        await reply(update, TOO_FAST)
    raise ApplicationHandlerStop
