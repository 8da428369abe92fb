"""The sender role: exactly one process at a time talks to Telegram.

Telegram allows one getUpdates consumer (or one webhook) and one set of rate
limits per token, so of several ``feedbot run`` processes sharing a database,
one, the **sender**, receives updates, answers commands and sends the outbox
through its one pacer; every process polls feeds. The store chooses it
(``Store.hold_sender``: an advisory lock on PostgreSQL, always True on the
embedded store, which has one process by construction).

:class:`SenderRole` asks the store every ``every`` seconds and, through two
callbacks, starts the sender side (receiving updates: bot/updates.py; the
deliverer) when the process gets the role and stops it when it loses it. A
process that dies loses its lock with its connection, and another takes over
at its next call: within ``every`` seconds. Nothing is lost on the switch:
deliveries wait in the outbox, updates wait at Telegram.

When the store cannot be asked (an error, a timeout), the process counts as
not holding the role: its lock may have gone with its connection, and two
senders would break Telegram's limits and answer commands twice, while no
sender for a few seconds only delays.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable

from bot.health import Heartbeats, heartbeats
from bot.metrics import Metrics, metrics

log = logging.getLogger(__name__)

HEARTBEAT = "sender-role"


class Change(enum.Enum):
    START = "start"
    STOP = "stop"
    NONE = "none"


def change(was_sender: bool, holds: bool) -> Change:
    """What to do, given whether the process acted as sender until now and
    whether it holds the role now."""
    if holds and not was_sender:
        return Change.START
    if was_sender and not holds:
        return Change.STOP
    return Change.NONE


def owner_id() -> str:
    """This process, among all feedbot processes on every machine: hostname
    and pid for the operator, a random part because pids repeat across
    containers (each is pid 1) and restarts."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


class SenderRole:
    """The loop (see the module docstring). ``hold`` is ``store.hold_sender``."""

    def __init__(
        self,
        hold: Callable[[str], Awaitable[bool]],
        on_start: Callable[[], Awaitable[None]],
        on_stop: Callable[[], Awaitable[None]],
        *,
        owner: str | None = None,
        every: float = 2.0,
        beats: Heartbeats = heartbeats,
        sink: Metrics = metrics,
    ) -> None:
        self.owner = owner or owner_id()
        self._hold = hold
        self._on_start = on_start
        self._on_stop = on_stop
        self.every = every
        self._beats = beats
        self._metrics = sink
        #: True while the sender side runs in this process.
        self.is_sender = False
        self._task: asyncio.Task[None] | None = None

    async def _holds(self) -> bool:
        try:
            async with asyncio.timeout(self.every * 2):
                return await self._hold(self.owner)
        except Exception as e:
            log.warning("cannot ask the store for the sender role: %s", e)
            return False

    async def step(self) -> Change:
        """Ask once and act on the answer; what was done."""
        holds = await self._holds()
        what = change(self.is_sender, holds)
        if what is Change.START:
            try:
                await self._on_start()
            except Exception:
                # Still the holder: the next step tries again. Whatever
                # on_start started before failing, it must have undone.
                log.exception("could not start sending as %s", self.owner)
                return Change.NONE
            self.is_sender = True
            log.info("%s is the sender now", self.owner)
        elif what is Change.STOP:
            self.is_sender = False
            log.warning("%s is no longer the sender", self.owner)
            await self._stop_side()
        self._metrics.set_sender(self.is_sender, self.owner)
        self._beats.beat(HEARTBEAT, max_age=max(30.0, self.every * 5))
        return what

    async def _stop_side(self) -> None:
        try:
            await self._on_stop()
        except Exception:
            log.exception("error while stopping the sender side")

    async def _run(self) -> None:
        while True:
            await self.step()
            await asyncio.sleep(self.every)

    async def start(self) -> None:
        """The first step at once (a lone process is the sender before it
        returns), then one every ``every`` seconds."""
        await self.step()
        self._task = asyncio.create_task(self._run_later(), name="feedbot sender role")

    async def _run_later(self) -> None:
        await asyncio.sleep(self.every)
        await self._run()

    async def stop(self) -> None:
        """Stop the loop and the sender side. The role itself goes with the
        store's connection when the store closes."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._beats.forget(HEARTBEAT)
        if self.is_sender:
            self.is_sender = False
            await self._stop_side()
            self._metrics.set_sender(False, self.owner)
