"""Running a process: the sender role, updates, /metrics and /healthz.

:class:`Operations` is what a feedbot process runs beside the
python-telegram-bot Application: the sender role (bot/roles.py), which starts
the sender side (the deliverer, then receiving updates: bot/updates.py) in
the one process that holds it; and, with ``[metrics] listen``, the
/metrics and /healthz server (bot/health.py) with its store sampler.

:func:`serving` runs an Application the way ``Application.run_polling`` does
(initialize, post_init, start … stop, post_stop, shutdown, post_shutdown)
but leaves receiving updates to the sender role: run_polling would start
getUpdates in every process. bot/app.py ``run`` adds SIGINT/SIGTERM.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from telegram.ext import Application

from bot.config import Config
from bot.health import HealthServer, StoreSampler, checker
from bot.roles import SenderRole
from bot.store.base import Store
from bot.updates import UpdateReceiver

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Sending:
    """The deliverer's part of the sender side, as two coroutines."""

    start: Callable[[], Awaitable[None]]
    stop: Callable[[], Awaitable[None]]


class Operations:
    def __init__(
        self,
        application: Application,
        config: Config,
        store: Store,
        sending: Sending,
        *,
        allowed_updates: Sequence[str],
        polling_timeout: float = 10.0,
        role_every: float = 2.0,
        owner: str | None = None,
    ) -> None:
        """``owner`` names this process to the store (default
        :func:`bot.roles.owner_id`); give the poller's lease owner, so that
        one process has one name."""
        self._config = config
        self._sending = sending
        self.receiver = UpdateReceiver(
            application, config.telegram, allowed_updates, polling_timeout=polling_timeout
        )
        self.role = SenderRole(
            store.hold_sender, self._start_sender, self._stop_sender, owner=owner, every=role_every
        )
        self.sampler = StoreSampler(store)
        self.health: HealthServer | None = None
        if config.metrics.listen is not None:
            self.health = HealthServer(config.metrics.listen, checker(self.sampler))

    async def _start_sender(self) -> None:
        await self._sending.start()
        try:
            await self.receiver.start()
        except BaseException:
            await self._sending.stop()  # SenderRole's rule: undo what started
            raise

    async def _stop_sender(self) -> None:
        # No new commands first, then let the sends in flight finish.
        await self.receiver.stop()
        await self._sending.stop()

    async def start(self) -> None:
        """Serve /metrics and /healthz (an address in use is an error at
        start), then take up the sender role if it is free."""
        if self.health is not None:
            await self.health.start()
            self.sampler.start()
        await self.role.start()

    async def stop(self) -> None:
        await self.role.stop()
        await self.sampler.stop()
        if self.health is not None:
            await self.health.stop()


@asynccontextmanager
async def serving(application: Application, operations: Operations) -> AsyncIterator[None]:
    """The Application and the operations running, for the ``with`` block."""
    await application.initialize()
    try:
        if application.post_init is not None:
            await application.post_init(application)
        await application.start()
        try:
            await operations.start()
            try:
                yield
            finally:
                await operations.stop()
        finally:
            await application.stop()
            if application.post_stop is not None:
                await application.post_stop(application)
    finally:
        await application.shutdown()
        if application.post_shutdown is not None:
            await application.post_shutdown(application)
