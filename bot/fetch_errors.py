"""How a fetch fails: :class:`FetchError` and the one sentence for each kind of
network or protocol failure (aiohttp's exceptions mapped to words a user can
act on)."""

from __future__ import annotations

import socket
import ssl
from http import HTTPStatus
from urllib.parse import urlsplit

import aiohttp

from bot.address_guard import RefusedAddress

__all__ = ["FetchError", "host_of", "reason", "size_text", "transport_error"]


class FetchError(Exception):
    """A fetch failed. ``str(e)`` is one user-facing sentence."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        gone: bool = False,
    ) -> None:
        super().__init__(message)
        #: HTTP status if the server answered.
        self.status = status
        #: Seconds to wait, from Retry-After (delta or HTTP-date).
        self.retry_after = retry_after
        #: The server answered 410 Gone.
        self.gone = gone


def reason(status: int, phrase: str) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return phrase.strip() or "Error"


def size_text(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000} MB"
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f} MB"
    if n >= 1000:
        return f"{n // 1000} KB"
    return f"{n} bytes"


def host_of(url: str) -> str:
    try:
        return urlsplit(url).hostname or url
    except ValueError:
        return url


def _cause_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or current.__context__
    if isinstance(exc, aiohttp.ClientConnectorError) and id(exc.os_error) not in seen:
        chain.append(exc.os_error)
    return chain


def transport_error(exc: BaseException, url: str) -> FetchError:
    """One sentence for a failed connection or a broken answer."""
    host = host_of(url)
    chain = _cause_chain(exc)
    for e in chain:
        if isinstance(e, RefusedAddress):
            return FetchError(str(e))
    if any(isinstance(e, socket.gaierror) for e in chain):
        return FetchError(f"Could not find the server {host} (DNS lookup failed).")
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return FetchError(f"Could not connect to {host}: connection refused.")
    if any(
        isinstance(e, ssl.SSLCertVerificationError | aiohttp.ClientConnectorCertificateError)
        for e in chain
    ):
        return FetchError(f"Could not connect to {host}: its TLS certificate is not valid.")
    if any(isinstance(e, ssl.SSLError | aiohttp.ClientSSLError) for e in chain):
        return FetchError(f"Could not connect to {host}: the TLS handshake failed.")
    if any(isinstance(e, ConnectionResetError) for e in chain):
        return FetchError(f"The connection to {host} was reset.")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return FetchError(f"Could not connect to {host}.")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return FetchError(f"The server {host} closed the connection without an answer.")
    if isinstance(exc, aiohttp.ClientResponseError | aiohttp.ClientPayloadError):
        return FetchError(f"The server {host} sent an invalid HTTP response.")
    return FetchError(f"The connection to {host} failed.")
