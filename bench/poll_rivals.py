"""The contenders of bench/poll.py, each in its own process (pinned to one
core), driven cycle by cycle over a pipe so that all of them poll the same
server state in the same run: the validator-sending feedparser loop, a plain
aiohttp poller, and feedbot's real Poller (bench/poll_feedbot.py).

A contender is a factory that, in the child, returns an async function
polling every feed once and returning a short detail string. CPU is the
child's own (``getrusage``, threads included), so nothing else is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import multiprocessing
import os
import resource
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

#: No cycle may take longer than this (seconds).
CYCLE_DEADLINE = 600.0

#: Polls every feed once: how many were polled, and a short detail.
Cycle = Callable[[], Awaitable[tuple[int, str]]]
Factory = Callable[[list[str]], Awaitable[Cycle]]


@dataclass
class Sample:
    label: str
    feeds: int
    wall: float
    cpu: float
    peak_rss_mb: float
    detail: str = ""

    @property
    def feeds_per_s(self) -> float:
        return self.feeds / self.wall if self.wall else 0.0

    @property
    def cpu_ms_per_feed(self) -> float:
        return 1000 * self.cpu / self.feeds if self.feeds else 0.0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def _child(factory: Factory, urls: list[str], conn: Connection, cpu: int | None) -> None:
    if cpu is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {cpu})
    asyncio.run(_child_async(factory, urls, conn))


async def _child_async(factory: Factory, urls: list[str], conn: Connection) -> None:
    cycle = await factory(urls)
    conn.send("ready")
    loop = asyncio.get_running_loop()
    while True:
        ready = await loop.run_in_executor(None, conn.poll, 1.0)
        if not ready:
            if os.getppid() == 1:
                return
            continue
        try:
            command = conn.recv()
        except EOFError:
            return
        if command == "stop":
            close = getattr(cycle, "close", None)  # a factory may leave its clean-up here
            if close is not None:
                await close()
            return
        profile = command if isinstance(command, str) and command.startswith("profile:") else None
        profiler: Any = None
        if profile and profile.endswith(".prof"):
            import cProfile

            # CPU time, the store thread's included: its work lands on the
            # call that waits for it.
            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
        elif profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            profiler.start()
        wall, cpu = time.perf_counter(), cpu_seconds()
        polled, detail = await asyncio.wait_for(cycle(), CYCLE_DEADLINE)
        sample = Sample("", polled, time.perf_counter() - wall, cpu_seconds() - cpu, 0.0, detail)
        if profiler is not None and profile and profile.endswith(".prof"):
            profiler.disable()
            profiler.dump_stats(profile.removeprefix("profile:"))
        elif profiler is not None and profile:
            profiler.stop()
            with open(profile.removeprefix("profile:"), "w", encoding="utf-8") as out:
                out.write(profiler.output_text(unicode=True, color=False, show_all=False))
        sample.peak_rss_mb = peak_rss_mb()
        conn.send(sample)


class Contender:
    """One contender in a child process; ``cycle()`` polls every feed once."""

    def __init__(self, label: str, factory: Factory, urls: list[str], cpu: int | None) -> None:
        self.label = label
        ctx = multiprocessing.get_context("fork")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_child, args=(factory, urls, child, cpu), daemon=True)
        self._process.start()
        child.close()
        if not self._conn.poll(CYCLE_DEADLINE):
            raise RuntimeError(f"{label}: set-up did not finish in time")
        assert self._conn.recv() == "ready"

    def cycle(self, profile: str | None = None) -> Sample:
        self._conn.send(f"profile:{profile}" if profile else "cycle")
        if not self._conn.poll(CYCLE_DEADLINE + 10):
            raise RuntimeError(f"{self.label}: the cycle did not finish in time")
        sample: Sample = self._conn.recv()
        sample.label = self.label
        return sample

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.send("stop")
        self._process.join(10.0)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5.0)


# ------------------------------------------------------- feedparser, one by one


async def naive(urls: list[str]) -> Cycle:
    """``feedparser.parse(url, etag=…, modified=…)`` on each URL in turn."""
    import urllib.request

    import feedparser

    validators: dict[str, tuple[Any, Any]] = {}
    # Warm-up: the validators a first parse would have kept (no parse needed).
    for url in urls:
        with urllib.request.urlopen(url, timeout=20) as answer:
            validators[url] = (answer.headers.get("ETag"), answer.headers.get("Last-Modified"))

    async def cycle() -> tuple[int, str]:
        statuses: Counter[int] = Counter()
        entries = 0
        for url in urls:
            etag, modified = validators.get(url, (None, None))
            parsed = feedparser.parse(url, etag=etag, modified=modified)
            statuses[parsed.get("status", 0)] += 1
            entries += len(parsed.entries)
            validators[url] = (parsed.get("etag", etag), parsed.get("modified", modified))
        return len(urls), f"{dict(statuses)}, {entries} entries parsed"

    return cycle


# ------------------------------------------- aiohttp + body hash + feedparser


async def plain_aiohttp(urls: list[str], concurrency: int = 8) -> Cycle:
    """Conditional GET with aiohttp (``concurrency`` in flight), a body hash,
    feedparser on changed bodies only."""
    import aiohttp
    import feedparser

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
    state: dict[str, tuple[str | None, str | None, str | None]] = {}

    async def one(url: str, statuses: Counter[int], parsed: list[int], warm: bool) -> None:
        etag, modified, digest = state.get(url, (None, None, None))
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if modified:
            headers["If-Modified-Since"] = modified
        async with session.get(url, headers=headers) as response:
            statuses[response.status] += 1
            if response.status == 304:
                return
            body = await response.read()
            new = hashlib.sha256(body).hexdigest()
            etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
        if new != digest and not warm:
            parsed.append(len(feedparser.parse(body).entries))
        state[url] = (etag, modified, new)

    async def cycle(warm: bool = False) -> tuple[int, str]:
        statuses: Counter[int] = Counter()
        parsed: list[int] = []
        queue = iter(urls)

        async def worker() -> None:
            for url in queue:
                await one(url, statuses, parsed, warm)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(urls), f"{dict(statuses)}, {len(parsed)} parsed"

    await cycle(warm=True)  # validators and body hashes, as after a first parse
    cycle.close = session.close  # type: ignore[attr-defined]
    return cycle
