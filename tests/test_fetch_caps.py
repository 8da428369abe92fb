"""Resource caps of the fetcher (issue 9): the size cap on what is received and
on what it decompresses to, and the overall deadline."""

from __future__ import annotations

import asyncio
import gzip
import time
import zlib

import brotli
import pytest
from aiohttp import web

from bot.fetch import Fetcher, FetchError
from testkit.raw_server import raw_server

DOC = b"<rss><channel><title>caps</title></channel></rss>" + b" " * 2000

ENCODERS = {
    "gzip": lambda b: gzip.compress(b, mtime=0),
    "deflate": zlib.compress,  # zlib-wrapped, as RFC 9110 says
    "br": lambda b: brotli.compress(b, quality=5),
}


def _answer(body: bytes, encoding: str | None, *, chunked: bool = False):
    async def handler(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Type": "application/rss+xml"}
        if encoding:
            headers["Content-Encoding"] = encoding
        if not chunked:
            return web.Response(body=body, headers=headers)
        response = web.StreamResponse(headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(0, len(body), 65536):
            await response.write(body[i : i + 65536])
        await response.write_eof()
        return response

    return handler


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
async def test_each_encoding_is_decoded(encoding):
    seen = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Accept-Encoding", ""))
        return await _answer(ENCODERS[encoding](DOC), encoding)(request)

    async with raw_server(handler) as base, Fetcher(allow_private=True) as fetcher:
        result = await fetcher.fetch(base + "/feed")
    assert result.body == DOC
    assert seen == ["gzip, deflate, br"]


async def test_raw_deflate_is_decoded_too():
    raw = zlib.compressobj(wbits=-15)
    body = raw.compress(DOC) + raw.flush()
    async with raw_server(_answer(body, "deflate")) as base, Fetcher(allow_private=True) as f:
        assert (await f.fetch(base + "/feed")).body == DOC


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
async def test_decompression_bomb_refused_at_the_cap(encoding):
    # 60 MB of zeros compress to well under the cap; decoded they are 12x it.
    bomb = ENCODERS[encoding](b"\0" * 60_000_000)
    assert len(bomb) < 5_000_000
    async with (
        raw_server(_answer(bomb, encoding, chunked=True)) as base,
        Fetcher(allow_private=True) as fetcher,
    ):
        with pytest.raises(FetchError) as info:
            await fetcher.fetch(base + "/bomb")
    assert str(info.value) == "The feed is larger than 5 MB."


async def test_default_cap_is_5_mb_while_streaming():
    body = b"<rss>" + b"a" * 5_000_001 + b"</rss>"
    small = b"<rss>" + b"a" * 4_000_000 + b"</rss>"
    async with (
        raw_server(_answer(body, None, chunked=True)) as base,
        Fetcher(allow_private=True) as fetcher,
    ):
        with pytest.raises(FetchError, match=r"^The feed is larger than 5 MB\.$"):
            await fetcher.fetch(base + "/big")
    async with (
        raw_server(_answer(small, None, chunked=True)) as base,
        Fetcher(allow_private=True) as fetcher,
    ):
        assert (await fetcher.fetch(base + "/ok")).body == small


async def test_truncated_compressed_body_is_a_fetch_error():
    body = gzip.compress(DOC * 50, mtime=0)[:-40]
    async with raw_server(_answer(body, "gzip")) as base, Fetcher(allow_private=True) as f:
        with pytest.raises(FetchError, match="could not be decompressed"):
            await f.fetch(base + "/feed")


async def test_one_byte_a_second_hits_the_overall_deadline():
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})
        await response.prepare(request)
        for byte in DOC:
            await response.write(bytes([byte]))
            await asyncio.sleep(1)
        return response

    async with raw_server(handler) as base, Fetcher(allow_private=True, timeout=1.5) as f:
        start = time.monotonic()
        with pytest.raises(FetchError, match=r"^Timed out after 1.5 s\.$"):
            await f.fetch(base + "/drip")
    assert time.monotonic() - start < 3
