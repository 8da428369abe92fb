"""Groups (administrators change, anyone lists) and channels (managed from a private chat)."""

from __future__ import annotations

import asyncio

from testkit.fake_telegram import FakeTelegram
from testkit.feed_server import FeedServer
from testkit.harness import eventually, load_test_config, running_bot, services

ADMIN = 2001
MEMBER = 2002
GROUP = -1001
CHANNEL = -1001234567890


def texts(telegram: FakeTelegram, chat_id: int) -> list[str]:
    return [m.plain for m in telegram.sent(chat_id)]


async def test_group_admins_manage_anyone_lists(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(ADMIN)
    telegram.add_user(MEMBER)
    telegram.add_group(GROUP, "Readers", admins={ADMIN}, members={MEMBER})
    feed = feeds.rss("/g.xml", title="Group Feed")
    feed.publish("First")
    config = load_test_config(tmp_path, telegram)
    async with running_bot(config) as app:
        store = services(app).store
        telegram.add_bot_to_group(GROUP, ADMIN)
        (intro,) = await telegram.wait_sent(GROUP, 1)
        assert "/subscribe" in intro.plain

        telegram.user_says(GROUP, MEMBER, f"/subscribe {feeds.url('/g.xml')}")
        refusal = (await telegram.wait_sent(GROUP, 2))[-1]
        assert "administrators" in refusal.plain
        assert (await store.chat_subscriptions(GROUP)) == []

        telegram.user_says(GROUP, ADMIN, f"/subscribe@feedbot_test_bot {feeds.url('/g.xml')}")
        await eventually(
            lambda: any("Subscribed to Group Feed" in t for t in texts(telegram, GROUP))
        )
        assert len(await store.chat_subscriptions(GROUP)) == 1

        telegram.user_says(GROUP, MEMBER, "/list")
        await eventually(lambda: any("1. Group Feed" in t for t in texts(telegram, GROUP)))

        # An anonymous administrator writes as the group itself.
        feeds.rss("/anon.xml", title="Anon Feed").publish("x")
        telegram.anonymous_admin_says(GROUP, f"/subscribe {feeds.url('/anon.xml')}")
        await eventually(
            lambda: any("Subscribed to Anon Feed" in t for t in texts(telegram, GROUP))
        )

        feed.publish("Second", link="https://g.example/second")
        await eventually(
            lambda: any("Second" in t for t in texts(telegram, GROUP)), message="entry"
        )

        # Removed from the group: its subscriptions stop.
        telegram.remove_bot_from_group(GROUP, ADMIN)

        async def _cond1():
            return not (await store.get_chat(GROUP)).active

        await eventually(_cond1, message="group paused")
        before = len(telegram.sent(GROUP))
        feed.publish("Third", link="https://g.example/third")
        await asyncio.sleep(2.5)
        assert len(telegram.sent(GROUP)) == before
        assert not any(r[1] == GROUP for r in telegram.rejections), "nothing even tried"


async def test_demoted_admin_loses_rights_at_once(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(ADMIN)
    telegram.add_group(GROUP, "Readers", admins={ADMIN}, members=set())
    feeds.rss("/g.xml", title="Group Feed").publish("x")
    config = load_test_config(tmp_path, telegram, interval="1h")
    async with running_bot(config) as app:
        telegram.user_says(GROUP, ADMIN, f"/subscribe {feeds.url('/g.xml')}")

        async def _cond2():
            return len(await services(app).store.chat_subscriptions(GROUP)) == 1

        await eventually(_cond2)
        telegram.add_group(GROUP, "Readers", admins=set(), members={ADMIN})  # demoted
        telegram.user_says(GROUP, ADMIN, "/unsubscribe 1")
        await eventually(lambda: any("administrators" in t for t in texts(telegram, GROUP)))
        assert len(await services(app).store.chat_subscriptions(GROUP)) == 1


async def test_channel_subscribed_from_private_chat(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(ADMIN)
    telegram.add_user(MEMBER)
    telegram.add_channel(
        CHANNEL, "Announcements", username="announce", admins={ADMIN}, bot_can_post=True
    )
    feed = feeds.rss("/c.xml", title="Channel Feed")
    feed.publish("Sample entry")
    config = load_test_config(tmp_path, telegram)
    async with running_bot(config) as app:
        store = services(app).store
        # Not an administrator of the channel: refused.
        telegram.user_says(MEMBER, MEMBER, f"/subscribe @announce {feeds.url('/c.xml')}")
        answer = (await telegram.wait_sent(MEMBER, 1))[-1]
        assert "Only administrators of Announcements" in answer.plain
        # An unknown channel: refused with a hint.
        telegram.user_says(ADMIN, ADMIN, f"/subscribe @nosuchchannel {feeds.url('/c.xml')}")
        answer = (await telegram.wait_sent(ADMIN, 1))[-1]
        assert "can't find @nosuchchannel" in answer.plain
        assert (await store.chat_subscriptions(CHANNEL)) == []

        telegram.user_says(ADMIN, ADMIN, f"/subscribe @announce {feeds.url('/c.xml')}")
        answer = (await telegram.wait_sent(ADMIN, 2))[-1]
        assert "Subscribed to Channel Feed" in answer.plain
        (sample,) = await telegram.wait_sent(CHANNEL, 1)
        assert "Sample entry" in sample.plain

        feed.publish("Breaking", link="https://c.example/breaking")
        await telegram.wait_sent(CHANNEL, 2)
        assert "Breaking" in telegram.sent(CHANNEL)[1].plain

        telegram.user_says(ADMIN, ADMIN, "/list @announce")
        listing = (await telegram.wait_sent(ADMIN, 3))[-1]
        assert "1. Channel Feed" in listing.plain
        # The private chat itself follows nothing.
        assert (await store.chat_subscriptions(ADMIN)) == []

        telegram.user_says(ADMIN, ADMIN, f"/unsubscribe {CHANNEL} 1")
        answer = (await telegram.wait_sent(ADMIN, 4))[-1]
        assert "Unsubscribed from Channel Feed" in answer.plain
        assert (await store.chat_subscriptions(CHANNEL)) == []


async def test_channel_where_bot_cannot_post(tmp_path, telegram: FakeTelegram, feeds: FeedServer):
    telegram.add_user(ADMIN)
    telegram.add_channel(CHANNEL, "Quiet", username="quietchan", admins={ADMIN}, bot_can_post=False)
    feeds.rss("/c.xml", title="Channel Feed").publish("x")
    config = load_test_config(tmp_path, telegram, interval="1h")
    async with running_bot(config) as app:
        telegram.user_says(ADMIN, ADMIN, f"/subscribe @quietchan {feeds.url('/c.xml')}")
        answer = (await telegram.wait_sent(ADMIN, 1))[-1]
        assert "can't post in Quiet" in answer.plain
        assert (await services(app).store.chat_subscriptions(CHANNEL)) == []


async def test_command_posted_in_the_channel(tmp_path, telegram: FakeTelegram, feeds: FeedServer):
    telegram.add_user(ADMIN)
    telegram.add_channel(CHANNEL, "Posts", username="postschan", admins={ADMIN}, bot_can_post=True)
    feeds.rss("/c.xml", title="Channel Feed").publish("Inside")
    config = load_test_config(tmp_path, telegram, interval="1h")
    async with running_bot(config) as app:
        telegram.channel_post(CHANNEL, f"/subscribe {feeds.url('/c.xml')}")

        async def _cond3():
            return len(await services(app).store.chat_subscriptions(CHANNEL)) == 1

        await eventually(_cond3)
        await eventually(lambda: any("Inside" in t for t in texts(telegram, CHANNEL)))
