"""Content-Encoding decoders that stop at a size cap.

The fetcher asks aiohttp for the raw body and decodes it here, so the cap
applies to the DECOMPRESSED size and a bomb (a few KB of gzip, deflate or
brotli that expand to gigabytes) is refused after at most ``cap + 64 KB`` of
output, never expanded whole in memory.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Protocol

import brotli

__all__ = ["Capped", "Decoder", "TooLarge", "UndecodableBody", "decoder_for"]

#: Output produced per decompressor call.
_STEP = 65_536


class TooLarge(Exception):
    """The decoded body passed the cap."""


class UndecodableBody(Exception):
    """The body is not valid in the encoding the server declared."""


class Decoder(Protocol):
    """Yields the decoded output in pieces of at most 64 KB, so the cap is
    checked between pieces."""

    def feed(self, data: bytes) -> Iterator[bytes]: ...
    def finish(self) -> bytes: ...


class _Identity:
    def feed(self, data: bytes) -> Iterator[bytes]:
        yield data

    def finish(self) -> bytes:
        return b""


class _Zlib:
    """gzip (wbits 31, members one after another) or deflate (zlib-wrapped,
    or raw as some servers send it)."""

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._wbits = 31 if gzip else 15
        self._obj = zlib.decompressobj(self._wbits)
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data:
            if self._obj.eof:
                if not self._gzip or not data.strip(b"\0"):
                    return  # trailing bytes after a deflate stream, or gzip padding
                self._obj = zlib.decompressobj(self._wbits)  # the next gzip member
            try:
                piece = self._obj.decompress(data, _STEP)
            except zlib.error:
                if self._wbits != 15 or self._started:
                    raise UndecodableBody from None
                self._wbits = -15  # "deflate" sent raw, without the zlib header
                self._obj = zlib.decompressobj(self._wbits)
                continue
            self._started = True
            yield piece
            data = self._obj.unused_data if self._obj.eof else self._obj.unconsumed_tail

    def finish(self) -> bytes:
        if self._obj.eof:
            return b""
        try:
            tail = self._obj.flush()
        except zlib.error:
            raise UndecodableBody from None
        if not self._obj.eof:
            raise UndecodableBody  # the stream stopped half way
        return tail


class _Brotli:
    def __init__(self) -> None:
        self._obj = brotli.Decompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            yield self._obj.process(data, output_buffer_limit=_STEP)
            while not self._obj.is_finished():
                piece = self._obj.process(b"", output_buffer_limit=_STEP)
                if not piece and self._obj.can_accept_more_data():
                    break  # needs more input
                yield piece
        except brotli.error:
            raise UndecodableBody from None

    def finish(self) -> bytes:
        if not self._obj.is_finished():
            raise UndecodableBody  # the stream stopped half way
        return b""


class Capped:
    """Decode with ``decoder``, raising :class:`TooLarge` once the output
    passes ``cap`` bytes."""

    def __init__(self, decoder: Decoder, cap: int) -> None:
        self._decoder = decoder
        self._cap = cap
        self._chunks: list[bytes] = []
        self._size = 0

    def _add(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._cap:
            raise TooLarge
        self._chunks.append(data)

    def feed(self, data: bytes) -> None:
        for piece in self._decoder.feed(data):
            self._add(piece)

    def finish(self) -> bytes:
        self._add(self._decoder.finish())
        return b"".join(self._chunks)


def decoder_for(content_encoding: str | None) -> Decoder:
    """The decoder for a Content-Encoding header; raises UndecodableBody for
    an encoding feedbot did not offer."""
    coding = (content_encoding or "").strip().lower()
    if coding in ("", "identity"):
        return _Identity()
    if coding in ("gzip", "x-gzip"):
        return _Zlib(gzip=True)
    if coding == "deflate":
        return _Zlib(gzip=False)
    if coding == "br":
        return _Brotli()
    raise UndecodableBody
