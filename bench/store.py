"""Benchmark the PostgreSQL store's poll cycle at scale: claim, then record.

    python -m bench.store                     # 100,000 feeds, 1 process then 2
    python -m bench.store --feeds 20000 --batch 200

A fresh database (on testkit.postgres.SERVER, the loopback server; created and dropped
here) is filled in bulk with ``--feeds`` feeds, one subscriber each (1,000
chats), and 5 seen keys per feed. Then every feed is made due and polled
once, without network: workers claim batches (``claim_due_feeds``, a lease
of 60 s) and record a plan for each feed (``record_polls``, one transaction
per batch) as the poller would after its fetch:

* 90% are unchanged (304, or the same body): a schedule-only plan;
* 10% have 2 new entries: seen keys marked, old ones pruned, each entry
  queued for the feed's subscriber.

A pass stops early after ``--seconds`` (20), so that the default run stays
near a minute on a busy machine; the rate is over the feeds it did. The pass
runs once with one worker process and once with two worker
processes (OS processes, each its own store and pool, started together) on
the same database, the schedule reset in between. It prints feeds per second,
database time per feed (time spent awaiting the store, per feed claimed and
recorded), and the two-process to one-process ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier

from bot.models import Entry
from bot.plan import Claim, Enqueue, PollPlan
from bot.store.postgres import PostgresStore
from testkit import postgres

CHATS = 1000
SEEN_PER_FEED = 5
#: One feed in NEW_EVERY has new entries in a pass.
NEW_EVERY = 10
NEW_ENTRIES = 2
INTERVAL = 600.0
LEASE = 60.0
#: The pass is "now" for every worker: every feed is due.
NOW = 1_000_000.0
BODY = "<p>" + "A paragraph of a feed entry, as long as a short post. " * 20 + "</p>"


@dataclass(frozen=True)
class WorkerResult:
    feeds: int
    new_entries: int
    wall: float
    db: float
    #: Of ``db``, the time spent claiming.
    claim: float


def plan_for(claim: Claim, now: float) -> PollPlan:
    """What the poller would decide for this feed, without fetching it."""
    feed = claim.feed
    nxt = dataclasses.replace(feed, next_poll=now + INTERVAL, last_success=now)
    number = int(feed.url.rsplit("/", 1)[1])
    if number % NEW_EVERY:
        return PollPlan(feed.url, nxt, now, changed=False)
    entries = [
        Entry(f"{feed.url}#{now}-{i}", f"New entry {i}", link=f"{feed.url}/{i}", html=BODY)
        for i in range(NEW_ENTRIES)
    ]
    chats = tuple(s.chat_id for s in claim.subscribers)
    return PollPlan(
        feed.url,
        nxt,
        now,
        seen=tuple(e.id for e in entries),
        prune_before=now - 30 * 86400,
        enqueue=tuple(Enqueue(e, chats) for e in entries),
    )


async def _work(
    url: str, owner: str, batch: int, seconds: float, barrier: Barrier | None
) -> WorkerResult:
    async with PostgresStore(url) as store:
        if barrier is not None:
            barrier.wait()
        feeds = new = 0
        db = claim = 0.0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            claims = await store.claim_due_feeds(owner, NOW, batch, LEASE)
            claim += time.perf_counter() - t0
            if not claims:
                break
            plans = [plan_for(c, NOW) for c in claims]
            t0 = time.perf_counter()
            done = await store.record_polls(plans, owner)
            db += time.perf_counter() - t0
            assert all(done), "a lease was lost mid-pass"
            feeds += len(claims)
            new += sum(len(p.enqueue) for p in plans)
        return WorkerResult(feeds, new, time.perf_counter() - start, db + claim, claim)


def _worker(
    url: str, owner: str, batch: int, seconds: float, barrier: Barrier, out: multiprocessing.Queue
) -> None:
    out.put(asyncio.run(_work(url, owner, batch, seconds, barrier)))


async def fill(url: str, feeds: int) -> None:
    import asyncpg

    async with PostgresStore(url):  # creates the schema
        pass
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO chats (id, kind) SELECT g, 'private' FROM generate_series(1, $1) g",
            CHATS,
        )
        await conn.execute(
            """INSERT INTO feeds (url, next_poll, state)
            SELECT 'http://feeds.test/' || g, 0, '{"title": "A feed", "etag": "\\"v1\\""}'
            FROM generate_series(0, $1 - 1) g""",
            feeds,
        )
        await conn.execute(
            """INSERT INTO subscriptions (chat_id, feed_url, created)
            SELECT 1 + g % $2, 'http://feeds.test/' || g, 1 FROM generate_series(0, $1 - 1) g""",
            feeds,
            CHATS,
        )
        await conn.execute(
            """INSERT INTO seen (feed_url, key, seen_at)
            SELECT 'http://feeds.test/' || g, 'old-' || k, 1
            FROM generate_series(0, $1 - 1) g, generate_series(1, $2) k""",
            feeds,
            SEEN_PER_FEED,
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def reset(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("UPDATE feeds SET next_poll = 0, lease_owner = NULL, lease_until = NULL")
        await conn.execute("VACUUM ANALYZE feeds")
    finally:
        await conn.close()


def run_pass(url: str, processes: int, batch: int, seconds: float) -> list[WorkerResult]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    out: multiprocessing.Queue = ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(url, f"bench-{i}", batch, seconds, barrier, out))
        for i in range(processes)
    ]
    for w in workers:
        w.start()
    results = [out.get(timeout=600) for _ in workers]
    for w in workers:
        w.join(timeout=30)
    return results


def report(label: str, results: list[WorkerResult]) -> float:
    feeds = sum(r.feeds for r in results)
    wall = max(r.wall for r in results)
    db = sum(r.db for r in results)
    rate = feeds / wall
    split = " + ".join(f"{r.feeds:,}" for r in results)
    print(
        f"{label}: {feeds:,} feeds ({split}) in {wall:.1f} s: {rate:,.0f} feeds/s, "
        f"database time {db / feeds * 1e3:.2f} ms/feed "
        f"(claim {sum(r.claim for r in results) / feeds * 1e3:.2f}), "
        f"{sum(r.new_entries for r in results):,} entries queued"
    )
    return rate


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(f"{postgres.SERVER}/postgres", timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _setup(feeds: int) -> str:
    """A fresh database, filled (testkit's fresh_database is a context
    manager for one event loop; the bench spans several)."""
    reason = await postgres.unavailable()
    if reason:
        raise SystemExit(f"bench.store: {reason}")
    name = f"feedbot_bench_{os.getpid()}"
    await _admin(f'CREATE DATABASE "{name}"')
    url = f"{postgres.SERVER}/{name}"
    t0 = time.perf_counter()
    await fill(url, feeds)
    print(f"filled {feeds:,} feeds, {feeds * SEEN_PER_FEED:,} seen keys in "
          f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
    return url


def main(argv: Sequence[str] | None = None) -> int:
    summary = (__doc__ or "").strip().splitlines()[0]
    parser = argparse.ArgumentParser(prog="python -m bench.store", description=summary)
    parser.add_argument("--feeds", type=int, default=100_000, help="feeds (default 100,000)")
    parser.add_argument("--batch", type=int, default=500, help="claim size (default 500)")
    parser.add_argument(
        "--seconds",
        type=float,
        default=20.0,
        help="stop a pass after this long even if feeds are left (default 20)",
    )
    args = parser.parse_args(argv)

    url = asyncio.run(_setup(args.feeds))
    try:
        one = report("1 process ", run_pass(url, 1, args.batch, args.seconds))
        asyncio.run(reset(url))
        two = report("2 processes", run_pass(url, 2, args.batch, args.seconds))
        print(f"2 processes / 1 process: {two / one:.2f}x")
    finally:
        name = url.rsplit("/", 1)[1]
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return 0


if __name__ == "__main__":
    sys.exit(main())
