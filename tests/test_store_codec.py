"""The codec: every record the stores persist survives JSON unchanged, and
records written by another version still load."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

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
from bot.store import codec

ODD = st.sampled_from(["\x1f", "\x1e", "\x00", "😀", "\uffff", "\U0010ffff", "\ud800", ":", "/"])
odd_text = st.text(st.characters(exclude_categories=()) | ODD, max_size=12)


def entry(n: int | str = 1, **kw: object) -> Entry:
    return Entry(id=f"id-{n}", title=f"Title {n}", link=f"https://example.com/{n}", **kw)  # type: ignore[arg-type]


aware_or_naive = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.none()
    | st.just(UTC)
    | st.builds(timezone, st.timedeltas(timedelta(hours=-23), timedelta(hours=23))),
)
medias = st.builds(
    Media,
    url=odd_text,
    kind=st.sampled_from(["image", "video", "audio", "document"]),
    mime_type=st.none() | odd_text,
    length=st.none() | st.integers(-(2**63), 2**63),
    source=odd_text,
)
entries = st.builds(
    Entry,
    id=odd_text,
    title=odd_text,
    link=st.none() | odd_text,
    html=odd_text,
    base_url=st.none() | odd_text,
    author=st.none() | odd_text,
    categories=st.lists(odd_text, max_size=3).map(tuple),
    published=st.none() | aware_or_naive,
    updated=st.none() | aware_or_naive,
    media=st.lists(medias, max_size=3).map(tuple),
)
floats = st.floats(allow_nan=False)
feeds = st.builds(
    Feed,
    url=odd_text,
    title=odd_text,
    link=st.none() | odd_text,
    etag=st.none() | odd_text,
    last_modified=st.none() | odd_text,
    body_hash=st.none() | odd_text,
    interval=st.none() | floats,
    next_poll=floats,
    last_success=st.none() | floats,
    last_error=st.none() | odd_text,
    error_count=st.integers(0, 10**6),
    failing_since=st.none() | floats,
    failure_notified=st.booleans(),
    status=st.sampled_from(FeedStatus),
    recent_entry_times=st.lists(floats, max_size=5),
)
styles = st.builds(
    Style,
    summary=st.sampled_from(["none", "short", "full"]),
    media=st.booleans(),
    link_preview=st.booleans(),
    silent=st.booleans(),
    show_author=st.booleans(),
    show_feed=st.booleans(),
    show_tags=st.booleans(),
)
subscriptions = st.builds(
    Subscription,
    chat_id=st.integers(),
    feed_url=odd_text,
    created=floats,
    style=styles,
    seq=st.integers(0, 2**62),
)
notices = st.builds(Notice, code=odd_text, params=st.dictionaries(odd_text, odd_text, max_size=3))
deliveries = st.builds(
    Delivery,
    seq=st.integers(1, 2**62),
    chat_id=st.integers(),
    feed_url=odd_text,
    entry=st.none() | entries,
    not_before=floats,
    attempts=st.integers(0, 100),
    sent_parts=st.integers(0, 10),
    notice=st.none() | notices,
)
chats = st.builds(
    Chat,
    id=st.integers(),
    kind=st.sampled_from(ChatKind),
    title=odd_text,
    username=st.none() | odd_text,
    active=st.booleans(),
)


def through_json(d: dict) -> dict:
    return json.loads(json.dumps(d))


@given(entries)
def test_codec_round_trips_any_entry(e: Entry) -> None:
    back = codec.entry_from_dict(through_json(codec.entry_to_dict(e)))
    assert back == e
    for a, b in ((e.published, back.published), (e.updated, back.updated)):
        assert (a and a.utcoffset()) == (b and b.utcoffset())
    assert codec.entry_digest(back) == codec.entry_digest(e)


@given(feeds)
def test_codec_round_trips_any_feed(f: Feed) -> None:
    assert codec.feed_from_dict(through_json(codec.feed_to_dict(f))) == f


@given(subscriptions)
def test_codec_round_trips_any_subscription(s: Subscription) -> None:
    assert codec.subscription_from_dict(through_json(codec.subscription_to_dict(s))) == s


@given(chats)
def test_codec_round_trips_any_chat(c: Chat) -> None:
    assert codec.chat_from_dict(through_json(codec.chat_to_dict(c))) == c


def test_codec_tolerates_missing_and_unknown_keys() -> None:
    assert codec.feed_from_dict({"url": "u", "future": 1}) == Feed(url="u")
    assert codec.entry_from_dict({"id": "x", "extra": []}) == Entry(id="x", title="")
    assert codec.subscription_from_dict({"chat_id": 1, "feed_url": "u", "created": 2}) == (
        Subscription(1, "u", 2.0)
    )
    assert codec.chat_from_dict({"id": 1, "kind": "channel"}) == Chat(1, ChatKind.CHANNEL)
    assert codec.style_from_dict({"silent": True, "new_option": 1}) == Style(silent=True)


def test_entry_digest_depends_on_content() -> None:
    assert codec.entry_digest(entry(1)) == codec.entry_digest(entry(1))
    assert codec.entry_digest(entry(1)) != codec.entry_digest(entry(1, html="x"))
    tz = timezone(timedelta(hours=2))
    a = entry(1, published=datetime(2024, 1, 1, 12, tzinfo=tz))
    assert codec.entry_from_dict(codec.entry_to_dict(a)).published.tzinfo == tz  # type: ignore[union-attr]


@given(notices)
def test_codec_round_trips_any_notice(n: Notice) -> None:
    assert codec.notice_from_dict(through_json(codec.notice_to_dict(n))) == n


@given(deliveries)
def test_codec_round_trips_any_delivery(d: Delivery) -> None:
    assert codec.delivery_from_dict(through_json(codec.delivery_to_dict(d))) == d


def test_a_subscription_written_before_seq_loads_with_seq_0() -> None:
    old = {"chat_id": 1, "feed_url": "u", "created": 2, "style": {}}
    assert codec.subscription_from_dict(old).seq == 0
