"""HTTP at the edge: fetch a feed politely and safely.

One shared :class:`httpx.AsyncClient` (HTTP/1.1, gzip/deflate), a semaphore
bounding the requests in flight (the shared notes measured 8 as the sweet spot
for httpx), conditional GET, an overall deadline per fetch (a server trickling
bytes still times out), a streamed size cap, and redirects followed by hand so
every hop's address is checked and a chain of permanent redirects can be
reported (``FetchResult.permanent_url``).

Addresses: unless ``allow_private``, every hop's host is resolved and refused
when any of its addresses is loopback, private, link-local, multicast,
reserved, unspecified or otherwise not global (IPv4, IPv6, and IPv4 embedded in
IPv6: mapped, 6to4, Teredo, NAT64). Known gap: httpx resolves the name again to
connect, so a DNS server answering differently the second time (DNS rebinding)
is not caught.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import re
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC
from http import HTTPStatus
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import httpx

from bot.identity import body_hash

__all__ = ["FetchError", "FetchResult", "Fetcher", "InvalidURL", "normalize_url"]

DEFAULT_USER_AGENT = "feedbot/0.1 (+https://github.com/feedbot/feedbot)"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/rdf+xml;q=0.9, application/xml;q=0.9, text/xml;q=0.9, "
    "application/json;q=0.8, text/html;q=0.5, */*;q=0.1"
)
MAX_REDIRECTS = 5
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


class InvalidURL(ValueError):
    """What the user typed is not an http(s) URL. ``str(e)`` is one sentence."""


# ----------------------------------------------------------------- normalize_url

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_HOST_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


def _idna(host: str) -> str:
    try:
        import idna  # httpx depends on it; IDNA 2008 with UTS 46 mapping

        return idna.encode(host, uts46=True).decode("ascii")
    except Exception:
        try:
            return host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise InvalidURL(f"“{host}” is not a valid host name.") from exc


def normalize_url(text: str) -> str:
    """User input → canonical http(s) URL.

    ``example.com/feed`` (no scheme) becomes ``https://example.com/feed``:
    most sites serve HTTPS, and a plain-HTTP site can be given with
    ``http://``. ``feed:`` / ``feed://`` URLs are accepted. Scheme and host are
    lowercased, the host IDNA-encoded, a default port and the fragment
    dropped, an empty path made ``/``, spaces and non-ASCII in path and query
    percent-encoded. Raises :class:`InvalidURL` otherwise.
    """
    raw = (text or "").strip().strip("<>").strip()
    if not raw:
        raise InvalidURL("Please send a feed URL, like https://example.com/feed.xml.")
    if any(ch in raw for ch in "\r\n\t"):
        raise InvalidURL("That is not a URL: it contains line breaks or tabs.")

    low = raw.lower()
    if low.startswith("feed://"):
        raw = "http://" + raw[7:]
    elif low.startswith("feed:"):
        raw = raw[5:]
    if raw.startswith("//"):
        raw = "https:" + raw

    match = _SCHEME.match(raw)
    if match and raw[match.end() : match.end() + 2] == "//":
        scheme = match.group(1).lower()
    elif match and not re.match(r"^\d", raw[match.end() :]) and "." not in match.group(1):
        # "javascript:…", "mailto:…", "data:…" (but not "example.com:8080/…").
        scheme = match.group(1).lower()
    else:
        scheme = ""
        raw = "https://" + raw
    if scheme and scheme not in ("http", "https"):
        raise InvalidURL(f"Only http and https feeds can be followed, not {scheme}: addresses.")

    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise InvalidURL("That is not a valid URL (check the host and port).") from exc
    scheme = parts.scheme.lower()
    hostname = parts.hostname
    if not hostname:
        raise InvalidURL("That URL has no host name.")
    if " " in parts.netloc:
        raise InvalidURL("That is not a URL: the host name contains spaces.")

    host = hostname.rstrip(".")
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        ip = None
    if ip is not None:
        host = f"[{ip.compressed}]" if ip.version == 6 else ip.compressed
    else:
        host = _idna(host).lower()
        labels = host.split(".")
        if not all(_HOST_LABEL.match(label) for label in labels):
            raise InvalidURL(f"“{hostname}” is not a valid host name.")
        if len(labels) < 2 and host != "localhost":
            raise InvalidURL(
                f"“{text.strip()}” is not a URL: a feed URL looks like https://example.com/feed."
            )

    netloc = host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{host}:{port}"
    if parts.username is not None:
        userinfo = parts.username + (f":{parts.password}" if parts.password is not None else "")
        netloc = f"{userinfo}@{netloc}"
    path = quote(parts.path, safe=_PATH_SAFE) or "/"
    query = quote(parts.query, safe=_QUERY_SAFE)
    return urlunsplit((scheme, netloc, path, query, ""))


# ------------------------------------------------------------------- addresses


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in ipaddress.IPv6Network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(address: str) -> bool:
    """Whether connecting to ``address`` (an IP literal) reaches the public
    internet, not this host, the LAN or something special."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            return is_public_address(str(inner))
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


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


def _reason(status: int, phrase: str) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return phrase.strip() or "Error"


def _size(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000} MB"
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f} MB"
    if n >= 1000:
        return f"{n // 1000} KB"
    return f"{n} bytes"


def _host_of(url: str) -> str:
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
    return chain


def _transport_message(exc: httpx.RequestError, url: str) -> str:
    host = _host_of(url)
    chain = _cause_chain(exc)
    if any(isinstance(e, socket.gaierror) for e in chain):
        return f"Could not find the server {host} (DNS lookup failed)."
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return f"Could not connect to {host}: connection refused."
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in chain):
        return f"Could not connect to {host}: its TLS certificate is not valid."
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return f"Could not connect to {host}: the TLS handshake failed."
    if any(isinstance(e, ConnectionResetError) for e in chain):
        return f"The connection to {host} was reset."
    if isinstance(exc, httpx.ConnectError):
        return f"Could not connect to {host}."
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"The server {host} sent an invalid HTTP response."
    if isinstance(exc, httpx.DecodingError):
        return f"The server {host} sent a body that could not be decompressed."
    if isinstance(exc, httpx.ProxyError):
        return "The proxy refused the connection."
    return f"The connection to {host} failed."


# --------------------------------------------------------------------- Fetcher


class Fetcher:
    """Fetches feeds. One per process; ``await aclose()`` at shutdown."""

    def __init__(
        self,
        *,
        timeout: float = 20.0,
        max_bytes: int = 10_000_000,
        allow_private: bool = False,
        concurrency: int = 8,
        user_agent: str = DEFAULT_USER_AGENT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.allow_private = allow_private
        self.concurrency = concurrency
        self._semaphore = asyncio.Semaphore(concurrency)
        self._client = httpx.AsyncClient(
            http1=True,
            http2=False,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(
                max_connections=concurrency,
                max_keepalive_connections=concurrency,
                keepalive_expiry=30.0,
            ),
            follow_redirects=False,
            trust_env=False,
            transport=transport,
            headers={
                "User-Agent": user_agent,
                "Accept": ACCEPT,
                "Accept-Encoding": "gzip, deflate",
            },
        )

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

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
            except httpx.TimeoutException:
                raise FetchError(f"Timed out after {self.timeout:g} s.") from None

    # -- internals ------------------------------------------------------------

    async def _check_address(self, url: str) -> None:
        if self.allow_private:
            return
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
        try:
            ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            pass
        else:
            if not is_public_address(host):
                raise FetchError(f"Refusing to fetch a private network address ({host}).")
            return
        if host == "localhost" or host.endswith(".localhost"):
            raise FetchError(f"Refusing to fetch a private network address ({host}).")
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 443)
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise FetchError(f"Could not find the server {host} (DNS lookup failed).") from None
        for info in infos:
            address = str(info[4][0])
            if not is_public_address(address):
                raise FetchError(
                    f"Refusing to fetch a private network address ({host} is {address})."
                )

    async def _fetch(self, url: str, etag: str | None, last_modified: str | None) -> FetchResult:
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified

        current = url
        visited = {url}
        all_permanent = True
        for hop in range(MAX_REDIRECTS + 1):
            try:
                parts = urlsplit(current)
                parts.port  # noqa: B018 - raises ValueError on a bad port
            except ValueError:
                raise FetchError("The address is not a valid URL.") from None
            if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
                raise FetchError("Only http and https addresses can be fetched.")
            await self._check_address(current)
            try:
                request = self._client.build_request("GET", current, headers=headers)
            except (httpx.InvalidURL, ValueError):
                raise FetchError("The address is not a valid URL.") from None
            try:
                response = await self._client.send(request, stream=True)
            except httpx.TimeoutException:
                raise
            except httpx.RequestError as exc:
                raise FetchError(_transport_message(exc, current)) from exc
            except httpx.InvalidURL:
                raise FetchError("The address is not a valid URL.") from None

            try:
                status = response.status_code
                if status in _REDIRECTS:
                    location = response.headers.get("location")
                    if not location:
                        reason = _reason(status, response.reason_phrase)
                        raise FetchError(
                            f"The server answered {status} {reason} without saying where to.",
                            status=status,
                        )
                    if hop == MAX_REDIRECTS:
                        raise FetchError(
                            f"Too many redirects (more than {MAX_REDIRECTS}).", status=status
                        )
                    target = urljoin(current, location.strip())
                    target = urlunsplit(urlsplit(target)._replace(fragment=""))
                    if target in visited:
                        raise FetchError("The server redirects in a loop.", status=status)
                    if urlsplit(target).scheme.lower() not in ("http", "https"):
                        raise FetchError(
                            "The server redirects to an address that is not http or https.",
                            status=status,
                        )
                    visited.add(target)
                    all_permanent = all_permanent and status in _PERMANENT
                    current = target
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
                body = await self._read_capped(response)
            finally:
                await response.aclose()

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
    def _permanent(requested: str, final: str, all_permanent: bool) -> str | None:
        return final if all_permanent and final != requested else None

    def _status_error(self, response: httpx.Response) -> FetchError:
        status = response.status_code
        reason = _reason(status, response.reason_phrase)
        retry = _retry_after(response.headers.get("retry-after"))
        message = f"The server answered {status} {reason}."
        if status == 410:
            message = "The server answered 410 Gone: the feed was removed."
        return FetchError(message, status=status, retry_after=retry, gone=status == 410)

    async def _read_capped(self, response: httpx.Response) -> bytes:
        too_big = FetchError(f"The feed is larger than {_size(self.max_bytes)}.")
        declared = response.headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise too_big  # compressed or not, the body is at least that large
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise too_big
                chunks.append(chunk)
        except httpx.TimeoutException:
            raise
        except httpx.RequestError as exc:  # transport trouble, undecodable gzip
            raise FetchError(_transport_message(exc, str(response.url))) from exc
        return b"".join(chunks)
