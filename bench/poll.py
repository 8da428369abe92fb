"""Polling throughput and CPU per feed: feedbot's real Poller against two
rivals, side by side in one run, on one loopback feed server.

    python -m bench.poll                         # 2,000 feeds, 3 cycles (about 2 min)
    python -m bench.poll --feeds 500 --cycles 2 --naive-feeds 200
    python -m bench.poll --scaling 1000,10000,100000 --scaling-polls 10000
    python -m bench.poll --profile /tmp/prof     # pyinstrument, per kind of feed
    python -m bench.poll_process                 # the whole `feedbot run` from outside

The feed server (bench/poll_server.py) runs in its own process on one core;
each contender runs in its own process on the other (bench/poll_rivals.py),
so each one's CPU is its own. Each cycle the server first makes 10% of the
feeds publish 2 new items (10% ignore validators and answer 200 with the
same body; 80% answer 304), then every contender polls every feed once:

* naive: ``feedparser.parse(url, etag=…, modified=…)`` one by one (on the
  first ``--naive-feeds`` feeds, the same mix);
* aiohttp+feedparser: conditional GET, 8 in flight, a body hash, feedparser
  only on changed bodies;
* feedbot: the real ``Poller`` (claim, fetch, parse, plan, record in
  batches) on a real ``SqliteStore`` (bench/poll_feedbot.py).

The last line is the goal's: ``ratios: <A>x naive, <B>x aiohttp+feedparser``
(median feeds/s of feedbot over each rival's median, same run).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
from collections.abc import Sequence

from bench.poll_feedbot import feedbot
from bench.poll_rivals import Contender, Factory, Sample, naive, plain_aiohttp
from bench.poll_server import ITEMS, NEW_PER_CYCLE, ServerProcess, kind, statuses_text

NAIVE = "naive feedparser loop"
AIOHTTP = "aiohttp+feedparser"
FEEDBOT = "feedbot Poller"


def _table(samples: list[Sample]) -> str:
    header = ("", "feeds", "seconds", "feeds/s", "CPU ms/feed", "peak RSS MB")
    rows = [
        (
            s.label,
            str(s.feeds),
            f"{s.wall:.2f}",
            f"{s.feeds_per_s:,.0f}",
            f"{s.cpu_ms_per_feed:.3f}",
            f"{s.peak_rss_mb:.0f}",
        )
        for s in samples
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        right = [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join([row[0].ljust(widths[0]), *right]))
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cpus() -> tuple[int | None, int | None]:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return (cpus[-1], cpus[0]) if len(cpus) >= 2 else (None, None)


def compare(args: argparse.Namespace) -> list[Sample]:
    server_cpu, client_cpu = _cpus()
    server = ServerProcess(args.feeds, server_cpu)
    contenders: list[Contender] = []
    samples: list[Sample] = []
    try:
        urls = server.urls()
        n_naive = min(args.naive_feeds or args.feeds, args.feeds)
        plans: list[tuple[str, Factory, list[str]]] = [
            (FEEDBOT, functools.partial(feedbot, concurrency=args.concurrency), urls),
            (AIOHTTP, plain_aiohttp, urls),
        ]
        if n_naive:
            plans.append((NAIVE, naive, urls[:n_naive]))
        for label, factory, those in plans:
            contenders.append(Contender(label, factory, those, client_cpu))
        for cycle in range(1, args.cycles + 1):
            seen = server.advance()
            if cycle > 1:
                print(f"  server answered: {statuses_text(seen)}", file=sys.stderr)
            for contender in contenders:
                sample = contender.cycle()
                sample.label = f"{contender.label}, cycle {cycle}"
                print(f"  {sample.label}: {sample.feeds_per_s:,.0f} feeds/s", file=sys.stderr)
                samples.append(sample)
    finally:
        for contender in contenders:
            contender.stop()
        server.stop()
    return samples


def profile(args: argparse.Namespace) -> None:
    """pyinstrument over one cycle of feedbot's poller on feeds of one kind each."""
    server_cpu, client_cpu = _cpus()
    os.makedirs(args.profile, exist_ok=True)
    server = ServerProcess(args.feeds, server_cpu)
    try:
        urls = server.urls()
        for name in ("304", "ignore", "new"):
            those = [u for i, u in enumerate(urls) if kind(i) == name]
            contender = Contender(f"feedbot {name}", feedbot, those, client_cpu)
            try:
                server.advance()
                path = os.path.join(args.profile, f"{name}.{args.profile_format}")
                sample = contender.cycle(profile=path)
                print(f"{name}: {sample.feeds} feeds, {sample.cpu_ms_per_feed:.3f} ms CPU/feed")
                print(f"  profile in {path}")
            finally:
                contender.stop()
    finally:
        server.stop()


def scaling(args: argparse.Namespace) -> None:
    """feedbot's CPU per feed with 1,000 / 10,000 / 100,000 feeds in the
    store (the store filled as if each feed was polled once; at most
    ``--scaling-polls`` polls measured)."""
    server_cpu, client_cpu = _cpus()
    print(f"{'feeds':>8}  {'polled':>7}  {'feeds/s':>8}  {'CPU ms/feed':>11}  {'peak RSS MB':>11}")
    for n in (int(x) for x in args.scaling.split(",")):
        server = ServerProcess(n, server_cpu)
        try:
            server.advance()
            validators = server.validators()
            server.advance()  # then 10% change: the usual mix
            factory = functools.partial(
                feedbot, validators=validators, limit=min(n, args.scaling_polls)
            )
            contender = Contender(f"feedbot {n}", factory, server.urls(), client_cpu)
            try:
                s = contender.cycle()
            finally:
                contender.stop()
        finally:
            server.stop()
        print(
            f"{n:>8}  {s.feeds:>7}  {s.feeds_per_s:>8,.0f}  {s.cpu_ms_per_feed:>11.3f}"
            f"  {s.peak_rss_mb:>11.0f}   ({s.detail})"
        )


def main(argv: Sequence[str] | None = None) -> int:
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench.poll", description=summary)
    parser.add_argument("--feeds", type=int, default=2000, help="number of feeds (2000)")
    parser.add_argument("--cycles", type=int, default=3, help="measured cycles (3)")
    parser.add_argument("--concurrency", type=int, default=8, help="feedbot's fetches in flight")
    parser.add_argument(
        "--naive-feeds", type=int, default=1000, help="feeds the naive loop polls (1000; 0: skip)"
    )
    parser.add_argument("--profile", metavar="DIR", help="profile feedbot per kind of feed")
    parser.add_argument(
        "--profile-format",
        choices=("txt", "prof"),
        default="txt",
        help="txt: pyinstrument (wall); prof: cProfile of CPU time (pstats)",
    )
    parser.add_argument("--scaling", metavar="N,N,…", help="CPU per feed at these store sizes")
    parser.add_argument("--scaling-polls", type=int, default=10_000, help="polls measured (10000)")
    args = parser.parse_args(argv)
    if args.feeds < 10 or args.feeds % 10 or args.cycles < 1:
        parser.error("--feeds must be a multiple of 10 (the mix) and --cycles at least 1")
    if args.profile:
        profile(args)
        return 0
    if args.scaling:
        scaling(args)
        return 0

    samples = compare(args)
    print(
        f"{args.feeds} feeds of {ITEMS} items; each cycle 80% 304 / 10% 200 unchanged / "
        f"10% {NEW_PER_CYCLE} new items; python {sys.version.split()[0]}"
    )
    print()
    print(_table(samples))
    print()
    for s in samples:
        print(f"{s.label}: {s.detail}")
    print()
    medians: dict[str, float] = {}
    for label in (FEEDBOT, AIOHTTP, NAIVE):
        mine = [s for s in samples if s.label.startswith(label + ",")]
        if mine:
            medians[label] = statistics.median(s.feeds_per_s for s in mine)
            cpu = statistics.median(s.cpu_ms_per_feed for s in mine)
            print(
                f"{label}, median of {len(mine)}: {medians[label]:,.0f} feeds/s, "
                f"{cpu:.3f} ms CPU/feed"
            )
    fb = medians[FEEDBOT]
    a = fb / medians[NAIVE] if NAIVE in medians else float("nan")
    b = fb / medians[AIOHTTP]
    print(f"ratios: {a:.1f}x naive, {b:.1f}x aiohttp+feedparser (feeds/s, same run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
