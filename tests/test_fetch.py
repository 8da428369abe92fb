"""bot.fetch against the local FeedServer (and a raw aiohttp server for answers
the feed server does not give). Address rules: test_fetch_ssrf.py; caps on
size, time and decompression: test_fetch_caps.py; URL rules: test_urls.py."""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import socket
import time

import pytest
from aiohttp import web

from bot.fetch import Fetcher, FetchError
from testkit.feed_server import FeedServer
from testkit.raw_server import raw_server


@pytest.fixture
async def server():
    async with FeedServer() as srv:
        yield srv


@pytest.fixture
async def fetcher():
    async with Fetcher(allow_private=True, timeout=3.0) as f:
        yield f


# ------------------------------------------------------------------ 200 / 304


async def test_200_then_304_on_conditional_fetch(server, fetcher):
    feed = server.rss("/news.xml", title="News")
    feed.publish("Hello", html="<p>world</p>")
    url = server.url("/news.xml")

    first = await fetcher.fetch(url)
    assert first.status == 200
    assert first.url == url
    assert b"Hello" in first.body
    assert first.content_type.startswith("application/rss+xml")
    assert first.etag and first.last_modified
    assert first.body_hash == hashlib.sha256(first.body).hexdigest()
    assert first.permanent_url is None and first.max_age is None

    second = await fetcher.fetch(url, etag=first.etag, last_modified=first.last_modified)
    assert second.status == 304
    assert second.body == b"" and second.body_hash is None
    assert second.etag == first.etag and second.last_modified == first.last_modified
    record = server.requests[-1]
    assert record.if_none_match == first.etag
    assert record.if_modified_since == first.last_modified

    by_date = await fetcher.fetch(url, last_modified=first.last_modified)
    assert by_date.status == 304

    feed.publish("Again")
    third = await fetcher.fetch(url, etag=first.etag, last_modified=first.last_modified)
    assert third.status == 200 and b"Again" in third.body
    assert third.etag != first.etag


async def test_request_headers(server, fetcher):
    server.set_feed("/a.xml", "<rss/>")
    await fetcher.fetch(server.url("/a.xml"))
    record = server.requests[0]
    assert record.user_agent.startswith("feedbot/")
    assert record.accept.startswith("application/rss+xml")
    assert "gzip" in record.accept_encoding


async def test_gzip_is_decoded(server, fetcher):
    body = ("<rss>" + "x" * 50_000 + "</rss>").encode()
    server.set_feed("/big.xml", body)
    result = await fetcher.fetch(server.url("/big.xml"))
    assert server.requests[0].gzipped
    assert result.body == body
    assert result.body_hash == hashlib.sha256(body).hexdigest()


async def test_server_ignoring_validators_gives_same_body_hash(server, fetcher):
    server.rss("/a.xml").publish("x")
    server.ignore_validators("/a.xml")
    a = await fetcher.fetch(server.url("/a.xml"))
    b = await fetcher.fetch(server.url("/a.xml"), etag=a.etag)
    assert (a.status, b.status) == (200, 200)
    assert a.body_hash == b.body_hash


async def test_cache_control_and_content_location(server, fetcher):
    server.set_feed("/a.xml", "<rss/>")
    server.set_headers(
        "/a.xml", {"Cache-Control": "public, max-age=3600", "Content-Location": "b.xml"}
    )
    result = await fetcher.fetch(server.url("/a.xml"))
    assert result.max_age == 3600
    assert result.content_location == server.url("/b.xml")


async def test_max_age_comes_with_304_too(server, fetcher):
    server.set_feed("/a.xml", "<rss/>")
    server.set_headers("/a.xml", {"Cache-Control": "max-age=900, must-revalidate"})
    first = await fetcher.fetch(server.url("/a.xml"))
    again = await fetcher.fetch(server.url("/a.xml"), etag=first.etag)
    assert again.status == 304 and again.max_age == 900


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("no-cache", None),
        ("s-maxage=60", None),
        ("private, max-age=0", 0.0),
        ('max-age="120"', 120.0),
        ("public,MAX-AGE=30", 30.0),
    ],
)
async def test_max_age_parsing(server, fetcher, header, expected):
    server.set_feed("/a.xml", "<rss/>")
    server.set_headers("/a.xml", {"Cache-Control": header})
    assert (await fetcher.fetch(server.url("/a.xml"))).max_age == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [("0", 0.0), ("-5", None), ("1.5", None), ("Mon, 01 Jan 2001 00:00:00 GMT", 0.0)],
)
async def test_retry_after_odd_values(server, fetcher, header, expected):
    server.fail("/busy.xml", status=429, headers={"Retry-After": header})
    with pytest.raises(FetchError) as info:
        await fetcher.fetch(server.url("/busy.xml"))
    assert info.value.retry_after == expected


# ------------------------------------------------------------------ limits


@pytest.mark.parametrize("gzipped", [False, True])
async def test_size_cap(gzipped):
    async with FeedServer(gzip=gzipped) as server:
        server.set_feed("/huge.xml", b"<rss>" + b"a" * 300_000 + b"</rss>")
        async with Fetcher(allow_private=True, max_bytes=100_000) as fetcher:
            with pytest.raises(FetchError, match=r"larger than 100 KB") as info:
                await fetcher.fetch(server.url("/huge.xml"))
    assert info.value.status is None


async def test_stalled_server_times_out(server):
    server.set_feed("/slow.xml", "<rss/>")
    server.stall("/slow.xml", 10)
    async with Fetcher(allow_private=True, timeout=0.5) as fetcher:
        start = time.monotonic()
        with pytest.raises(FetchError, match=r"^Timed out after 0.5 s\.$"):
            await fetcher.fetch(server.url("/slow.xml"))
    assert time.monotonic() - start < 2


async def test_trickling_server_times_out_overall():
    # 20 bytes every 0.05 s: each read is quick, the whole body would take 10 s.
    async with FeedServer(gzip=False) as server:
        server.set_feed("/drip.xml", b"<rss>" + b" " * 4000 + b"</rss>")
        server.trickle("/drip.xml", chunk_size=20, interval=0.05)
        async with Fetcher(allow_private=True, timeout=0.6) as fetcher:
            start = time.monotonic()
            with pytest.raises(FetchError, match="Timed out"):
                await fetcher.fetch(server.url("/drip.xml"))
        assert time.monotonic() - start < 2.5
        assert server.requests[0].status == 200


async def test_concurrency_is_bounded(server):
    for i in range(6):
        server.set_feed(f"/{i}.xml", "<rss/>")
        server.stall(f"/{i}.xml", 0.15)
    async with Fetcher(allow_private=True, concurrency=2) as fetcher:
        results = await asyncio.gather(*(fetcher.fetch(server.url(f"/{i}.xml")) for i in range(6)))
    assert all(r.status == 200 for r in results)
    assert server.max_in_flight == 2


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("status", "message", "gone"),
    [
        (404, r"^The server answered 404 Not Found\.$", False),
        (410, r"^The server answered 410 Gone", True),
        (500, r"^The server answered 500 Internal Server Error\.$", False),
        (403, r"^The server answered 403 Forbidden\.$", False),
    ],
)
async def test_http_errors(server, fetcher, status, message, gone):
    server.fail("/x.xml", status=status)
    with pytest.raises(FetchError, match=message) as info:
        await fetcher.fetch(server.url("/x.xml"))
    assert info.value.status == status
    assert info.value.gone is gone
    assert info.value.retry_after is None


async def test_unknown_path_404(server, fetcher):
    with pytest.raises(FetchError) as info:
        await fetcher.fetch(server.url("/missing.xml"))
    assert info.value.status == 404


async def test_retry_after_seconds_and_date(server, fetcher):
    server.fail("/busy.xml", status=429, headers={"Retry-After": "120"})
    with pytest.raises(FetchError) as info:
        await fetcher.fetch(server.url("/busy.xml"))
    assert info.value.status == 429 and info.value.retry_after == 120

    when = email.utils.formatdate(time.time() + 90, usegmt=True)
    server.fail("/down.xml", status=503, headers={"Retry-After": when})
    with pytest.raises(FetchError) as info:
        await fetcher.fetch(server.url("/down.xml"))
    assert info.value.status == 503
    assert 80 <= info.value.retry_after <= 91

    server.fail("/past.xml", status=503, headers={"Retry-After": "garbage"})
    with pytest.raises(FetchError) as info:
        await fetcher.fetch(server.url("/past.xml"))
    assert info.value.retry_after is None


async def test_failure_then_recovery(server, fetcher):
    server.set_feed("/f.xml", "<rss/>")
    server.fail("/f.xml", status=502, times=1)
    with pytest.raises(FetchError):
        await fetcher.fetch(server.url("/f.xml"))
    assert (await fetcher.fetch(server.url("/f.xml"))).status == 200


async def test_unreachable_port_is_a_clear_error(fetcher):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(FetchError) as info:
        await fetcher.fetch(f"http://127.0.0.1:{port}/feed.xml")
    assert str(info.value) == "Could not connect to 127.0.0.1: connection refused."
    assert info.value.status is None


async def test_dns_failure_message():
    async def resolve(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async with Fetcher(resolve=resolve) as fetcher:
        with pytest.raises(FetchError) as info:
            await fetcher.fetch("https://nowhere.example/feed")
    assert str(info.value) == "Could not find the server nowhere.example (DNS lookup failed)."


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_undecodable_body_is_a_fetch_error(fetcher, encoding):
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=b"not compressed at all", headers={"Content-Encoding": encoding})

    async with raw_server(handler) as base:
        with pytest.raises(
            FetchError, match=r"^The server 127\.0\.0\.1 sent a body that could not"
        ):
            await fetcher.fetch(base + "/feed")


async def test_server_closing_without_answer_is_one_sentence(fetcher):
    async def handler(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    async with raw_server(handler) as base:
        with pytest.raises(FetchError) as info:
            await fetcher.fetch(base + "/feed")
    assert str(info.value).startswith("The server 127.0.0.1 ")
    assert str(info.value).count(".") >= 1 and "\n" not in str(info.value)


async def test_non_http_scheme_refused(fetcher):
    with pytest.raises(FetchError, match="http and https"):
        await fetcher.fetch("ftp://example.com/feed.xml")


# ------------------------------------------------------------------ redirects


async def test_permanent_redirect_chain_gives_permanent_url(server, fetcher):
    server.set_feed("/c.xml", "<rss/>")
    server.redirect("/a.xml", "/b.xml", status=301)
    server.redirect("/b.xml", "/c.xml", status=308)
    result = await fetcher.fetch(server.url("/a.xml"))
    assert result.status == 200
    assert result.url == server.url("/c.xml")
    assert result.permanent_url == server.url("/c.xml")


@pytest.mark.parametrize("statuses", [(302,), (301, 302), (307, 301)])
async def test_temporary_hop_means_no_permanent_url(server, fetcher, statuses):
    server.set_feed("/end.xml", "<rss/>")
    paths = [f"/hop{i}.xml" for i in range(len(statuses))] + ["/end.xml"]
    for i, status in enumerate(statuses):
        server.redirect(paths[i], paths[i + 1], status=status)
    result = await fetcher.fetch(server.url(paths[0]))
    assert result.url == server.url("/end.xml")
    assert result.permanent_url is None


async def test_permanent_redirect_then_304(server, fetcher):
    server.set_feed("/new.xml", "<rss/>")
    server.redirect("/old.xml", "/new.xml", status=301)
    first = await fetcher.fetch(server.url("/old.xml"))
    again = await fetcher.fetch(server.url("/old.xml"), etag=first.etag)
    assert again.status == 304
    assert again.permanent_url == server.url("/new.xml")


async def test_redirect_loop(server, fetcher):
    server.redirect("/x.xml", "/y.xml", status=302)
    server.redirect("/y.xml", "/x.xml", status=302)
    with pytest.raises(FetchError, match="loop"):
        await fetcher.fetch(server.url("/x.xml"))


async def test_too_many_redirects(server, fetcher):
    for i in range(7):
        server.redirect(f"/r{i}", f"/r{i + 1}", status=301)
    server.set_feed("/r7", "<rss/>")
    with pytest.raises(FetchError, match=r"Too many redirects \(more than 5\)"):
        await fetcher.fetch(server.url("/r0"))
    assert server.count("/r5") == 1 and server.count("/r6") == 0


async def test_five_redirects_are_fine(server, fetcher):
    for i in range(5):
        server.redirect(f"/r{i}", f"/r{i + 1}", status=301)
    server.set_feed("/r5", "<rss/>")
    assert (await fetcher.fetch(server.url("/r0"))).permanent_url == server.url("/r5")


async def test_redirect_to_other_scheme_refused(server, fetcher):
    server.redirect("/x.xml", "file:///etc/passwd", status=302)
    with pytest.raises(FetchError, match="not http or https"):
        await fetcher.fetch(server.url("/x.xml"))


# ------------------------------------------------------------------ private addresses


async def test_private_address_refused_by_default(server):
    server.set_feed("/a.xml", "<rss/>")
    async with Fetcher() as fetcher:
        with pytest.raises(FetchError) as info:
            await fetcher.fetch(server.url("/a.xml"))
    assert str(info.value) == "Refusing to fetch a private network address (127.0.0.1)."
    assert server.count("/a.xml") == 0


@pytest.mark.parametrize("url", ["http://[::1/feed", "http://example.com:99999/", "http:///feed"])
async def test_invalid_urls_are_fetch_errors(fetcher, url):
    with pytest.raises(FetchError):
        await fetcher.fetch(url)
