"""Fetch slots per host (bot/slots.py)."""

from __future__ import annotations

import asyncio

import pytest

from bot.slots import HostBusy, HostSlots


async def test_a_host_gets_its_slots_and_a_waiter_past_the_limit_is_told_busy():
    slots = HostSlots(per_host=2, max_wait=0.2)
    running = 0
    most = 0
    release = asyncio.Event()

    async def fetch(url: str) -> str:
        nonlocal running, most
        try:
            async with slots.slot(url):
                running += 1
                most = max(most, running)
                await release.wait()
                running -= 1
                return "done"
        except HostBusy:
            return "busy"

    slow = [asyncio.create_task(fetch(f"https://slow.example/{i}")) for i in range(5)]
    other = asyncio.create_task(fetch("https://other.example/feed"))
    await asyncio.sleep(0.3)
    assert most == 3  # two of the slow host, and the other host is not held up
    assert [t.result() for t in slow if t.done()] == ["busy"] * 3
    release.set()
    assert await asyncio.gather(*slow, other) == ["done", "done", "busy", "busy", "busy", "done"]
    assert slots.busy_hosts() == 0  # nothing kept once nobody uses a host


async def test_a_fast_host_serves_a_crowd():
    slots = HostSlots(per_host=2, max_wait=0.5)

    async def fetch() -> None:
        async with slots.slot("https://fast.example/feed"):
            await asyncio.sleep(0.005)

    await asyncio.gather(*(fetch() for _ in range(60)))  # 30 rounds of 5 ms: well within 0.5 s


async def test_an_unparsable_url_shares_one_slot_pool():
    slots = HostSlots(per_host=1, max_wait=0.05)
    async with slots.slot("http://[::1"):
        with pytest.raises(HostBusy):
            async with slots.slot("not a url"):
                pass
