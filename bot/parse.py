"""Bytes → :class:`~bot.models.ParsedFeed`. Pure: no I/O, no clock but ``now``.

RSS 0.9x/1.0/2.0 and Atom go through feedparser (with ``sanitize_html=False``
and ``resolve_relative_uris=False``: the renderer sanitises and resolves the
HTML once, against ``Entry.base_url``). JSON Feed 1.0/1.1 is read here, since
feedparser 6.0 does not know it.

What this module fixes on the way:

* charset: the body's own XML declaration wins over the HTTP charset (servers
  add default charsets that are often wrong), and a body that is valid UTF-8 is
  read as UTF-8 whatever either says;
* whitespace before ``<?xml`` (which makes the strict parser give up);
* undeclared namespace prefixes and a mangled XML declaration (a retry after
  a repair, only when the first pass found no entries);
* titles: HTML tags and entities removed (``&amp;amp;`` reads ``&``),
  whitespace collapsed;
* links: made absolute, ``utm_*`` tracking parameters dropped, non-http(s)
  links ignored;
* plain-text bodies escaped into HTML (line breaks kept as ``<br>``);
* dates: aware UTC datetimes; dates more than two days in the future ignored.
"""

from __future__ import annotations

import calendar
import html
import io
import json
import re
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import feedparser
from feedparser.datetimes import _parse_date as _feedparser_parse_date
from feedparser.exceptions import CharacterEncodingOverride, NonXMLContentType

from bot.identity import entry_id
from bot.models import Entry, Media, MediaKind, ParsedFeed

__all__ = ["ParseError", "parse_feed"]

#: Dates further ahead than this are treated as absent (broken clocks, typos).
FUTURE_SLACK = timedelta(days=2)

_FEED_LINK_TYPES = {
    "application/rss+xml",
    "application/atom+xml",
    "application/feed+json",
    "application/rdf+xml",
}
_JSON_TYPES = {"application/feed+json", "application/json"}
_HTML_TYPES = {"text/html", "application/xhtml+xml", "html", "xhtml"}
_BENIGN_BOZO = (NonXMLContentType, CharacterEncodingOverride)


class ParseError(ValueError):
    """The body is not a feed. ``str(e)`` is one user-facing sentence.

    ``feed_links``: absolute URLs of feeds an HTML page links to (``<link
    rel="alternate" type="application/rss+xml" …>``), for the bot to suggest.
    """

    def __init__(self, message: str, *, feed_links: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.feed_links: list[str] = list(feed_links)


# --------------------------------------------------------------------------- text


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
#: What is left of a double-escaped text after one round of decoding.
_LEFTOVER_ENTITY = re.compile(
    r"&(?:amp|quot|apos|lt|gt|nbsp|laquo|raquo|hellip|mdash|ndash|rsquo|lsquo|rdquo|ldquo"
    r"|#[0-9]{2,7}|#[xX][0-9a-fA-F]{2,6});"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LOOKS_LIKE_HTML = re.compile(r"<[A-Za-z!/]|" + _ENTITY.pattern)


def _unescape_entities(text: str) -> str:
    """Decode ``&name;`` / ``&#n;`` references (with their semicolon only, so
    ``AT&T`` and ``a &copy b`` stay as they are)."""
    return _ENTITY.sub(lambda m: html.unescape(m.group(0)), text)


def _html_to_text(markup: str) -> str:
    parser = _TextExtractor()
    try:
        parser.feed(markup)
        parser.close()
    except Exception:  # HTMLParser is lenient; be safe anyway
        return _unescape_entities(re.sub(r"<[^>]*>", " ", markup))
    return "".join(parser.parts)


def clean_text(value: str | None, *, is_html: bool = False) -> str:
    """One line of plain text: tags stripped (when ``is_html``), entities
    decoded (a second round for double-escaped text), whitespace collapsed."""
    if not value:
        return ""
    text = _html_to_text(value) if is_html else _unescape_entities(value)
    if _LEFTOVER_ENTITY.search(text):
        text = _unescape_entities(text)
    text = _CONTROL.sub("", text)
    return " ".join(text.split())


def _plain_to_html(text: str) -> str:
    """Plain text as HTML: escaped, line breaks kept (at most one blank line)."""
    lines = [html.escape(line.strip(), quote=False) for line in text.strip().splitlines()]
    out: list[str] = []
    for line in lines:
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    return "<br>\n".join(out)


def _is_html_type(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() in _HTML_TYPES


# --------------------------------------------------------------------------- URLs


def _strip_tracking(url: str) -> str:
    parts = urlsplit(url)
    if "utm_" not in parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if not k.lower().startswith("utm_")]
    return urlunsplit(parts._replace(query=urlencode(kept)))


def _absolute(url: Any, base: str | None, *, strip_tracking: bool = False) -> str | None:
    """``url`` made absolute against ``base``; None unless it is http(s)."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    if not url:
        return None
    try:
        joined = urljoin(base, url) if base else url
        parts = urlsplit(joined)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return _strip_tracking(joined) if strip_tracking else joined


def _host(url: str | None) -> str:
    if not url:
        return ""
    try:
        return (urlsplit(url).hostname or "").removeprefix("www.")
    except ValueError:
        return ""


# --------------------------------------------------------------------------- dates


def _from_struct(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, ValueError, OSError, TypeError):
        return None


_EXTRA_FORMATS = (
    "%A, %B %d, %Y %I:%M %p",  # Friday, January 29, 2021 04:42 PM
    "%B %d, %Y %I:%M %p",
    "%A, %B %d, %Y %H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%d.%m.%Y %H:%M",
    "%Y-%m-%d",
)


def _parse_date_text(text: Any) -> datetime | None:
    """A date string in whatever format feeds use; naive times count as UTC."""
    if not isinstance(text, str) or not text.strip():
        return None
    text = " ".join(text.split())
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is not None:
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    try:
        found = _from_struct(_feedparser_parse_date(text))
    except Exception:
        found = None
    if found is not None:
        return found
    for fmt in _EXTRA_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def _sane(when: datetime | None, now: datetime) -> datetime | None:
    if when is None or when > now + FUTURE_SLACK:
        return None
    return when


# --------------------------------------------------------------------------- media


_EXT_KIND: dict[str, MediaKind] = {}
for _ext in ("jpg", "jpeg", "png", "gif", "webp", "bmp", "svg", "avif", "heic", "tif", "tiff"):
    _EXT_KIND[_ext] = "image"
for _ext in ("mp4", "m4v", "mov", "webm", "mkv", "avi", "mpg", "mpeg", "ogv", "3gp"):
    _EXT_KIND[_ext] = "video"
for _ext in ("mp3", "m4a", "aac", "ogg", "oga", "opus", "wav", "flac", "m4b"):
    _EXT_KIND[_ext] = "audio"
del _ext

_MEDIUMS: dict[str, MediaKind] = {
    "image": "image",
    "video": "video",
    "audio": "audio",
    "document": "document",
}


def media_kind(url: str, mime_type: str | None = None, medium: str | None = None) -> MediaKind:
    """image/video/audio from a media:content medium, a MIME type or the file
    extension (in that order); document otherwise."""
    if medium and medium.strip().lower() in _MEDIUMS:
        return _MEDIUMS[medium.strip().lower()]
    major = (mime_type or "").split("/")[0].strip().lower()
    if major in ("image", "video", "audio"):
        return major  # type: ignore[return-value]
    try:
        path = urlsplit(url).path
    except ValueError:
        path = ""
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return _EXT_KIND.get(ext, "document")


def _length(value: Any) -> int | None:
    try:
        n = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return n if n > 0 else None


#: media:content types that Telegram cannot show (YouTube's Flash player URL).
_USELESS_MEDIA_TYPES = {"application/x-shockwave-flash"}


class _MediaList:
    def __init__(self) -> None:
        self.items: list[Media] = []
        self._urls: set[str] = set()

    def add(
        self,
        url: Any,
        base: str | None,
        *,
        mime_type: Any = None,
        medium: Any = None,
        length: Any = None,
        source: str,
        kind: MediaKind | None = None,
    ) -> None:
        absolute = _absolute(url, base)
        if absolute is None or absolute in self._urls:
            return
        mime = mime_type.strip().lower() if isinstance(mime_type, str) and mime_type else None
        if mime in _USELESS_MEDIA_TYPES:
            return
        self._urls.add(absolute)
        self.items.append(
            Media(
                url=absolute,
                kind=kind
                or media_kind(absolute, mime, medium if isinstance(medium, str) else None),
                mime_type=mime or None,
                length=_length(length),
                source=source,
            )
        )


# --------------------------------------------------------------------------- XML


_XML_DECL_ENCODING = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")


def _charset_of(content_type: str | None) -> str | None:
    if not content_type:
        return None
    match = re.search(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", content_type, re.I)
    return match.group(1) if match else None


def _is_utf16_or_32(body: bytes) -> bool:
    head = body[:4]
    return head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head


def _prepare_xml(body: bytes, content_type: str | None) -> tuple[bytes, str]:
    """Trim what stops the strict parser and choose the charset feedparser is
    told about (as a Content-Type). Returns (body, content-type)."""
    if _is_utf16_or_32(body):
        return body, "application/xml"
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:]
    body = body.lstrip(b" \t\r\n")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return body, "application/xml; charset=utf-8"
    match = _XML_DECL_ENCODING.match(body)
    if match:  # the document's own declaration beats a server default
        return body, "application/xml"
    charset = _charset_of(content_type)
    return body, f"application/xml; charset={charset}" if charset else "application/xml"


def _decode_loosely(body: bytes, content_type: str) -> str:
    candidates = []
    match = _XML_DECL_ENCODING.match(body)
    if match:
        candidates.append(match.group(1).decode("ascii"))
    if charset := _charset_of(content_type):
        candidates.append(charset)
    candidates += ["utf-8", "windows-1252"]
    for name in candidates:
        try:
            return body.decode(name)
        except (LookupError, UnicodeDecodeError):
            continue
    return body.decode("utf-8", "replace")


_FIRST_ELEMENT = re.compile(r"<[A-Za-z_]")
_TAG = re.compile(r"<[A-Za-z_/][^<>]*>")
_UNQUOTED_ATTR = re.compile(r"""(\s[A-Za-z_][\w.:-]*)\s*=\s*([^\s"'<>=]+)""")
_ELEMENT_PREFIX = re.compile(r"<(/?)([A-Za-z_][\w.-]*):(?=[A-Za-z_])")
_ATTR_PREFIX = re.compile(r"(\s)([A-Za-z_][\w.-]*):(?=[A-Za-z_][\w.-]*\s*=)")
_DECLARED_PREFIX = re.compile(r"xmlns:([A-Za-z_][\w.-]*)\s*=")


def _repair_xml(body: bytes, content_type: str) -> bytes:
    """Best effort on a broken document: drop the prolog (a mangled XML
    declaration stops parsers), quote unquoted attribute values and drop
    undeclared namespace prefixes (``<rss:item>``)."""
    text = _decode_loosely(body, content_type)
    first = _FIRST_ELEMENT.search(text)
    if first:
        text = text[first.start() :]
    declared = set(_DECLARED_PREFIX.findall(text)) | {"xml", "xmlns"}

    def fix_tag(match: re.Match[str]) -> str:
        tag = _UNQUOTED_ATTR.sub(r'\1="\2"', match.group(0))
        tag = _ELEMENT_PREFIX.sub(
            lambda m: m.group(0) if m.group(2) in declared else f"<{m.group(1)}", tag
        )
        return _ATTR_PREFIX.sub(lambda m: m.group(0) if m.group(2) in declared else m.group(1), tag)

    return _TAG.sub(fix_tag, text).encode("utf-8")


def _feedparser(body: bytes, content_type: str, base: str) -> Any:
    # A BytesIO, never the bytes: feedparser opens a *file* when given bytes
    # that happen to name one (a body of b"/etc/passwd" would be read).
    return feedparser.parse(
        io.BytesIO(body),
        response_headers={"content-type": content_type, "content-location": base},
        sanitize_html=False,
        resolve_relative_uris=False,
    )


def _real_bozo(result: Any) -> bool:
    return bool(result.get("bozo")) and not isinstance(result.get("bozo_exception"), _BENIGN_BOZO)


# ---------------------------------------------------------------- HTML detection


class _FeedLinkFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "base" and a.get("href") and self.base is None:
            self.base = a["href"]
        elif tag in ("link", "a"):
            rels = a.get("rel", "").lower().split()
            kind = a.get("type", "").split(";")[0].strip().lower()
            if "alternate" in rels and kind in _FEED_LINK_TYPES and a.get("href"):
                self.links.append(a["href"])

    handle_startendtag = handle_starttag


_HTML_START = re.compile(
    rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)[\s>]", re.I | re.S
)


def _looks_like_html_page(body: bytes, content_type: str | None) -> bool:
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime in ("text/html", "application/xhtml+xml"):
        return True
    head = body[:4096]
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    return bool(_HTML_START.match(head)) or b"<html" in head.lower()


def feed_links_in_html(body: bytes, base: str, content_type: str | None = None) -> list[str]:
    """Absolute URLs of the feeds an HTML page advertises, in page order."""
    text = body.decode(_charset_of(content_type) or "utf-8", "replace")
    finder = _FeedLinkFinder()
    try:
        finder.feed(text)
        finder.close()
    except Exception:
        pass
    page_base = urljoin(base, finder.base) if finder.base else base
    out: list[str] = []
    for href in finder.links:
        url = _absolute(html.unescape(href), page_base)
        if url and url not in out:
            out.append(url)
    return out


def _html_page_error(body: bytes, base: str, content_type: str | None) -> ParseError:
    links = feed_links_in_html(body, base, content_type)
    # The URLs stay out of the sentence: callers show ``feed_links`` their way.
    if not links:
        return ParseError("This is an HTML page, not a feed.")
    if len(links) == 1:
        return ParseError(
            "This is an HTML page, not a feed, but it links to one.", feed_links=links
        )
    return ParseError(
        f"This is an HTML page, not a feed, but it links to {len(links)}.", feed_links=links
    )


# ------------------------------------------------------------------ XML → models


def _detail_text(container: Mapping[str, Any], key: str) -> str:
    detail = container.get(f"{key}_detail")
    value = container.get(key)
    if not value:
        return ""
    is_html = bool(detail) and _is_html_type(detail.get("type"))
    return clean_text(value, is_html=is_html)


def _body_candidates(fe: Mapping[str, Any]) -> list[tuple[bool, str, str]]:
    """(is_html, html, base) for each content and the summary."""
    found: list[tuple[bool, str, str]] = []
    details = list(fe.get("content") or [])
    if fe.get("summary_detail"):
        details.append(fe["summary_detail"])
    for detail in details:
        value = detail.get("value") or ""
        if not value.strip():
            continue
        typed_html = _is_html_type(detail.get("type"))
        if typed_html and _LOOKS_LIKE_HTML.search(value):
            found.append((True, value, detail.get("base") or ""))
        else:  # plain text, or "HTML" without a tag or entity (YouTube's media:description)
            found.append((typed_html, _plain_to_html(value), detail.get("base") or ""))
    return found


def _pick_body(candidates: list[tuple[bool, str, str]]) -> tuple[str, str]:
    if not candidates:
        return "", ""
    pool = [c for c in candidates if c[0]] or candidates
    best = max(pool, key=lambda c: len(c[1]))  # first of the longest wins
    return best[1], best[2]


def _categories(tags: Iterable[Any]) -> tuple[str, ...]:
    out: list[str] = []
    folded: set[str] = set()
    for tag in tags:
        raw = (tag.get("label") or tag.get("term")) if isinstance(tag, Mapping) else tag
        if not isinstance(raw, str):
            continue
        text = clean_text(raw)
        if text and text.casefold() not in folded:
            folded.add(text.casefold())
            out.append(text)
    return tuple(out)


def _author(fe: Mapping[str, Any]) -> str | None:
    detail = fe.get("author_detail") or {}
    name = clean_text(detail.get("name")) or clean_text(fe.get("author"))
    return name or None


def _xml_entry(fe: Mapping[str, Any], base: str, now: datetime) -> Entry | None:
    title = _detail_text(fe, "title")
    link = _absolute(fe.get("link"), base, strip_tracking=True)
    body, body_base = _pick_body(_body_candidates(fe))
    published = _sane(
        _from_struct(fe.get("published_parsed")) or _parse_date_text(fe.get("published")), now
    )
    # dict.get: FeedParserDict answers "updated" with "published" when absent.
    updated = _sane(
        _from_struct(dict.get(fe, "updated_parsed")) or _parse_date_text(dict.get(fe, "updated")),
        now,
    )

    media = _MediaList()
    for enc in fe.get("enclosures") or []:
        media.add(
            enc.get("href") or enc.get("url"),
            base,
            mime_type=enc.get("type"),
            length=enc.get("length"),
            source="enclosure",
        )
    for mc in fe.get("media_content") or []:
        media.add(
            mc.get("url"),
            base,
            mime_type=mc.get("type"),
            medium=mc.get("medium"),
            length=mc.get("filesize") or mc.get("fileSize"),
            source="media:content",
        )
    for thumb in fe.get("media_thumbnail") or []:
        media.add(thumb.get("url"), base, source="media:thumbnail", kind="image")

    if not (title or link or body or media.items):
        return None  # an empty <item/>: nothing to send

    guid = fe.get("id")
    return Entry(
        id=entry_id(
            guid=guid if isinstance(guid, str) else None,
            link=link,
            title=title,
            published=published,
            html=body,
        ),
        title=title,
        link=link,
        html=body,
        base_url=(urljoin(base, body_base) if body_base else base),
        author=_author(fe),
        categories=_categories(fe.get("tags") or []),
        published=published,
        updated=updated,
        media=tuple(media.items),
    )


_SY_PERIODS = {
    "hourly": 3600.0,
    "daily": 86400.0,
    "weekly": 7 * 86400.0,
    "monthly": 30 * 86400.0,
    "yearly": 365 * 86400.0,
}


def _ttl(feed: Mapping[str, Any]) -> float | None:
    try:
        minutes = float(str(feed.get("ttl")).strip())
    except (TypeError, ValueError):
        minutes = 0.0
    if minutes > 0:
        return minutes * 60.0
    period = _SY_PERIODS.get(str(feed.get("sy_updateperiod") or "").strip().lower())
    if period is None:
        return None
    try:
        frequency = float(str(feed.get("sy_updatefrequency") or "1").strip())
    except ValueError:
        frequency = 1.0
    return period / frequency if frequency > 0 else period


def _parse_xml(body: bytes, base: str, content_type: str | None, now: datetime) -> ParsedFeed:
    prepared, told = _prepare_xml(body, content_type)
    result = _feedparser(prepared, told, base)

    def usable(parsed: Any) -> list[Entry]:
        return [e for fe in parsed.entries if (e := _xml_entry(fe, base, now)) is not None]

    entries = usable(result)
    if not entries and _real_bozo(result):
        if not result.get("version") and _looks_like_html_page(body, content_type):
            raise _html_page_error(body, base, content_type)
        repaired = _feedparser(_repair_xml(prepared, told), "application/xml; charset=utf-8", base)
        if repaired_entries := usable(repaired):
            result, entries = repaired, repaired_entries
    if not entries:
        if not result.get("version") and _looks_like_html_page(body, content_type):
            raise _html_page_error(body, base, content_type)
        if _real_bozo(result):
            # A broken document without one readable entry: not "an empty feed".
            raise ParseError("The feed is not valid XML and has no entries.")
        if not result.get("version"):
            raise ParseError("This is not an RSS, Atom or JSON feed.")

    feed = result.feed
    link = _absolute(feed.get("link"), base, strip_tracking=True)
    return ParsedFeed(
        title=_detail_text(feed, "title") or _host(link) or _host(base),
        link=link,
        entries=tuple(entries),
        ttl=_ttl(feed),
    )


# --------------------------------------------------------------------------- JSON


def _is_json(body: bytes, content_type: str | None) -> bool:
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime in _JSON_TYPES:
        return True
    head = body[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"{")


def _json_str(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _json_author(item: Mapping[str, Any]) -> str | None:
    people = item.get("authors")
    if not isinstance(people, list) or not people:
        single = item.get("author")
        people = [single] if single else []
    names = []
    for person in people:
        name = person.get("name") if isinstance(person, Mapping) else person
        text = clean_text(name) if isinstance(name, str) else ""
        if text and text not in names:
            names.append(text)
    return ", ".join(names) or None


def _json_entry(item: Mapping[str, Any], base: str, now: datetime) -> Entry | None:
    title = clean_text(_json_str(item.get("title")))
    link = _absolute(item.get("url"), base, strip_tracking=True) or _absolute(
        item.get("external_url"), base, strip_tracking=True
    )
    candidates: list[tuple[bool, str, str]] = []
    content_html = item.get("content_html")
    if isinstance(content_html, str) and content_html.strip():
        candidates.append((True, content_html, ""))
    for key in ("content_text", "summary"):
        text = item.get(key)
        if isinstance(text, str) and text.strip():
            candidates.append((False, _plain_to_html(text), ""))
    body, _ = _pick_body(candidates)
    published = _sane(_parse_date_text(item.get("date_published")), now)
    updated = _sane(_parse_date_text(item.get("date_modified")), now)

    media = _MediaList()
    for att in item.get("attachments") or []:
        if isinstance(att, Mapping):
            media.add(
                att.get("url"),
                base,
                mime_type=att.get("mime_type"),
                length=att.get("size_in_bytes"),
                source="enclosure",
            )
    for key in ("image", "banner_image"):
        media.add(item.get(key), base, source="media:thumbnail", kind="image")

    if not (title or link or body or media.items):
        return None
    tags = item.get("tags")
    return Entry(
        id=entry_id(
            guid=_json_str(item.get("id")),
            link=link,
            title=title,
            published=published,
            html=body,
        ),
        title=title,
        link=link,
        html=body,
        base_url=base,
        author=_json_author(item),
        categories=_categories(tags if isinstance(tags, list) else []),
        published=published,
        updated=updated,
        media=tuple(media.items),
    )


def _parse_json(body: bytes, base: str, now: datetime) -> ParsedFeed:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError("The feed is not valid JSON.") from exc
    version = doc.get("version") if isinstance(doc, dict) else None
    items = doc.get("items") if isinstance(doc, dict) else None
    is_feed = isinstance(version, str) and "jsonfeed.org/version/" in version
    if not isinstance(items, list) or not (is_feed or "title" in doc):
        raise ParseError("This is JSON, but not a JSON Feed.")
    entries = [
        e for item in items if isinstance(item, Mapping) and (e := _json_entry(item, base, now))
    ]
    link = _absolute(doc.get("home_page_url"), base, strip_tracking=True)
    return ParsedFeed(
        title=clean_text(_json_str(doc.get("title"))) or _host(link) or _host(base),
        link=link,
        entries=tuple(entries),
        ttl=None,
    )


# --------------------------------------------------------------------------- API


def parse_feed(
    body: bytes,
    *,
    url: str,
    content_type: str | None = None,
    content_location: str | None = None,
    now: datetime | None = None,
) -> ParsedFeed:
    """Parse a fetched document.

    ``url`` is the URL the body came from (after redirects); relative links
    resolve against ``content_location`` (itself relative to ``url``) when
    given, else ``url``. ``now`` (default: the clock) bounds plausible dates.
    Raises :class:`ParseError` when the body is not a feed.
    """
    if now is None:
        now = datetime.fromtimestamp(time.time(), UTC)
    base = urljoin(url, content_location.strip()) if content_location else url
    if not body or not body.strip(b" \t\r\n\x00\xef\xbb\xbf\xfe\xff"):
        raise ParseError("The server sent an empty document.")
    if _is_json(body, content_type):
        head = body.lstrip(b"\xef\xbb\xbf \t\r\n")
        if not head.startswith(b"<"):
            return _parse_json(body, base, now)
    return _parse_xml(body, base, content_type, now)
