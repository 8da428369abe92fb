"""The nouns of feedbot: what a feed, an entry, a chat and a subscription are.

These are plain, typed dataclasses shared by every layer. They carry no I/O and
no Telegram types, so parsing, dedupe and rendering can be tested as pure
functions over them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

MediaKind = Literal["image", "video", "audio", "document"]


@dataclass(frozen=True, slots=True)
class Media:
    """A piece of media attached to an entry (enclosure, media:content, <img>…)."""

    url: str
    kind: MediaKind
    mime_type: str | None = None
    #: Size in bytes as the feed declares it; feeds often lie or say 0.
    length: int | None = None
    #: Where the media was found, for debugging and rendering priority:
    #: "enclosure", "media:content", "media:thumbnail", "html".
    source: str = "enclosure"


@dataclass(frozen=True, slots=True)
class Entry:
    """One item of a feed, as parse.py extracted it.

    ``html`` is the entry's body exactly as the feed gave it (content or
    summary, whichever says more): not sanitised, links not resolved. The
    renderer does both, once, against ``base_url``.
    """

    #: Stable identity within its feed (see identity.entry_id).
    id: str
    title: str
    link: str | None = None
    html: str = ""
    #: Base for resolving relative URLs in ``html`` (xml:base, else the feed URL).
    base_url: str | None = None
    author: str | None = None
    categories: tuple[str, ...] = ()
    published: datetime | None = None
    updated: datetime | None = None
    media: tuple[Media, ...] = ()


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A fetched document after parsing: the feed's metadata and its entries.

    ``entries`` keep document order (usually newest first).
    """

    title: str
    link: str | None
    entries: tuple[Entry, ...]
    #: RSS <ttl> (or sy:updatePeriod) in seconds, when the feed states one.
    ttl: float | None = None


class FeedStatus(StrEnum):
    OK = "ok"
    #: The server answered 410 Gone: polling stopped, subscribers told.
    GONE = "gone"


@dataclass(slots=True)
class Feed:
    """A feed URL the bot polls, with what it needs to poll politely."""

    url: str
    title: str = ""
    #: The site's home page, from the feed.
    link: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    #: Hash of the last body parsed, so a 200 with an unchanged body costs no parse.
    body_hash: str | None = None
    #: Seconds between polls for this feed (adaptive; never below poll.min_interval).
    interval: float | None = None
    #: The document's <ttl> (or sy:updatePeriod) in seconds, from its last parse.
    ttl: float | None = None
    #: Unix time of the next poll; 0 means "as soon as possible".
    next_poll: float = 0.0
    last_success: float | None = None
    last_error: str | None = None
    #: Consecutive failed polls; drives backoff.
    error_count: int = 0
    #: Unix time of the first failure of the current run of failures.
    failing_since: float | None = None
    #: Subscribers were told about the current run of failures.
    failure_notified: bool = False
    status: FeedStatus = FeedStatus.OK
    #: Unix times of recent new entries, newest last, for adaptive intervals.
    recent_entry_times: list[float] = field(default_factory=list)


SummaryLength = Literal["none", "short", "full"]


@dataclass(frozen=True, slots=True)
class Style:
    """How a subscription's messages look. Defaults suit most chats."""

    summary: SummaryLength = "short"
    media: bool = True
    link_preview: bool = False
    silent: bool = False
    show_author: bool = True
    show_feed: bool = True
    show_tags: bool = True
    #: Seconds between polls this subscription asks for (None: the operator's
    #: interval); a feed is polled as often as its most eager subscriber asks,
    #: never below poll.min_interval.
    interval: float | None = None


class ChatKind(StrEnum):
    PRIVATE = "private"
    GROUP = "group"
    SUPERGROUP = "supergroup"
    CHANNEL = "channel"


@dataclass(slots=True)
class Chat:
    """A chat the bot talks to. ``active`` is False once Telegram says it cannot
    reach it (blocked, kicked, not found); its subscriptions are kept, paused."""

    id: int
    kind: ChatKind
    title: str = ""
    username: str | None = None
    active: bool = True


@dataclass(slots=True)
class Subscription:
    chat_id: int
    feed_url: str
    #: Unix time the subscription was made.
    created: float
    style: Style = field(default_factory=Style)
    #: Position in the order the chat subscribed, handed out by the store
    #: (0 until stored); orders /list, even for subscriptions made in one second.
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the bot tells a chat about a feed (gone, failing, back).

    A message-catalogue code and its parameters, not words: the words are
    chosen when it is sent, in the chat's language (bot/texts.py)."""

    code: str
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One (entry, chat) pair, or one notice to a chat, waiting in the outbox.

    Recorded before the send and removed once Telegram accepted it, so a crash
    mid-broadcast resumes where it stopped. Exactly one of ``entry`` and
    ``notice`` is set.
    """

    #: Position in the outbox, handed out by the store (monotonic); a chat's
    #: deliveries are sent in this order.
    seq: int
    chat_id: int
    feed_url: str
    entry: Entry | None
    #: Unix time before which the delivery must not be retried (backoff).
    not_before: float = 0.0
    attempts: int = 0
    #: How many of the entry's messages Telegram has accepted (an entry can be
    #: a photo, then its text): a retry or a restart sends only the rest.
    sent_parts: int = 0
    notice: Notice | None = None
