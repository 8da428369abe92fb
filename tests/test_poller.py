"""The poll loop on a real store and a real feed server (no Telegram): leases,
two pollers on one store, a poller that dies, and what an unchanged feed costs.

Runs against every backend (the ``store`` fixture of tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import bot.poller as poller_module
from bot.config import PollConfig
from bot.fetch import Fetcher, FetchResult
from bot.health import heartbeats
from bot.metrics import metrics
from bot.models import Chat, ChatKind, Feed, Subscription
from bot.poller import Poller, PollResult, poll_due
from bot.store import Store
from testkit.feed_server import FeedServer

CONFIG = PollConfig(interval=1.0, min_interval=1.0, timeout=5.0, allow_private_addresses=True)


async def follow(store: Store, url: str, chat_id: int = 1, next_poll: float = 0.0) -> None:
    sub = Subscription(chat_id, url, created=time.time())
    await store.subscribe(
        Chat(chat_id, ChatKind.PRIVATE), sub, new_feed=Feed(url, next_poll=next_poll)
    )


@asynccontextmanager
async def poller_on(store: Store, **kwargs: Any) -> AsyncIterator[Poller]:
    async with Fetcher(timeout=CONFIG.timeout, allow_private=True) as fetcher:
        yield Poller(store, fetcher, CONFIG, **kwargs)


async def run_loop(poller: Poller, seconds: float) -> None:
    """The poll loop as the JobQueue drives it: a tick every TICK seconds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await poller.fill()
        await asyncio.sleep(0.05)
    await poller.stop()


async def test_due_feeds_are_polled_and_recorded(store: Store, feeds: FeedServer):
    feeds.rss("/a.xml", "A").publish("one", link="https://a.example/1")
    url = feeds.url("/a.xml")
    await follow(store, url)
    async with poller_on(store) as poller:
        (report,) = await poll_due(poller, store)
        assert report.url == url and report.result is PollResult.NEW_ENTRIES
        assert report.new_entries == 1
        assert await poll_due(poller, store) == []  # its next poll is a second away
    feed = await store.get_feed(url)
    assert feed is not None and feed.title == "A" and feed.next_poll > time.time()
    (delivery,) = await store.pending()
    assert delivery.chat_id == 1 and delivery.entry is not None


async def test_unchanged_feed_is_not_parsed_and_records_only_its_schedule(
    store: Store, feeds: FeedServer, monkeypatch
):
    feeds.rss("/same.xml", "Same").publish("one")
    feeds.ignore_validators("/same.xml")  # a 200 with the same body every time
    url = feeds.url("/same.xml")
    await follow(store, url)
    parses: list[str] = []
    real = poller_module.parse_response

    def counting(result: FetchResult, *args: Any, **kwargs: Any) -> Any:
        parses.append(result.url)
        return real(result, *args, **kwargs)

    monkeypatch.setattr(poller_module, "parse_response", counting)
    async with poller_on(store) as poller:
        await poll_due(poller, store)
        assert parses == [url]
        plans = []
        real_record = store.record_polls

        async def record(batch: Any, owner: str) -> list[bool]:
            plans.extend(batch)
            return await real_record(batch, owner)

        monkeypatch.setattr(store, "record_polls", record)
        (report,) = await poll_due(poller, store, at=time.time() + 10)
    assert report.result is PollResult.UNCHANGED
    assert parses == [url]
    (plan,) = plans
    assert not plan.changed and not plan.seen and not plan.enqueue


async def test_two_pollers_on_one_store_poll_each_feed_once_per_interval(
    store: Store, feeds: FeedServer
):
    paths = [f"/f{i}.xml" for i in range(12)]
    for path in paths:
        feeds.rss(path, path).publish("x")
        await follow(store, feeds.url(path))
    async with poller_on(store, owner="one") as one, poller_on(store, owner="two") as two:
        await asyncio.gather(run_loop(one, 3.2), run_loop(two, 3.2))
    counts = [feeds.count(p) for p in paths]
    # Due at once, then every 1 s ± 10%: 3 to 4 polls in 3.2 s, never twice as many.
    assert all(3 <= c <= 5 for c in counts), counts


async def test_a_dead_pollers_feeds_come_back_when_its_lease_runs_out(
    store: Store, feeds: FeedServer
):
    feeds.rss("/l.xml", "L").publish("x")
    url = feeds.url("/l.xml")
    await follow(store, url)
    now = time.time()
    (claim,) = await store.claim_due_feeds("dead", now, 10, lease=1.0)  # then it dies
    assert claim.feed.url == url
    async with poller_on(store, owner="alive") as alive:
        assert await poll_due(alive, store) == []  # leased: not claimable
        await asyncio.sleep(1.1)
        (report,) = await poll_due(alive, store)
    assert report.result is PollResult.NEW_ENTRIES
    # The dead poller's late plan is refused: it no longer holds the lease.
    async with poller_on(store, owner="dead") as dead:
        plan = await dead.plan(claim)
    assert await store.record_polls([plan], "dead") == [False]


async def test_a_poll_cancelled_mid_fetch_records_nothing(store: Store, feeds: FeedServer):
    feeds.rss("/s.xml", "S").publish("x")
    feeds.stall("/s.xml", 5)
    url = feeds.url("/s.xml")
    await follow(store, url)
    async with poller_on(store) as poller:
        task = asyncio.create_task(poll_due(poller, store))
        await asyncio.sleep(0.3)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert await store.pending() == []
    feed = await store.get_feed(url)
    assert feed is not None and feed.last_success is None


async def test_one_plan_that_cannot_be_written_fails_only_its_own_poll(
    store: Store, feeds: FeedServer
):
    from dataclasses import replace

    from bot.plan import Enqueue
    from tests.test_store_conformance import BAD

    for path in ("/ok.xml", "/bad.xml"):
        feeds.rss(path, path).publish("x", link=f"https://e.example{path}")
        await follow(store, feeds.url(path))
    async with poller_on(store) as poller:
        claims = await store.claim_due_feeds(poller.owner, time.time(), 10, poller.lease)
        plans = {claim.feed.url: await poller.plan(claim) for claim in claims}
        bad_url = feeds.url("/bad.xml")
        plans[bad_url] = replace(plans[bad_url], enqueue=(Enqueue(BAD, (1,)),))
        # Both reach the recorder together: one transaction that fails...
        ok, bad = await asyncio.gather(
            poller._queue_plan(plans[feeds.url("/ok.xml")]),
            poller._queue_plan(plans[bad_url]),
            return_exceptions=True,
        )
    # ... then one by one: the good poll is recorded, only the bad one fails.
    assert ok is True and isinstance(bad, Exception)
    assert [d.feed_url for d in await store.pending()] == [feeds.url("/ok.xml")]


async def test_a_poll_reports_its_fetch_time_to_the_metrics_and_the_loop_beats(
    store: Store, feeds: FeedServer
):
    feed = feeds.rss("/m.xml", "M")
    feed.publish("one")
    feed.publish("two")
    url = feeds.url("/m.xml")
    await follow(store, url)
    polls = metrics.value("feedbot_polls_total", outcome="new_entries") or 0.0
    entries = metrics.value("feedbot_new_entries_total") or 0.0
    fetches = metrics.value("feedbot_fetch_seconds_count") or 0.0
    async with poller_on(store) as poller:
        (report,) = await poll_due(poller, store)
        assert report.result is PollResult.NEW_ENTRIES and report.fetch_seconds > 0
        await poller._tick(None)  # type: ignore[arg-type]  # the JobQueue's call
        assert "poll" in heartbeats.snapshot()
        await poller.stop()
        assert "poll" not in heartbeats.snapshot()
    assert metrics.value("feedbot_polls_total", outcome="new_entries") == polls + 1
    assert metrics.value("feedbot_new_entries_total") == entries + 2
    assert metrics.value("feedbot_fetch_seconds_count") == fetches + 1
