"""Benchmark the embedded store alone: claiming due feeds, recording polls.

    python -m bench.sqlite_store                  # 5,000 feeds in a temporary file
    python -m bench.sqlite_store --feeds 2000 --batch 50

(bench/store.py measures the PostgreSQL store's cycle at scale.)

Set-up subscribes one chat in ten to each feed (``subscribe`` with the feed
and 20 seen keys). Then every feed is due, and the loop claims a batch,
records a plan for each (its next poll, 2 new seen keys, and for one feed in
ten a new entry queued for its subscriber) and repeats until none is due. It
reports feeds per second and the store time per feed (claim and record), and
checks that every feed was polled exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time

from bot.models import Chat, ChatKind, Entry, Feed, Subscription
from bot.plan import Enqueue, PollPlan
from bot.store.base import Store
from bot.store.sqlite import SqliteStore


async def run(store: Store, feeds: int, batch: int) -> None:
    await store.open()
    try:
        started = time.perf_counter()
        for i in range(feeds):
            url = f"https://feeds{i % 97}.example/{i}"
            chat = Chat(i % (feeds // 10 or 1) + 1, ChatKind.PRIVATE)
            await store.subscribe(
                chat,
                Subscription(chat.id, url, 1.0),
                new_feed=Feed(url=url, next_poll=float(i % 600)),
                seen=[f"{url}#{n}" for n in range(20)],
                now=1.0,
            )
        print(f"set-up: {feeds} feeds in {time.perf_counter() - started:.1f} s")

        now, polled, claim_time, record_time = 1000.0, 0, 0.0, 0.0
        seen_urls: set[str] = set()
        started = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            claims = await store.claim_due_feeds("bench", now, batch, 60.0)
            t1 = time.perf_counter()
            claim_time += t1 - t0
            if not claims:
                break
            plans = []
            for c in claims:
                url = c.feed.url
                assert url not in seen_urls, url
                seen_urls.add(url)
                queue = ()
                if polled % 10 == 0 and c.subscribers:
                    new = Entry(id=f"{url}#new", title="new", html="<p>" + "x" * 1500 + "</p>")
                    queue = (Enqueue(new, tuple(s.chat_id for s in c.subscribers)),)
                feed = Feed(url=url, next_poll=now + 3600.0, last_success=now)
                plans.append(PollPlan(url, feed, now, seen=(f"{url}#a", f"{url}#b"), enqueue=queue))
                polled += 1
            t2 = time.perf_counter()
            assert all(await store.record_polls(plans, "bench"))
            record_time += time.perf_counter() - t2
        elapsed = time.perf_counter() - started
        assert polled == feeds, (polled, feeds)
        print(
            f"poll cycle: {polled} feeds in {elapsed:.2f} s = {polled / elapsed:,.0f} feeds/s;"
            f" store time per feed: claim {claim_time / polled * 1e3:.2f} ms,"
            f" record {record_time / polled * 1e3:.2f} ms"
        )
        stats = await store.stats()
        print(f"outbox {stats.outbox.depth} deliveries, {stats.subscriptions} subscriptions")
    finally:
        await store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        store = SqliteStore(f"{directory}/feedbot.sqlite")
        asyncio.run(run(store, args.feeds, args.batch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
