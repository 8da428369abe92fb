"""Benchmark a broadcast: the real Deliverer against the fake Bot API with Telegram's limits on.

    python -m bench.deliver                       # 500 chats, 10 new entries
    python -m bench.deliver --chats 100 --entries 3 --groups 20 --album 3

One feed, ``--chats`` subscribed chats (the last ``--groups`` of them groups,
the rest private chats), ``--entries`` new entries queued for all of them as
one poll queues them (oldest first, one commit), in a real ``SqliteStore`` in a
temporary directory. The bot's real ``Deliverer`` (its limiter, its outbox, PTB's
``Bot`` over HTTP) then sends them to the strict fake Telegram
(tests/fake_telegram.py) with ``limits = True``: more than 30 messages in any
second, more than one a second in a private chat (bursts of 3), or more than
20 a minute in a group answers 429, each item of a media group counted.

It reports the messages per second achieved (Telegram's ceiling is 30), the
429s, and the time until the last chat has the last entry; and checks that
every chat got every entry once, in order. Both run in this one process and
event loop (the fake's work per request is small next to the bot's).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from telegram.ext import ExtBot
from telegram.request import HTTPXRequest

from bot.deliver import Deliverer
from bot.flood import MESSAGES_PER_SECOND
from bot.limiter import Limiter
from bot.models import Chat, ChatKind, Entry, Feed, Media, Subscription
from bot.store.sqlite import SqliteStore
from testkit.fake_telegram import FakeTelegram

TOKEN = "123456:BENCH"
FEED = "https://bench.example/feed.xml"
#: The bench gives up after this long (seconds).
DEADLINE = 1200.0


def make_entries(count: int, album: int) -> list[Entry]:
    entries = []
    for n in range(1, count + 1):
        media = tuple(
            Media(f"https://img.bench.example/{n}/{i}.jpg", "image", "image/jpeg")
            for i in range(album)
        )
        entries.append(
            Entry(
                f"entry-{n}",
                f"Entry {n}",
                link=f"https://bench.example/{n}",
                html=f"<p>Entry {n}: a paragraph or so of text, as a feed would have it.</p>",
                media=media,
            )
        )
    return entries


async def run(chats: int, entries: int, groups: int, album: int) -> int:
    logging.basicConfig(level=logging.ERROR)
    chat_ids = [10_000 + n for n in range(chats - groups)] + [
        -1_000_000_000_000 - n for n in range(groups)
    ]
    queued = make_entries(entries, album)
    with tempfile.TemporaryDirectory(prefix="bench-deliver-") as tmp:
        store = SqliteStore(str(Path(tmp) / "feedbot.sqlite"))
        await store.open()
        async with FakeTelegram(TOKEN) as telegram:
            telegram.limits = True
            now = time.time()
            feed = Feed(FEED, title="Bench Feed")
            for chat_id in chat_ids:
                if chat_id > 0:
                    telegram.add_user(chat_id)
                    chat = Chat(chat_id, ChatKind.PRIVATE)
                else:
                    telegram.add_group(chat_id, f"Group {chat_id}", supergroup=True)
                    chat = Chat(chat_id, ChatKind.SUPERGROUP)
                sub = Subscription(chat_id, FEED, created=now)
                await store.subscribe(chat, sub, new_feed=feed if chat_id == chat_ids[0] else None)
            for entry in queued:  # as the poller does: oldest first
                await store.enqueue(FEED, entry, chat_ids, now)

            last_title = queued[-1].title
            request = HTTPXRequest(connection_pool_size=64)
            async with ExtBot(
                TOKEN, base_url=telegram.base_url, request=request, rate_limiter=Limiter()
            ) as tg_bot:
                deliverer = Deliverer(store, tg_bot)
                cpu0 = resource.getrusage(resource.RUSAGE_SELF)
                started = time.monotonic()
                deliverer.start()
                deliverer.wake()
                first_all: float | None = None
                try:
                    while True:
                        await asyncio.sleep(0.05)
                        sent = telegram.sent()
                        have_last = {m.chat_id for m in sent if m.plain and last_title in m.plain}
                        if first_all is None:
                            have_first = {
                                m.chat_id for m in sent if m.plain and "Entry 1\n" in m.plain
                            }
                            if len(have_first) == chats:
                                first_all = time.monotonic() - started
                        if len(have_last) == chats:
                            break
                        if time.monotonic() - started > DEADLINE:
                            print(f"gave up after {DEADLINE:.0f}s", file=sys.stderr)
                            return 1
                    done = time.monotonic() - started
                    drained = await deliverer.drain(30)
                finally:
                    await deliverer.stop()
                cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        await store.close()

    sent = telegram.sent()
    times = sorted(m.time for m in sent)
    peak = max_in_window(times, 1.0)
    per_chat_ok = check_chats(telegram, chat_ids, [e.title for e in queued])
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    items = max(1, album)
    print(f"chats: {chats} ({chats - groups} private, {groups} groups); entries: {entries}")
    print(f"messages sent: {len(sent)} ({entries} x {chats} x {items} item(s))")
    print(f"time until the last chat had the last entry: {done:.1f} s")
    if first_all is not None:
        print(f"time until every chat had the first entry: {first_all:.1f} s")
    # At the ceiling, N messages take N/30 - 1 s from the first to the last (the
    # first 30 go at once): the last one's window is counted too.
    rate = len(times) / (times[-1] - times[0] + 1.0)
    print(
        f"messages per second: {rate:.1f} (ceiling {MESSAGES_PER_SECOND}); "
        f"most in any 1 s window: {peak}"
    )
    refused = len(telegram.rejections) - telegram.count_429
    print(f"429s: {telegram.count_429}; other refusals: {refused}")
    print(f"CPU: {cpu:.1f} s ({100 * cpu / done:.0f}% of one core, fake Telegram included)")
    print(f"every chat got every entry once, in order: {per_chat_ok}; outbox drained: {drained}")
    return 0 if per_chat_ok and drained else 1


def max_in_window(times: Sequence[float], window: float) -> int:
    best = 0
    start = 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def check_chats(telegram: FakeTelegram, chat_ids: Sequence[int], titles: Sequence[str]) -> bool:
    for chat_id in chat_ids:
        got = [
            m.plain.splitlines()[0]
            for m in telegram.sent(chat_id)
            if m.plain  # the items of an album after the first have no caption
        ]
        if got != list(titles):
            return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.deliver", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--chats", type=int, default=500)
    parser.add_argument("--entries", type=int, default=10)
    parser.add_argument("--groups", type=int, default=0, help="how many of the chats are groups")
    parser.add_argument(
        "--album", type=int, default=0, help="photos per entry (0: text; 2-10: a media group)"
    )
    args = parser.parse_args(argv)
    if not 0 <= args.groups <= args.chats or args.album == 1 or args.album > 10:
        parser.error("--groups must be within --chats; --album 0 or 2-10")
    return asyncio.run(run(args.chats, args.entries, args.groups, args.album))


if __name__ == "__main__":
    sys.exit(main())
