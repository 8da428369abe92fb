"""Webhook mode (bot/updates.py) against the fake Bot API, over real HTTP
both ways: the fake POSTs updates to the webhook with the secret header, as
Telegram does; requests without the secret get 403 and change nothing."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from telegram import Update
from telegram.error import Conflict
from telegram.ext import Application, CommandHandler, ContextTypes

from bot.config import TelegramConfig
from bot.updates import SECRET_HEADER, UpdateReceiver
from testkit.fake_telegram import FakeTelegram
from testkit.harness import TOKEN, free_port

SECRET = "s3cret-Token_1"
ALLOWED = [Update.MESSAGE, Update.CHANNEL_POST, Update.MY_CHAT_MEMBER]


def telegram_config(fake: FakeTelegram, port: int | None) -> TelegramConfig:
    return TelegramConfig(
        token=TOKEN,
        api_base_url=fake.base_url,
        admins=frozenset(),
        public=True,
        allowed_users=frozenset(),
        webhook_url=None if port is None else f"http://127.0.0.1:{port}/telegram/hook",
        webhook_listen=("127.0.0.1", port or 0),
        webhook_secret=None if port is None else SECRET,
    )


@pytest.fixture
async def app(telegram: FakeTelegram) -> AsyncIterator[Application]:
    """A running PTB Application whose /start answers and records who asked."""
    application = Application.builder().token(TOKEN).base_url(telegram.base_url).build()
    application.bot_data["asked"] = []

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None and update.effective_message is not None
        context.bot_data["asked"].append(update.effective_chat.id)
        await update.effective_message.reply_text("hello")

    application.add_handler(CommandHandler("start", start))
    async with application:
        await application.start()
        yield application
        await application.stop()


async def test_updates_arrive_through_the_webhook(telegram: FakeTelegram, app: Application) -> None:
    port = free_port()
    receiver = UpdateReceiver(app, telegram_config(telegram, port), ALLOWED)
    await receiver.start()
    try:
        [call] = telegram.calls("setWebhook")
        assert call["url"] == f"http://127.0.0.1:{port}/telegram/hook"
        assert telegram.webhook_secret == SECRET
        telegram.user_says(8, 8, "/start")
        [reply] = await telegram.wait_sent(8, 1)
        assert reply.text == "hello"
        assert telegram.webhook_failures == []
        # As Telegram: no getUpdates while a webhook is set.
        with pytest.raises(Conflict):
            await app.bot.get_updates(timeout=0)
    finally:
        await receiver.stop()


async def test_a_request_without_the_secret_gets_403_and_changes_nothing(
    telegram: FakeTelegram, app: Application
) -> None:
    port = free_port()
    receiver = UpdateReceiver(app, telegram_config(telegram, port), ALLOWED)
    await receiver.start()
    telegram.add_user(7)
    forged = {
        "update_id": 1,
        "message": {
            "message_id": 1,
            "date": 1_700_000_000,
            "chat": {"id": 7, "type": "private", "first_name": "Mallory"},
            "from": {"id": 7, "is_bot": False, "first_name": "Mallory"},
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }
    url = f"http://127.0.0.1:{port}/telegram/hook"
    try:
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {SECRET_HEADER: "wrong"}, {SECRET_HEADER: SECRET[:-1]}):
                async with http.post(url, json=forged, headers=headers) as r:
                    assert r.status == 403
            # A real update after the forged ones is answered; the forged ones never were.
            telegram.user_says(8, 8, "/start")
            await telegram.wait_sent(8, 1)
            assert app.bot_data["asked"] == [8]
            assert telegram.sent(7) == []
            # With the secret, the same request would have been taken: the check is the secret.
            async with http.post(url, json=forged, headers={SECRET_HEADER: SECRET}) as r:
                assert r.status == 200
            await telegram.wait_sent(7, 1)
            async with http.post(url, data=b"{not json", headers={SECRET_HEADER: SECRET}) as r:
                assert r.status == 400
    finally:
        await receiver.stop()


async def test_updates_wait_at_telegram_while_nobody_listens(
    telegram: FakeTelegram, app: Application
) -> None:
    """The switch between senders: the old one closed its port, the new one
    has not bound it yet. Telegram keeps retrying; nothing is lost."""
    port = free_port()
    first = UpdateReceiver(app, telegram_config(telegram, port), ALLOWED)
    await first.start()
    await first.stop()
    telegram.user_says(8, 8, "/start")
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.post(f"http://127.0.0.1:{port}/telegram/hook", json={})
    await _until(lambda: telegram.webhook_failures)
    assert telegram.sent(8) == []
    second = UpdateReceiver(app, telegram_config(telegram, port), ALLOWED)
    await second.start()
    try:
        [reply] = await telegram.wait_sent(8, 1)
        assert reply.text == "hello"
    finally:
        await second.stop()


async def test_polling_mode_replaces_a_webhook(telegram: FakeTelegram, app: Application) -> None:
    hooked = UpdateReceiver(app, telegram_config(telegram, free_port()), ALLOWED)
    await hooked.start()
    await hooked.stop()
    assert telegram.webhook_url
    polling = UpdateReceiver(app, telegram_config(telegram, None), ALLOWED, polling_timeout=1)
    await polling.start()
    try:
        assert telegram.webhook_url == ""
        telegram.user_says(8, 8, "/start")
        [reply] = await telegram.wait_sent(8, 1)
        assert reply.text == "hello"
    finally:
        await polling.stop()
    assert app.updater is not None and not app.updater.running


async def test_a_port_in_use_leaves_nothing_started(
    telegram: FakeTelegram, app: Application
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        receiver = UpdateReceiver(app, telegram_config(telegram, port), ALLOWED)
        with pytest.raises(OSError):
            await receiver.start()
    assert telegram.calls("setWebhook") == []
    assert receiver.port is None


async def _until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_the_fake_checks_set_webhook_as_telegram_does(
    telegram: FakeTelegram, app: Application
) -> None:
    from telegram.error import BadRequest

    with pytest.raises(BadRequest, match=r"(?i)secret token"):
        await app.bot.set_webhook("https://bot.example.com/hook", secret_token="has space")
    with pytest.raises(BadRequest, match=r"(?i)invalid url"):
        await app.bot.set_webhook("bot.example.com/hook")
    assert telegram.webhook_url == ""
    assert await app.bot.set_webhook("https://bot.example.com/hook", secret_token="ok")
    assert (await app.bot.get_webhook_info()).url == "https://bot.example.com/hook"
    assert await app.bot.delete_webhook()
    assert (telegram.webhook_url, telegram.webhook_secret) == ("", None)
    assert await app.bot.get_updates(timeout=0) == ()
