"""The loopback feed server of bench/poll.py, in its own process.

N feeds of 20 items (about 1.5 KB of HTML each) on testkit's FeedServer:
10% publish 2 new items at each ``advance`` ("new"), 10% ignore validators and
answer 200 with an unchanged body ("ignore"), the other 80% answer 304. Beyond
2,000 feeds, feed i serves the document of feed i mod 2,000 (same bytes, its
own ETag), so 100,000 feeds fit in memory; the mix is the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import random
import resource
from collections import Counter
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

ITEMS = 20
NEW_PER_CYCLE = 2
#: Distinct documents; more feeds share them.
DISTINCT = 2000

_WORDS = [
    *("feed", "poll", "entry", "server", "client", "parse", "header", "cache", "story"),
    *("news", "update", "channel", "telegram", "message", "network", "request", "answer"),
    *("body", "index", "market"),
]


def kind(index: int) -> str:
    """10% "new", 10% "ignore" (200, same body), 80% "304"."""
    return {0: "new", 1: "ignore"}.get(index % 10, "304")


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


def _item(feed: Any, rnd: random.Random, n: int) -> dict[str, Any]:
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


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _serve(n_feeds: int, conn: Connection, cpu: int | None) -> None:
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
        for i in range(min(n_feeds, DISTINCT)):
            feed = server.rss(f"/f/{i}.xml", title=f"Feed {i}")
            feed.items = [_item(feed, rnd, n) for n in range(ITEMS)]
            feed.render()
            feeds.append(feed)

        def alias(i: int) -> None:
            server.set_feed(f"/f/{i}.xml", server._paths[feeds[i % DISTINCT].path].document.body)  # type: ignore[union-attr]

        for i in range(n_feeds):
            if i >= DISTINCT:
                alias(i)
            if kind(i) == "ignore":
                server.ignore_validators(f"/f/{i}.xml")
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
                conn.send(("stopped", _cpu()))
                return
            if command == "validators":
                docs = [server._paths[f"/f/{i}.xml"].document for i in range(n_feeds)]
                conn.send(("validators", [_validators(d) for d in docs]))
            elif command == "count":
                conn.send(("count", (len(server.requests), _cpu())))
            elif command == "advance":
                statuses = Counter(r.status for r in server.requests)
                server.requests.clear()
                for i, feed in enumerate(feeds):
                    if kind(i) == "new":
                        for _ in range(NEW_PER_CYCLE):
                            feed.items.append(_item(feed, rnd, feed.items[-1]["seq"] + 1))
                        feed.items = feed.items[-ITEMS:]
                        feed.render()
                for i in range(DISTINCT, n_feeds):
                    if kind(i) == "new":
                        alias(i)
                conn.send(("advanced", dict(statuses)))


def _validators(doc: Any) -> tuple[str, str, str]:
    """What a client holds after fetching ``doc``: ETag, Last-Modified, body hash."""
    import email.utils
    import hashlib

    modified = email.utils.formatdate(doc.last_modified, usegmt=True)
    return doc.etag, modified, hashlib.sha256(doc.body).hexdigest()


class ServerProcess:
    """The server in a child process (pinned to ``cpu``); every call bounded."""

    def __init__(self, n_feeds: int, cpu: int | None) -> None:
        ctx = multiprocessing.get_context("fork")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(n_feeds, child, cpu), daemon=True)
        self._process.start()
        child.close()
        self.n_feeds = n_feeds
        self.port: int = self._ask(None, "ready", 600.0)

    def _ask(self, command: str | None, tag: str, timeout: float) -> Any:
        if command is not None:
            self._conn.send(command)
        if not self._conn.poll(timeout):
            raise RuntimeError("the feed server did not answer")
        got, value = self._conn.recv()
        assert got == tag, got
        return value

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.port}/f/{index}.xml"

    def urls(self) -> list[str]:
        return [self.url(i) for i in range(self.n_feeds)]

    def advance(self) -> dict[int, int]:
        """Publish this cycle's new items; the statuses answered since the last call."""
        statuses: dict[int, int] = self._ask("advance", "advanced", 120.0)
        return statuses

    def validators(self) -> list[tuple[str, str, str]]:
        """Each feed's ETag, Last-Modified and body hash as served now."""
        answer: list[tuple[str, str, str]] = self._ask("validators", "validators", 120.0)
        return answer

    def count(self) -> tuple[int, float]:
        """Requests answered since the last advance, and the server's CPU seconds."""
        answer: tuple[int, float] = self._ask("count", "count", 30.0)
        return answer

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._ask("stop", "stopped", 10.0)
        self._process.join(5.0)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5.0)


def statuses_text(statuses: dict[int, int]) -> str:
    return ", ".join(f"{count} x {status}" for status, count in sorted(statuses.items()))
