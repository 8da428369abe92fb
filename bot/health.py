"""Health: /healthz and /metrics over HTTP (``[metrics] listen``).

``/healthz`` answers 200 ``ok`` while every loop of the process runs and the
store answers, else 503 with one line saying why (what a load balancer, a
Docker HEALTHCHECK or an operator's curl needs).

* **Loops** report that they run through :data:`heartbeats`: each time round,
  a loop calls ``heartbeats.beat(name, max_age)``; a loop whose last beat is
  older than its ``max_age`` has died or hung. A loop that stops on purpose
  (the deliverer of a process that is no longer the sender) calls
  ``heartbeats.forget(name)``. A loop that sleeps until its next piece of work
  must wake to beat at least every ``max_age / 2``.
* **The store** is asked by :class:`StoreSampler` every few seconds (its
  statistics and backlog, which also feed the gauges of bot/metrics.py), so a
  probe never waits on the database: the store is healthy when its last
  answer came recently and was not an error.

The verdict itself (:func:`verdict`) is a pure function of those facts and
the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from bot.metrics import CONTENT_TYPE, Metrics, metrics
from bot.store.base import Store

log = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Beat:
    """A loop's last heartbeat, and how old it may get."""

    at: float
    max_age: float


@dataclass(frozen=True, slots=True)
class StoreProbe:
    """What the sampler last learned of the store."""

    #: When the store last answered (monotonic), None before its first answer.
    answered_at: float | None = None
    #: The last sample's error in one line, None when it succeeded.
    error: str | None = None


def verdict(now: float, beats: Mapping[str, Beat], store: StoreProbe, store_max_age: float) -> str:
    """``"ok"``, or the first reason the process is unhealthy, in one line.

    ``now`` is on the clock the beats and the probe were taken with."""
    if store.error is not None:
        return f"store: {store.error}"
    if store.answered_at is None:
        return "store: not checked yet"
    if now - store.answered_at > store_max_age:
        return f"store: no answer for {now - store.answered_at:.0f}s"
    for name, beat in sorted(beats.items()):
        if now - beat.at > beat.max_age:
            return f"loop {name}: no heartbeat for {now - beat.at:.0f}s (limit {beat.max_age:g}s)"
    return "ok"


class Heartbeats:
    """The running loops' last beats (see the module docstring)."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._beats: dict[str, Beat] = {}

    def beat(self, name: str, max_age: float) -> None:
        self._beats[name] = Beat(self._clock(), max_age)

    def forget(self, name: str) -> None:
        self._beats.pop(name, None)

    def snapshot(self) -> dict[str, Beat]:
        return dict(self._beats)


#: The process's loops report here.
heartbeats = Heartbeats()


class StoreSampler:
    """Every ``every`` seconds: the store's stats and backlog into the
    metrics, and whether it answered into a :class:`StoreProbe`."""

    def __init__(
        self,
        store: Store,
        *,
        every: float = 5.0,
        timeout: float = 5.0,
        sink: Metrics = metrics,
        wall: Clock = time.time,
        clock: Clock = time.monotonic,
    ) -> None:
        self._store = store
        self.every = every
        self._timeout = timeout
        self._metrics = sink
        self._wall = wall
        self._clock = clock
        self.probe = StoreProbe()
        self._task: asyncio.Task[None] | None = None

    @property
    def max_age(self) -> float:
        """How old the last answer may be: a couple of missed samples."""
        return 2 * self.every + self._timeout

    async def sample(self) -> None:
        now = self._wall()
        try:
            async with asyncio.timeout(self._timeout):
                stats = await self._store.stats()
                due = await self._store.due_count(now)
        except Exception as e:  # any failure of the store is a health fact, not a crash
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            if isinstance(e, TimeoutError):
                reason = f"no answer within {self._timeout:g}s"
            if self.probe.error is None:
                log.warning("store check failed: %s", reason)
            self.probe = StoreProbe(self.probe.answered_at, reason)
            return
        self._metrics.observe_store(stats, due, now)
        if self.probe.error is not None:
            log.warning("store answers again")
        self.probe = StoreProbe(self._clock(), None)

    async def _run(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self.every)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="feedbot store sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def checker(
    sampler: StoreSampler, beats: Heartbeats = heartbeats, clock: Clock = time.monotonic
) -> Callable[[], str]:
    """The process's verdict, as /healthz asks for it."""
    return lambda: verdict(clock(), beats.snapshot(), sampler.probe, sampler.max_age)


class HealthServer:
    """An aiohttp server for /metrics and /healthz on ``[metrics] listen``;
    ``health`` gives the verdict (:func:`checker`)."""

    def __init__(
        self, listen: tuple[str, int], health: Callable[[], str], *, sink: Metrics = metrics
    ) -> None:
        self._listen = listen
        self._health = health
        self._metrics = sink
        self._runner: web.AppRunner | None = None
        #: The port bound (useful with port 0).
        self.port: int | None = None

    async def _healthz(self, request: web.Request) -> web.Response:
        reason = self._health()
        return web.Response(status=200 if reason == "ok" else 503, text=reason + "\n")

    async def _metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def start(self) -> None:
        """Bind the address (an OSError, e.g. address in use, propagates)."""
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics_page)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, *self._listen)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        log.info("metrics and health on http://%s:%d/", self._listen[0], self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
