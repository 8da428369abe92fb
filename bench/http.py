"""Which HTTP client fetches feeds cheapest: httpx, aiohttp, httpx over aiohttp.

    python -m bench.http                         # 1,000 feeds, 3 rounds, 8 in flight
    python -m bench.http --feeds 500 --rounds 2 --concurrency 16

The feed server of ``bench.poll`` (aiohttp, its own process, pinned to one
core) serves the same mix: per round 80% of the feeds answer a conditional GET
with 304, 10% answer 200 with an unchanged body (they ignore validators), 10%
answer 200 with two new items. Each contender keeps its own validators and
fetches every feed once per round, ``--concurrency`` requests in flight; the
contenders take turns within each round (the order rotates), so a busier
moment of the machine hits them all alike. Fetch only: read the body, hash it,
no parsing. CPU is this process's (``resource.getrusage``), per contender.

Contenders: plain ``httpx.AsyncClient`` (as fetch.py used it), plain
``aiohttp.ClientSession``, ``httpx_aiohttp.HttpxAiohttpClient`` (if
installed), and feedbot's own :class:`bot.fetch.Fetcher` (every guard on).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import resource
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from bench.poll_server import ServerProcess

Fetch = Callable[[str, str | None, str | None], Awaitable[tuple[int, str | None, str | None]]]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Tally:
    label: str
    requests: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def per_s(self) -> float:
        return self.requests / self.wall if self.wall else 0.0

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu / self.requests if self.requests else 0.0


HEADERS = {"User-Agent": "feedbot-bench", "Accept-Encoding": "gzip, deflate"}


def _conditional(etag: str | None, modified: str | None) -> dict[str, str]:
    headers = dict(HEADERS)
    if etag:
        headers["If-None-Match"] = etag
    if modified:
        headers["If-Modified-Since"] = modified
    return headers


@contextlib.asynccontextmanager
async def httpx_client(n: int):
    import httpx

    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(limits=limits, trust_env=False, http2=False) as client:

        async def fetch(url: str, etag: str | None, modified: str | None):
            async with client.stream("GET", url, headers=_conditional(etag, modified)) as r:
                body = await r.aread()
                hashlib.sha256(body).hexdigest()
                return r.status_code, r.headers.get("etag"), r.headers.get("last-modified")

        yield fetch


@contextlib.asynccontextmanager
async def httpx_aiohttp_client(n: int):
    import httpx
    from httpx_aiohttp import HttpxAiohttpClient

    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with HttpxAiohttpClient(limits=limits, trust_env=False) as client:

        async def fetch(url: str, etag: str | None, modified: str | None):
            r = await client.get(url, headers=_conditional(etag, modified))
            hashlib.sha256(r.content).hexdigest()
            return r.status_code, r.headers.get("etag"), r.headers.get("last-modified")

        yield fetch


@contextlib.asynccontextmanager
async def aiohttp_client(n: int):
    import aiohttp

    connector = aiohttp.TCPConnector(limit=n)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def fetch(url: str, etag: str | None, modified: str | None):
            async with session.get(url, headers=_conditional(etag, modified)) as r:
                body = await r.read()
                hashlib.sha256(body).hexdigest()
                return r.status, r.headers.get("etag"), r.headers.get("last-modified")

        yield fetch


@contextlib.asynccontextmanager
async def feedbot_fetcher(n: int):
    from bot.fetch import Fetcher

    async with Fetcher(allow_private=True, concurrency=n) as fetcher:

        async def fetch(url: str, etag: str | None, modified: str | None):
            result = await fetcher.fetch(url, etag=etag, last_modified=modified)
            return result.status, result.etag, result.last_modified

        yield fetch


CONTENDERS: dict[str, Callable[[int], contextlib.AbstractAsyncContextManager[Fetch]]] = {
    "httpx": httpx_client,
    "aiohttp": aiohttp_client,
    "httpx-aiohttp": httpx_aiohttp_client,
    "feedbot Fetcher": feedbot_fetcher,
}


async def _round(fetch: Fetch, urls: list[str], validators: dict, n: int, tally: Tally) -> None:
    semaphore = asyncio.Semaphore(n)

    async def one(url: str) -> None:
        async with semaphore:
            status, etag, modified = await fetch(url, *validators.get(url, (None, None)))
        if status == 200:
            validators[url] = (etag, modified)
        tally.statuses[status] = tally.statuses.get(status, 0) + 1

    wall, cpu = time.perf_counter(), _cpu()
    await asyncio.gather(*(one(u) for u in urls))
    tally.wall += time.perf_counter() - wall
    tally.cpu += _cpu() - cpu
    tally.requests += len(urls)


async def run(server: ServerProcess, n_feeds: int, rounds: int, n: int) -> list[Tally]:
    urls = [server.url(i) for i in range(n_feeds)]
    names = []
    for name in CONTENDERS:
        if name == "httpx-aiohttp":
            try:
                import httpx_aiohttp  # noqa: F401
            except ImportError:
                print("httpx-aiohttp is not installed: skipped", file=sys.stderr)
                continue
        names.append(name)
    async with contextlib.AsyncExitStack() as stack:
        clients = {name: await stack.enter_async_context(CONTENDERS[name](n)) for name in names}
        validators: dict[str, dict] = {name: {} for name in names}
        tallies = {name: Tally(name) for name in names}
        for name in names:  # warm-up: connections, validators
            await _round(clients[name], urls, validators[name], n, Tally(name))
        for r in range(rounds):
            server.advance()
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                await _round(clients[name], urls, validators[name], n, tallies[name])
    return [tallies[name] for name in names]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http", description=__doc__)
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu = cpus[0] if len(cpus) > 1 else None
    server = ServerProcess(args.feeds, server_cpu)
    try:
        if len(cpus) > 1:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, {cpus[1]})
        tallies = asyncio.run(run(server, args.feeds, args.rounds, args.concurrency))
    finally:
        server.stop()
    print(f"{args.feeds} feeds x {args.rounds} rounds, {args.concurrency} in flight")
    print(f"{'client':<18}{'requests/s':>12}{'CPU ms/req':>12}  statuses")
    for t in tallies:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(t.statuses.items()))
        print(f"{t.label:<18}{t.per_s:>12,.0f}{t.cpu_ms:>12.3f}  {statuses}")
    base = tallies[0]
    ratios = ", ".join(
        f"{t.label} {t.per_s / base.per_s:.2f}x req/s, {base.cpu_ms / t.cpu_ms:.2f}x less CPU"
        for t in tallies[1:]
    )
    print(f"ratios vs {base.label}: {ratios}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
