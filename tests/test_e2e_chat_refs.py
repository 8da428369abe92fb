"""A first argument that names a chat, written as users write it: resolved, or the
whole command refused; nothing is ever subscribed where the user did not mean."""

from __future__ import annotations

import asyncio

from testkit.fake_telegram import FakeTelegram
from testkit.feed_server import FeedServer
from testkit.harness import load_test_config, running_bot, services

ADMIN = 3001
CHANNEL = -1001234500001


async def test_bare_channel_name_is_tried_as_at_name(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(ADMIN)
    telegram.add_channel(CHANNEL, "Harness", username="harness_chan", admins={ADMIN})
    feeds.rss("/c.xml", title="Chan Feed").publish("Sample")
    async with running_bot(load_test_config(tmp_path, telegram, interval="1h")) as app:
        store = services(app).store
        telegram.user_says(ADMIN, ADMIN, f"/subscribe harness_chan {feeds.url('/c.xml')}")
        answer = (await telegram.wait_sent(ADMIN, 1))[-1]
        assert "Subscribed to Chan Feed" in answer.plain
        assert "Harness" in answer.plain  # says for which chat
        assert [s.feed_url for s in (await store.chat_subscriptions(CHANNEL))] == [
            feeds.url("/c.xml")
        ]
        assert (await store.chat_subscriptions(ADMIN)) == []

        telegram.user_says(ADMIN, ADMIN, "/list harness_chan")
        listing = (await telegram.wait_sent(ADMIN, 2))[-1]
        assert "Subscriptions of Harness (1)" in listing.plain

        telegram.user_says(ADMIN, ADMIN, "/unsubscribe harness_chan 1")
        answer = (await telegram.wait_sent(ADMIN, 3))[-1]
        assert "Unsubscribed from Chan Feed" in answer.plain
        assert (await store.chat_subscriptions(CHANNEL)) == []


async def test_unknown_or_unclear_first_argument_refuses_the_whole_command(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(ADMIN)
    feeds.rss("/c.xml", title="Chan Feed").publish("Sample")
    url = feeds.url("/c.xml")
    cases = [
        (f"/subscribe harness_chan {url}", "can't find @harness_chan"),
        (f"/subscribe -1009100 {url}", "can't find -1009100"),
        (f"/subscribe @ab {url}", "can't find @ab"),
        (f"/subscribe x {url}", "neither a feed address nor a channel"),
        ("/list harness_chan", "can't find @harness_chan"),
        ("/list -1009100", "can't find -1009100"),
        ("/list what.ever", "Usage: /list"),
        ("/unsubscribe -1009100 1", "can't find -1009100"),
    ]
    async with running_bot(load_test_config(tmp_path, telegram, interval="1h")) as app:
        store = services(app).store
        for number, (command, expected) in enumerate(cases, 1):
            telegram.user_says(ADMIN, ADMIN, command)
            answers = await telegram.wait_sent(ADMIN, number)
            assert expected in answers[-1].plain, (command, answers[-1].plain)
            assert (await store.chat_subscriptions(ADMIN)) == [], command
        await asyncio.sleep(0.3)
        assert len(telegram.sent(ADMIN)) == len(cases), "one answer each, no sample anywhere"
        assert (await store.chat_subscriptions(ADMIN)) == []
