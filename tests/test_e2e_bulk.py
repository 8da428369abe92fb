"""Many feeds in one command: one summary, progress edited into one message,
and /list numbering them in the order the user gave them."""

from __future__ import annotations

import asyncio

from testkit.fake_telegram import FakeTelegram
from testkit.feed_server import FeedServer
from testkit.harness import eventually, load_test_config, running_bot, services

USER = 1001


async def test_list_numbers_follow_the_order_given_not_the_order_fetched(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    paths = [f"/o{i}.xml" for i in range(8)]
    for i, path in enumerate(paths):
        feeds.rss(path, title=f"Feed {i}").publish("x")
        feeds.stall(path, 0.05 * (len(paths) - i))  # later ones answer first
    async with running_bot(load_test_config(tmp_path, telegram, interval="1h")) as app:
        telegram.user_says(USER, USER, "/subscribe " + " ".join(feeds.url(p) for p in paths))
        (summary,) = await telegram.wait_sent(USER, 1, timeout=15)
        assert summary.plain.startswith("8 feeds: added 8.")
        subs = await services(app).store.chat_subscriptions(USER)
        assert [s.feed_url for s in subs] == [feeds.url(p) for p in paths]
        telegram.user_says(USER, USER, "/list")
        listing = (await telegram.wait_sent(USER, 2))[-1].plain
    numbered = [line for line in listing.splitlines() if line[:1].isdigit()]
    assert [line.split(". ", 1)[1] for line in numbered] == [f"Feed {i}" for i in range(8)]
    assert "checked" in listing and "next in" in listing  # when polled, when next


async def test_a_long_import_edits_its_progress_into_one_message(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    paths = [f"/p{i}.xml" for i in range(16)]
    for path in paths:
        feeds.rss(path, title=path).publish("x")
        feeds.stall(path, 0.8)  # four at a time: about 3.2 s in all
    async with running_bot(load_test_config(tmp_path, telegram, interval="1h")):
        telegram.user_says(USER, USER, "/subscribe " + " ".join(feeds.url(p) for p in paths))
        (progress,) = await telegram.wait_sent(USER, 1, timeout=10)
        assert "Subscribing…" in progress.plain and "of 16 feeds checked" in progress.plain

        def final() -> bool:
            message = telegram.message(USER, progress.message_id) or {}
            return str(message.get("text", "")).startswith("16 feeds: added 16.")

        await eventually(final, timeout=15, message="the summary edited in")
        await asyncio.sleep(0.5)
    # One message for the whole import: no sample, no second reply.
    assert len(telegram.sent(USER)) == 1
    assert {e.method for e in telegram.edits} == {"editMessageText"}
