"""Soak: `feedbot run` as a subprocess under steady load; does it stay flat?

    python -m bench.soak                       # 100 feeds, 100 chats, 180 s
    python -m bench.soak --feeds 200 --seconds 600

The fake Telegram Bot API and the feed server (the test suite's, on loopback)
run in this process; the bot runs as a user runs it, `python -m bot run`.
Each chat subscribes to one feed with /subscribe; then, every few seconds, a
random tenth of the feeds publish an entry. Every 5 s the bot's resident memory
(VmRSS), open file descriptors and threads are sampled from /proc.

Reported: memory at warm-up and at the end (and the slope), descriptors and
threads (flat means no leak), entries published vs. delivered, duplicates and
misses (both must be 0), and the feed server's request count.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testkit.fake_telegram import FakeTelegram
from testkit.feed_server import FeedServer
from testkit.harness import TOKEN, bot_log, start_bot, write_config

FIRST_CHAT = 10_000
MARK = re.compile(r"soak-(\d+)-(\d+)")


def proc_stats(pid: int) -> tuple[int, int, int]:
    """(VmRSS in KiB, open descriptors, threads) of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return rss, len(os.listdir(f"/proc/{pid}/fd")), threads


def polled_within(server: FeedServer, seconds: float) -> int:
    """How many feeds the bot polled in the last ``seconds``."""
    since = time.monotonic() - seconds
    recent = set()
    for record in reversed(server.requests):
        if record.time < since:
            break
        recent.add(record.path)
    return len(recent)


def delivered_of(telegram: FakeTelegram) -> Counter[tuple[int, int]]:
    """How often each published (feed, entry) arrived, the sample entries aside."""
    delivered: Counter[tuple[int, int]] = Counter()
    for message in telegram.sent():
        for feed_no, entry_no in MARK.findall(message.plain or ""):
            if int(entry_no) > 0:
                delivered[(int(feed_no), int(entry_no))] += 1
    return delivered


async def soak(feed_count: int, seconds: float, publish_every: float) -> None:
    rng = random.Random(7)
    async with FakeTelegram(TOKEN) as telegram, FeedServer() as server:
        directory = Path(tempfile.mkdtemp(prefix="feedbot-soak-"))
        config = write_config(directory, telegram, interval="2s", timeout="5s")
        feeds = []
        for n in range(feed_count):
            feed = server.rss(f"/soak/{n}.xml", title=f"Soak feed {n}")
            feed.publish(f"soak-{n}-0 first", link=f"https://soak.example/{n}/0")
            feeds.append(feed)
            telegram.add_user(FIRST_CHAT + n)
        bot = await start_bot(config)
        try:
            for n in range(feed_count):
                chat = FIRST_CHAT + n
                telegram.user_says(chat, chat, f"/subscribe {server.url(f'/soak/{n}.xml')}")
            deadline = time.monotonic() + 60
            while sum(1 for m in telegram.sent() if "Subscribed" in (m.plain or "")) < feed_count:
                if time.monotonic() > deadline:
                    raise SystemExit("subscriptions did not complete within 60 s")
                await asyncio.sleep(0.2)

            published: Counter[tuple[int, int]] = Counter()
            started = time.monotonic()
            samples: list[tuple[float, int, int, int]] = []
            #: (time, feeds not polled in the last minute): a stalled feed shows here.
            stalled: list[tuple[float, int]] = []
            next_sample = next_publish = started
            counters = [0] * feed_count
            while (now := time.monotonic()) - started < seconds:
                if now >= next_publish:
                    for n in rng.sample(range(feed_count), max(1, feed_count // 10)):
                        counters[n] += 1
                        feeds[n].publish(
                            f"soak-{n}-{counters[n]} entry",
                            link=f"https://soak.example/{n}/{counters[n]}",
                            html="<p>" + "Some text. " * 40 + "</p>",
                        )
                        published[(n, counters[n])] += 1
                    next_publish = now + publish_every
                if now >= next_sample:
                    samples.append((now - started, *proc_stats(bot.pid)))
                    stalled.append((now - started, feed_count - polled_within(server, 60.0)))
                    next_sample = now + 5
                await asyncio.sleep(0.1)
            # Let the last entries arrive: quiet feeds' intervals have stretched.
            drain_deadline = time.monotonic() + 120
            while time.monotonic() < drain_deadline and len(delivered_of(telegram)) < len(
                published
            ):
                await asyncio.sleep(0.5)
            samples.append((time.monotonic() - started, *proc_stats(bot.pid)))
        finally:
            bot.terminate()
            await bot.wait()

        delivered = delivered_of(telegram)
        duplicates = sum(c - 1 for c in delivered.values() if c > 1)
        missing = sum(1 for key in published if key not in delivered)
        warm = next((s for s in samples if s[0] >= 30), samples[0])
        end = samples[-1]
        minutes = max(1e-9, (end[0] - warm[0]) / 60)
        print(f"feeds/chats: {feed_count}, run: {seconds:.0f} s, exit code {bot.returncode}")
        print(
            f"entries published: {sum(published.values())}, delivered: {len(delivered)}, "
            f"duplicates: {duplicates}, missing: {missing}"
        )
        print(f"feed requests: {len(server.requests)}, Telegram 429s: {telegram.count_429}")
        late = [n for t, n in stalled if t >= 90]
        print(f"feeds not polled within a minute (after 90 s): at most {max(late, default=0)}")
        print(
            f"RSS: {warm[1] / 1024:.1f} MiB at {warm[0]:.0f} s -> {end[1] / 1024:.1f} MiB at "
            f"{end[0]:.0f} s ({(end[1] - warm[1]) / minutes:+.0f} KiB/min)"
        )
        print(f"open fds: {warm[2]} -> {end[2]}, threads: {warm[3]} -> {end[3]}")
        print(
            "samples (s, RSS KiB, fds, threads):",
            [s[:4] for s in samples[:: max(1, len(samples) // 8)]],
        )
        log = bot_log(config, tail=10_000_000)
        errors = [line for line in log.splitlines() if " ERROR " in line]
        print(f"ERROR log lines: {len(errors)}", *errors[:5], sep="\n  ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--publish-every", type=float, default=3.0)
    args = parser.parse_args()
    asyncio.run(soak(args.feeds, args.seconds, args.publish_every))


if __name__ == "__main__":
    main()
