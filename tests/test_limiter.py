"""The one limiter (bot/limiter.py): its lanes, 429s and stop, then every
call of a real python-telegram-bot against the strict fake with its flood
limits on."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from telegram.error import RetryAfter
from telegram.ext import ExtBot
from telegram.request import HTTPXRequest

from bot.flood import Flood
from bot.limiter import BULK, BULK_MAX_WAIT, Limiter, SendingStopped
from bot.metrics import metrics
from testkit.fake_telegram import FakeTelegram
from testkit.harness import TOKEN


class Wire:
    """Stands in for PTB's request: records the order calls reach Telegram."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.release = asyncio.Event()
        self.release.set()
        self.failures: dict[str, list[BaseException]] = {}

    async def call(self, name: str) -> bool:
        failures = self.failures.get(name)
        if failures:
            raise failures.pop(0)
        self.order.append(name)
        await self.release.wait()
        return True


async def send(
    limiter: Limiter, wire: Wire, name: str, chat: int, *, bulk: bool = False, **data: Any
) -> object:
    return await limiter.process_request(
        wire.call,
        (name,),
        {},
        data.pop("endpoint", "sendMessage"),
        {"chat_id": chat, **data},
        BULK if bulk else None,
    )


async def test_replies_go_before_bulk_sends_waiting_for_the_overall_rate():
    limiter = Limiter(Flood(per_second=2, second=0.2, chat_interval=0.0))
    wire = Wire()
    await asyncio.gather(
        send(limiter, wire, "b1", 1, bulk=True), send(limiter, wire, "b2", 2, bulk=True)
    )
    # The window is full for 0.2 s: bulk queued first, replies after.
    tasks = [asyncio.create_task(send(limiter, wire, f"b{n}", n, bulk=True)) for n in (3, 4, 5)]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(send(limiter, wire, f"r{n}", n)) for n in (6, 7)]
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert wire.order == ["b1", "b2", "r6", "r7", "b3", "b4", "b5"]


async def test_a_reply_held_by_its_chat_does_not_hold_up_bulk_to_other_chats():
    limiter = Limiter(Flood(chat_interval=0.3))
    wire = Wire()
    await send(limiter, wire, "first", 1)
    reply = asyncio.create_task(send(limiter, wire, "reply", 1))
    await asyncio.sleep(0)
    await asyncio.wait_for(send(limiter, wire, "bulk", 2, bulk=True), 0.2)
    await asyncio.wait_for(reply, 2)
    assert wire.order == ["first", "bulk", "reply"]


async def test_at_most_30_sends_in_flight():
    limiter = Limiter()
    wire = Wire()
    wire.release.clear()
    tasks = [asyncio.create_task(send(limiter, wire, str(n), n, bulk=True)) for n in range(1, 41)]
    await asyncio.sleep(0.05)
    assert len(wire.order) == 30
    assert limiter.in_flight == 30
    wire.release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)  # the rest once a second has passed
    assert limiter.in_flight == 0


async def test_calls_that_send_nothing_are_not_held_by_the_limits():
    limiter = Limiter(Flood(per_second=1, second=10.0))
    wire = Wire()
    await send(limiter, wire, "message", 1)
    started = time.monotonic()
    for n in range(5):
        await send(limiter, wire, f"member{n}", 1, endpoint="getChatMember")
    assert time.monotonic() - started < 0.5


async def test_a_429_is_waited_out_and_retried_and_never_reaches_the_caller():
    limiter = Limiter()
    wire = Wire()
    wire.failures["reply"] = [RetryAfter(1)]
    before = metrics.value("feedbot_telegram_429_total") or 0.0
    started = time.monotonic()
    assert await send(limiter, wire, "reply", 1) is True
    assert time.monotonic() - started >= 1.0
    assert wire.order == ["reply"]
    assert limiter.stats.rate_limited == 1
    assert metrics.value("feedbot_telegram_429_total") == before + 1


async def test_a_bulk_send_gets_a_long_429_back_for_the_store_to_reschedule():
    limiter = Limiter()
    wire = Wire()
    wire.failures["bulk"] = [RetryAfter(int(BULK_MAX_WAIT) + 10)]
    with pytest.raises(RetryAfter):
        await asyncio.wait_for(send(limiter, wire, "bulk", 1, bulk=True), 1)
    # The chat is held: the next send to it waits; others go.
    await asyncio.wait_for(send(limiter, wire, "other", 2, bulk=True), 1)


async def test_pause_bulk_refuses_waiting_bulk_sends_and_lets_replies_through():
    limiter = Limiter(Flood(per_second=1, second=0.3))
    wire = Wire()
    await send(limiter, wire, "first", 1)
    waiting = asyncio.create_task(send(limiter, wire, "bulk", 2, bulk=True))
    await asyncio.sleep(0)
    limiter.pause_bulk()
    with pytest.raises(SendingStopped):
        await waiting
    with pytest.raises(SendingStopped):
        await send(limiter, wire, "late", 3, bulk=True)
    assert await asyncio.wait_for(send(limiter, wire, "reply", 4), 2) is True
    assert wire.order == ["first", "reply"]


async def test_a_cancelled_wait_gives_its_place_back():
    limiter = Limiter(Flood(per_second=1, second=0.2))
    wire = Wire()
    await send(limiter, wire, "first", 1)
    waiting = asyncio.create_task(send(limiter, wire, "gone", 2))
    await asyncio.sleep(0.01)
    waiting.cancel()
    await asyncio.wait_for(send(limiter, wire, "next", 3), 2)
    assert wire.order == ["first", "next"]
    assert limiter.in_flight == 0


# -- a real Bot against the fake with Telegram's flood limits ------------------
PRIVATE = range(7001, 7061)
GROUPS = (-7001, -7002, -7003)
#: A broadcast queued all at once, as the deliverer's chat workers queue it:
#: five seconds of sends waiting when the burst comes.
BULK_CHATS = range(8001, 8151)
BULK_EACH = 1


async def test_a_burst_of_replies_beside_a_broadcast_all_arrive_replies_first(
    telegram: FakeTelegram,
):
    telegram.limits = True
    for chat in (*PRIVATE, *BULK_CHATS):
        telegram.add_user(chat)
    for group in GROUPS:
        telegram.add_group(group, "Group", [4242])
    limiter = Limiter()
    request = HTTPXRequest(connection_pool_size=64)
    async with ExtBot(
        TOKEN, base_url=telegram.base_url, request=request, rate_limiter=limiter
    ) as bot:

        async def broadcast(chat: int) -> None:
            for n in range(BULK_EACH):
                await bot.send_message(chat, f"bulk {n}", rate_limit_args=BULK)

        async def handle_update(chat: int) -> None:
            # What a handler does: look, then answer the person.
            await bot.get_chat_member(chat, 4242 if chat < 0 else chat)
            await bot.send_message(chat, "answer")

        started = time.monotonic()
        bulk = [asyncio.create_task(broadcast(chat)) for chat in BULK_CHATS]
        await asyncio.sleep(0.3)  # the broadcast is under way when the burst comes
        burst_at = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(handle_update(c) for c in (*PRIVATE, *GROUPS))), 20)
        answered = time.monotonic() - burst_at
        await asyncio.wait_for(asyncio.gather(*bulk), 30)
        total = time.monotonic() - started

    answers = [m for m in telegram.sent() if m.text == "answer"]
    bulks = [m for m in telegram.sent() if m.text and m.text.startswith("bulk")]
    assert sorted(m.chat_id for m in answers) == sorted((*PRIVATE, *GROUPS))
    assert len(bulks) == len(BULK_CHATS) * BULK_EACH
    # Replies first: once the burst came, a bulk send went only when no reply
    # waited for a place; those overtaken were at most the ones in flight.
    last = max(m.time for m in answers)
    overtaking = [m for m in bulks if burst_at < m.time < last]
    assert len(overtaking) <= 30, len(overtaking)
    assert telegram.count_429 <= 3, telegram.rejections[:5]
    print(
        f"\n63 answers in {answered:.2f}s beside a broadcast of {len(bulks)}; "
        f"all done in {total:.2f}s; 429s: {telegram.count_429}; "
        f"bulk sends after the burst came, before its last answer: {len(overtaking)}"
    )
