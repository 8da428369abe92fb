"""Delivery against Telegram's errors: each case end to end through the strict fake.

The error matrix, row by row:

* 429: test_flood_control_waits_retry_after,
  test_flood_control_on_one_chat_does_not_hold_up_another;
* 403 blocked / kicked / not a member, restorable:
  test_blocked_chat_is_paused_and_resumes_on_start,
  test_kicked_from_group_is_paused_and_resumes_when_added_again,
  test_not_a_member_of_channel_is_paused_and_resumes_when_added_again;
* 400 migrated to a supergroup: test_migrated_group_moves_to_supergroup;
* 400 chat not found: test_deleted_chat_is_paused;
* 400 can't parse entities: test_unparsable_markup_is_sent_as_plain_text;
* 400 media failures: test_media_refused_falls_back_to_text;
* 5xx, timeouts, network errors: test_server_errors_are_retried,
  test_dropped_connections_are_retried;
* a feed's entries oldest first: test_entries_of_a_feed_arrive_oldest_first.
"""

from __future__ import annotations

import asyncio
import time

import pytest

import bot.deliver
import bot.delivery_rules
from bot.render import Message
from testkit.fake_telegram import FakeTelegram
from testkit.feed_server import FeedServer
from testkit.harness import eventually, load_test_config, running_bot, services

#: Every test here runs on the embedded file and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("e2e_store")

USER = 5001
OTHER = 5002
GROUP = -5001
SUPERGROUP = -1005001
CHANNEL = -1005002


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    """Backoff steps of 0.2 s, 0.4 s … instead of 2 s, 4 s …: same code, shorter test."""
    monkeypatch.setattr(bot.delivery_rules, "BACKOFF_BASE", 0.2)


def has(telegram: FakeTelegram, chat_id: int, text: str) -> int:
    return sum(text in m.plain for m in telegram.sent(chat_id))


async def subscribe(telegram: FakeTelegram, chat_id: int, user_id: int, url: str) -> None:
    telegram.user_says(chat_id, user_id, f"/subscribe {url}")
    await eventually(lambda: has(telegram, chat_id, "Subscribed to"), message="subscribed")


async def test_blocked_chat_is_paused_and_resumes_on_start(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    feed = feeds.rss("/f.xml", title="F")
    feed.publish("Zero")
    async with running_bot(load_test_config(tmp_path, telegram)) as app:
        store = services(app).store
        await subscribe(telegram, USER, USER, feeds.url("/f.xml"))
        telegram.block(USER)
        feed.publish("While blocked", link="https://f.example/blocked")

        async def _cond1():
            return not (await store.get_chat(USER)).active

        await eventually(_cond1, message="chat paused")
        assert len(await store.chat_subscriptions(USER)) == 1, "subscriptions kept, paused"
        assert [d for d in await store.pending() if d.chat_id == USER] == []
        feed.publish("Still blocked", link="https://f.example/still")
        await asyncio.sleep(2.5)
        forbidden = [r for r in telegram.rejections if r[1] == USER and r[2] == 403]
        assert len(forbidden) == 1, "a paused chat is not tried again"

        telegram.unblock(USER)
        telegram.user_says(USER, USER, "/start")
        await eventually(lambda: has(telegram, USER, "Welcome back"))
        feed.publish("After coming back", link="https://f.example/back")
        await eventually(lambda: has(telegram, USER, "After coming back"))


async def test_migrated_group_moves_to_supergroup(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    telegram.add_group(GROUP, "Old group", admins={USER}, members=set())
    feed = feeds.rss("/m.xml", title="M")
    feed.publish("Zero")
    async with running_bot(load_test_config(tmp_path, telegram)) as app:
        store = services(app).store
        await subscribe(telegram, GROUP, USER, feeds.url("/m.xml"))
        await eventually(lambda: has(telegram, GROUP, "Zero"))
        telegram.migrate(GROUP, SUPERGROUP)
        feed.publish("After migration", link="https://m.example/after")
        await eventually(
            lambda: has(telegram, SUPERGROUP, "After migration"), message="sent to new id"
        )
        assert (await store.chat_subscriptions(GROUP)) == []
        assert [s.feed_url for s in (await store.chat_subscriptions(SUPERGROUP))] == [
            feeds.url("/m.xml")
        ]
        assert has(telegram, SUPERGROUP, "After migration") == 1


async def test_migration_service_message_moves_subscriptions_at_once(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    telegram.add_group(GROUP, "Old group", admins={USER}, members=set())
    feeds.rss("/m.xml", title="M").publish("Zero")
    async with running_bot(load_test_config(tmp_path, telegram, interval="1h")) as app:
        store = services(app).store
        await subscribe(telegram, GROUP, USER, feeds.url("/m.xml"))
        telegram.migrate(GROUP, SUPERGROUP, announce=True)

        async def _cond2():
            return await store.chat_subscriptions(SUPERGROUP)

        await eventually(_cond2, message="moved")
        assert (await store.chat_subscriptions(GROUP)) == []
        telegram.user_says(SUPERGROUP, USER, "/list")
        await eventually(lambda: has(telegram, SUPERGROUP, "1. M"), message="/list in the new id")


async def test_flood_control_waits_retry_after(tmp_path, telegram: FakeTelegram, feeds: FeedServer):
    telegram.add_user(USER)
    feed = feeds.rss("/q.xml", title="Q")
    feed.publish("Zero")
    async with running_bot(load_test_config(tmp_path, telegram)) as app:
        await subscribe(telegram, USER, USER, feeds.url("/q.xml"))
        await eventually(lambda: has(telegram, USER, "Zero"))
        telegram.flood(USER, retry_after=2, times=1)
        feed.publish("Throttled", link="https://q.example/t")
        await eventually(lambda: telegram.count_429 == 1, message="a 429")
        refused_at = time.monotonic()
        await eventually(lambda: has(telegram, USER, "Throttled"), message="sent after retry_after")
        assert time.monotonic() - refused_at >= 1.5
        await asyncio.sleep(1.5)
        assert has(telegram, USER, "Throttled") == 1

        async def _cond3():
            return not (await services(app).store.pending())

        await eventually(_cond3, message="outbox empty")


async def test_server_errors_are_retried(tmp_path, telegram: FakeTelegram, feeds: FeedServer):
    telegram.add_user(USER)
    feed = feeds.rss("/s.xml", title="S")
    feed.publish("Zero")
    async with running_bot(load_test_config(tmp_path, telegram)) as app:
        await subscribe(telegram, USER, USER, feeds.url("/s.xml"))
        await eventually(lambda: has(telegram, USER, "Zero"))
        telegram.fail_server(times=2, status=502)
        feed.publish("Survives 502", link="https://s.example/502")
        await eventually(lambda: has(telegram, USER, "Survives 502"), timeout=20)
        assert has(telegram, USER, "Survives 502") == 1

        async def _cond4():
            return not (await services(app).store.pending())

        await eventually(_cond4, message="outbox empty")


async def test_media_refused_falls_back_to_text(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    feed = feeds.rss("/p.xml", title="Pictures")
    feed.publish("Zero")
    telegram.fail_media_url("broken-image")
    async with running_bot(load_test_config(tmp_path, telegram)) as app:
        await subscribe(telegram, USER, USER, feeds.url("/p.xml"))
        await eventually(lambda: has(telegram, USER, "Zero"))
        feed.publish(
            "With a broken picture",
            link="https://p.example/pic",
            html="<p>Look at this.</p>",
            enclosures=[("https://img.example/broken-image.jpg", "image/jpeg", 1000)],
        )
        await eventually(
            lambda: has(telegram, USER, "With a broken picture"), message="text fallback"
        )
        (message,) = [m for m in telegram.sent(USER) if "With a broken picture" in m.plain]
        assert message.method == "sendMessage"
        assert "https://p.example/pic" in message.text
        assert any(r[0] == "sendPhoto" and r[1] == USER for r in telegram.rejections)

        async def _cond5():
            return not (await services(app).store.pending())

        await eventually(_cond5, message="outbox empty")


async def test_kicked_from_group_is_paused_and_resumes_when_added_again(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    telegram.add_group(GROUP, "Readers", admins={USER}, members=set())
    feed = feeds.rss("/k.xml", title="K")
    feed.publish("Zero")
    async with running_bot(load_test_config(tmp_path, telegram)) as app:
        store = services(app).store
        await subscribe(telegram, GROUP, USER, feeds.url("/k.xml"))
        await eventually(lambda: has(telegram, GROUP, "Zero"))
        telegram.kick(GROUP)  # silently: the bot learns it from the 403
        feed.publish("While kicked", link="https://k.example/kicked")

        async def _cond6():
            return not (await store.get_chat(GROUP)).active

        await eventually(_cond6, message="group paused")
        assert [r[2:] for r in telegram.rejections if r[1] == GROUP] == [
            (403, "Forbidden: bot was kicked from the group chat")
        ]
        assert len(await store.chat_subscriptions(GROUP)) == 1, "subscriptions kept, paused"
        assert [d for d in await store.pending() if d.chat_id == GROUP] == []

        telegram.add_bot_to_group(GROUP, USER)
        await eventually(lambda: has(telegram, GROUP, "earlier subscriptions are active again"))
        assert (await store.get_chat(GROUP)).active
        feed.publish("Back in the group", link="https://k.example/back")
        await eventually(lambda: has(telegram, GROUP, "Back in the group"), message="resumed")
        assert has(telegram, GROUP, "While kicked") == 0


async def test_not_a_member_of_channel_is_paused_and_resumes_when_added_again(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    telegram.add_channel(CHANNEL, "Channel", username="chan", admins={USER})
    feed = feeds.rss("/c.xml", title="C")
    feed.publish("Zero")
    async with running_bot(load_test_config(tmp_path, telegram)) as app:
        store = services(app).store
        telegram.user_says(USER, USER, f"/subscribe @chan {feeds.url('/c.xml')}")
        await eventually(lambda: has(telegram, CHANNEL, "Zero"), message="sample in the channel")
        telegram.kick(CHANNEL)
        feed.publish("While out", link="https://c.example/out")

        async def _cond7():
            return not (await store.get_chat(CHANNEL)).active

        await eventually(_cond7, message="channel paused")
        assert [r[2:] for r in telegram.rejections if r[1] == CHANNEL] == [
            (403, "Forbidden: bot is not a member of the channel chat")
        ]
        assert len(await store.chat_subscriptions(CHANNEL)) == 1

        telegram.add_bot_to_channel(CHANNEL, USER)

        async def _cond8():
            return (await store.get_chat(CHANNEL)).active

        await eventually(_cond8, message="channel resumed")
        feed.publish("Back in the channel", link="https://c.example/back")
        await eventually(lambda: has(telegram, CHANNEL, "Back in the channel"))
        assert has(telegram, CHANNEL, "While out") == 0


async def test_channel_without_the_right_to_post_is_paused_until_it_comes_back(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    telegram.add_channel(CHANNEL, "Channel", username="chan", admins={USER})
    feed = feeds.rss("/r.xml", title="R")
    feed.publish("Zero")
    async with running_bot(load_test_config(tmp_path, telegram)) as app:
        store = services(app).store
        telegram.user_says(USER, USER, f"/subscribe @chan {feeds.url('/r.xml')}")
        await eventually(lambda: has(telegram, CHANNEL, "Zero"), message="sample in the channel")
        # The right is taken away without Telegram telling the bot (no update):
        # the send is refused, and the channel is paused rather than the entry dropped.
        telegram.add_channel(CHANNEL, "Channel", username="chan", admins={USER}, bot_can_post=False)
        feed.publish("Refused", link="https://r.example/refused")

        async def _cond9():
            return not (await store.get_chat(CHANNEL)).active

        await eventually(_cond9, message="channel paused")
        assert len(await store.chat_subscriptions(CHANNEL)) == 1
        # Given back (a my_chat_member update): the channel resumes.
        telegram.set_bot_rights(CHANNEL, USER, can_post=True)

        async def _cond10():
            return (await store.get_chat(CHANNEL)).active

        await eventually(_cond10, message="channel resumed")
        feed.publish("Allowed again", link="https://r.example/again")
        await eventually(lambda: has(telegram, CHANNEL, "Allowed again"))
        # Taken away with an update: paused at once, nothing is even tried.
        telegram.set_bot_rights(CHANNEL, USER, can_post=False)

        async def _cond11():
            return not (await store.get_chat(CHANNEL)).active

        await eventually(_cond11, message="paused by update")
        rejected = len(telegram.rejections)
        feed.publish("Not tried", link="https://r.example/not")
        polls = feeds.count("/r.xml")
        await eventually(lambda: feeds.count("/r.xml") >= polls + 2, message="two more polls")
        assert len(telegram.rejections) == rejected


async def test_deleted_chat_is_paused(tmp_path, telegram: FakeTelegram, feeds: FeedServer):
    telegram.add_user(USER)
    telegram.add_group(GROUP, "Doomed", admins={USER}, members=set())
    feed = feeds.rss("/d.xml", title="D")
    feed.publish("Zero")
    async with running_bot(load_test_config(tmp_path, telegram)) as app:
        store = services(app).store
        await subscribe(telegram, GROUP, USER, feeds.url("/d.xml"))
        await eventually(lambda: has(telegram, GROUP, "Zero"))
        telegram.delete_chat(GROUP)
        feed.publish("Into the void", link="https://d.example/void")

        async def _cond12():
            return not (await store.get_chat(GROUP)).active

        await eventually(_cond12, message="chat paused")
        assert len(await store.chat_subscriptions(GROUP)) == 1
        assert (await store.pending()) == []
        # Later entries are not even tried.
        feed.publish("Still gone", link="https://d.example/still")
        polls = feeds.count("/d.xml")
        await eventually(lambda: feeds.count("/d.xml") >= polls + 2, message="two more polls")
        assert [r[2:] for r in telegram.rejections if r[1] == GROUP] == [
            (400, "Bad Request: chat not found")
        ]


async def test_unparsable_markup_is_sent_as_plain_text(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer, monkeypatch
):
    # The renderer never writes HTML Telegram refuses; pretend it did once.
    render_entry = bot.deliver.render_entry

    def broken_render(entry, feed_title, style):
        if entry.title == "Bad markup":
            return [Message(f"<b>Bad markup <i>misnested</b></i> {entry.link}")]
        return render_entry(entry, feed_title, style)

    monkeypatch.setattr(bot.deliver, "render_entry", broken_render)
    telegram.add_user(USER)
    feed = feeds.rss("/b.xml", title="B")
    feed.publish("Zero")
    async with running_bot(load_test_config(tmp_path, telegram)) as app:
        await subscribe(telegram, USER, USER, feeds.url("/b.xml"))
        await eventually(lambda: has(telegram, USER, "Zero"))
        feed.publish("Bad markup", link="https://b.example/bad")
        await eventually(lambda: has(telegram, USER, "Bad markup"), message="plain-text fallback")
        (message,) = [m for m in telegram.sent(USER) if "Bad markup" in m.plain]
        assert message.parse_mode is None
        assert message.text == "Bad markup misnested https://b.example/bad"
        refused = [r for r in telegram.rejections if r[1] == USER]
        assert len(refused) == 1 and "can't parse entities" in refused[0][3]

        async def _cond13():
            return not (await services(app).store.pending())

        await eventually(_cond13, message="outbox empty")


async def test_dropped_connections_are_retried(tmp_path, telegram: FakeTelegram, feeds: FeedServer):
    telegram.add_user(USER)
    feed = feeds.rss("/t.xml", title="T")
    feed.publish("Zero")
    async with running_bot(load_test_config(tmp_path, telegram)) as app:
        store = services(app).store
        await subscribe(telegram, USER, USER, feeds.url("/t.xml"))
        await eventually(lambda: has(telegram, USER, "Zero"))
        telegram.fail_server(times=2, status=0)  # the connection dies before an answer
        feed.publish("Survives drops", link="https://t.example/drop")

        async def _cond14():
            return len(await store.pending()) == 1

        await eventually(_cond14, message="queued")
        await eventually(lambda: has(telegram, USER, "Survives drops"), timeout=15)
        assert [r[2] for r in telegram.rejections] == [0, 0]
        assert has(telegram, USER, "Survives drops") == 1

        async def _cond15():
            return not (await store.pending())

        await eventually(_cond15, message="outbox empty")


async def test_entries_of_a_feed_arrive_oldest_first(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    feed = feeds.rss("/o.xml", title="O")
    feed.publish("Zero")
    async with running_bot(load_test_config(tmp_path, telegram)) as app:
        await subscribe(telegram, USER, USER, feeds.url("/o.xml"))
        await eventually(lambda: has(telegram, USER, "Zero"))
        # The first of them is refused once: the others must not overtake it.
        telegram.flood(USER, retry_after=1, times=1)
        titles = ["One", "Two", "Three", "Four"]
        for title in titles:
            feed.publish(title, link=f"https://o.example/{title}")
        await eventually(lambda: has(telegram, USER, "Four"), timeout=15, message="all four")
        received = [m.plain.splitlines()[0] for m in telegram.sent(USER)]
        assert received[-4:] == titles
        assert telegram.count_429 == 1

        async def _cond16():
            return not (await services(app).store.pending())

        await eventually(_cond16, message="outbox empty")


async def test_flood_control_on_one_chat_does_not_hold_up_another(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    telegram.add_user(OTHER)
    feed = feeds.rss("/w.xml", title="W")
    feed.publish("Zero")
    async with running_bot(load_test_config(tmp_path, telegram)):
        await subscribe(telegram, USER, USER, feeds.url("/w.xml"))
        await subscribe(telegram, OTHER, OTHER, feeds.url("/w.xml"))
        await eventually(lambda: has(telegram, USER, "Zero"))
        telegram.flood(USER, retry_after=4, times=1)
        feed.publish("First", link="https://w.example/1")
        await eventually(lambda: telegram.count_429 == 1, message="a 429 for USER")
        refused_at = time.monotonic()
        # A later entry reaches the other chat while USER waits out its 429.
        feed.publish("Second", link="https://w.example/2")
        await eventually(lambda: has(telegram, OTHER, "Second"), message="OTHER goes on")
        assert has(telegram, USER, "First") == 0, "USER is still waiting"
        await eventually(lambda: has(telegram, USER, "Second"), timeout=15)
        entries = ("First", "Second")
        user = [m for m in telegram.sent(USER) if m.plain.splitlines()[0] in entries]
        other = [m for m in telegram.sent(OTHER) if m.plain.splitlines()[0] in entries]
        assert [m.plain.splitlines()[0] for m in user] == ["First", "Second"]
        assert [m.plain.splitlines()[0] for m in other] == ["First", "Second"]
        assert user[0].time - refused_at >= 3.5, "USER waited its retry_after"
        assert other[1].time < user[0].time
