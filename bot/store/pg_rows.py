"""Rows of the PostgreSQL tables ⇄ the dataclasses (through bot/store/codec.py).

The columns a query filters or sorts on are real columns; the rest of a Feed,
a Style, an Entry or a Notice is a jsonb document in codec's dict shape, so
adding a field to a dataclass needs no migration.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.models import Chat, ChatKind, Delivery, Entry, Feed, FeedStatus, Notice, Subscription
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


# PostgreSQL text and jsonb cannot hold NUL, and UTF-8 cannot encode a lone
# surrogate; feeds carry both (a JSON feed may say "\ud800"). They are escaped
# injectively as \x1e + 4 hex digits (\x1e itself too) on the way in, and
# restored on the way out, so what comes back equals what went in.
_UNSAFE = re.compile("[\x00\x1e\ud800-\udfff]")
_ESCAPE = re.compile("\x1e([0-9a-f]{4})")


def safe_text(s: str) -> str:
    if _UNSAFE.search(s) is None:
        return s
    return _UNSAFE.sub(lambda m: f"\x1e{ord(m.group()):04x}", s)


def unsafe_text(s: str) -> str:
    if "\x1e" not in s:
        return s
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), s)


def safe_json(value: Any) -> Any:
    """``value`` (codec's dicts, lists and scalars) with every string safe_text'ed."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {safe_text(k): safe_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [safe_json(v) for v in value]
    return value


def unsafe_json(value: Any) -> Any:
    if isinstance(value, str):
        return unsafe_text(value)
    if isinstance(value, dict):
        return {unsafe_text(k): unsafe_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unsafe_json(v) for v in value]
    return value


def feed_state(feed: Feed) -> dict[str, Any]:
    d = codec.feed_to_dict(feed)
    for key in _FEED_COLUMNS:
        d.pop(key)
    return safe_json(d)


def entry_body(entry: Entry) -> dict[str, Any]:
    return safe_json(codec.entry_to_dict(entry))


def feed_from_row(row: Mapping[str, Any]) -> Feed:
    columns = {"url": row["url"], "next_poll": row["next_poll"], "status": row["status"]}
    return codec.feed_from_dict({**unsafe_json(row["state"]), **columns})


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
    return safe_json({"code": notice.code, "params": dict(notice.params)})


def delivery_from_row(row: Mapping[str, Any]) -> Delivery:
    notice = unsafe_json(row["notice"])
    body = unsafe_json(row["body"])
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
