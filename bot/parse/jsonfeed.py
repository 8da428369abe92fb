"""JSON Feed 1.0 and 1.1 (feedparser 6.0 does not read them)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bot.models import Entry, ParsedFeed
from bot.parse.common import (
    MediaList,
    ParseError,
    absolute_url,
    build_entry,
    categories_of,
    clean_text,
    host_of,
    parse_date_text,
    pick_body,
    plain_to_html,
    sane_date,
)

_JSON_TYPES = {"application/feed+json", "application/json"}

# --------------------------------------------------------------------------- JSON


def is_json_feed(body: bytes, content_type: str | None) -> bool:
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
    link = absolute_url(item.get("url"), base, strip_tracking=True) or absolute_url(
        item.get("external_url"), base, strip_tracking=True
    )
    candidates: list[tuple[bool, str, str]] = []
    content_html = item.get("content_html")
    if isinstance(content_html, str) and content_html.strip():
        candidates.append((True, content_html, ""))
    for key in ("content_text", "summary"):
        text = item.get(key)
        if isinstance(text, str) and text.strip():
            candidates.append((False, plain_to_html(text), ""))
    body, _ = pick_body(candidates)
    published = sane_date(parse_date_text(item.get("date_published")), now)
    updated = sane_date(parse_date_text(item.get("date_modified")), now)

    media = MediaList()
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
    return build_entry(
        guid=_json_str(item.get("id")),
        title=title,
        link=link,
        html=body,
        base_url=base,
        author=_json_author(item),
        categories=categories_of(tags if isinstance(tags, list) else []),
        published=published,
        updated=updated,
        media=media,
    )


def parse_json_feed(body: bytes, base: str, now: datetime) -> ParsedFeed:
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
    link = absolute_url(doc.get("home_page_url"), base, strip_tracking=True)
    return ParsedFeed(
        title=clean_text(_json_str(doc.get("title"))) or host_of(link) or host_of(base),
        link=link,
        entries=tuple(entries),
        ttl=None,
    )
