"""Dataclass ⇄ JSON-able dict conversion for what the store persists.

Backend-neutral: the sqlitedict backend stores these dicts as JSON values, and a
PostgreSQL backend can put them in ``jsonb`` columns. Every ``*_from_dict``
ignores keys it does not know and falls back to the dataclass default for keys
that are missing, so records written by an older or newer version still load.

Datetimes are ISO 8601 strings (``datetime.isoformat``), tuples become lists.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from bot.models import (
    Chat,
    ChatKind,
    Delivery,
    Entry,
    Feed,
    FeedStatus,
    Media,
    Notice,
    Style,
    Subscription,
)

JSONDict = dict[str, Any]


def _opt(d: JSONDict, key: str, default: Any = None) -> Any:
    value = d.get(key, default)
    return default if value is None else value


# -- datetimes ---------------------------------------------------------------
def datetime_to_str(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def datetime_from_str(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


# -- chats -------------------------------------------------------------------
def chat_to_dict(chat: Chat) -> JSONDict:
    return {
        "id": chat.id,
        "kind": str(chat.kind),
        "title": chat.title,
        "username": chat.username,
        "active": chat.active,
    }


def chat_from_dict(d: JSONDict) -> Chat:
    return Chat(
        id=int(d["id"]),
        kind=ChatKind(d["kind"]),
        title=_opt(d, "title", ""),
        username=d.get("username"),
        active=bool(d.get("active", True)),
    )


# -- feeds -------------------------------------------------------------------
def feed_to_dict(feed: Feed) -> JSONDict:
    return {
        "url": feed.url,
        "title": feed.title,
        "link": feed.link,
        "etag": feed.etag,
        "last_modified": feed.last_modified,
        "body_hash": feed.body_hash,
        "interval": feed.interval,
        "ttl": feed.ttl,
        "next_poll": feed.next_poll,
        "last_success": feed.last_success,
        "last_error": feed.last_error,
        "error_count": feed.error_count,
        "failing_since": feed.failing_since,
        "failure_notified": feed.failure_notified,
        "status": str(feed.status),
        "recent_entry_times": list(feed.recent_entry_times),
    }


def feed_from_dict(d: JSONDict) -> Feed:
    return Feed(
        url=d["url"],
        title=_opt(d, "title", ""),
        link=d.get("link"),
        etag=d.get("etag"),
        last_modified=d.get("last_modified"),
        body_hash=d.get("body_hash"),
        interval=d.get("interval"),
        ttl=d.get("ttl"),
        next_poll=float(_opt(d, "next_poll", 0.0)),
        last_success=d.get("last_success"),
        last_error=d.get("last_error"),
        error_count=int(_opt(d, "error_count", 0)),
        failing_since=d.get("failing_since"),
        failure_notified=bool(d.get("failure_notified", False)),
        status=FeedStatus(_opt(d, "status", FeedStatus.OK)),
        recent_entry_times=[float(t) for t in _opt(d, "recent_entry_times", [])],
    )


# -- subscriptions -----------------------------------------------------------
def style_to_dict(style: Style) -> JSONDict:
    return {
        "summary": style.summary,
        "media": style.media,
        "link_preview": style.link_preview,
        "silent": style.silent,
        "show_author": style.show_author,
        "show_feed": style.show_feed,
        "show_tags": style.show_tags,
        "interval": style.interval,
    }


def style_from_dict(d: JSONDict | None) -> Style:
    if not d:
        return Style()
    default = Style()
    return Style(
        summary=_opt(d, "summary", default.summary),
        media=bool(d.get("media", default.media)),
        link_preview=bool(d.get("link_preview", default.link_preview)),
        silent=bool(d.get("silent", default.silent)),
        show_author=bool(d.get("show_author", default.show_author)),
        show_feed=bool(d.get("show_feed", default.show_feed)),
        show_tags=bool(d.get("show_tags", default.show_tags)),
        interval=float(d["interval"]) if d.get("interval") is not None else None,
    )


def subscription_to_dict(sub: Subscription) -> JSONDict:
    return {
        "chat_id": sub.chat_id,
        "feed_url": sub.feed_url,
        "created": sub.created,
        "style": style_to_dict(sub.style),
        "seq": sub.seq,
    }


def subscription_from_dict(d: JSONDict) -> Subscription:
    return Subscription(
        chat_id=int(d["chat_id"]),
        feed_url=d["feed_url"],
        created=float(d["created"]),
        style=style_from_dict(d.get("style")),
        seq=int(_opt(d, "seq", 0)),
    )


# -- notices -----------------------------------------------------------------
def notice_to_dict(notice: Notice) -> JSONDict:
    return {"code": notice.code, "params": dict(notice.params)}


def notice_from_dict(d: JSONDict) -> Notice:
    return Notice(code=d["code"], params={str(k): str(v) for k, v in _opt(d, "params", {}).items()})


# -- entries -----------------------------------------------------------------
def media_to_dict(media: Media) -> JSONDict:
    return {
        "url": media.url,
        "kind": media.kind,
        "mime_type": media.mime_type,
        "length": media.length,
        "source": media.source,
    }


def media_from_dict(d: JSONDict) -> Media:
    return Media(
        url=d["url"],
        kind=d["kind"],
        mime_type=d.get("mime_type"),
        length=d.get("length"),
        source=_opt(d, "source", "enclosure"),
    )


def entry_to_dict(entry: Entry) -> JSONDict:
    return {
        "id": entry.id,
        "title": entry.title,
        "link": entry.link,
        "html": entry.html,
        "base_url": entry.base_url,
        "author": entry.author,
        "categories": list(entry.categories),
        "published": datetime_to_str(entry.published),
        "updated": datetime_to_str(entry.updated),
        "media": [media_to_dict(m) for m in entry.media],
    }


def entry_from_dict(d: JSONDict) -> Entry:
    return Entry(
        id=d["id"],
        title=_opt(d, "title", ""),
        link=d.get("link"),
        html=_opt(d, "html", ""),
        base_url=d.get("base_url"),
        author=d.get("author"),
        categories=tuple(_opt(d, "categories", ())),
        published=datetime_from_str(d.get("published")),
        updated=datetime_from_str(d.get("updated")),
        media=tuple(media_from_dict(m) for m in _opt(d, "media", ())),
    )


# -- deliveries --------------------------------------------------------------
def delivery_to_dict(delivery: Delivery) -> JSONDict:
    """The whole delivery, its entry or notice inline (a backend that stores
    entries once keeps its own record shape instead)."""
    return {
        "seq": delivery.seq,
        "chat_id": delivery.chat_id,
        "feed_url": delivery.feed_url,
        "entry": None if delivery.entry is None else entry_to_dict(delivery.entry),
        "notice": None if delivery.notice is None else notice_to_dict(delivery.notice),
        "not_before": delivery.not_before,
        "attempts": delivery.attempts,
        "sent_parts": delivery.sent_parts,
    }


def delivery_from_dict(d: JSONDict) -> Delivery:
    entry, notice = d.get("entry"), d.get("notice")
    return Delivery(
        seq=int(d["seq"]),
        chat_id=int(d["chat_id"]),
        feed_url=d["feed_url"],
        entry=None if entry is None else entry_from_dict(entry),
        not_before=float(_opt(d, "not_before", 0.0)),
        attempts=int(_opt(d, "attempts", 0)),
        sent_parts=int(_opt(d, "sent_parts", 0)),
        notice=None if notice is None else notice_from_dict(notice),
    )


def entry_digest(entry: Entry) -> str:
    """A content hash of the entry (hex SHA-256 of its canonical JSON).

    Equal entries have equal digests, so a backend can store an entry queued
    for many chats once and refer to it by digest.
    """
    canonical = json.dumps(entry_to_dict(entry), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
