"""A local feed server for tests: aiohttp.web on 127.0.0.1, in the running loop.

    async with FeedServer() as server:
        feed = server.rss("/news.xml", title="News")
        feed.publish("Hello", html="<p>Hi</p>")
        url = server.url("/news.xml")          # http://127.0.0.1:PORT/news.xml
        server.fail("/news.xml", status=503, times=1, headers={"Retry-After": "120"})
        ...
        assert server.count("/news.xml") == 2

Every path is configured independently: a raw document (``set_feed``) or a
live RSS/Atom builder (``rss`` / ``atom``), plus behaviours (``fail``,
``redirect``, ``stall``, ``trickle``, ``ignore_validators``, ``set_headers``).
Documents carry an ETag and a Last-Modified that change on every change, and
conditional requests are answered 304. Bodies are gzipped when the client
accepts it (``FeedServer(gzip=False)`` to turn that off). Unknown paths: 404.
HEAD works everywhere.
"""

from __future__ import annotations

import asyncio
import email.utils
import gzip as gzip_module
import hashlib
import html as html_module
import itertools
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from aiohttp import web

__all__ = ["AtomFeed", "FeedServer", "RequestRecord", "RssFeed"]

RSS_TYPE = "application/rss+xml; charset=utf-8"
ATOM_TYPE = "application/atom+xml; charset=utf-8"


@dataclass
class RequestRecord:
    path: str
    method: str
    if_none_match: str | None
    if_modified_since: str | None
    #: The status answered; None while the request is still being handled
    #: (a stalled request the client gave up on stays None until stop()).
    status: int | None
    #: time.monotonic() when the request arrived.
    time: float
    accept_encoding: str | None = None
    user_agent: str | None = None
    accept: str | None = None
    gzipped: bool = False


@dataclass
class _Document:
    body: bytes
    content_type: str
    etag: str
    last_modified: float


@dataclass
class _Failure:
    status: int
    times: int | None
    headers: dict[str, str]
    body: bytes


@dataclass
class _Trickle:
    chunk_size: int
    interval: float


@dataclass
class _Path:
    document: _Document | None = None
    failure: _Failure | None = None
    redirect: tuple[str, int] | None = None
    stall: float = 0.0
    trickle: _Trickle | None = None
    ignore_validators: bool = False
    headers: dict[str, str] = field(default_factory=dict)


class FeedServer:
    def __init__(self, *, gzip: bool = True, host: str = "127.0.0.1") -> None:
        self.gzip = gzip
        self.host = host
        self.requests: list[RequestRecord] = []
        self._paths: dict[str, _Path] = {}
        self._versions = itertools.count(1)
        self._last_modified = 0.0
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._stopping: asyncio.Event | None = None
        #: Requests being handled right now, and the most there ever were.
        self.in_flight = 0
        self.max_in_flight = 0

    # -- lifecycle --------------------------------------------------------------

    async def start(self) -> FeedServer:
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        app.router.add_route("HEAD", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self._port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock)
        await site.start()
        return self

    async def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FeedServer:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FeedServer not started")
        return self._port

    def url(self, path: str = "/") -> str:
        if not path.startswith("/"):
            path = "/" + path
        return f"http://{self.host}:{self.port}{path}"

    # -- configuration ------------------------------------------------------------

    def _path(self, path: str) -> _Path:
        return self._paths.setdefault(path, _Path())

    def _next_last_modified(self) -> float:
        # One-second resolution on the wire: every change must move it forward.
        self._last_modified = max(float(int(time.time())), self._last_modified + 1.0)
        return self._last_modified

    def set_feed(self, path: str, body: bytes | str, content_type: str = RSS_TYPE) -> None:
        """Serve ``body`` at ``path`` (new ETag and Last-Modified)."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        digest = hashlib.sha256(data).hexdigest()[:16]
        self._path(path).document = _Document(
            body=data,
            content_type=content_type,
            etag=f'"{digest}-{next(self._versions)}"',
            last_modified=self._next_last_modified(),
        )

    def remove(self, path: str) -> None:
        """Forget everything about ``path`` (it answers 404 again)."""
        self._paths.pop(path, None)

    def rss(
        self, path: str, title: str = "News", *, link: str | None = None, ttl: int | None = None
    ) -> RssFeed:
        """A live RSS 2.0 feed at ``path``: see :class:`RssFeed`. ``ttl``: its
        ``<ttl>`` in minutes."""
        feed = RssFeed(self, path, title, link)
        feed.ttl = ttl
        feed.render()
        return feed

    def atom(self, path: str, title: str = "News", *, link: str | None = None) -> AtomFeed:
        """A live Atom feed at ``path``: see :class:`AtomFeed`."""
        feed = AtomFeed(self, path, title, link)
        feed.render()
        return feed

    def fail(
        self,
        path: str,
        status: int = 500,
        times: int | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | str = b"",
    ) -> None:
        """Answer ``status`` (forever, or the next ``times`` requests)."""
        data = body.encode() if isinstance(body, str) else body
        self._path(path).failure = _Failure(status, times, dict(headers or {}), data)

    def recover(self, path: str) -> None:
        self._path(path).failure = None

    def redirect(self, path: str, to: str, status: int = 301) -> None:
        """Redirect ``path`` to ``to`` (a path on this server or a full URL)."""
        self._path(path).redirect = (to, status)

    def stall(self, path: str, seconds: float) -> None:
        """Wait ``seconds`` before answering (cut short by stop())."""
        self._path(path).stall = seconds

    def trickle(self, path: str, chunk_size: int = 16, interval: float = 0.1) -> None:
        """Send the body ``chunk_size`` bytes every ``interval`` seconds."""
        self._path(path).trickle = _Trickle(chunk_size, interval)

    def ignore_validators(self, path: str, flag: bool = True) -> None:
        """Always answer 200 with the full body (servers that ignore ETags)."""
        self._path(path).ignore_validators = flag

    def set_headers(self, path: str, headers: Mapping[str, str]) -> None:
        """Extra response headers for ``path`` (on every answer)."""
        self._path(path).headers.update(headers)

    # -- inspection ---------------------------------------------------------------

    def count(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path == path)

    def requests_for(self, path: str) -> list[RequestRecord]:
        return [r for r in self.requests if r.path == path]

    # -- serving ------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> bool:
        """Sleep; False if the server is stopping."""
        assert self._stopping is not None
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return True
        return False

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        record = RequestRecord(
            path=path,
            method=request.method,
            if_none_match=request.headers.get("If-None-Match"),
            if_modified_since=request.headers.get("If-Modified-Since"),
            status=None,
            time=time.monotonic(),
            accept_encoding=request.headers.get("Accept-Encoding"),
            user_agent=request.headers.get("User-Agent"),
            accept=request.headers.get("Accept"),
        )
        self.requests.append(record)
        conf = self._paths.get(request.path_qs) or self._paths.get(path)
        if conf is None:
            record.status = 404
            return web.Response(status=404, text="not found")
        extra = dict(conf.headers)

        if conf.stall > 0 and not await self._sleep(conf.stall):
            record.status = 503
            return web.Response(status=503, headers=extra)

        failure = conf.failure
        if failure is not None and (failure.times is None or failure.times > 0):
            if failure.times is not None:
                failure.times -= 1
            record.status = failure.status
            return web.Response(
                status=failure.status, body=failure.body, headers={**extra, **failure.headers}
            )

        if conf.redirect is not None:
            to, status = conf.redirect
            location = self.url(to) if to.startswith("/") else to
            record.status = status
            return web.Response(status=status, headers={**extra, "Location": location})

        doc = conf.document
        if doc is None:
            record.status = 404
            return web.Response(status=404, text="not found", headers=extra)

        validators = {
            "ETag": doc.etag,
            "Last-Modified": email.utils.formatdate(doc.last_modified, usegmt=True),
        }
        if not conf.ignore_validators and self._not_modified(request, doc):
            record.status = 304
            return web.Response(status=304, headers={**validators, **extra})

        body = doc.body
        headers = {"Content-Type": doc.content_type, **validators, "Vary": "Accept-Encoding"}
        if self.gzip and "gzip" in (request.headers.get("Accept-Encoding") or "").lower():
            body = gzip_module.compress(body, mtime=0)
            headers["Content-Encoding"] = "gzip"
            record.gzipped = True
        headers.update(extra)
        record.status = 200

        if conf.trickle is None or request.method == "HEAD":
            return web.Response(status=200, body=body, headers=headers)
        response = web.StreamResponse(status=200, headers=headers)
        response.content_length = len(body)
        await response.prepare(request)
        step = max(1, conf.trickle.chunk_size)
        for start in range(0, len(body), step):
            await response.write(body[start : start + step])
            if not await self._sleep(conf.trickle.interval):
                break
        await response.write_eof()
        return response

    @staticmethod
    def _not_modified(request: web.Request, doc: _Document) -> bool:
        inm = request.headers.get("If-None-Match")
        if inm is not None:
            tags = [t.strip().removeprefix("W/") for t in inm.split(",")]
            return "*" in tags or doc.etag in tags
        ims = request.headers.get("If-Modified-Since")
        if ims:
            try:
                since = email.utils.parsedate_to_datetime(ims).timestamp()
            except (TypeError, ValueError, IndexError):
                return False
            return doc.last_modified <= since
        return False


# ------------------------------------------------------------------ live feeds


def _http_date(when: datetime) -> str:
    return email.utils.format_datetime(when.astimezone(UTC), usegmt=True)


class _LiveFeed:
    """Items newest first; every change re-renders the document."""

    content_type = RSS_TYPE

    def __init__(self, server: FeedServer, path: str, title: str, link: str | None) -> None:
        self.server = server
        self.path = path
        self.title = title
        self.link = link
        self.items: list[dict[str, Any]] = []
        self._numbers = itertools.count(1)

    def publish(
        self,
        title: str,
        link: str | None = None,
        guid: str | None = None,
        html: str = "",
        pub_date: datetime | None = None,
        enclosures: Iterable[tuple[str, str, int]] = (),
        categories: Iterable[str] = (),
        author: str | None = None,
    ) -> dict[str, Any]:
        """Add an item and re-render. ``guid`` defaults to a unique one
        ("" for none: RSS only); ``link`` to ``server.url(path + "/items/N")``
        ("" for no link);
        ``pub_date`` to now (aware datetimes)."""
        n = next(self._numbers)
        item = {
            "title": title,
            "link": self.server.url(f"{self.path}/items/{n}") if link is None else link,
            "guid": guid if guid is not None else f"urn:feedbot-test:{self.path}:{n}",
            "html": html,
            "pub_date": pub_date or datetime.now(UTC).replace(microsecond=0),
            "enclosures": list(enclosures),
            "categories": list(categories),
            "author": author,
            "seq": n,
        }
        self.items.append(item)
        self.render()
        return item

    def update(self, guid: str, /, **changes: Any) -> dict[str, Any]:
        """Edit the item ``guid`` and re-render (``guid=…`` among the changes
        gives it a new GUID)."""
        for item in self.items:
            if item["guid"] == guid:
                item.update(changes)
                self.render()
                return item
        raise KeyError(guid)

    def remove(self, guid: str) -> None:
        self.items = [i for i in self.items if i["guid"] != guid]
        self.render()

    def clear(self) -> None:
        self.items = []
        self.render()

    def sorted_items(self) -> list[dict[str, Any]]:
        """Newest first; of items with the same date, the one published last
        comes first (publish() several times within a second)."""
        return sorted(self.items, key=lambda i: (i["pub_date"], i["seq"]), reverse=True)

    def render(self) -> None:
        self.server.set_feed(self.path, self.document(), self.content_type)

    def document(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


class RssFeed(_LiveFeed):
    content_type = RSS_TYPE
    #: <ttl> in minutes, if any.
    ttl: int | None = None

    def document(self) -> str:
        link = self.link or self.server.url("/")
        parts = [
            '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0">\n<channel>\n',
            f"<title>{xml_escape(self.title)}</title>\n<link>{xml_escape(link)}</link>\n",
            "<description>Test feed</description>\n",
        ]
        if self.ttl is not None:
            parts.append(f"<ttl>{int(self.ttl)}</ttl>\n")
        for item in self.sorted_items():
            parts.append("<item>\n")
            parts.append(f"<title>{xml_escape(item['title'])}</title>\n")
            if item["link"]:
                parts.append(f"<link>{xml_escape(item['link'])}</link>\n")
            if item["guid"]:
                parts.append(f'<guid isPermaLink="false">{xml_escape(item["guid"])}</guid>\n')
            parts.append(f"<pubDate>{_http_date(item['pub_date'])}</pubDate>\n")
            if item["html"]:
                parts.append(f"<description>{xml_escape(item['html'])}</description>\n")
            if item["author"]:
                parts.append(f"<author>{xml_escape(item['author'])}</author>\n")
            for category in item["categories"]:
                parts.append(f"<category>{xml_escape(category)}</category>\n")
            for url, mime, length in item["enclosures"]:
                parts.append(
                    f"<enclosure url={quoteattr(url)} type={quoteattr(mime)}"
                    f' length="{int(length)}"/>\n'
                )
            parts.append("</item>\n")
        parts.append("</channel>\n</rss>\n")
        return "".join(parts)


class AtomFeed(_LiveFeed):
    content_type = ATOM_TYPE

    def document(self) -> str:
        link = self.link or self.server.url("/")
        items = self.sorted_items()
        updated = items[0]["pub_date"] if items else datetime(2020, 1, 1, tzinfo=UTC)
        parts = [
            '<?xml version="1.0" encoding="utf-8"?>\n',
            '<feed xmlns="http://www.w3.org/2005/Atom">\n',
            f"<title>{xml_escape(self.title)}</title>\n",
            f'<link rel="alternate" href={quoteattr(link)}/>\n',
            f"<id>{xml_escape(self.server.url(self.path))}</id>\n",
            f"<updated>{updated.astimezone(UTC).isoformat()}</updated>\n",
        ]
        for item in items:
            parts.append("<entry>\n")
            parts.append(f'<title type="text">{xml_escape(item["title"])}</title>\n')
            if item["link"]:
                parts.append(f'<link rel="alternate" href={quoteattr(item["link"])}/>\n')
            parts.append(f"<id>{xml_escape(item['guid'])}</id>\n")
            stamp = item["pub_date"].astimezone(UTC).isoformat()
            parts.append(f"<published>{stamp}</published>\n<updated>{stamp}</updated>\n")
            if item["html"]:
                parts.append(f'<content type="html">{xml_escape(item["html"])}</content>\n')
            if item["author"]:
                name = xml_escape(item["author"])
                parts.append(f"<author><name>{name}</name></author>\n")
            for category in item["categories"]:
                parts.append(f"<category term={quoteattr(category)}/>\n")
            for url, mime, length in item["enclosures"]:
                parts.append(
                    f'<link rel="enclosure" href={quoteattr(url)} type={quoteattr(mime)}'
                    f' length="{int(length)}"/>\n'
                )
            parts.append("</entry>\n")
        parts.append("</feed>\n")
        return "".join(parts)


def html_page(title: str = "A page", feed_links: Iterable[tuple[str, str]] = ()) -> str:
    """A small HTML page advertising feeds: ``[(href, type), …]``."""
    links = "".join(
        f'<link rel="alternate" type={quoteattr(kind)} href={quoteattr(href)}>\n'
        for href, kind in feed_links
    )
    return (
        f"<!DOCTYPE html>\n<html><head><title>{html_module.escape(title)}</title>\n{links}"
        "</head><body><p>Hello</p></body></html>\n"
    )
