"""Rows of the PostgreSQL tables ⇄ the dataclasses (through bot/store/codec.py).

The columns a query filters or sorts on are real columns; the rest of a Feed,
a Style, an Entry or a Notice is a jsonb document in codec's dict shape, so
adding a field to a dataclass needs no migration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.models import Chat, ChatKind, Delivery, Feed, FeedStatus, Notice, Subscription
from bot.store import codec

#: Feed fields that are columns of their own, not in ``feeds.state``.
_FEED_COLUMNS = ("url", "next_poll", "status")

FEED_COLS = "url, next_poll, status, state"
SUB_COLS = "seq, chat_id, feed_url, created, style"
DELIVERY_COLS = (
    "o.seq, o.chat_id, o.feed_url, o.notice, o.not_before, o.attempts, o.sent_parts, e.body"
)
#: FROM clause that goes with DELIVERY_COLS.
DELIVERY_FROM = "outbox o LEFT JOIN entries e ON e.digest = o.entry_digest"


def feed_state(feed: Feed) -> dict[str, Any]:
    d = codec.feed_to_dict(feed)
    for key in _FEED_COLUMNS:
        d.pop(key)
    return d


def feed_from_row(row: Mapping[str, Any]) -> Feed:
    return codec.feed_from_dict(
        {**row["state"], "url": row["url"], "next_poll": row["next_poll"], "status": row["status"]}
    )


def chat_from_row(row: Mapping[str, Any]) -> Chat:
    return Chat(
        id=row["id"],
        kind=ChatKind(row["kind"]),
        title=row["title"],
        username=row["username"],
        active=row["active"],
    )


def sub_from_row(row: Mapping[str, Any]) -> Subscription:
    return Subscription(
        chat_id=row["chat_id"],
        feed_url=row["feed_url"],
        created=row["created"],
        style=codec.style_from_dict(row["style"]),
        seq=row["seq"],
    )


def notice_to_json(notice: Notice) -> dict[str, Any]:
    return {"code": notice.code, "params": dict(notice.params)}


def delivery_from_row(row: Mapping[str, Any]) -> Delivery:
    notice = row["notice"]
    body = row["body"]
    return Delivery(
        seq=row["seq"],
        chat_id=row["chat_id"],
        feed_url=row["feed_url"],
        entry=None if body is None else codec.entry_from_dict(body),
        not_before=row["not_before"],
        attempts=row["attempts"],
        sent_parts=row["sent_parts"],
        notice=None if notice is None else Notice(notice["code"], notice.get("params") or {}),
    )


def status_of(feed: Feed) -> str:
    return str(FeedStatus(feed.status))
