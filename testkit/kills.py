"""The random-kill scenario (issue 9), shared by tests/test_e2e_kills.py (a few
kills) and bench/kills.py (the issue's 20): kill -9 at random moments, again
and again, during polls and a broadcast.

After every kill the store file passes SQLite's integrity check and opens;
in the end every entry and the broadcast reach every chat, and what arrived
twice is only what was in flight at a kill (at most 30 per kill: the
limiter's bound, bot/flood.py). The suite runs a few kills; bench/kills.py
runs the issue's 20.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bot.fetch import normalize_url
from bot.models import Chat, ChatKind, Feed, Notice, Subscription
from bot.store.sqlite import SqliteStore
from testkit.fake_telegram import FakeTelegram
from testkit.feed_server import FeedServer
from testkit.harness import bot_log, eventually, kill, start_bot, terminate, titles, write_config

CHATS = range(9001, 9041)
FEEDS = ("/k1.xml", "/k2.xml")
#: Queued before the first start and before the third: kills land in both.
BROADCASTS = {0: "Broadcast: maintenance tonight", 2: "Broadcast: maintenance over"}


@dataclass
class KillReport:
    kills: int = 0
    #: (chat, first line) pairs accepted by Telegram but still queued, per kill.
    in_flight: list[set[tuple[int, str]]] = field(default_factory=list)
    #: Deliveries still queued at each kill (the kill came mid-sending when > 0).
    queued: list[int] = field(default_factory=list)
    seconds: float = 0.0


def integrity(path: Path) -> str:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


async def accepted_but_queued(
    path: Path, telegram: FakeTelegram
) -> tuple[set[tuple[int, str]], int]:
    """Deliveries still queued whose message already reached the fake, and
    how many are queued."""
    async with SqliteStore(str(path)) as store:  # it opens: the second check
        pending = await store.pending()
    out = set()
    for d in pending:
        line = d.entry.title if d.entry else d.notice.params["text"]  # type: ignore[union-attr]
        if titles(telegram, d.chat_id)[line]:
            out.add((d.chat_id, line))
    return out, len(pending)


async def broadcast(path: Path, text: str) -> None:
    """As /broadcast queues it once the operator pressed the button."""
    async with SqliteStore(str(path)) as store:
        queued = await store.notify_private_chats(
            Notice("admin.broadcast", {"text": text}), time.time()
        )
    assert queued == len(CHATS)


async def kill_rounds(
    tmp_path: Path, telegram: FakeTelegram, feeds: FeedServer, kills: int, seed: int
) -> KillReport:
    rng = random.Random(seed)
    started = time.monotonic()
    urls = [normalize_url(feeds.url(p)) for p in FEEDS]
    served = [feeds.rss(p, title=f"Kill feed {p}") for p in FEEDS]
    now = time.time()
    # The embedded store's file (this test checks it with PRAGMA integrity_check).
    path = tmp_path / "data" / "feedbot.sqlite"
    async with SqliteStore(str(path)) as store:
        for chat_id in CHATS:
            telegram.add_user(chat_id)
            for url in urls:
                new = Feed(url, title="Kill feed") if chat_id == CHATS[0] else None
                sub = Subscription(chat_id, url, created=now)
                await store.subscribe(Chat(chat_id, ChatKind.PRIVATE), sub, new_feed=new, now=now)
    config = write_config(tmp_path, telegram)
    report = KillReport()
    published = 0
    for round_ in range(kills + 1):
        if round_ in BROADCASTS:
            await broadcast(path, BROADCASTS[round_])
        bot = await start_bot(config)
        try:
            if round_ == 0:
                await eventually(
                    lambda: all(feeds.count(p) >= 1 for p in FEEDS), timeout=30, message="polls"
                )
            # New entries every round, so polls find something to queue.
            for feed in served:
                published += 1
                feed.publish(f"Entry {published}", link=f"https://k.example/{published}")
            if round_ == kills:
                break
            sent = len(telegram.sent())
            await eventually(lambda s=sent: len(telegram.sent()) > s, timeout=30, message="sends")
            await asyncio.sleep(rng.uniform(0.0, 1.5))
        finally:
            if round_ < kills and bot.returncode is None:
                await kill(bot)
        report.kills += 1
        assert integrity(path) == "ok", f"kill {report.kills}: store corrupt"
        repeats, queued = await accepted_but_queued(path, telegram)
        report.in_flight.append(repeats)
        report.queued.append(queued)
    try:
        expected = expected_messages(report, published)
        await eventually(
            lambda: all(titles(telegram, c)[t] >= n for (c, t), n in expected.items()),
            timeout=120,
            message="everything delivered",
        )
        await terminate(bot, config)
    finally:
        if bot.returncode is None:
            bot.kill()
            await bot.wait()
    got = Counter(
        {(c, t): n for c in CHATS for t, n in titles(telegram, c).items() if (c, t) in expected}
    )
    assert got == Counter(expected), bot_log(config)
    assert integrity(path) == "ok"
    async with SqliteStore(str(path)) as store:
        assert await store.pending() == []
    report.seconds = time.monotonic() - started
    return report


def expected_messages(report: KillReport, published: int) -> dict[tuple[int, str], int]:
    """Each (chat, message) once, plus once for every kill it was in flight at."""
    texts = [t for r, t in BROADCASTS.items() if r <= report.kills]
    lines = [*texts, *(f"Entry {n}" for n in range(1, published + 1))]
    expected = {(c, line): 1 for c in CHATS for line in lines}
    for repeats in report.in_flight:
        for pair in repeats:
            expected[pair] += 1
    return expected
