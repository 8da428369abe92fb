"""Operator commands (issue 9): /stats and /broadcast, for telegram.admins only."""

from __future__ import annotations

import pytest

from bot.models import Chat, ChatKind
from testkit.fake_telegram import FakeTelegram
from testkit.feed_server import FeedServer
from testkit.harness import eventually, load_test_config, running_bot, services

ADMIN = 4242  # testkit/harness.py puts this id in telegram.admins
USERS = (7001, 7002, 7003)
PAUSED = 7004
GROUP = -7005


def _texts(telegram: FakeTelegram, chat_id: int) -> list[str]:
    return [m.plain or "" for m in telegram.sent(chat_id)]


async def test_only_operators_get_stats_and_broadcast(tmp_path, telegram: FakeTelegram):
    telegram.add_user(USERS[0])
    async with running_bot(load_test_config(tmp_path, telegram, interval="1h")):
        telegram.user_says(USERS[0], USERS[0], "/stats")
        telegram.user_says(USERS[0], USERS[0], "/broadcast everyone, hello")
        answers = await telegram.wait_sent(USERS[0], 2)
        assert [a.plain for a in answers] == ["That command is for the bot's operators."] * 2
        assert not any(a.reply_markup for a in answers)


async def test_stats_counts_chats_feeds_outbox_and_the_last_hour(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(ADMIN)
    telegram.add_user(USERS[0])
    feeds.rss("/a.xml", title="A").publish("first")
    async with running_bot(load_test_config(tmp_path, telegram, interval="1h")) as app:
        store = services(app).store
        await store.save_chat(Chat(PAUSED, ChatKind.PRIVATE, active=False))
        await store.save_chat(Chat(GROUP, ChatKind.GROUP, "g"))
        telegram.user_says(USERS[0], USERS[0], f"/subscribe {feeds.url('/a.xml')}")
        await telegram.wait_sent(USERS[0], 2)  # the answer and the sample
        telegram.user_says(ADMIN, ADMIN, "/stats")
        (answer,) = await telegram.wait_sent(ADMIN, 1)
        text = answer.plain or ""
        assert "Chats: group 1 active, 0 paused; private 1 active, 1 paused" in text
        assert "Feeds: 1, failing 0" in text
        assert "Subscriptions: 1" in text
        assert "Outbox: 0 queued" in text
        # The sample was sent by this process (counted since its start).
        assert "deliveries sent" in text and " 0 deliveries sent" not in text


@pytest.mark.parametrize("press", ["send", "cancel"])
async def test_broadcast_asks_first_then_goes_through_the_outbox(
    tmp_path, telegram: FakeTelegram, press: str
):
    telegram.add_user(ADMIN)
    for user in USERS:
        telegram.add_user(user)
    telegram.add_group(GROUP, "Group", admins={USERS[0]})
    async with running_bot(load_test_config(tmp_path, telegram, interval="1h")) as app:
        store = services(app).store
        for user in USERS:
            telegram.user_says(user, user, "/start")
        await eventually(lambda: all(telegram.sent(u) for u in USERS), message="greetings")
        await store.save_chat(Chat(PAUSED, ChatKind.PRIVATE, active=False))
        await store.save_chat(Chat(GROUP, ChatKind.GROUP, "Group"))
        before = {u: len(telegram.sent(u)) for u in USERS}

        text = "Maintenance at 10:00 <b>UTC</b> & {braces}\nsecond line"
        telegram.user_says(ADMIN, ADMIN, f"/broadcast {text}")
        (offer,) = await telegram.wait_sent(ADMIN, 1)
        # The three users who said /start are the active private chats the store knows.
        assert "every active private chat (3 now)" in (offer.plain or "")
        assert text in (offer.plain or "")
        (buttons,) = offer.reply_markup["inline_keyboard"]  # type: ignore[index]
        send, cancel = (b["callback_data"] for b in buttons)
        assert await store.pending() == []  # nothing before the button

        # Someone else cannot press it.
        telegram.user_presses_button(ADMIN, USERS[1], offer.message_id, send)
        await eventually(lambda: len(telegram.callback_answers) == 1)
        assert await store.pending() == []

        telegram.user_presses_button(
            ADMIN, ADMIN, offer.message_id, send if press == "send" else cancel
        )
        if press == "cancel":
            await eventually(
                lambda: (
                    (telegram.message(ADMIN, offer.message_id) or {}).get("text")
                    == "Broadcast cancelled."
                )
            )
            assert await store.pending() == []
            assert {u: len(telegram.sent(u)) for u in USERS} == before
            return
        # Every active private chat gets the text once, as plain text; the
        # group and the paused chat get nothing.
        for user in USERS:
            await eventually(lambda u=user: text in _texts(telegram, u), message=f"chat {user}")
        await eventually(
            lambda: (
                (telegram.message(ADMIN, offer.message_id) or {}).get("text")
                == "Broadcast done: 3 chats."
            ),
            message="progress",
        )
        for user in USERS:
            got = [m for m in telegram.sent(user) if m.plain == text]
            assert len(got) == 1 and got[0].parse_mode is None
        assert not telegram.sent(GROUP) and not telegram.sent(PAUSED)
        assert await store.pending_notices("admin.broadcast") == 0
        assert telegram.unanswered_callbacks() == []
        # The buttons are gone: a second press is impossible.
        with pytest.raises(ValueError):
            telegram.user_presses_button(ADMIN, ADMIN, offer.message_id, send)
