"""bot/roles.py: the sender role's rule as a pure function, and the loop on
the real PostgreSQL store (its advisory lock) with two processes' stores."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator

import asyncpg
import pytest

from bot.health import Heartbeats
from bot.metrics import Metrics
from bot.roles import HEARTBEAT, Change, SenderRole, change, owner_id
from bot.store.base import StoreError
from bot.store.postgres import PostgresStore
from testkit.postgres import fresh_database, unavailable


@pytest.mark.parametrize(
    ("was", "holds", "expected"),
    [
        (False, True, Change.START),
        (True, False, Change.STOP),
        (True, True, Change.NONE),
        (False, False, Change.NONE),
    ],
)
def test_change(was: bool, holds: bool, expected: Change) -> None:
    assert change(was, holds) is expected


def test_owner_id_names_the_process_and_never_repeats() -> None:
    a, b = owner_id(), owner_id()
    assert a != b
    assert a.startswith(f"{socket.gethostname()}-{os.getpid()}-")


class Side:
    """The sender side's start and stop, counted (they are the role's output)."""

    def __init__(self, fail_starts: int = 0) -> None:
        self.running = False
        self.starts = self.stops = 0
        self.fail_starts = fail_starts

    async def start(self) -> None:
        if self.fail_starts:
            self.fail_starts -= 1
            raise OSError("address already in use")
        self.running, self.starts = True, self.starts + 1

    async def stop(self) -> None:
        self.running, self.stops = False, self.stops + 1


def role(hold, side: Side, sink: Metrics | None = None, beats: Heartbeats | None = None):  # type: ignore[no-untyped-def]
    return SenderRole(
        hold, side.start, side.stop, every=0.05, sink=sink or Metrics(), beats=beats or Heartbeats()
    )


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    reason = await unavailable()
    if reason is not None:
        pytest.skip(reason)
    async with fresh_database() as url:
        yield url


async def test_one_sender_at_a_time_and_a_takeover_when_it_dies(pg_url: str) -> None:
    first, second = PostgresStore(pg_url), PostgresStore(pg_url)
    await first.open()
    await second.open()
    side_a, side_b = Side(), Side()
    sink_a, sink_b = Metrics(), Metrics()
    a, b = role(first.hold_sender, side_a, sink_a), role(second.hold_sender, side_b, sink_b)
    try:
        # Step by step (the loop, which would step concurrently, is tested below).
        assert await a.step() is Change.START
        assert await b.step() is Change.NONE
        assert (a.is_sender, side_a.running) == (True, True)
        assert (b.is_sender, side_b.running) == (False, False)
        assert sink_a.value("feedbot_sender", owner=a.owner) == 1
        assert sink_b.value("feedbot_sender", owner=b.owner) == 0
        for _ in range(3):  # steady: nothing changes
            assert await a.step() is Change.NONE
            assert await b.step() is Change.NONE

        # The sender's process dies: its database session ends (as with kill -9).
        admin = await asyncpg.connect(pg_url)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = $1",
                f"feedbot sender {a.owner}"[:63],
            )
        finally:
            await admin.close()
        assert await b.step() is Change.START
        assert side_b.running and b.is_sender
        # The old sender learns it lost the role at its next step and stops sending.
        assert await a.step() is Change.STOP
        assert (side_a.running, side_a.stops) == (False, 1)
        assert sink_a.value("feedbot_sender", owner=a.owner) == 0
    finally:
        await a.stop()
        await b.stop()
        await first.close()
        await second.close()
    assert (side_b.running, side_b.stops) == (False, 1)


async def test_the_loop_takes_over_by_itself(pg_url: str) -> None:
    first, second = PostgresStore(pg_url), PostgresStore(pg_url)
    await first.open()
    await second.open()
    side_a, side_b = Side(), Side()
    a, b = role(first.hold_sender, side_a), role(second.hold_sender, side_b)
    try:
        await a.start()
        await b.start()
        assert side_a.running and not side_b.running
        await first.close()  # the process ends: its lock goes with its connection
        await _until(lambda: side_b.running)
        await _until(lambda: not side_a.running)
    finally:
        await a.stop()
        await b.stop()
        await second.close()


async def test_a_failed_start_is_tried_again_while_holding(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    await store.open()
    side = Side(fail_starts=2)
    r = role(store.hold_sender, side)
    try:
        assert await r.step() is Change.NONE
        assert await r.step() is Change.NONE
        assert not r.is_sender
        assert await r.step() is Change.START
        assert side.running and side.starts == 1
    finally:
        await r.stop()
        await store.close()


async def test_a_store_that_cannot_answer_means_not_the_sender() -> None:
    answers: list[bool | Exception] = [True, True, StoreError("PostgreSQL db: connection refused")]

    async def hold(owner: str) -> bool:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    side, beats = Side(), Heartbeats()
    r = role(hold, side, beats=beats)
    assert await r.step() is Change.START
    assert HEARTBEAT in beats.snapshot()
    assert await r.step() is Change.NONE
    assert await r.step() is Change.STOP
    assert not side.running
    await r.stop()
    assert HEARTBEAT not in beats.snapshot()
    assert side.stops == 1  # stop() does not stop a side that is not running


async def _until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_the_embedded_store_makes_its_one_process_the_sender(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bot.store.sqlite import SqliteStore

    store = SqliteStore(str(tmp_path / "feedbot.sqlite"))
    await store.open()
    side = Side()
    r = role(store.hold_sender, side)
    try:
        await r.start()
        assert r.is_sender and side.running
    finally:
        await r.stop()
        await store.close()
    assert not side.running
