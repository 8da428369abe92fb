"""Feed autodiscovery: from a web page to the feed it offers.

A page names its feeds with ``<link rel="alternate" type="application/rss+xml"
href="…">`` (Atom and JSON Feed alike). When it names none, sites usually
serve one at a well-known path (/feed, /rss, /atom.xml, …). The pure part
reads the page; :func:`discover` fetches candidates until one parses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import Message
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from bot.fetch import Fetcher, FetchError, FetchResult, InvalidURL, normalize_url
from bot.models import ParsedFeed
from bot.parse import ParseError, parse_response

#: Link types that announce a feed, and the format each names.
FEED_TYPES: dict[str, str] = {
    "application/rss+xml": "RSS",
    "application/rdf+xml": "RSS",
    "application/atom+xml": "Atom",
    "application/feed+json": "JSON Feed",
    # JSON Feed 1.0 pages announced themselves with plain JSON.
    "application/json": "JSON Feed",
}
#: Where feeds usually live when a page names none, tried in this order.
CANDIDATE_PATHS = ("feed", "rss", "atom.xml", "index.xml", "feed.json")
HTML_TYPES = ("text/html", "application/xhtml+xml")
#: Declared feeds tried before giving up: a page listing fifty is no reason to fetch fifty.
MAX_DECLARED_TRIES = 5


@dataclass(frozen=True, slots=True)
class FeedLink:
    """A feed a page names."""

    url: str
    title: str = ""
    #: "RSS", "Atom" or "JSON Feed", as the link's type says.
    kind: str = ""


@dataclass(frozen=True, slots=True)
class Page:
    """What a fetched document says about feeds."""

    #: Whether it is an HTML page at all (discovery only makes sense for one).
    is_html: bool
    #: The feeds it declares, absolute, in page order, each once.
    feeds: list[FeedLink]


class _PageReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.links: list[tuple[str, str, str]] = []
        self.saw_html = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("html", "head", "body"):
            self.saw_html = True
        # html.parser has already unescaped the values (&amp; → &).
        a = {name.lower(): (value or "") for name, value in attrs}
        if tag == "base" and self.base is None and a.get("href", "").strip():
            self.base = a["href"].strip()  # the first <base href> counts, as in browsers
        elif tag == "link":
            rels = a.get("rel", "").lower().split()
            mime = a.get("type", "").split(";")[0].strip().lower()
            href = a.get("href", "").strip()
            if "alternate" in rels and mime in FEED_TYPES and href:
                self.links.append((href, a.get("title", "").strip(), FEED_TYPES[mime]))

    handle_startendtag = handle_starttag


def _charset(content_type: str | None) -> str:
    if not content_type:
        return "utf-8"
    message = Message()
    message["content-type"] = content_type
    charset = message.get_content_charset() or "utf-8"
    try:
        "".encode(charset)
    except LookupError:
        return "utf-8"
    return charset


def _http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def read_page(body: bytes | str, page_url: str, content_type: str | None = None) -> Page:
    """The feeds an HTML page declares, resolved against the page URL and its
    ``<base href>``; non-http(s) links are dropped."""
    text = body if isinstance(body, str) else body.decode(_charset(content_type), "replace")
    reader = _PageReader()
    try:
        reader.feed(text)
        reader.close()
    except AssertionError:  # html.parser's reaction to some malformed markup
        pass
    base = urljoin(page_url, reader.base) if reader.base else page_url
    mime = (content_type or "").split(";")[0].strip().lower()
    feeds: dict[str, FeedLink] = {}
    for href, title, kind in reader.links:
        joined = urljoin(base, href)
        if not _http_url(joined):
            continue  # javascript:, data:, mailto: …
        try:
            url = normalize_url(joined)  # one spelling per feed, as the store keys them
        except InvalidURL:
            continue
        feeds.setdefault(url, FeedLink(url, title, kind))
    return Page(is_html=mime in HTML_TYPES or reader.saw_html, feeds=list(feeds.values()))


def declared_feeds(
    body: bytes | str, page_url: str, content_type: str | None = None
) -> list[FeedLink]:
    return read_page(body, page_url, content_type).feeds


def candidate_urls(page_url: str) -> list[str]:
    """The usual feed addresses for a page that names none: beside the page
    first (a blog under /blog/ has its feed at /blog/feed), then at the root."""
    parts = urlsplit(page_url)
    root = f"{parts.scheme}://{parts.netloc}/"
    directory = urljoin(root, parts.path.rsplit("/", 1)[0] + "/") if parts.path else root
    out: list[str] = []
    for base in (directory, root):
        for path in CANDIDATE_PATHS:
            url = urljoin(base, path)
            if url not in out and url != page_url:
                out.append(url)
    return out


# ---------------------------------------------------------------- fetching


@dataclass(frozen=True, slots=True)
class FoundFeed:
    #: The address that answered with a feed (as tried, before redirects).
    url: str
    result: FetchResult
    parsed: ParsedFeed
    #: "declared" (the page names it) or "guessed" (a usual path).
    how: str


@dataclass(frozen=True, slots=True)
class Discovery:
    page_url: str
    #: Whether the address was a feed itself (then ``found`` is that feed).
    was_feed: bool = False
    #: Whether the address was an HTML page.
    is_html: bool = False
    #: The feeds the page declares, in page order.
    declared: list[FeedLink] = field(default_factory=list)
    #: The first candidate that parsed as a feed; None if none did, or when
    #: ``pick_one=False`` and the page declares several (the user chooses).
    found: FoundFeed | None = None

    @property
    def choice_needed(self) -> bool:
        return self.found is None and len(self.declared) > 1


async def _try(fetcher: Fetcher, url: str, how: str) -> FoundFeed | None:
    try:
        result = await fetcher.fetch(normalize_url(url))
        return FoundFeed(url, result, parse_response(result), how)
    except (FetchError, ParseError, InvalidURL):
        return None


async def discover_from_page(
    fetcher: Fetcher, page: FetchResult, *, pick_one: bool = True
) -> Discovery:
    """Discovery for a page already fetched (which did not parse as a feed).

    With ``pick_one`` (``feedbot check``) the declared feeds are tried in page
    order and the first that parses is ``found``; without it a page declaring
    several is answered with the list alone, fetching nothing, for the user
    to choose. Only a page naming no feed has the usual paths tried.
    """
    base = page.content_location or page.url
    info = read_page(page.body, base, page.content_type)
    discovery = Discovery(page.url, is_html=info.is_html, declared=info.feeds)
    if not info.is_html:
        return discovery  # a broken feed or some other file: nothing to discover
    if info.feeds:
        if len(info.feeds) > 1 and not pick_one:
            return discovery
        candidates = [(link.url, "declared") for link in info.feeds[:MAX_DECLARED_TRIES]]
    else:
        candidates = [(url, "guessed") for url in candidate_urls(page.url)]
    for url, how in candidates:
        found = await _try(fetcher, url, how)
        if found is not None:
            return Discovery(page.url, is_html=True, declared=info.feeds, found=found)
    return discovery


async def discover(fetcher: Fetcher, url: str, *, pick_one: bool = True) -> Discovery:
    """Fetch ``url``: a feed is its own answer, a page is searched for one.
    FetchError and InvalidURL for ``url`` itself propagate."""
    page = await fetcher.fetch(normalize_url(url))
    try:
        parsed = parse_response(page)
    except ParseError:
        return await discover_from_page(fetcher, page, pick_one=pick_one)
    return Discovery(page.url, was_feed=True, found=FoundFeed(url, page, parsed, "given"))
