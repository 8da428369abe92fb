"""The real bot in webhook mode against the fake Bot API, with /metrics and
/healthz: what an operator sets up, end to end.

``running_bot`` must run the bot the way ``feedbot run`` does, through
``bot.operations.serving`` (the sender role starts receiving updates), so
that webhook mode and the health server are the ones the process runs.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp

from bot.updates import SECRET_HEADER
from testkit.fake_telegram import FakeTelegram
from testkit.feed_server import FeedServer
from testkit.harness import (
    bot_log,
    eventually,
    free_port,
    load_test_config,
    running_bot,
    start_bot,
    write_config,
)

SECRET = "e2e-Secret_42"


def sample(text: str, name: str, **labels: str) -> float:
    """One sample's value in a /metrics page (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    head = f"{name}{{{wanted}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(head + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def scrape(http: aiohttp.ClientSession, port: int) -> str:
    async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
        assert r.status == 200
        return await r.text()


async def test_webhook_mode_metrics_and_health(
    tmp_path: Path, telegram: FakeTelegram, feeds: FeedServer
) -> None:
    hook, metrics = free_port(), free_port()
    config = load_test_config(
        tmp_path,
        telegram,
        extra_telegram=(
            f'webhook_url = "http://127.0.0.1:{hook}/telegram"\n'
            f'webhook_listen = "127.0.0.1:{hook}"\n'
            f'webhook_secret = "{SECRET}"\n'
        ),
        extra=f'[metrics]\nlisten = "127.0.0.1:{metrics}"\n',
    )
    telegram.add_user(42)
    telegram.add_user(7)
    async with running_bot(config), aiohttp.ClientSession() as http:
        assert telegram.webhook_url == f"http://127.0.0.1:{hook}/telegram"
        assert telegram.webhook_secret == SECRET

        forged = {
            "update_id": 1,
            "message": {
                "message_id": 1,
                "date": 1_700_000_000,
                "chat": {"id": 7, "type": "private", "first_name": "M"},
                "from": {"id": 7, "is_bot": False, "first_name": "M"},
                "text": "/start",
                "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
            },
        }
        for headers in ({}, {SECRET_HEADER: "not-the-secret"}):
            async with http.post(
                f"http://127.0.0.1:{hook}/telegram", json=forged, headers=headers
            ) as r:
                assert r.status == 403

        telegram.user_says(42, 42, "/start")
        [welcome] = await telegram.wait_sent(42, 1)
        assert welcome.text
        assert telegram.sent(7) == []
        assert telegram.webhook_failures == []

        async with http.get(f"http://127.0.0.1:{metrics}/healthz") as r:
            assert (r.status, await r.text()) == (200, "ok\n")
        # The metrics are the process's: this test reads how they move.
        before = await scrape(http, metrics)
        assert any(
            line.startswith("feedbot_sender{") and line.endswith(" 1.0")
            for line in before.splitlines()
        )

        feed = feeds.rss("/ops.xml", title="Ops")
        feed.publish("Old")
        telegram.user_says(42, 42, f"/subscribe {feeds.url('/ops.xml')}")
        await telegram.wait_sent(42, 2)  # the welcome, the subscription's answer
        feed.publish("Fresh news")
        await eventually(
            lambda: any("Fresh news" in (m.plain or "") for m in telegram.sent(42)),
            message="the new entry",
        )
        await asyncio.sleep(0.2)  # its completion recorded
        after = await scrape(http, metrics)

        def moved(name: str, **labels: str) -> float:
            return sample(after, name, **labels) - sample(before, name, **labels)

        assert moved("feedbot_polls_total", outcome="new_entries") >= 1
        assert moved("feedbot_new_entries_total") >= 1
        assert moved("feedbot_fetch_seconds_count") >= 1
        assert moved("feedbot_deliveries_total", outcome="sent") >= 1
        async with http.get(f"http://127.0.0.1:{metrics}/healthz") as r:
            assert (r.status, await r.text()) == (200, "ok\n")


async def test_feedbot_run_serves_health_and_stops_on_sigterm(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    """`feedbot run` as an operator starts it: /healthz turns 200, /start is
    answered through getUpdates, SIGTERM ends it cleanly."""
    metrics = free_port()
    config = write_config(tmp_path, telegram, extra=f'[metrics]\nlisten = "127.0.0.1:{metrics}"\n')
    process = await start_bot(config)
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    async with http.get(f"http://127.0.0.1:{metrics}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                assert time.monotonic() < deadline, bot_log(config)
                assert process.returncode is None, bot_log(config)
                await asyncio.sleep(0.1)
            telegram.user_says(42, 42, "/start")
            await telegram.wait_sent(42, 1, timeout=20)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)
    assert code == 0, bot_log(config)
    assert "Traceback" not in bot_log(config)
