"""Autodiscovery: the feeds a page declares (pure), and finding one that works (feed server)."""

from __future__ import annotations

import html
from urllib.parse import urljoin

from hypothesis import given
from hypothesis import strategies as st

from bot.discover import (
    CANDIDATE_PATHS,
    FEED_TYPES,
    candidate_urls,
    declared_feeds,
    discover,
    read_page,
)
from bot.fetch import Fetcher, normalize_url
from testkit.feed_server import FeedServer

PAGE = "https://site.example/blog/post.html"


def link(href: str, mime: str = "application/rss+xml", rel: str = "alternate") -> str:
    return f'<link rel="{rel}" type="{mime}" href="{html.escape(href)}">'


def test_declared_feeds_of_every_type_resolved_in_page_order():
    page = (
        "<html><head>"
        + link("feed.xml")
        + link("/atom", "application/atom+xml")
        + link("https://other.example/f.json", "application/feed+json")
        + link("/style.css", "text/css", rel="stylesheet")
        + link("/comments", "application/rss+xml", rel="ALTERNATE nofollow")
        + '<link rel="alternate" hreflang="de" href="/de/">'
        + "</head><body><a rel=alternate type=application/rss+xml href=/not-a-link>x</a>"
        "</body></html>"
    )
    assert [(f.url, f.kind) for f in declared_feeds(page, PAGE)] == [
        ("https://site.example/blog/feed.xml", "RSS"),
        ("https://site.example/atom", "Atom"),
        ("https://other.example/f.json", "JSON Feed"),
        ("https://site.example/comments", "RSS"),
    ]


def test_base_href_and_entities_and_duplicates():
    page = (
        '<head><base href="https://cdn.example/b/"><base href="/ignored/">'
        + link("rss?a=1&b=2")
        + link("https://cdn.example/b/rss?a=1&b=2")  # the same feed again
        + link("javascript:alert(1)")
        + link("", "application/atom+xml")
        + "</head>"
    )
    assert [f.url for f in declared_feeds(page, PAGE)] == ["https://cdn.example/b/rss?a=1&b=2"]
    assert declared_feeds(link("x.xml").replace('type="', 'type=" APPLICATION/RSS+XML;q'), PAGE)


def test_a_feed_document_is_no_html_page():
    assert not read_page(b"<?xml version='1.0'?><rss><channel/></rss>", PAGE).is_html
    assert read_page(b"no tags at all", PAGE, "text/html; charset=utf-8").is_html
    page = "<html><head>" + link("/f\u00e9ed") + "</head></html>"
    (feed,) = read_page(page.encode("latin-1"), PAGE, "text/html; charset=ISO-8859-1").feeds
    assert feed.url == "https://site.example/f%C3%A9ed"


hrefs = st.one_of(
    st.from_regex(r"[a-z0-9]{1,8}(/[a-z0-9._-]{1,8}){0,3}(\?[a-z]=[0-9&]{1,4})?", fullmatch=True),
    st.from_regex(r"/[a-z0-9]{1,8}(/[a-z0-9._-]{1,8}){0,3}", fullmatch=True),
    st.from_regex(r"https://[a-z]{1,8}\.example/[a-z0-9/]{0,12}", fullmatch=True),
)
noise = st.sampled_from(["<p>text</p>", "<div>", "<!-- c -->", "<script>var a='<';</script>", ""])


@given(st.lists(st.tuples(hrefs, st.sampled_from(sorted(FEED_TYPES)), noise), max_size=12))
def test_every_declared_link_found_once_in_order(items):
    page = "<html><head>" + "".join(noise + link(h, m) for h, m, noise in items) + "</head>"
    expected: list[str] = []
    for href, _, _ in items:
        url = normalize_url(urljoin(PAGE, href))
        if url not in expected:
            expected.append(url)
    assert [f.url for f in declared_feeds(page, PAGE)] == expected


@given(st.from_regex(r"https://[a-z]{1,10}\.example(/[a-z0-9]{1,6}){0,3}/?", fullmatch=True))
def test_candidates_beside_the_page_then_at_the_root(page_url):
    candidates = candidate_urls(page_url)
    root = urljoin(page_url, "/")
    assert candidates[-len(CANDIDATE_PATHS) :] == [root + path for path in CANDIDATE_PATHS]
    assert len(candidates) == len(set(candidates))
    assert page_url not in candidates
    directory = urljoin(page_url, ".")
    assert candidates[0] == directory + CANDIDATE_PATHS[0]


# ---------------------------------------------------------------- against a feed server


async def test_discover_takes_the_declared_feed(feeds: FeedServer):
    feeds.rss("/blog/feed.xml", title="The Blog").publish("Post")
    feeds.set_feed("/blog/", "<html><head>" + link("feed.xml") + "</head></html>", "text/html")
    fetcher = Fetcher(timeout=5, allow_private=True)
    try:
        found = await discover(fetcher, feeds.url("/blog/"))
    finally:
        await fetcher.aclose()
    assert found.found is not None and found.found.how == "declared"
    assert found.found.url == feeds.url("/blog/feed.xml")
    assert found.found.parsed.title == "The Blog"
    assert feeds.count("/feed") == 0  # nothing guessed when the page says


async def test_discover_skips_a_declared_feed_that_fails(feeds: FeedServer):
    feeds.fail("/broken.xml", status=500)
    feeds.atom("/good.atom", title="Good").publish("x")
    page = "<html><head>" + link("/broken.xml") + link("/good.atom", "application/atom+xml")
    feeds.set_feed("/page", page, "text/html")
    fetcher = Fetcher(timeout=5, allow_private=True)
    try:
        picked = await discover(fetcher, feeds.url("/page"))
        listed = await discover(fetcher, feeds.url("/page"), pick_one=False)
    finally:
        await fetcher.aclose()
    assert picked.found is not None and picked.found.url == feeds.url("/good.atom")
    # For a choice, the list alone, nothing fetched but the page.
    assert listed.found is None and listed.choice_needed
    assert [f.url for f in listed.declared] == [feeds.url("/broken.xml"), feeds.url("/good.atom")]


async def test_discover_tries_the_usual_paths_when_none_is_declared(feeds: FeedServer):
    feeds.set_feed("/docs/index.html", "<html><body>No links</body></html>", "text/html")
    feeds.rss("/docs/index.xml", title="Docs").publish("x")
    feeds.set_feed("/lonely/page.html", "<html><body>Alone</body></html>", "text/html")
    fetcher = Fetcher(timeout=5, allow_private=True)
    try:
        found = await discover(fetcher, feeds.url("/docs/index.html"))
        nothing = await discover(fetcher, feeds.url("/lonely/page.html"))
    finally:
        await fetcher.aclose()
    assert found.found is not None and found.found.how == "guessed"
    assert found.found.url == feeds.url("/docs/index.xml")  # beside the page comes first
    assert [r.path for r in feeds.requests][:4] == [
        "/docs/index.html",
        "/docs/feed",
        "/docs/rss",
        "/docs/atom.xml",
    ]
    assert nothing.found is None and nothing.is_html and not nothing.declared
    assert feeds.count("/lonely/feed.json") == feeds.count("/feed.json") == 1


async def test_a_feed_is_its_own_discovery(feeds: FeedServer):
    feeds.rss("/f.xml", title="Direct").publish("x")
    fetcher = Fetcher(timeout=5, allow_private=True)
    try:
        found = await discover(fetcher, feeds.url("/f.xml"))
    finally:
        await fetcher.aclose()
    assert found.was_feed and found.found is not None and found.found.parsed.title == "Direct"
