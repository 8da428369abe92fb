"""Random kill -9s, N in a row, during polls and broadcasts (issue 9).

    python -m bench.kills               # the issue's 20 kills (about 2 minutes)
    python -m bench.kills --kills 8     # under a minute

The scenario is tests/test_e2e_kills.py's (40 private chats, two feeds
publishing every round, two broadcasts queued through the outbox): after
every kill the store passes PRAGMA integrity_check and opens, and in the end
every entry and broadcast reached every chat, repeats only what was in flight
at a kill. Printed: per kill, the deliveries still queued and the repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testkit.fake_telegram import FakeTelegram
from testkit.feed_server import FeedServer
from testkit.harness import TOKEN
from testkit.kills import kill_rounds


async def run(kills: int, seed: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeTelegram(TOKEN) as telegram, FeedServer() as feeds:
            report = await kill_rounds(Path(tmp), telegram, feeds, kills, seed)
    print(f"{report.kills} kills in {report.seconds:.0f} s: integrity ok after each, nothing lost")
    print("kill  queued  repeats")
    for n, (queued, repeats) in enumerate(zip(report.queued, report.in_flight, strict=True), 1):
        print(f"{n:>4}  {queued:>6}  {len(repeats):>7}")
    print(f"most repeats at one kill: {max(map(len, report.in_flight), default=0)} (bound 30)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    return asyncio.run(run(args.kills, args.seed))


if __name__ == "__main__":
    raise SystemExit(main())
