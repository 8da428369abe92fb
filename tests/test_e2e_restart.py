"""`feedbot run` as a user runs it: a subprocess, stopped (SIGTERM or kill -9), started again."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from pathlib import Path

from tests.fake_telegram import FakeTelegram
from tests.feed_server import FeedServer
from tests.harness import eventually, write_config

USER = 3001


async def start_bot(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=dict(os.environ),
    )


def entry_counts(telegram: FakeTelegram) -> Counter[str]:
    counts: Counter[str] = Counter()
    for message in telegram.sent(USER):
        for line in message.plain.splitlines():
            if line.startswith("Story "):
                counts[line.split()[1]] += 1
    return counts


async def test_kill_then_restart_sends_what_was_missed_once(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    feed = feeds.rss("/r.xml", title="Restart Feed")
    feed.publish("Story 0", link="https://r.example/0")
    config = write_config(tmp_path, telegram)

    bot = await start_bot(config)
    try:
        telegram.user_says(USER, USER, f"/subscribe {feeds.url('/r.xml')}")
        await telegram.wait_sent(USER, 2, timeout=20)
        feed.publish("Story 1", link="https://r.example/1")
        await eventually(lambda: entry_counts(telegram)["1"] == 1, timeout=20, message="story 1")
    finally:
        bot.kill()  # SIGKILL: no clean shutdown
        await bot.wait()

    # Published while the bot is down.
    feed.publish("Story 2", link="https://r.example/2")
    feed.publish("Story 3", link="https://r.example/3")

    bot = await start_bot(config)
    try:
        await eventually(
            lambda: entry_counts(telegram)["2"] and entry_counts(telegram)["3"],
            timeout=30,
            message="stories published while down",
        )
        await asyncio.sleep(3)  # several more polls
        assert entry_counts(telegram) == {"0": 1, "1": 1, "2": 1, "3": 1}
        bot.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(bot.communicate(), 20)
        assert bot.returncode == 0, output.decode()
    finally:
        if bot.returncode is None:
            bot.kill()
            await bot.wait()
