"""A crowd pointing the bot at a stalling server holds up nobody else (issue 9)."""

from __future__ import annotations

import time

from testkit.fake_telegram import FakeTelegram
from testkit.feed_server import FeedServer
from testkit.harness import eventually, load_test_config, running_bot

CROWD = range(5001, 5041)
PATIENT, NEWCOMER = 6001, 6002


async def test_stalling_subscribes_do_not_starve_other_users_or_the_poller(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    for user in (*CROWD, PATIENT, NEWCOMER):
        telegram.add_user(user)
    feeds.rss("/slow.xml", title="Slow").publish("x")
    feeds.stall("/slow.xml", 30)  # past the 5 s fetch deadline
    feeds.rss("/fine.xml", title="Fine").publish("y")
    async with running_bot(load_test_config(tmp_path, telegram, interval="1h")):
        for user in CROWD:  # 40 users, more than the update handlers (16)
            telegram.user_says(user, user, f"/subscribe {feeds.url('/slow.xml')}")
        start = time.monotonic()
        telegram.user_says(PATIENT, PATIENT, "/list")
        # Another host (the same server by another name, as far as the bot knows).
        fine = feeds.url("/fine.xml").replace("127.0.0.1", "localhost")
        telegram.user_says(NEWCOMER, NEWCOMER, f"/subscribe {fine}")
        (listing,) = await telegram.wait_sent(PATIENT, 1, timeout=10)
        listed = time.monotonic() - start
        answer = (await telegram.wait_sent(NEWCOMER, 1, timeout=10))[0]
        subscribed = time.monotonic() - start

        # The slow host gets a few fetches at a time; whoever waits too long
        # for one is told it is busy, rather than waiting for ever.
        def told_busy() -> int:
            return sum(any("Try again" in m.plain for m in telegram.sent(u)) for u in CROWD)

        await eventually(lambda: told_busy() >= len(CROWD) - 12, timeout=20, message="busy")
    assert "no subscriptions" in listing.plain
    assert "Subscribed to Fine" in answer.plain
    # Before the fix every handler waited out a stalled fetch: 5 s or more.
    assert listed < 2.0, listed
    assert subscribed < 3.0, subscribed
