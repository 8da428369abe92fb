"""Pure pieces behind the commands: splitting long answers, /set values, channel references."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.commands.access import split_channel_ref
from bot.commands.replies import pack
from bot.models import Style
from bot.subscriptions import apply_setting
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
    ("args", "ref"),
    [
        (["@mychannel", "https://x"], "@mychannel"),
        (["-1001234567890", "1"], "-1001234567890"),
        (["https://x"], None),
        (["@ab", "x"], None),  # too short for a username
        (["-42", "x"], None),  # a basic group id is no channel
        ([], None),
    ],
)
def test_channel_reference_is_the_first_argument(args, ref):
    found, rest = split_channel_ref(args)
    assert found == ref
    assert rest == (args[1:] if ref else args)
