from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from hypothesis import settings

import testkit.harness
import testkit.postgres
from bot.store.base import Store
from testkit.fake_telegram import FakeTelegram
from testkit.feed_server import FeedServer
from testkit.harness import TOKEN

# CI runs the property tests derandomized (the same examples every run, no
# deadline on a loaded 2-core machine): a failure there is reproducible, not
# luck. Locally they explore anew each run.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(TOKEN) as fake:
        yield fake


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    async with FeedServer() as server:
        yield server


Factory = Callable[[], Awaitable[Store]]


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Factory]:
    """Opens stores on one backend's storage: call it again to reopen."""
    opened: list[Store] = []

    if request.param == "sqlite":
        from bot.store.sqlite import SqliteStore

        path = str(tmp_path / "data" / "feedbot.sqlite")

        async def make() -> Store:
            s = SqliteStore(path)
            await s.open()
            opened.append(s)
            return s

        yield make
        for s in opened:
            await s.close()
        return

    reason = await testkit.postgres.unavailable()
    if reason:
        pytest.skip(reason)
    try:
        from bot.store.postgres import PostgresStore  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        pytest.skip("postgres backend not on this branch")
    async with testkit.postgres.fresh_database() as url:

        async def make_pg() -> Store:
            s = PostgresStore(url)
            await s.open()
            opened.append(s)
            return s

        yield make_pg
        for s in opened:
            await s.close()


@pytest.fixture
async def store(backend: Factory) -> Store:
    return await backend()


@pytest.fixture(params=["sqlite", "postgres"])
async def e2e_store(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """Runs an end-to-end test on each backend: the configs testkit.harness
    writes name a fresh PostgreSQL database (dropped after), or the embedded
    file. A module opts in with ``pytestmark = pytest.mark.usefixtures("e2e_store")``:
    the ones whose bots keep state worth checking on both (subscribing,
    polling and its schedule, delivery and its outbox, restarts, OPML's bulk
    writes); the others test words, rendering and Telegram's rules, which no
    store changes, and stay on the file to keep the suite's time."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    reason = await testkit.postgres.unavailable()
    if reason:
        pytest.skip(reason)
    async with testkit.postgres.fresh_database() as url:
        testkit.harness.use_store_url(url)
        try:
            yield "postgres"
        finally:
            testkit.harness.use_store_url(None)


#: Suites whose every XML document is parsed both by feedparser-rs and by
#: feedparser, the two answers compared (tests/differential.py).
_DIFFERENTIAL = {
    "tests.test_parse",
    "tests.test_parse_hostile",
    "tests.test_parse_fuzz",
    "tests.test_corpus",
}


@pytest.fixture(autouse=True)
def _both_parsers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.module.__name__ in _DIFFERENTIAL:
        import bot.parse
        from tests.differential import checked_parse_xml_feed

        monkeypatch.setattr(bot.parse, "parse_xml_feed", checked_parse_xml_feed)
