"""A private bot (public = false) serves only its admins and allowed users."""

from __future__ import annotations

import asyncio

from testkit.fake_telegram import FakeTelegram
from testkit.feed_server import FeedServer
from testkit.harness import eventually, load_test_config, running_bot, services

ADMIN = 4242  # tests/harness.py puts this id in telegram.admins
FRIEND = 7001
STRANGER = 7002
GROUP = -7001


async def test_private_bot_refuses_strangers(tmp_path, telegram: FakeTelegram, feeds: FeedServer):
    for user in (ADMIN, FRIEND, STRANGER):
        telegram.add_user(user)
    telegram.add_group(GROUP, "Mixed", admins={STRANGER}, members={FRIEND})
    feeds.rss("/p.xml", title="Private Feed").publish("x")
    config = load_test_config(
        tmp_path,
        telegram,
        interval="1h",
        extra_telegram=f"public = false\nallowed_users = [{FRIEND}]",
    )
    async with running_bot(config) as app:
        store = services(app).store
        telegram.user_says(STRANGER, STRANGER, f"/subscribe {feeds.url('/p.xml')}")
        (answer,) = await telegram.wait_sent(STRANGER, 1)
        assert "private" in answer.plain
        # Told once, not on every message.
        telegram.user_says(STRANGER, STRANGER, "/start")
        telegram.user_says(STRANGER, STRANGER, "/list")
        # A group administrator who is not allowed cannot use it in the group either.
        telegram.user_says(GROUP, STRANGER, f"/subscribe {feeds.url('/p.xml')}")
        answer = (await telegram.wait_sent(GROUP, 1))[-1]
        assert "private" in answer.plain
        telegram.user_says(GROUP, STRANGER, "/list")
        await asyncio.sleep(0.5)
        assert len(telegram.sent(STRANGER)) == 1 and len(telegram.sent(GROUP)) == 1
        assert (
            (await store.chat_subscriptions(STRANGER))
            == (await store.chat_subscriptions(GROUP))
            == []
        )

        telegram.user_says(FRIEND, FRIEND, f"/subscribe {feeds.url('/p.xml')}")

        async def _cond1():
            return len(await store.chat_subscriptions(FRIEND)) == 1

        await eventually(_cond1)
        # A bot admin may manage a group they do not administer.
        telegram.add_group(GROUP, "Mixed", admins={STRANGER}, members={FRIEND, ADMIN})
        telegram.user_says(GROUP, ADMIN, f"/subscribe {feeds.url('/p.xml')}")

        async def _cond2():
            return len(await store.chat_subscriptions(GROUP)) == 1

        await eventually(_cond2)


async def test_one_flooding_user_does_not_delay_the_others(tmp_path, telegram: FakeTelegram):
    flooder, patient = 7101, 7102
    telegram.add_user(flooder)
    telegram.add_user(patient)
    config = load_test_config(
        tmp_path, telegram, interval="1h", extra="[limits]\ncommands_per_minute = 5"
    )
    async with running_bot(config):
        for _ in range(40):
            telegram.user_says(flooder, flooder, "/list")
        telegram.user_says(patient, patient, "/list")
        (answer,) = await telegram.wait_sent(patient, 1, timeout=3)
        assert "no subscriptions" in answer.plain
        await eventually(
            lambda: any("faster than" in m.plain for m in telegram.sent(flooder)), timeout=15
        )
        await asyncio.sleep(1.0)
    answers = telegram.sent(flooder)
    # 5 commands a minute are answered, the rest refused with one warning.
    assert sum("no subscriptions" in m.plain for m in answers) == 5
    assert sum("faster than" in m.plain for m in answers) == 1
