"""Benchmark one polling cycle of the real Poller against a loopback feed server.

    python -m bench.poll                      # 2,000 feeds, 3 cycles, then the baseline
    python -m bench.poll --feeds 500 --cycles 2 --baseline-feeds 100
    python -m bench.poll --profile poll.prof  # cProfile of the measured cycles

The feed server (tests/feed_server.py, aiohttp) runs in its own process, pinned
to one core, so the client's CPU is measured alone (``resource.getrusage`` of
this process, the store's SQLite thread included); the client is pinned to the
other core when there are two.

Every feed has 20 items of about 1.5 KB of HTML. Each cycle, before polling:

* 10% of the feeds publish 2 new items (the oldest 2 leave the feed);
* 10% ignore validators: they answer 200 with an unchanged body;
* the other 80% answer conditional requests with 304.

Set-up subscribes one chat to every feed through the real ``Subscriptions``
(fetch, parse, back catalogue marked seen, a sample queued) with a real
``SqliteStore`` in a temporary directory. Each measured cycle then polls every
feed once with the real ``Poller`` (``poll_all``: fetch → parse → dedupe →
outbox, and the rescheduling in PTB's JobQueue).

The baseline runs the same kind of cycle the straightforward way in a child
process: ``feedparser.parse(url)`` on each URL, one after another, no
validators. Everything is bounded: each cycle polls each feed once, with a
deadline, and the server process is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import multiprocessing
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

ITEMS = 20
NEW_PER_CYCLE = 2
#: No cycle may take longer than this (seconds); the bench gives up instead.
CYCLE_DEADLINE = 600.0

_WORDS = [
    *("feed", "poll", "entry", "server", "client", "parse", "header", "cache", "story"),
    *("news", "update", "channel", "telegram", "message", "network", "request", "answer"),
    *("body", "index", "market"),
]


# ------------------------------------------------------------------- the server


def _item_html(rnd: random.Random, n: int) -> str:
    """About 1.5 KB of ordinary article HTML: paragraphs, links (some
    relative), an image, emphasis."""
    parts = []
    size = 0
    while size < 1400:
        words = " ".join(rnd.choice(_WORDS) for _ in range(24))
        para = (
            f'<p>{words} <a href="/articles/{n}/{size}">read more</a> and '
            f'<a href="https://example.org/ref/{n}?utm_source=feed">a source</a>, '
            f"<em>{rnd.choice(_WORDS)}</em> &amp; <strong>{rnd.choice(_WORDS)}</strong>.</p>\n"
        )
        parts.append(para)
        size += len(para)
    parts.insert(1, f'<p><img src="images/{n}.jpg" alt="picture {n}" width="640"></p>\n')
    return "".join(parts)


def _kind(index: int) -> str:
    """10% "new", 10% "ignore" (200, same body), 80% "304"."""
    return {0: "new", 1: "ignore"}.get(index % 10, "304")


def _serve(n_feeds: int, conn: Connection, cpu: int | None) -> None:
    """The feed server process: serve until told to stop (or the parent dies)."""
    if cpu is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {cpu})
    asyncio.run(_serve_async(n_feeds, conn))


async def _serve_async(n_feeds: int, conn: Connection) -> None:
    from testkit.feed_server import FeedServer

    rnd = random.Random(1)
    loop = asyncio.get_running_loop()
    async with FeedServer() as server:
        feeds = []
        for i in range(n_feeds):
            feed = server.rss(f"/f/{i}.xml", title=f"Feed {i}")
            for n in range(ITEMS):
                feed.items.append(_item(feed, rnd, n))
            feed.render()
            if _kind(i) == "ignore":
                server.ignore_validators(feed.path)
            feeds.append(feed)
        conn.send(("ready", server.port))
        while True:
            # Bounded: the parent either sends a command or closes the pipe.
            ready = await loop.run_in_executor(None, conn.poll, 1.0)
            if not ready:
                if os.getppid() == 1:  # orphaned
                    return
                continue
            try:
                command = conn.recv()
            except EOFError:
                return
            if command == "stop":
                conn.send(("stopped", _server_cpu()))
                return
            if command == "advance":
                statuses = Counter(r.status for r in server.requests)
                server.requests.clear()
                for i, feed in enumerate(feeds):
                    if _kind(i) == "new":
                        for _ in range(NEW_PER_CYCLE):
                            feed.items.append(_item(feed, rnd, feed.items[-1]["seq"] + 1))
                        feed.items = feed.items[-ITEMS:]
                        feed.render()
                conn.send(("advanced", dict(statuses)))


def _item(feed: Any, rnd: random.Random, n: int) -> dict[str, Any]:
    from datetime import UTC, datetime, timedelta

    return {
        "title": f"{feed.title}: story {n} about {rnd.choice(_WORDS)}",
        "link": f"https://example.org{feed.path}/story/{n}",
        "guid": f"urn:bench:{feed.path}:{n}",
        "html": _item_html(rnd, n),
        "pub_date": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=n),
        "enclosures": [],
        "categories": ["bench", rnd.choice(_WORDS)],
        "author": "bench@example.org (Bench)",
        "seq": n,
    }


def _server_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class ServerProcess:
    def __init__(self, n_feeds: int, cpu: int | None) -> None:
        ctx = multiprocessing.get_context("fork")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(n_feeds, child, cpu), daemon=True)
        self._process.start()
        child.close()
        tag, self.port = self._expect(120.0)
        assert tag == "ready", tag

    def _expect(self, timeout: float) -> tuple[str, Any]:
        if not self._conn.poll(timeout):
            raise RuntimeError("the feed server did not answer")
        message: tuple[str, Any] = self._conn.recv()
        return message

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.port}/f/{index}.xml"

    def advance(self) -> dict[int, int]:
        """Publish this cycle's new items; returns the statuses answered since
        the last call."""
        self._conn.send("advance")
        tag, statuses = self._expect(60.0)
        assert tag == "advanced", tag
        return statuses

    def stop(self) -> float | None:
        cpu = None
        with contextlib.suppress(Exception):
            self._conn.send("stop")
            _, cpu = self._expect(10.0)
        self._process.join(5.0)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5.0)
        return cpu


# ----------------------------------------------------------------- measurement


@dataclass
class Sample:
    label: str
    feeds: int
    wall: float
    cpu: float
    peak_rss_mb: float
    detail: str = ""

    @property
    def feeds_per_s(self) -> float:
        return self.feeds / self.wall if self.wall else 0.0

    @property
    def cpu_ms_per_feed(self) -> float:
        return 1000 * self.cpu / self.feeds if self.feeds else 0.0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


class Clock:
    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = _cpu()

    def sample(self, label: str, feeds: int, detail: str = "") -> Sample:
        return Sample(
            label, feeds, time.perf_counter() - self.wall, _cpu() - self.cpu, _peak_rss_mb(), detail
        )


# ------------------------------------------------------------------ the poller


async def run_poller(
    server: ServerProcess, n_feeds: int, cycles: int, concurrency: int, profile: str | None
) -> list[Sample]:
    from telegram.ext import ApplicationBuilder

    from bot.config import PollConfig
    from bot.deliver import Deliverer
    from bot.fetch import Fetcher
    from bot.models import Chat, ChatKind
    from bot.poller import Poller, PollResult, poll_all
    from bot.store import open_store
    from bot.subscriptions import Scheduling, Subscriptions

    urls = [server.url(i) for i in range(n_feeds)]
    samples: list[Sample] = []
    profiler = cProfile.Profile() if profile else None
    with tempfile.TemporaryDirectory(prefix="feedbot-bench-") as tmp:
        store = open_store(os.path.join(tmp, "feedbot.sqlite"))
        # Polling never reaches Telegram here: the bot is never initialised.
        application = ApplicationBuilder().token("123456:BENCH").build()
        job_queue = application.job_queue
        assert job_queue is not None
        await job_queue.start()
        fetcher = Fetcher(timeout=20.0, allow_private=True, concurrency=concurrency)
        deliverer = Deliverer(store, application.bot)

        async def notify(chat_ids: Sequence[int], text: str) -> None:
            return None

        # The configured interval is far beyond the bench: only poll_all polls.
        config = PollConfig(
            interval=3600.0, min_interval=60.0, timeout=20.0, allow_private_addresses=True
        )
        poller = Poller(store, fetcher, deliverer, config, job_queue, notify)

        class _Schedule(Scheduling):
            def feed_added(self, url: str) -> None:
                poller.schedule(url, config.interval)

        subscriptions = Subscriptions(store, fetcher, _Schedule(), first_poll_after=3600.0)
        chat = Chat(id=1, kind=ChatKind.PRIVATE, title="bench")
        try:
            server.advance()
            clock = Clock()
            answers = await asyncio.wait_for(
                asyncio.gather(*(subscriptions.subscribe(chat, url) for url in urls)),
                CYCLE_DEADLINE,
            )
            failed = sum(not a.ok for a in answers)
            samples.append(clock.sample("subscribe (set-up)", n_feeds, f"{failed} failed"))
            if failed:
                raise RuntimeError(f"{failed} subscriptions failed: {answers[0].text}")

            for cycle in range(1, cycles + 1):
                statuses = server.advance()
                samples[-1].detail += f"; server saw {_statuses(statuses)}"
                clock = Clock()
                if profiler is not None:
                    profiler.enable()
                reports = await asyncio.wait_for(poll_all(poller, urls), CYCLE_DEADLINE)
                if profiler is not None:
                    profiler.disable()
                sample = clock.sample(f"poller cycle {cycle}", n_feeds)
                results = Counter(r.result for r in reports)
                new = sum(r.new_entries for r in reports)
                sample.detail = (
                    f"{results[PollResult.UNCHANGED]} unchanged, "
                    f"{results[PollResult.NEW_ENTRIES]} with {new} new entries"
                )
                other = n_feeds - results[PollResult.UNCHANGED] - results[PollResult.NEW_ENTRIES]
                if other:
                    sample.detail += f", {other} other: {Counter(r.error for r in reports)}"
                samples.append(sample)
            statuses = server.advance()
            samples[-1].detail += f"; server saw {_statuses(statuses)}"
        finally:
            await job_queue.stop(wait=False)
            await fetcher.aclose()
            store.close()
    if profiler is not None and profile:
        profiler.dump_stats(profile)
    return samples


def _statuses(statuses: dict[int, int]) -> str:
    return ", ".join(f"{count} x {status}" for status, count in sorted(statuses.items()))


# ------------------------------------------------------------------- baseline


def _baseline(urls: list[str], conn: Connection, cpu: int | None) -> None:
    if cpu is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {cpu})
    import feedparser

    clock = Clock()
    entries = 0
    errors = 0
    for url in urls:
        parsed = feedparser.parse(url)
        entries += len(parsed.entries)
        errors += bool(parsed.get("bozo_exception") and not parsed.entries)
    sample = clock.sample("feedparser.parse(url), one by one", len(urls))
    sample.detail = f"{entries} entries parsed, {errors} failed"
    conn.send(sample)


def run_baseline(server: ServerProcess, urls: list[str], cpu: int | None) -> Sample:
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_baseline, args=(urls, child, cpu), daemon=True)
    process.start()
    child.close()
    try:
        if not parent.poll(CYCLE_DEADLINE):
            raise RuntimeError("the baseline did not finish in time")
        sample: Sample = parent.recv()
        return sample
    finally:
        process.join(5.0)
        if process.is_alive():
            process.terminate()


# ------------------------------------------------------------------------ main


def _table(samples: list[Sample]) -> str:
    header = ("", "feeds", "seconds", "feeds/s", "CPU ms/feed", "peak RSS MB")
    rows = [
        (
            s.label,
            str(s.feeds),
            f"{s.wall:.2f}",
            f"{s.feeds_per_s:,.0f}",
            f"{s.cpu_ms_per_feed:.2f}",
            f"{s.peak_rss_mb:.0f}",
        )
        for s in samples
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        right = [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        cells = [row[0].ljust(widths[0]), *right]
        lines.append("  ".join(cells))
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench.poll", description=summary)
    parser.add_argument("--feeds", type=int, default=2000, help="number of feeds (2000)")
    parser.add_argument("--cycles", type=int, default=3, help="measured poller cycles (3)")
    parser.add_argument(
        "--concurrency", type=int, default=8, help="fetches in flight (8, as the bot)"
    )
    parser.add_argument(
        "--baseline-feeds",
        type=int,
        default=None,
        help="feeds for the feedparser baseline (default: all; 0 skips it)",
    )
    parser.add_argument("--profile", metavar="FILE", help="cProfile the measured cycles into FILE")
    args = parser.parse_args(argv)
    if args.feeds < 10 or args.cycles < 1:
        parser.error("--feeds must be at least 10 and --cycles at least 1")

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_cpu = cpus[-1] if len(cpus) >= 2 else None
    client_cpu = cpus[0] if len(cpus) >= 2 else None
    server = ServerProcess(args.feeds, server_cpu)
    try:
        if client_cpu is not None:
            os.sched_setaffinity(0, {client_cpu})
        samples = asyncio.run(
            run_poller(server, args.feeds, args.cycles, args.concurrency, args.profile)
        )
        baseline = None
        n_base = args.feeds if args.baseline_feeds is None else min(args.baseline_feeds, args.feeds)
        if n_base > 0:
            server.advance()
            step = args.feeds / n_base  # every k-th feed keeps the 80/10/10 mix
            urls = [server.url(int(i * step)) for i in range(n_base)]
            baseline = run_baseline(server, urls, client_cpu)
    finally:
        server_cpu_s = server.stop()

    print(
        f"{args.feeds} feeds of {ITEMS} items, each cycle 80% 304 / 10% 200 unchanged / "
        f"10% {NEW_PER_CYCLE} new items; {args.concurrency} fetches in flight; "
        f"python {sys.version.split()[0]}, {len(cpus) or '?'} CPUs"
        + (f" (server on CPU {server_cpu}, client on CPU {client_cpu})" if server_cpu else "")
    )
    print()
    print(_table(samples + ([baseline] if baseline else [])))
    print()
    for s in samples + ([baseline] if baseline else []):
        if s.detail:
            print(f"{s.label}: {s.detail}")
    cycles = [s for s in samples if s.label.startswith("poller cycle")]
    fps = statistics.median(s.feeds_per_s for s in cycles)
    cpu = statistics.median(s.cpu_ms_per_feed for s in cycles)
    print()
    print(f"poller, median of {len(cycles)} cycles: {fps:,.0f} feeds/s, {cpu:.2f} ms CPU/feed")
    if baseline:
        print(
            f"vs feedparser.parse one by one: {fps / baseline.feeds_per_s:.1f}x the feeds/s, "
            f"{baseline.cpu_ms_per_feed / cpu:.1f}x less CPU per feed"
        )
    if server_cpu_s is not None:
        print(f"feed server process CPU over the whole run: {server_cpu_s:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
