"""feedbot's contender in bench/poll.py: the real ``Poller`` loop (claim due
feeds from the store, fetch, parse, plan, record in batches) on a real
``SqliteStore`` in a temporary directory.

The store is filled in one transaction (one chat subscribed to every feed),
then one warm-up pass polls every feed with the chat paused (validators,
body hashes and seen keys recorded, nothing queued) and the chat is resumed,
so measured cycles queue only what is new. Each cycle moves the poller's
clock two hours on (past every feed's interval: all are due) and lets
``Poller.fill`` run until every feed has been polled once.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import replace

from bench.poll_rivals import Cycle

START = 1_800_000_000.0
STEP = 2 * 3600.0


def fill_store(
    store: object,
    urls: list[str],
    chat_id: int,
    active: bool,
    validators: list[tuple[str, str, str]] | None = None,
) -> None:
    """One chat following every URL, every feed due at once (bench set-up:
    the store's own rows, in one transaction); with ``validators`` (ETag,
    Last-Modified, body hash per URL) as if each had been polled once."""
    from bot.models import Chat, ChatKind, Feed, Subscription
    from bot.store.sqlite import SqliteStore

    assert isinstance(store, SqliteStore)
    with store.f.transaction("filling the bench store"):
        store.rows.put_chat(Chat(chat_id, ChatKind.PRIVATE, "bench", active=active))
        for n, url in enumerate(urls, 1):
            # ``old`` given: nothing to read back (a new file).
            feed = Feed(url, next_poll=0.0, last_success=START - 600.0)
            if validators is not None:
                etag, modified, digest = validators[n - 1]
                feed = replace(feed, etag=etag, last_modified=modified, body_hash=digest)
            store.rows.put_feed(feed, old=Feed(url))
            store.rows.put_sub(Subscription(chat_id, url, created=START - 86400.0, seq=n))


async def feedbot(
    urls: list[str],
    concurrency: int = 8,
    validators: list[tuple[str, str, str]] | None = None,
    limit: int | None = None,
) -> Cycle:
    """Without ``validators``, a warm-up pass first; with them, the store is
    filled as if polled once, the chat stays paused, and a cycle may stop
    after ``limit`` polls (the scaling runs)."""
    from bot.config import PollConfig
    from bot.fetch import Fetcher
    from bot.models import Chat, ChatKind
    from bot.poller import Poller, PollReport, PollResult
    from bot.store.sqlite import SqliteStore

    tmp = tempfile.mkdtemp(prefix="feedbot-bench-")
    store = SqliteStore(os.path.join(tmp, "feedbot.sqlite"))
    await store.open()
    fill_store(store, urls, 1, active=False, validators=validators)
    fetcher = Fetcher(timeout=20.0, allow_private=True, concurrency=concurrency)
    config = PollConfig(
        interval=600.0, min_interval=60.0, timeout=20.0, allow_private_addresses=True
    )
    now = [START]
    poller = Poller(
        store, fetcher, config, owner="bench", concurrency=concurrency, clock=lambda: now[0]
    )
    reports: list[PollReport] = []
    done = asyncio.Event()

    def report(r: PollReport) -> None:
        reports.append(r)
        if len(reports) == (limit or len(urls)):
            done.set()

    poller.reports = report

    async def cycle() -> tuple[int, str]:
        reports.clear()
        done.clear()
        now[0] += STEP
        await poller.fill()
        await done.wait()
        results = Counter(r.result for r in reports)
        new = sum(r.new_entries for r in reports)
        text = (
            f"{results[PollResult.UNCHANGED]} unchanged, "
            f"{results[PollResult.NEW_ENTRIES]} with {new} new"
        )
        other = len(reports) - results[PollResult.UNCHANGED] - results[PollResult.NEW_ENTRIES]
        if other:
            text += f", {other} other: {Counter(r.error for r in reports).most_common(2)}"
        return len(reports), text

    if validators is None:
        await cycle()  # warm-up: chat paused
        await store.resume_chat(Chat(1, ChatKind.PRIVATE, "bench"))

    async def close() -> None:
        await poller.stop(grace=1.0)
        await fetcher.aclose()
        await store.close()
        shutil.rmtree(tmp, ignore_errors=True)

    cycle.close = close  # type: ignore[attr-defined]
    return cycle
