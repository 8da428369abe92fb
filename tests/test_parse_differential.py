"""The tuned parse path against plain feedparser's, document by document.

bot/parse/tuning.py makes feedparser cheaper (a cache of its per-element
xml:base join); this checks that every corpus file, the bench's own feed and
the hostile-input tests' feeds give exactly the same ParsedFeed (entries, ids,
links, titles, dates, media, bodies) and the same rendered messages with the
tuning on and off. No Rust-backed parser is used: see bench/README.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import feedparser.mixin
import pytest

from bench.parse import bench_document
from bot.parse import parse_feed, tuning
from bot.render import render_entry
from testkit.harness import shared_dir

NOW = datetime(2026, 12, 1, tzinfo=UTC)
SHARED = shared_dir()
FILES: list[Path] = []
if SHARED is not None:
    FILES = sorted(p for p in (SHARED / "corpus").iterdir() if p.is_file() and p.suffix != ".md")
    FILES += sorted((SHARED / "examples").glob("*.xml")) if (SHARED / "examples").is_dir() else []

DOCS = {p.name: p.read_bytes() for p in FILES}
DOCS["bench-47k.rss.xml"] = bench_document()
DOCS["xml-base-atom.xml"] = (
    b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://a.example/x/">'
    b'<title>t</title><entry xml:base="../y/"><title>e</title><link href="p.html"/><id>1</id>'
    b'<content type="html" xml:base="./z/">&lt;a href="q"&gt;q&lt;/a&gt;</content></entry></feed>'
)


def _parse(body: bytes, name: str):
    return parse_feed(body, url=f"https://feeds.example.org/{name}", now=NOW)


@pytest.mark.parametrize("name", sorted(DOCS))
def test_tuned_parse_is_identical_to_plain_feedparser(name, monkeypatch):
    body = DOCS[name]
    tuned = _parse(body, name)
    monkeypatch.setattr(feedparser.mixin, "_urljoin", tuning._join)
    plain = _parse(body, name)
    assert tuned == plain
    for a, b in zip(tuned.entries, plain.entries, strict=True):
        assert render_entry(a, tuned.title) == render_entry(b, plain.title)


def test_the_tuning_is_installed():
    assert feedparser.mixin._urljoin is tuning._urljoin
