"""The test feed server itself behaves like a polite feed server."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bot.parse import parse_feed
from testkit.feed_server import FeedServer


@pytest.fixture
async def server():
    async with FeedServer() as srv:
        yield srv


@pytest.fixture
async def client():
    async with httpx.AsyncClient() as c:
        yield c


async def test_unknown_path_is_404(server, client):
    response = await client.get(server.url("/nope.xml"))
    assert response.status_code == 404
    assert server.count("/nope.xml") == 1
    assert server.requests[0].status == 404


async def test_live_rss_feed_publishes_newest_first_and_changes_validators(server, client):
    feed = server.rss("/news.xml", title="News")
    old = datetime(2024, 1, 1, tzinfo=UTC)
    feed.publish("First", html="<p>one</p>", pub_date=old)
    r1 = await client.get(server.url("/news.xml"))
    feed.publish("Second", pub_date=old + timedelta(days=1), categories=["a"], author="Ann")
    r2 = await client.get(server.url("/news.xml"))
    assert r1.headers["etag"] != r2.headers["etag"]
    assert r1.headers["last-modified"] != r2.headers["last-modified"]
    parsed = parse_feed(r2.content, url=server.url("/news.xml"))
    assert parsed.title == "News"
    assert [e.title for e in parsed.entries] == ["Second", "First"]
    assert parsed.entries[1].html == "<p>one</p>"
    assert parsed.entries[0].categories == ("a",)
    feed.remove(feed.items[0]["guid"])
    r3 = await client.get(server.url("/news.xml"))
    assert [e.title for e in parse_feed(r3.content, url="http://x/").entries] == ["Second"]


async def test_conditional_get_and_head(server, client):
    server.rss("/a.xml").publish("x")
    first = await client.get(server.url("/a.xml"))
    by_etag = await client.get(
        server.url("/a.xml"), headers={"If-None-Match": first.headers["etag"]}
    )
    by_date = await client.get(
        server.url("/a.xml"), headers={"If-Modified-Since": first.headers["last-modified"]}
    )
    assert (by_etag.status_code, by_date.status_code) == (304, 304)
    assert server.requests[1].if_none_match == first.headers["etag"]
    head = await client.head(server.url("/a.xml"))
    assert head.status_code == 200 and head.content == b""
    server.ignore_validators("/a.xml")
    again = await client.get(server.url("/a.xml"), headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 200


async def test_gzip_only_when_accepted(server):
    server.set_feed("/g.xml", "<rss/>" * 100)
    async with httpx.AsyncClient(headers={"Accept-Encoding": "identity"}) as plain:
        await plain.get(server.url("/g.xml"))
    async with httpx.AsyncClient(headers={"Accept-Encoding": "gzip"}) as zipped:
        r = await zipped.get(server.url("/g.xml"))
    assert r.content == b"<rss/>" * 100
    assert [rec.gzipped for rec in server.requests] == [False, True]
    raw = gzip.compress(b"<rss/>" * 100, mtime=0)
    assert int(r.headers["content-length"]) == len(raw)


async def test_fail_redirect_and_headers(server, client):
    server.set_feed("/f.xml", "<rss/>")
    server.fail("/f.xml", status=503, times=1, headers={"Retry-After": "7"})
    server.set_headers("/f.xml", {"Cache-Control": "max-age=60"})
    r1 = await client.get(server.url("/f.xml"))
    r2 = await client.get(server.url("/f.xml"))
    assert (r1.status_code, r1.headers["retry-after"]) == (503, "7")
    assert (r2.status_code, r2.headers["cache-control"]) == (200, "max-age=60")
    server.redirect("/old.xml", "/f.xml", status=308)
    r3 = await client.get(server.url("/old.xml"))
    assert r3.status_code == 308 and r3.headers["location"] == server.url("/f.xml")


async def test_atom_builder(server, client):
    feed = server.atom("/a.atom", title="Atom & Co")
    feed.publish("A <b>", html="<i>x</i>", enclosures=[("http://e/x.mp3", "audio/mpeg", 10)])
    r = await client.get(server.url("/a.atom"))
    parsed = parse_feed(
        r.content, url=server.url("/a.atom"), content_type=r.headers["content-type"]
    )
    assert parsed.title == "Atom & Co"
    (entry,) = parsed.entries
    assert entry.title == "A <b>"
    assert entry.media[0].kind == "audio"


async def test_same_second_publishes_list_the_last_first(server, client):
    feed = server.rss("/s.xml")
    when = datetime(2024, 1, 1, tzinfo=UTC)
    for n in range(1, 4):
        feed.publish(f"Story {n}", pub_date=when)
    r = await client.get(server.url("/s.xml"))
    titles = [e.title for e in parse_feed(r.content, url=server.url("/s.xml")).entries]
    assert titles == ["Story 3", "Story 2", "Story 1"]
