from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from testkit.fake_telegram import FakeTelegram
from testkit.feed_server import FeedServer
from testkit.harness import TOKEN


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(TOKEN) as fake:
        yield fake


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    async with FeedServer() as server:
        yield server


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
