"""RSS 0.9x/1.0/2.0, RDF and Atom through feedparser, with the repairs real feeds need."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urljoin

import feedparser
from feedparser.exceptions import CharacterEncodingOverride, NonXMLContentType

from bot.models import Entry, ParsedFeed
from bot.parse import fast, guard, tuning
from bot.parse.common import (
    LOOKS_LIKE_HTML,
    MediaList,
    ParseError,
    absolute_url,
    build_entry,
    categories_of,
    clean_text,
    date_from_struct,
    host_of,
    is_html_type,
    parse_date_text,
    pick_body,
    plain_to_html,
    sane_date,
)

_BENIGN_BOZO = (NonXMLContentType, CharacterEncodingOverride)

# The entity check and character-reference repair, inside feedparser too
# (on the text it decoded, before its strict and its loose parser).
guard.install()
tuning.install()

# feedparser asks xml.sax for these drivers first; ours is expat with text
# buffering (see bot/parse/expat.py).
if "bot.parse.expat" not in feedparser.api.PREFERRED_XML_PARSERS:
    feedparser.api.PREFERRED_XML_PARSERS.insert(0, "bot.parse.expat")

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


def _html_page_error(body: bytes, base: str, content_type: str | None) -> ParseError:
    # The feeds a page names are bot/discover.py's to find: callers that can
    # subscribe (or check) run discovery on the page.
    return ParseError("This is an HTML page, not a feed.")


# ------------------------------------------------------------------ XML → models


def _detail_text(container: Mapping[str, Any], key: str) -> str:
    detail = container.get(f"{key}_detail") or {}
    value = container.get(key)
    if not value:
        return ""
    is_html = is_html_type(detail.get("type"))
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
        typed_html = is_html_type(detail.get("type"))
        if typed_html and LOOKS_LIKE_HTML.search(value):
            found.append((True, value, detail.get("base") or ""))
        else:  # plain text, or "HTML" without a tag or entity (YouTube's media:description)
            found.append((typed_html, plain_to_html(value), detail.get("base") or ""))
    return found


#: RSS <author> is "email (Name)"; others write "Name <email>".
_EMAIL_THEN_NAME = re.compile(r"^\S+@\S+\s*\((.+)\)$")
_NAME_THEN_EMAIL = re.compile(r"^(.+?)\s*<\S+@\S+>$")


def _author(fe: Mapping[str, Any]) -> str | None:
    # feedparser's own split of "email (Name)" cuts long top-level domains
    # ("ann@garden.example (Ann)" gives the name "ple (Ann"): read the raw string.
    raw = clean_text(fe.get("author"))
    for pattern in (_EMAIL_THEN_NAME, _NAME_THEN_EMAIL):
        match = pattern.match(raw)
        if match:
            return match.group(1).strip() or None
    detail = fe.get("author_detail") or {}
    return raw or clean_text(detail.get("name")) or None


def _xml_entry(fe: dict[str, Any], base: str, now: datetime) -> Entry | None:
    title = _detail_text(fe, "title")
    link = absolute_url(fe.get("link"), base, strip_tracking=True)
    body, body_base = pick_body(_body_candidates(fe))
    published = sane_date(
        date_from_struct(fe.get("published_parsed")) or parse_date_text(fe.get("published")), now
    )
    # dict.get: FeedParserDict answers "updated" with "published" when absent.
    updated = sane_date(
        date_from_struct(dict.get(fe, "updated_parsed"))
        or parse_date_text(dict.get(fe, "updated")),
        now,
    )

    media = MediaList()
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
    return build_entry(
        guid=guid if isinstance(guid, str) else None,
        title=title,
        link=link,
        html=body,
        base_url=(urljoin(base, body_base) if body_base else base),
        author=_author(fe),
        categories=categories_of(fe.get("tags") or []),
        published=published,
        updated=updated,
        media=media,
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


def _is_utf8(body: bytes) -> bool:
    # Only UTF-8 goes the fast way: feedparser's charset rules (bot/parse's
    # docstring) are not feedparser-rs's, and the byte checks in guard.py
    # read ASCII-compatible bytes.
    if _is_utf16_or_32(body):
        return False
    declared = _XML_DECL_ENCODING.match(body)
    if declared and declared.group(1).lower().replace(b"_", b"-") not in (b"utf-8", b"utf8"):
        return False  # feedparser-rs would believe the declaration; feedparser does not
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _fast_feed(prepared: bytes, base: str, now: datetime) -> ParsedFeed | None:
    """The document through feedparser-rs (bot/parse/fast.py), or None."""
    read = fast.read(guard.neutralise_char_refs(prepared), base)
    if read is None:
        return None
    feed, raw_entries = read
    entries = [e for fe in raw_entries if (e := _xml_entry(fe, base, now)) is not None]
    if not entries:
        return None
    link = absolute_url(feed.get("link"), base, strip_tracking=True)
    return ParsedFeed(
        title=_detail_text(feed, "title") or host_of(link) or host_of(base),
        link=link,
        entries=tuple(entries),
        ttl=_ttl(feed),
    )


#: Off in the differential test, to get feedparser's answer for the same document.
FAST_PATH = fast.available()


def parse_xml_feed(body: bytes, base: str, content_type: str | None, now: datetime) -> ParsedFeed:
    body = guard.screen_dtd(body)
    prepared, told = _prepare_xml(body, content_type)
    if FAST_PATH and _is_utf8(prepared) and (parsed := _fast_feed(prepared, base, now)):
        return parsed
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
    link = absolute_url(feed.get("link"), base, strip_tracking=True)
    return ParsedFeed(
        title=_detail_text(feed, "title") or host_of(link) or host_of(base),
        link=link,
        entries=tuple(entries),
        ttl=_ttl(feed),
    )
