"""Pure pieces behind the commands: splitting long answers, /set values, channel references."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.commands.access import split_chat_ref
from bot.commands.replies import pack
from bot.models import Style
from bot.settings import apply_setting
from testkit.telegram_html import utf16_len

lines = st.lists(st.text(min_size=1, max_size=900).filter(lambda s: "\n" not in s), max_size=40)


@given(lines)
def test_pack_keeps_every_line_whole_and_each_message_within_limit(items):
    messages = pack(items)
    assert "\n".join(messages) == "\n".join(items)
    for message in messages:
        assert utf16_len(message) <= 4096
    # A line is never cut: each message is a run of whole lines.
    assert sum(len(m.split("\n")) for m in messages) == sum(len(i.split("\n")) for i in items)


def test_pack_counts_utf16_units_not_code_points():
    emoji_line = "😀" * 1500  # 3000 UTF-16 units
    assert len(pack([emoji_line, emoji_line])) == 2


@pytest.mark.parametrize(
    ("key", "value", "field", "expected"),
    [
        ("summary", "none", "summary", "none"),
        ("summary", "FULL", "summary", "full"),
        ("media", "off", "media", False),
        ("preview", "on", "link_preview", True),
        ("silent", "yes", "silent", True),
        ("author", "off", "show_author", False),
        ("feed", "off", "show_feed", False),
        ("tags", "false", "show_tags", False),
    ],
)
def test_set_changes_one_field(key, value, field, expected):
    style = apply_setting(Style(), key, value)
    assert getattr(style, field) == expected
    others = {f: getattr(Style(), f) for f in Style.__slots__ if f != field}
    assert {f: getattr(style, f) for f in others} == others


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("colour", "red", "Unknown setting"),
        ("summary", "long", "none, short, full"),
        ("media", "maybe", "on or off"),
    ],
)
def test_set_refuses_bad_values_with_the_reason(key, value, message):
    with pytest.raises(ValueError, match=message):
        apply_setting(Style(), key, value)


@pytest.mark.parametrize(
    ("args", "ref", "rest", "unclear"),
    [
        (["@mychannel", "https://x"], "@mychannel", ["https://x"], None),
        (["-1001234567890", "1"], "-1001234567890", ["1"], None),
        (["-1009100", "https://x"], "-1009100", ["https://x"], None),  # short: getChat decides
        (["-42", "x"], "-42", ["x"], None),  # a group id: resolved, then refused as no channel
        (["@ab", "x"], "@ab", ["x"], None),
        (["harness_chan", "https://x"], "@harness_chan", ["https://x"], None),
        (["harness_chan"], None, ["harness_chan"], None),  # alone: an attempt at a URL
        (["x", "https://y"], None, ["https://y"], "x"),
        (["https://x"], None, ["https://x"], None),
        (["example.com/feed", "b.org"], None, ["example.com/feed", "b.org"], None),
        (["1", "summary", "full"], None, ["1", "summary", "full"], None),
        ([], None, [], None),
    ],
)
def test_chat_reference_is_the_first_argument(args, ref, rest, unclear):
    found = split_chat_ref(args)
    assert (found.ref, found.rest, found.unclear) == (ref, rest, unclear)


def test_a_lone_name_is_a_chat_for_commands_that_take_only_a_chat():
    assert split_chat_ref(["harness_chan"], alone=True).ref == "@harness_chan"
    assert split_chat_ref(["what.ever"], alone=True).rest == ["what.ever"]


usernames = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{3,31}", fullmatch=True)
addresses = st.from_regex(r"https?://[a-z]{1,10}\.[a-z]{2,5}/[a-z0-9/]{0,20}", fullmatch=True)


@given(usernames, st.lists(addresses, min_size=1, max_size=4))
def test_a_name_before_addresses_is_always_a_chat(name, urls):
    found = split_chat_ref([name, *urls])
    assert found.ref == "@" + name and found.rest == urls and found.unclear is None


@given(st.lists(addresses, min_size=1, max_size=4))
def test_addresses_alone_name_no_chat(urls):
    assert split_chat_ref(urls).ref is None
    assert split_chat_ref(urls).rest == urls


def test_bulk_summary_counts_each_outcome_and_names_failures():
    from bot.commands.bulk import LIST_ALL_UP_TO, summary
    from bot.subscriptions import Answer, BulkReport, Outcome

    answers = (
        Answer(True, "Subscribed to A"),
        Answer(False, "x: not a URL"),
        Answer(False, "Already subscribed to C.", Outcome.ALREADY),
        Answer(True, "Subscribed to B"),
    )
    assert summary(BulkReport(answers), "import.summary") == [
        "The file lists 4 feeds: added 2, already there 1, failed 1.",
        *(a.text for a in answers),  # a handful: each one named
    ]
    assert summary(BulkReport(answers[:1])) == [
        "1 feed: added 1.",
        "Subscribed to A",
    ]
    many = BulkReport(answers * LIST_ALL_UP_TO)
    lines = summary(many, "subscribe.summary", "News")
    assert lines[0].startswith(f"News: {4 * LIST_ALL_UP_TO} feeds: added {2 * LIST_ALL_UP_TO},")
    assert lines[1:] == ["x: not a URL"] * LIST_ALL_UP_TO  # many: only the failures


def test_bulk_summary_says_how_many_the_quota_left_out():
    from bot.commands.bulk import summary
    from bot.subscriptions import Answer, BulkReport, Outcome

    over = Answer(False, "over", Outcome.OVER_QUOTA)
    lines = summary(BulkReport((Answer(True, "Subscribed to A"), over, over), quota=1))
    assert lines[0] == "3 feeds: added 1."
    assert lines[-1] == "Left out 2 feeds: this chat may have at most 1 subscriptions."
    assert "over" not in lines


def test_export_caption_is_singular_for_one():
    from bot.commands.opml import export_caption

    assert [export_caption(n) for n in (1, 2, 0)] == [
        "1 subscription",
        "2 subscriptions",
        "0 subscriptions",
    ]


def test_interval_setting_is_a_duration_within_the_floor():
    from bot.models import Style

    assert apply_setting(Style(), "interval", "30m", min_interval=60).interval == 1800
    assert apply_setting(Style(interval=1800), "interval", "default").interval is None
    with pytest.raises(ValueError, match="no shorter than 1m"):
        apply_setting(Style(), "interval", "10s", min_interval=60)
    with pytest.raises(ValueError, match="a duration like 30m"):
        apply_setting(Style(), "interval", "soon")
