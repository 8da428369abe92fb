"""What parsing a changed feed costs: plain feedparser against parse_response.

    python -m bench.parse                 # the bench's 47 KB feed and the corpus
    python -m bench.parse --rounds 20

One process, one run: each document is parsed ``--rounds`` times by
``feedparser.parse`` with its defaults (the reference of issue 11: what a
poller that just calls feedparser pays; feedbot's cache of feedparser's
xml:base join taken out for it) and by feedbot's ``parse_response`` (feedparser
with ``sanitize_html=False, resolve_relative_uris=False``, buffered expat, the
join cached, the DTD check, then feedbot's own entry building). CPU time per
document (``time.process_time``), best of 3 passes. Bounded: a few seconds.
"""

from __future__ import annotations

import argparse
import io
import random
import time
from collections.abc import Callable, Sequence

import feedparser
import feedparser.mixin

from bot.fetch import FetchResult
from bot.parse import parse_response, tuning
from testkit.harness import shared_dir


def bench_document() -> bytes:
    """The changed feed of bench/poll.py: 20 items of about 1.5 KB of HTML (47 KB)."""
    from bench.poll_server import ITEMS, _item
    from testkit.feed_server import RssFeed

    class _Server:
        def url(self, path: str = "/") -> str:
            return "http://127.0.0.1:8000" + path

        def set_feed(self, *args: object) -> None:
            pass

    rnd = random.Random(1)
    feed = RssFeed.__new__(RssFeed)
    feed.server, feed.path, feed.title, feed.link, feed.items = (
        _Server(),  # type: ignore[assignment]
        "/f/0.xml",
        "Feed 0",
        None,
        [],
    )
    for n in range(ITEMS):
        feed.items.append(_item(feed, rnd, n))
    return feed.document().encode("utf-8")


def _cpu_ms(fn: Callable[[], object], rounds: int) -> float:
    fn()
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for _ in range(rounds):
            fn()
        best = min(best, (time.process_time() - start) / rounds * 1000)
    return best


def _plain(body: bytes) -> Callable[[], object]:
    def run() -> object:
        feedparser.mixin._urljoin = tuning._join  # type: ignore[attr-defined]
        try:
            return feedparser.parse(io.BytesIO(body))
        finally:
            tuning.install()

    return run


def _ours(body: bytes, url: str) -> Callable[[], object]:
    result = FetchResult(
        url=url,
        status=200,
        body=body,
        content_type="application/xml",
        content_location=None,
        etag=None,
        last_modified=None,
        permanent_url=None,
        max_age=None,
        body_hash=None,
    )

    def run() -> object:
        return parse_response(result)

    return run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    docs = [("bench feed (poll.py)", bench_document())]
    shared = shared_dir()
    if shared is not None:
        docs += [
            (p.name, p.read_bytes())
            for p in sorted((shared / "corpus").iterdir())
            if p.is_file() and p.suffix != ".md" and not p.name.endswith(".json")
        ]
    total_plain = total_ours = 0.0
    print(f"{'document':36} {'KB':>6} {'feedparser ms':>14} {'ours ms':>8} {'ratio':>6}")
    for name, body in docs:
        plain = _cpu_ms(_plain(body), args.rounds)
        ours = _cpu_ms(_ours(body, f"https://feeds.example.org/{name}"), args.rounds)
        total_plain += plain
        total_ours += ours
        print(f"{name:36} {len(body) / 1000:6.1f} {plain:14.2f} {ours:8.2f} {ours / plain:6.2f}")
    first_plain = _cpu_ms(_plain(docs[0][1]), args.rounds)
    first_ours = _cpu_ms(_ours(docs[0][1], "https://feeds.example.org/f.xml"), args.rounds)
    print(f"corpus total: feedparser {total_plain:.1f} ms, ours {total_ours:.1f} ms")
    print(f"ratio: {first_ours / first_plain:.2f} of feedparser's CPU for the 47 KB changed feed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
