"""What one `feedbot run` process holds in memory, on each backend.

    python -m bench.memory                         # 10,000 feeds, 1,000,000 seen keys, 1,000 chats
    python -m bench.memory --feeds 2000 --seen 50  # a quick look
    python -m bench.memory --backend sqlite

For each backend, a store is seeded through the Store API in bulk (one
``subscribe`` per feed, its chat among ``--chats``; then every feed claimed
and recorded with ``--seen`` seen keys, ``record_polls`` in batches of 200),
then ``python -m bot run`` starts against the fake Bot API and a loopback
feed server that answers every request 304. Measured from outside the
process (``/proc/PID/status``): the start-up time until its first fetch, the
resident set (VmRSS) right after start-up (that first fetch), after one poll
cycle (every feed fetched once) and its peak (VmHWM).

What stays in memory does not grow with the store: the schedule, the seen
keys and the outbox stay in the database (or the file) and are read per poll;
this shows whether that holds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from aiohttp import web

import testkit.postgres
from bot.config import load_config
from bot.models import Chat, ChatKind, Feed, Subscription
from bot.plan import PollPlan
from bot.store import Store, open_store
from testkit.fake_telegram import FakeTelegram
from testkit.harness import TOKEN, start_bot, write_config

#: Plans per record_polls call while seeding (the poller's own batch).
SEED_BATCH = 200


@dataclasses.dataclass(frozen=True)
class Result:
    backend: str
    seed_seconds: float
    startup_seconds: float
    rss_started_mb: float
    rss_cycled_mb: float
    peak_mb: float
    cycle_seconds: float


class NotModified:
    """A loopback feed server answering 304 to every request, counting them."""

    def __init__(self) -> None:
        self.count = 0
        self.first: float | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _answer(self, request: web.Request) -> web.Response:
        self.count += 1
        if self.first is None:
            self.first = time.monotonic()
        return web.Response(status=304, headers={"ETag": '"v1"'})

    async def __aenter__(self) -> NotModified:
        app = web.Application()
        app.router.add_get("/{path:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.port}/feed/{n}.xml"


async def seed(store: Store, server: NotModified, feeds: int, seen: int, chats: int) -> None:
    now = time.time()
    for n in range(feeds):
        chat = 1 + n % chats
        url = server.url(n)
        await store.subscribe(
            Chat(chat, ChatKind.PRIVATE),
            Subscription(chat, url, created=now),
            new_feed=Feed(url, title=f"Feed {n}"),
            now=now,
        )
    # Every feed "polled" once with ``seen`` keys and an ETag, and due again
    # at once: all claimed first (their leases keep a claim from returning
    # one twice), then recorded.
    claims = []
    while batch := await store.claim_due_feeds("seed", now + 1, SEED_BATCH, 3600.0):
        claims.extend(batch)
    for start in range(0, len(claims), SEED_BATCH):
        plans = [
            PollPlan(
                c.feed.url,
                dataclasses.replace(c.feed, next_poll=0.0, etag='"v1"'),
                now,
                seen=tuple(f"{c.feed.url}#entry-{k}" for k in range(seen)),
            )
            for c in claims[start : start + SEED_BATCH]
        ]
        await store.record_polls(plans, "seed")


def rss(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()

    def mb(key: str) -> float:
        return int(fields[key].split()[0]) / 1024

    return mb("VmRSS"), mb("VmHWM")


@contextlib.asynccontextmanager
async def storage(backend: str, directory: Path) -> AsyncIterator[str | None]:
    """The store URL (None: the file in ``directory``)."""
    if backend == "sqlite":
        yield None
        return
    reason = await testkit.postgres.unavailable()
    if reason:
        raise SystemExit(reason)
    async with testkit.postgres.fresh_database() as url:
        yield url


async def measure(backend: str, feeds: int, seen: int, chats: int, timeout: float) -> Result:
    with tempfile.TemporaryDirectory(prefix="feedbot-memory-") as tmp:
        directory = Path(tmp)
        async with (
            FakeTelegram(TOKEN) as telegram,
            NotModified() as server,
            storage(backend, directory) as url,
        ):
            config = write_config(directory, telegram, interval="1h", store_url=url)
            started = time.monotonic()
            async with open_store(load_config(str(config), env={}).store) as store:
                await seed(store, server, feeds, seen, chats)
            seeded = time.monotonic() - started
            print(
                f"  {backend}: seeded {feeds:,} feeds, {feeds * seen:,} seen keys in {seeded:.0f}s"
            )

            launched = time.monotonic()
            process = await start_bot(config)
            try:
                while server.first is None:
                    if process.returncode is not None or time.monotonic() - launched > timeout:
                        raise SystemExit(f"{backend}: no poll; see {directory}/bot.log")
                    await asyncio.sleep(0.01)
                startup = server.first - launched
                at_start, _ = rss(process.pid)
                while server.count < feeds:
                    if time.monotonic() - launched > timeout:
                        raise SystemExit(f"{backend}: {server.count:,} of {feeds:,} polled")
                    await asyncio.sleep(0.1)
                cycle = time.monotonic() - server.first
                await asyncio.sleep(1.0)  # the last records written
                cycled, peak = rss(process.pid)
            finally:
                process.terminate()
                await process.wait()
    return Result(backend, seeded, startup, at_start, cycled, peak, cycle)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=10_000)
    parser.add_argument("--seen", type=int, default=100, help="seen keys per feed")
    parser.add_argument("--chats", type=int, default=1_000)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--timeout", type=float, default=120.0, help="per run, after seeding")
    args = parser.parse_args(argv)
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    results = [
        asyncio.run(measure(b, args.feeds, args.seen, args.chats, args.timeout)) for b in backends
    ]
    print(
        f"\n{args.feeds:,} feeds, {args.feeds * args.seen:,} seen keys, {args.chats:,} chats\n"
        "| backend | start-up to first poll | RSS after start-up | RSS after a cycle "
        "| peak RSS | cycle |\n|---|---|---|---|---|---|"
    )
    for r in results:
        print(
            f"| {r.backend} | {r.startup_seconds:.1f} s | {r.rss_started_mb:.0f} MB "
            f"| {r.rss_cycled_mb:.0f} MB | {r.peak_mb:.0f} MB | {r.cycle_seconds:.0f} s |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
