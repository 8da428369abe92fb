"""bot/health.py: the verdict as a pure function, /healthz and /metrics over
HTTP, and the store sampler on the real PostgreSQL store."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.health import Beat, HealthServer, Heartbeats, StoreProbe, StoreSampler, checker, verdict
from bot.metrics import Metrics
from bot.models import Chat, ChatKind, Entry, Feed, Subscription
from bot.store.base import Store
from bot.store.postgres import PostgresStore
from bot.store.sqlite import SqliteStore
from testkit.postgres import fresh_database, unavailable

FRESH = StoreProbe(answered_at=100.0)


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- the verdict -------------------------------------------------------------
def test_healthy_when_the_store_answered_and_every_loop_beat_recently() -> None:
    beats = {"poll": Beat(95.0, 30.0), "deliver": Beat(99.0, 30.0)}
    assert verdict(100.0, beats, FRESH, store_max_age=15.0) == "ok"
    assert verdict(100.0, {}, FRESH, store_max_age=15.0) == "ok"


def test_a_stale_loop_is_named() -> None:
    beats = {"poll": Beat(95.0, 30.0), "deliver": Beat(50.0, 30.0)}
    assert verdict(100.0, beats, FRESH, 15.0) == "loop deliver: no heartbeat for 50s (limit 30s)"
    assert verdict(80.0, beats, StoreProbe(answered_at=80.0), 15.0) == "ok"  # exactly at the limit


def test_store_reasons_come_first() -> None:
    stale_loop = {"poll": Beat(0.0, 30.0)}
    failed = StoreProbe(answered_at=99.0, error="PostgreSQL db: connection refused")
    assert verdict(100.0, stale_loop, failed, 15.0) == "store: PostgreSQL db: connection refused"
    assert verdict(100.0, {}, StoreProbe(), 15.0) == "store: not checked yet"
    assert verdict(100.0, {}, StoreProbe(answered_at=60.0), 15.0) == "store: no answer for 40s"


def test_heartbeats_register_beat_and_forget() -> None:
    clock = Clock(10.0)
    beats = Heartbeats(clock)
    beats.beat("poll", max_age=30.0)
    clock.now = 12.0
    beats.beat("deliver", max_age=5.0)
    assert beats.snapshot() == {"poll": Beat(10.0, 30.0), "deliver": Beat(12.0, 5.0)}
    beats.forget("deliver")
    beats.forget("never-registered")
    assert beats.snapshot() == {"poll": Beat(10.0, 30.0)}


# -- over HTTP ---------------------------------------------------------------
async def test_healthz_and_metrics_over_http() -> None:
    clock = Clock(100.0)
    beats = Heartbeats(clock)
    probe = StoreProbe(answered_at=100.0)
    sink = Metrics()
    sink.rate_limited()
    server = HealthServer(
        ("127.0.0.1", 0), lambda: verdict(clock(), beats.snapshot(), probe, 15.0), sink=sink
    )
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession() as http:
            beats.beat("poll", max_age=30.0)
            async with http.get(f"{base}/healthz") as r:
                assert (r.status, await r.text()) == (200, "ok\n")
            clock.now = 140.0  # the poll loop stopped beating (and the store answered long ago)
            probe = StoreProbe(answered_at=139.0)
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 503
                assert await r.text() == "loop poll: no heartbeat for 40s (limit 30s)\n"
            async with http.get(f"{base}/metrics") as r:
                assert r.status == 200
                assert r.headers["Content-Type"].startswith("text/plain; version=")
                text = await r.text()
            assert "# TYPE feedbot_polls_total counter" in text
            assert "feedbot_telegram_429_total 1.0" in text
            async with http.get(f"{base}/nothing") as r:
                assert r.status == 404
    finally:
        await server.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as http, http.get(f"{base}/healthz"):
            pass


async def test_a_taken_port_is_an_error_at_start() -> None:
    first = HealthServer(("127.0.0.1", 0), lambda: "ok", sink=Metrics())
    await first.start()
    try:
        second = HealthServer(("127.0.0.1", first.port or 0), lambda: "ok", sink=Metrics())
        with pytest.raises(OSError):
            await second.start()
    finally:
        await first.stop()


# -- the sampler on the real store -------------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open store of each backend (closed by the test, or after it)."""
    if request.param == "sqlite":
        s: Store = SqliteStore(str(tmp_path / "feedbot.sqlite"))
        await s.open()
        yield s
        await s.close()
        return
    reason = await unavailable()
    if reason is not None:
        pytest.skip(reason)
    async with fresh_database() as url:
        s = PostgresStore(url)
        await s.open()
        yield s
        await s.close()


async def test_sampler_reads_the_store_into_gauges_and_health(store: Store) -> None:
    sink, beats = Metrics(), Heartbeats()
    sampler = StoreSampler(store, every=0.05, timeout=2.0, sink=sink, wall=lambda: 5000.0)
    health = checker(sampler, beats)
    try:
        assert health() == "store: not checked yet"
        feed = Feed(url="https://example.com/feed.xml", title="Example", next_poll=4000.0)
        chat = Chat(id=42, kind=ChatKind.PRIVATE)
        sub = Subscription(chat_id=42, feed_url=feed.url, created=4900.0)
        sample = Entry(id="e1", title="First", link="https://example.com/1")
        await store.subscribe(chat, sub, new_feed=feed, sample=sample, now=4958.0)
        await sampler.sample()
        assert health() == "ok"
        assert sink.value("feedbot_outbox_depth") == 1
        assert sink.value("feedbot_outbox_oldest_age_seconds") == pytest.approx(42.0)
        assert sink.value("feedbot_feeds_due") == 1
        assert (sink.value("feedbot_feeds"), sink.value("feedbot_subscriptions")) == (1, 1)
        assert sink.value("feedbot_active_chats") == 1

        sampler.start()  # the loop keeps the probe fresh
        started = time.monotonic()
        await _until(lambda: (sampler.probe.answered_at or 0) > started)
        assert health() == "ok"
    finally:
        await store.close()
    # The store is gone: the next sample says so, in one line.
    await _until(lambda: sampler.probe.error is not None)
    await sampler.stop()
    reason = health()
    assert reason.startswith("store: ") and reason != "store: not checked yet"
    assert "\n" not in reason


async def _until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_hung_database_is_unhealthy_not_a_hung_probe() -> None:
    reason = await unavailable()
    if reason is not None:
        pytest.skip(reason)
    import asyncpg

    async with fresh_database() as url:
        store = PostgresStore(url)
        await store.open()
        locker = await asyncpg.connect(url)
        try:
            sampler = StoreSampler(store, timeout=0.5, sink=Metrics())
            await sampler.sample()
            assert sampler.probe.error is None
            async with locker.transaction():
                # Another session holds the outbox: the stats query waits.
                await locker.execute("LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE")
                started = time.monotonic()
                await sampler.sample()
                assert time.monotonic() - started < 2.0
                assert sampler.probe.error == "no answer within 0.5s"
                assert checker(sampler, Heartbeats())() == "store: no answer within 0.5s"
            await sampler.sample()
            assert sampler.probe.error is None
        finally:
            await locker.close()
            await store.close()
