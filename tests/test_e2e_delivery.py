"""Delivery against Telegram's errors: each case end to end through the strict fake."""

from __future__ import annotations

import asyncio
import time

from tests.fake_telegram import FakeTelegram
from tests.feed_server import FeedServer
from tests.harness import eventually, load_test_config, running_bot, services

USER = 5001
GROUP = -5001
SUPERGROUP = -1005001


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
        await eventually(lambda: not store.get_chat(USER).active, message="chat paused")
        assert len(store.chat_subscriptions(USER)) == 1, "subscriptions kept, paused"
        assert store.pending_for_chat(USER) == []
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
        assert store.chat_subscriptions(GROUP) == []
        assert [s.feed_url for s in store.chat_subscriptions(SUPERGROUP)] == [feeds.url("/m.xml")]
        assert has(telegram, SUPERGROUP, "After migration") == 1


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
        assert services(app).store.pending() == []


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
        assert services(app).store.pending() == []


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
        assert services(app).store.pending() == []
