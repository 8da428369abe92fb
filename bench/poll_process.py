"""The whole `feedbot run` process measured from outside: its CPU time (from
/proc/PID/stat, every thread, python-telegram-bot, the scheduler, logging
and the store included) against the requests the feed server answered.

    python -m bench.poll_process                    # 2,000 feeds, 20 s measured
    python -m bench.poll_process --feeds 10000 --seconds 30

The feed server (bench/poll_server.py, the mix of bench/poll.py) runs in its
own process; the fake Bot API in this one; the bot as a user runs it
(testkit.harness.start_bot) with ``interval = "1s"`` and adaptive intervals
off, so every feed is due again a second after its poll: the bot polls as
fast as it can. The store is filled before the bot starts as if every feed
had been polled once (validators and body hashes stored) and its one chat is
paused, so every poll is of an unchanged feed (304, or 200 with the same
body) and nothing is sent: the figure is the cost of an unchanged feed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.poll_feedbot import fill_store
from bench.poll_server import ServerProcess

_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """utime + stime of the process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


async def measure(n_feeds: int, seconds: float) -> None:
    from bot.store.sqlite import SqliteStore
    from testkit.fake_telegram import FakeTelegram
    from testkit.harness import TOKEN, bot_log, start_bot, write_config

    cpus = sorted(os.sched_getaffinity(0))
    server = ServerProcess(n_feeds, cpus[-1] if len(cpus) >= 2 else None)
    bot = None
    try:
        with tempfile.TemporaryDirectory(prefix="feedbot-process-") as tmp:
            async with FakeTelegram(TOKEN) as telegram:
                config = write_config(Path(tmp), telegram, extra="adaptive = false")
                server.advance()  # publishes once, clears the request log
                store = SqliteStore(os.path.join(tmp, "data", "feedbot.sqlite"))
                await store.open()
                fill_store(store, server.urls(), 4242, active=False, validators=server.validators())
                await store.close()
                started = time.monotonic()
                bot = await start_bot(config)
                # Warm-up: every feed polled once (start-up and first claims done).
                while server.count()[0] < n_feeds:
                    if bot.returncode is not None or time.monotonic() - started > 300:
                        raise RuntimeError(f"the bot did not poll every feed:\n{bot_log(config)}")
                    await asyncio.sleep(0.5)
                warm = time.monotonic() - started
                requests0, server0 = server.count()
                cpu0, wall0 = process_cpu(bot.pid), time.monotonic()
                await asyncio.sleep(seconds)
                requests1, server1 = server.count()
                cpu1, wall1 = process_cpu(bot.pid), time.monotonic()
                statuses = server.advance()
    finally:
        if bot is not None and bot.returncode is None:
            bot.terminate()
            try:
                await asyncio.wait_for(bot.wait(), 20)
            except TimeoutError:
                bot.kill()
                await bot.wait()
        server.stop()
    requests, cpu, wall = requests1 - requests0, cpu1 - cpu0, wall1 - wall0
    print(f"{n_feeds} feeds, every one due each second; first poll of all after {warm:.1f} s")
    print(f"statuses over the run: {dict(sorted(statuses.items()))}")
    print(
        f"feedbot run, measured from outside over {wall:.1f} s: {requests} requests "
        f"({requests / wall:,.0f}/s), {cpu:.2f} s CPU, "
        f"{1000 * cpu / max(requests, 1):.3f} ms CPU per unchanged feed"
        f" (feed server: {1000 * (server1 - server0) / max(requests, 1):.3f} ms per request)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.poll_process")
    parser.add_argument("--feeds", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window (20)")
    args = parser.parse_args(argv)
    asyncio.run(measure(args.feeds, args.seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
