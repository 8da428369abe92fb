"""What the XML and JSON readers share: text, URLs, dates and media, cleaned."""

from __future__ import annotations

import calendar
import html
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

from feedparser.datetimes import _parse_date as _feedparser_parse_date

from bot import urls
from bot.identity import entry_id
from bot.models import Entry, Media, MediaKind

#: Dates further ahead than this are treated as absent (broken clocks, typos).
FUTURE_SLACK = timedelta(days=2)

#: Caps on what one entry may carry into rendering (a message shows at most
#: 4,096 characters; the renderer need not wade through megabytes for them).
TITLE_MAX = 1_000
BODY_MAX = 200_000

_HTML_TYPES = {"text/html", "application/xhtml+xml", "html", "xhtml"}


class ParseError(ValueError):
    """The body is not a feed. ``str(e)`` is one user-facing sentence. (The
    feeds a web page names are found by bot/discover.py.)"""


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
LOOKS_LIKE_HTML = re.compile(r"<[A-Za-z!/]|" + _ENTITY.pattern)


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


def plain_to_html(text: str) -> str:
    """Plain text as HTML: escaped, line breaks kept (at most one blank line)."""
    lines = [html.escape(line.strip(), quote=False) for line in text.strip().splitlines()]
    out: list[str] = []
    for line in lines:
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    return "<br>\n".join(out)


def is_html_type(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() in _HTML_TYPES


# --------------------------------------------------------------------------- URLs


def absolute_url(url: Any, base: str | None, *, strip_tracking: bool = False) -> str | None:
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
    return urls.strip_tracking(joined) if strip_tracking else joined


def host_of(url: str | None) -> str:
    if not url:
        return ""
    try:
        return (urlsplit(url).hostname or "").removeprefix("www.")
    except ValueError:
        return ""


# --------------------------------------------------------------------------- dates


def date_from_struct(value: Any) -> datetime | None:
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


def parse_date_text(text: Any) -> datetime | None:
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
        found = date_from_struct(_feedparser_parse_date(text))
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


def sane_date(when: datetime | None, now: datetime) -> datetime | None:
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


class MediaList:
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
        absolute = absolute_url(url, base)
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


def pick_body(candidates: list[tuple[bool, str, str]]) -> tuple[str, str]:
    if not candidates:
        return "", ""
    pool = [c for c in candidates if c[0]] or candidates
    best = max(pool, key=lambda c: len(c[1]))  # first of the longest wins
    return best[1], best[2]


def categories_of(tags: Iterable[Any]) -> tuple[str, ...]:
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


def build_entry(
    *,
    guid: str | None,
    title: str,
    link: str | None,
    html: str,
    base_url: str,
    author: str | None,
    categories: tuple[str, ...],
    published: datetime | None,
    updated: datetime | None,
    media: MediaList,
) -> Entry:
    """An Entry, its id derived from what the feed gave (see identity.entry_id);
    title and body cut to TITLE_MAX and BODY_MAX characters."""
    title = title[:TITLE_MAX]
    html = html[:BODY_MAX]
    return Entry(
        id=entry_id(guid=guid, link=link, title=title, published=published, html=html),
        title=title,
        link=link,
        html=html,
        base_url=base_url,
        author=author,
        categories=categories,
        published=published,
        updated=updated,
        media=tuple(media.items),
    )


def newest(entries: Sequence[Entry], n: int) -> tuple[Entry, ...]:
    """The ``n`` newest entries, in document order. By date when every entry
    has one; otherwise the first ``n`` (feeds list their newest first)."""
    if len(entries) <= n:
        return tuple(entries)
    dates = [e.published or e.updated for e in entries]
    if any(d is None for d in dates):
        return tuple(entries[:n])
    ranked = sorted(range(len(entries)), key=lambda i: dates[i], reverse=True)[:n]  # type: ignore[arg-type,return-value]
    return tuple(entries[i] for i in sorted(ranked))
