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
