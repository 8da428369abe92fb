"""feedparser-rs against feedparser, document by document (issue 11).

The fast path (bot/parse/fast.py) must give exactly the ParsedFeed feedparser
gives: entries, ids, links, titles, dates, media, bodies, and so the rendered
messages. Here: every corpus file, the shared examples and the bench's 47 KB
feed. The parse suites (test_parse, test_parse_hostile, test_parse_fuzz,
test_corpus) check every document they parse the same way (conftest.py).
The tuning of feedparser itself (bot/parse/tuning.py) is held to plain
feedparser here too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import feedparser.mixin
import pytest

import bot.parse.xml as parse_xml
from bench.parse import bench_document
from bot.parse import fast, parse_feed, tuning
from bot.render import render_entry
from testkit.harness import shared_dir
from tests.differential import both_ways

NOW = datetime(2026, 12, 1, tzinfo=UTC)
SHARED = shared_dir()
FILES: list[Path] = []
if SHARED is not None:
    FILES = sorted(p for p in (SHARED / "corpus").iterdir() if p.is_file() and p.suffix != ".md")
    FILES += sorted((SHARED / "examples").glob("*.xml")) if (SHARED / "examples").is_dir() else []

DOCS = {p.name: p.read_bytes() for p in FILES if p.suffix != ".json"}
DOCS["bench-47k.rss.xml"] = bench_document()
DOCS["xml-base-atom.xml"] = (
    b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://a.example/x/">'
    b'<title>t</title><entry xml:base="../y/"><title>e</title><link href="p.html"/><id>1</id>'
    b'<content type="html" xml:base="./z/">&lt;a href="q"&gt;q&lt;/a&gt;</content></entry></feed>'
)
_NS = (
    'xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
    'xmlns:media="http://search.yahoo.com/mrss/" xmlns:atom="http://www.w3.org/2005/Atom" '
    'xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"'
)
#: The namespaces and elements real RSS 2.0 and Atom feeds use, each read both ways.
DOCS["rss-extensions.xml"] = (
    f'<?xml version="1.0" encoding="UTF-8"?>\r\n<rss version="2.0" {_NS}><channel>'
    "<title>Ext &amp; more</title><link>https://e.example/</link><ttl>30</ttl>"
    '<atom:link href="https://e.example/feed" rel="self" type="application/rss+xml"/>'
    "<sy:updatePeriod>daily</sy:updatePeriod><sy:updateFrequency>2</sy:updateFrequency>"
    "<item><title>Q&amp;A: 6 &gt; 5</title><link>https://e.example/1?a=1&amp;b=2</link>"
    "<guid>https://e.example/1</guid><dc:creator>Ann</dc:creator>"
    "<dc:date>2025-03-01T10:00:00Z</dc:date><dc:subject>Science</dc:subject>"
    "<category>News</category><category>news</category>"
    "<description>short</description>"
    "<content:encoded><![CDATA[<p>long\r\nbody <b>bold</b></p>]]></content:encoded>"
    '<media:content url="https://e.example/v.mp4" type="video/mp4" medium="video" fileSize="99"/>'
    '<media:thumbnail url="https://e.example/t.jpg"/>'
    '<enclosure url="https://e.example/a.mp3" type="audio/mpeg" length="1234"/>'
    "<comments>https://e.example/1#c</comments></item>"
    "<item><title>No date</title><guid isPermaLink='false'>x-2</guid>"
    "<author>ann@example.org (Ann B)</author><description>plain\ntext &amp; more</description>"
    "<pubDate>Sat, 01 Mar 2025 10:00:00 +0100</pubDate></item>"
    "</channel></rss>"
).encode()
DOCS["rss-extensions-nodcdate.xml"] = DOCS["rss-extensions.xml"].replace(
    b"<dc:date>2025-03-01T10:00:00Z</dc:date>", b""
)
DOCS["atom-variants.xml"] = (
    b'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
    b'xmlns:media="http://search.yahoo.com/mrss/"><title type="html">A &amp;amp; B</title>'
    b'<link href="https://a.example/"/><link rel="self" href="https://a.example/feed"/>'
    b"<author><name>Feed Author</name></author><updated>2025-01-02T00:00:00Z</updated>"
    b'<entry><title type="text">One</title><link rel="alternate" href="/one"/>'
    b'<link rel="enclosure" href="https://a.example/a.ogg" type="audio/ogg" length="10"/>'
    b"<id>tag:a.example,2025:1</id><published>2025-01-01T00:00:00+02:00</published>"
    b"<updated>2025-01-02T00:00:00Z</updated><author><name>Bob</name><email>b@a.example</email>"
    b'</author><category term="t1" label="Label One"/><category term="t2"/>'
    b'<summary type="text">sum</summary><content type="html">&lt;p&gt;body&lt;/p&gt;</content>'
    b"</entry><entry><title>Two</title><id>relative-id</id>"
    b'<content type="text">line one\nline two</content></entry></feed>'
)

#: Documents the fast path reads (not falling back): the common case must stay fast.
FAST_ONES = {
    "rss-extensions-nodcdate.xml",
    "atom-variants.xml",
    "bench-47k.rss.xml",
    "coolshell-cn.rss.xml",
    "bbc-urdu-rtl.rss.xml",
    "diygod-cn.atom.xml",
    "large-blog.atom.xml",
    "large-blog.rss.xml",
    "reddit.atom.xml",
}


def _base(name: str) -> str:
    return f"https://feeds.example.org/{name}"


@pytest.mark.parametrize("name", sorted(DOCS))
def test_fast_path_gives_what_feedparser_gives(name):
    reference, got = both_ways(DOCS[name], _base(name), None, NOW)
    assert got == reference or (str(got) == str(reference) and type(got) is type(reference))
    if not isinstance(reference, Exception):
        for a, b in zip(reference.entries, got.entries, strict=True):  # type: ignore[union-attr]
            assert render_entry(a, reference.title) == render_entry(b, got.title)  # type: ignore[union-attr]


@pytest.mark.parametrize("name", sorted(FAST_ONES & set(DOCS)))
def test_the_common_documents_take_the_fast_path(name, monkeypatch):
    def no_feedparser(*args, **kwargs):
        raise AssertionError("fell back to feedparser")

    monkeypatch.setattr(parse_xml.feedparser, "parse", no_feedparser)
    assert parse_feed(DOCS[name], url=_base(name), now=NOW).entries


def test_github_media_urls_fall_back():
    # feedparser-rs leaves "&amp;" in media:thumbnail URLs: fast.read refuses.
    name = "github-commits.atom.xml"
    if name not in DOCS:
        pytest.skip("corpus absent")
    assert fast.read(DOCS[name], _base(name)) is None


def test_a_feed_url_as_body_is_never_fetched():
    # feedparser-rs fetches a source that looks like a URL: only "<…" goes in.
    assert fast.read(b"http://127.0.0.1:9/feed.xml", "https://e.org/") is None


@pytest.mark.parametrize("name", sorted(DOCS))
def test_tuned_feedparser_is_identical_to_plain_feedparser(name, monkeypatch):
    monkeypatch.setattr(parse_xml, "FAST_PATH", False)
    tuned = parse_feed(DOCS[name], url=_base(name), now=NOW)
    monkeypatch.setattr(feedparser.mixin, "_urljoin", tuning._join)
    assert parse_feed(DOCS[name], url=_base(name), now=NOW) == tuned


def test_the_tuning_is_installed():
    assert feedparser.mixin._urljoin is tuning._urljoin


@pytest.mark.parametrize(
    "item",
    [
        "<link>https://x.example/a</link><guid>g1</guid>",
        "<guid>g1</guid>",
        '<link>https://x.example/a</link><guid isPermaLink="false">g1</guid>',
        '<link>https://x.example/a</link><guid isPermaLink="true">/p/1</guid>',
        "<link>https://x.example/a</link><guid>12345</guid>",
        "<link>https://x.example/a</link><guid>https://x.example/g</guid>",
    ],
)
def test_relative_guids_get_the_same_id_on_both_paths(item):
    """Found by a parse test: an entry id that differs between the paths would
    make one feed's entries new again whenever it switched path."""
    doc = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>H</title>'
        f"<item><title>A</title>{item}</item></channel></rss>"
    ).encode()
    reference, fast = both_ways(doc, "https://www.heise.de/rss", None, None)
    assert not isinstance(reference, Exception) and not isinstance(fast, Exception)
    assert fast.entries[0].id == reference.entries[0].id
