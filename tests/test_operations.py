"""bot/operations.py: two processes' worth of Application + Operations on
one real PostgreSQL database and one fake Bot API: exactly one receives
updates, the other takes over when it stops; /metrics and /healthz served."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest
from telegram import Update
from telegram.ext import Application, CommandHandler, ContextTypes

from bot.config import Config, MetricsConfig, PollConfig, StoreConfig, TelegramConfig
from bot.operations import Operations, Sending, serving
from bot.store.postgres import PostgresStore
from testkit.fake_telegram import FakeTelegram
from testkit.harness import TOKEN, free_port
from testkit.postgres import fresh_database, unavailable

ALLOWED = [Update.MESSAGE]
SECRET = "s3cret-Token_1"


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    reason = await unavailable()
    if reason is not None:
        pytest.skip(reason)
    async with fresh_database() as url:
        yield url


def config(fake: FakeTelegram, url: str, **telegram: object) -> Config:
    return Config(
        telegram=replace(
            TelegramConfig(TOKEN, fake.base_url, frozenset(), True, frozenset()), **telegram
        ),
        store=StoreConfig(path="unused", url=url),
        poll=PollConfig(600.0, 60.0, 20.0, False),
        metrics=MetricsConfig(listen=("127.0.0.1", 0)),
    )


class Process:
    """One feedbot process's parts: an Application answering /start with
    its name, its own store, its Operations; the deliverer's start and stop
    counted."""

    def __init__(self, name: str, cfg: Config) -> None:
        self.name = name
        self.sending = 0
        self.app = Application.builder().token(TOKEN).base_url(cfg.telegram.api_base_url).build()

        async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            assert update.effective_message is not None
            await update.effective_message.reply_text(f"hello from {name}")

        self.app.add_handler(CommandHandler("start", start))
        assert cfg.store.url is not None
        self.store = PostgresStore(cfg.store.url)
        self.ops = Operations(
            self.app,
            cfg,
            self.store,
            Sending(self._start_sending, self._stop_sending),
            allowed_updates=ALLOWED,
            polling_timeout=1,
            role_every=0.1,
        )

    async def _start_sending(self) -> None:
        self.sending += 1

    async def _stop_sending(self) -> None:
        self.sending -= 1


async def _until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_one_sender_then_a_takeover(telegram: FakeTelegram, pg_url: str, mode: str) -> None:
    hook: dict[str, object] = {}
    if mode == "webhook":
        port = free_port()
        hook = {
            "webhook_url": f"http://127.0.0.1:{port}/hook",
            "webhook_listen": ("127.0.0.1", port),
            "webhook_secret": SECRET,
        }
    a, b = (
        Process("a", config(telegram, pg_url, **hook)),
        Process("b", config(telegram, pg_url, **hook)),
    )
    await a.store.open()
    await b.store.open()
    try:
        async with serving(a.app, a.ops), serving(b.app, b.ops):
            assert (a.ops.role.is_sender, a.sending) == (True, 1)
            assert (b.ops.role.is_sender, b.sending) == (False, 0)
            telegram.user_says(8, 8, "/start")
            [reply] = await telegram.wait_sent(8, 1)
            assert reply.text == "hello from a"
            assert telegram.internal_errors == []

            await a.ops.stop()  # a stops (its role loop and sender side) …
            await a.store.close()  # … and its connection, with the lock, goes
            await _until(lambda: b.ops.role.is_sender)
            assert (a.sending, b.sending) == (0, 1)
            telegram.user_says(8, 8, "/start")
            replies = await telegram.wait_sent(8, 2)
            assert replies[1].text == "hello from b"
            await asyncio.sleep(0.3)
            assert len(telegram.sent(8)) == 2  # answered once, by one process
    finally:
        await a.store.close()
        await b.store.close()


async def test_metrics_and_healthz_of_a_running_process(
    telegram: FakeTelegram, pg_url: str
) -> None:
    p = Process("a", config(telegram, pg_url))
    p.ops.sampler.every = 0.1  # sample often: the test waits for a failed sample
    await p.store.open()
    try:
        async with serving(p.app, p.ops):
            assert p.ops.health is not None
            base = f"http://127.0.0.1:{p.ops.health.port}"
            async with aiohttp.ClientSession() as http:
                await _until(lambda: p.ops.sampler.probe.answered_at is not None)
                async with http.get(f"{base}/healthz") as r:
                    assert (r.status, await r.text()) == (200, "ok\n")
                async with http.get(f"{base}/metrics") as r:
                    text = await r.text()
                assert f'feedbot_sender{{owner="{p.ops.role.owner}"}} 1.0' in text
                assert "feedbot_outbox_depth 0.0" in text
                await p.store.close()  # the database goes away under a running process
                await _until(lambda: p.ops.sampler.probe.error is not None)
                async with http.get(f"{base}/healthz") as r:
                    assert r.status == 503
                    assert (await r.text()).startswith("store: PostgreSQL ")
    finally:
        await p.store.close()
