"""HTTP at the edge: fetch a feed politely and safely.

One shared :class:`aiohttp.ClientSession` (chosen over httpx by
``python -m bench.http``: see bench/README.md), a semaphore bounding the
requests in flight, conditional GET, an overall deadline per fetch (a server
trickling bytes still times out), a streamed size cap on both the bytes
received and the decompressed body (gzip, deflate and brotli decoded here, so
a bomb is stopped at the cap), and redirects followed by hand (at most 5, http
and https only) so every hop goes through the same checks and a chain of
permanent redirects can be reported (``FetchResult.permanent_url``).

Addresses (bot/address_guard.py): a literal address in the URL is checked
before the request; a name is resolved once by the session's resolver, every
address checked, and the connection made only to those addresses, so DNS
rebinding cannot reach a private address. ``allow_private`` lifts the rule,
``allow_hosts`` lifts it for the hosts named.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit, urlunsplit

import aiohttp
import yarl

from bot.address_guard import (
    AddressPolicy,
    GuardedResolver,
    RefusedAddress,
    Resolve,
    system_resolve,
)
from bot.decompress import Capped, TooLarge, UndecodableBody, decoder_for
from bot.fetch_errors import FetchError, host_of, size_text, transport_error
from bot.fetch_errors import reason as status_reason
from bot.identity import body_hash
from bot.urls import InvalidURL, normalize_url

if TYPE_CHECKING:
    from aiohappyeyeballs import SocketFactoryType  # aiohttp's own dependency

__all__ = ["FetchError", "FetchResult", "Fetcher", "InvalidURL", "normalize_url"]

DEFAULT_USER_AGENT = "feedbot/0.1 (+https://github.com/feedbot/feedbot)"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/rdf+xml;q=0.9, application/xml;q=0.9, text/xml;q=0.9, "
    "application/json;q=0.8, text/html;q=0.5, */*;q=0.1"
)
MAX_REDIRECTS = 5
DEFAULT_MAX_BYTES = 5_000_000
_REDIRECTS = {301, 302, 303, 307, 308}
_PERMANENT = {301, 308}


@dataclass(frozen=True, slots=True)
class FetchResult:
    #: URL finally fetched (after redirects).
    url: str
    #: 200 (or another 2xx) or 304.
    status: int
    #: b"" on 304.
    body: bytes
    content_type: str | None
    #: The Content-Location header, made absolute against ``url``.
    content_location: str | None
    #: On 304 without validators in the answer: the ones sent.
    etag: str | None
    last_modified: str | None
    #: Set when every redirect hop from the requested URL was permanent
    #: (301/308) and the final URL differs: the URL to store from now on.
    permanent_url: str | None
    #: Cache-Control max-age in seconds, if any.
    max_age: float | None
    #: sha256 hex of the body (2xx only).
    body_hash: str | None


# -------------------------------------------------------------------- headers


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # "-0000" in an HTTP-date means UTC too
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - time.time())


def _max_age(value: str | None) -> float | None:
    if not value:
        return None
    match = re.search(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", value, re.I)
    return float(match.group(1)) if match else None


# --------------------------------------------------------------------- Fetcher


class Fetcher:
    """Fetches feeds. One per process; ``await aclose()`` at shutdown.

    ``resolve`` replaces the system's DNS look-up (tests use it to play a
    rebinding DNS server); whatever it returns is checked like any answer.
    ``socket_factory`` (aiohttp's, given the address info of each connection
    attempt) lets tests see every address actually connected to.
    """

    def __init__(
        self,
        *,
        timeout: float = 20.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        allow_private: bool = False,
        allow_hosts: Iterable[str] = (),
        concurrency: int = 8,
        user_agent: str = DEFAULT_USER_AGENT,
        resolve: Resolve | None = None,
        socket_factory: SocketFactoryType | None = None,
    ) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.allow_private = allow_private
        self.concurrency = concurrency
        self._policy = AddressPolicy.build(allow_private, allow_hosts)
        self._resolve = resolve or system_resolve
        self._socket_factory = socket_factory
        self._semaphore = asyncio.Semaphore(concurrency)
        self._headers = {
            "User-Agent": user_agent,
            "Accept": ACCEPT,
            "Accept-Encoding": "gzip, deflate, br",
        }
        # Made on first use: aiohttp wants a running event loop.
        self._session: aiohttp.ClientSession | None = None

    @property
    def policy(self) -> AddressPolicy:
        """The address rule, for whatever else must follow it (bot/media_guard.py)."""
        return self._policy

    @property
    def resolve(self) -> Resolve:
        return self._resolve

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self._policy, self._resolve),
                limit=self.concurrency,
                keepalive_timeout=30.0,
                # Cached answers came through the resolver, so were checked.
                ttl_dns_cache=10,
                socket_factory=self._socket_factory,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                # Decoded in bot/decompress.py, with a cap on the output.
                auto_decompress=False,
                trust_env=False,
                # One feed's cookies are no business of another's.
                cookie_jar=aiohttp.DummyCookieJar(),
                # The deadline is fetch()'s, over the whole exchange.
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        """GET ``url`` (conditionally when validators are given).

        Returns a 2xx or 304 :class:`FetchResult`; raises :class:`FetchError`
        for everything else (HTTP errors, network errors, timeouts, size cap,
        refused addresses, redirect trouble).
        """
        async with self._semaphore:
            try:
                async with asyncio.timeout(self.timeout):
                    return await self._fetch(url, etag, last_modified)
            except TimeoutError:
                raise FetchError(f"Timed out after {self.timeout:g} s.") from None

    # -- internals ------------------------------------------------------------

    @staticmethod
    @functools.lru_cache(maxsize=4096)
    def _target(url: str) -> yarl.URL:
        """The checked request URL. Cached: every poll of a feed asks again
        for the same URL, and parsing it twice (urlsplit, yarl) was a tenth
        of a 304's cost; a refused URL raises each time (not cached)."""
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a bad port
            target = yarl.URL(url)
        except (ValueError, TypeError):
            raise FetchError("The address is not a valid URL.") from None
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise FetchError("Only http and https addresses can be fetched.")
        if not target.raw_host:
            raise FetchError("The address is not a valid URL.")
        return target

    async def _fetch(self, url: str, etag: str | None, last_modified: str | None) -> FetchResult:
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified

        session = self._client()
        current = url
        visited = {url}
        all_permanent = True
        for hop in range(MAX_REDIRECTS + 1):
            target = self._target(current)
            try:
                # The resolver checks names; a literal address never reaches it.
                self._policy.check_url_host(target.raw_host or "")
            except RefusedAddress as exc:
                raise FetchError(str(exc)) from None
            try:
                response = await session.get(target, headers=headers, allow_redirects=False)
            except TimeoutError:
                raise
            except (aiohttp.InvalidURL, ValueError):
                raise FetchError("The address is not a valid URL.") from None
            except (aiohttp.ClientError, OSError) as exc:
                raise transport_error(exc, current) from exc

            async with response:
                status = response.status
                if status in _REDIRECTS:
                    current = self._next_hop(response, current, hop, visited)
                    all_permanent = all_permanent and status in _PERMANENT
                    continue
                if status == 304:
                    return FetchResult(
                        url=current,
                        status=304,
                        body=b"",
                        content_type=response.headers.get("content-type"),
                        content_location=None,
                        etag=response.headers.get("etag") or etag,
                        last_modified=response.headers.get("last-modified") or last_modified,
                        permanent_url=self._permanent(url, current, all_permanent),
                        max_age=_max_age(response.headers.get("cache-control")),
                        body_hash=None,
                    )
                if not 200 <= status < 300:
                    raise self._status_error(response)
                body = await self._read_capped(response, current)

            location_header = response.headers.get("content-location")
            return FetchResult(
                url=current,
                status=status,
                body=body,
                content_type=response.headers.get("content-type"),
                content_location=urljoin(current, location_header.strip())
                if location_header
                else None,
                etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"),
                permanent_url=self._permanent(url, current, all_permanent),
                max_age=_max_age(response.headers.get("cache-control")),
                body_hash=body_hash(body),
            )
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _next_hop(
        response: aiohttp.ClientResponse, current: str, hop: int, visited: set[str]
    ) -> str:
        status = response.status
        location = response.headers.get("location")
        if not location:
            reason = status_reason(status, response.reason or "")
            raise FetchError(
                f"The server answered {status} {reason} without saying where to.",
                status=status,
            )
        if hop == MAX_REDIRECTS:
            raise FetchError(f"Too many redirects (more than {MAX_REDIRECTS}).", status=status)
        try:
            target = urljoin(current, location.strip())
            target = urlunsplit(urlsplit(target)._replace(fragment=""))
        except ValueError:
            raise FetchError(
                "The server redirects to an address that is not valid.", status=status
            ) from None
        if target in visited:
            raise FetchError("The server redirects in a loop.", status=status)
        if urlsplit(target).scheme.lower() not in ("http", "https"):
            raise FetchError(
                "The server redirects to an address that is not http or https.", status=status
            )
        visited.add(target)
        return target

    @staticmethod
    def _permanent(requested: str, final: str, all_permanent: bool) -> str | None:
        return final if all_permanent and final != requested else None

    def _status_error(self, response: aiohttp.ClientResponse) -> FetchError:
        status = response.status
        reason = status_reason(status, response.reason or "")
        retry = _retry_after(response.headers.get("retry-after"))
        message = f"The server answered {status} {reason}."
        if status == 410:
            message = "The server answered 410 Gone: the feed was removed."
        return FetchError(message, status=status, retry_after=retry, gone=status == 410)

    async def _read_capped(self, response: aiohttp.ClientResponse, url: str) -> bytes:
        too_big = FetchError(f"The feed is larger than {size_text(self.max_bytes)}.")
        declared = response.headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise too_big  # compressed or not, the body is at least that large
        try:
            decoded = Capped(decoder_for(response.headers.get("content-encoding")), self.max_bytes)
            received = 0
            async for chunk in response.content.iter_any():
                received += len(chunk)
                if received > self.max_bytes:
                    raise too_big
                decoded.feed(chunk)
            return decoded.finish()
        except TooLarge:
            raise too_big from None
        except UndecodableBody:
            host = host_of(url)
            raise FetchError(
                f"The server {host} sent a body that could not be decompressed."
            ) from None
        except TimeoutError:
            raise
        except (aiohttp.ClientError, OSError) as exc:
            raise transport_error(exc, url) from exc
