"""Telegram's flood limits as arithmetic (bot/flood.py): plain numbers, no clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.flood import Flood, Wait, Window, chat_key, message_count


# -- Window -------------------------------------------------------------------
def test_window_counts_units_in_flight_and_stamps_them_when_answered():
    window = Window(3, 1.0)
    assert window.delay(0.0, 2) == 0.0
    window.open(2)
    assert window.delay(0.0, 1) == 0.0
    window.open(1)
    # Full, and only an answer can make room.
    assert window.delay(0.1, 1) is None
    window.close(0.2, 2)
    # The two answered at 0.2 free their places at 1.2.
    assert window.delay(0.5, 1) == pytest.approx(0.7)
    assert window.delay(1.1, 2) == pytest.approx(0.1)
    # Three more fit only once the one in flight has been answered.
    assert window.delay(1.1, 3) is None
    assert window.delay(1.2, 2) == 0.0
    window.close(1.3, 1)
    assert window.delay(1.3, 3) == pytest.approx(1.0)
    assert window.delay(2.5, 3) == 0.0
    assert window.idle


def test_window_never_waits_for_ever_for_more_units_than_it_holds():
    window = Window(2, 1.0)
    assert window.delay(0.0, 5) == 0.0  # counted as a full window, not refused for ever


@given(st.lists(st.tuples(st.integers(1, 4), st.floats(0.0, 0.5)), min_size=1, max_size=60))
def test_a_window_obeyed_never_holds_more_than_its_limit(sends):
    """Sends admitted whenever the window says so: at most ``limit`` units
    were answered in any ``period`` (half-open) and none overlaps in flight."""
    window = Window(5, 1.0)
    now = 0.0
    stamps: list[float] = []
    for units, latency in sends:
        wait = window.delay(now, units)
        assert wait is not None  # nothing is in flight between sends here
        now += wait
        window.open(units)
        now += latency
        window.close(now, units)
        stamps.extend([now] * min(units, 5))
    for t in stamps:  # (a nanosecond's slack for float rounding)
        assert sum(1 for u in stamps if t - 1.0 + 1e-9 < u <= t) <= 5


# -- what counts ---------------------------------------------------------------
def test_message_count_counts_sends_and_media_items_only():
    assert message_count("sendMessage", {"chat_id": 1}) == 1
    assert message_count("sendPhoto", {"chat_id": 1}) == 1
    assert message_count("sendMediaGroup", {"chat_id": 1, "media": [1, 2, 3, 4]}) == 4
    assert message_count("copyMessage", {"chat_id": 1}) == 1
    assert message_count("forwardMessages", {"chat_id": 1, "message_ids": [1, 2]}) == 2
    for method in ("getChatMember", "answerCallbackQuery", "setMyCommands", "sendChatAction"):
        assert message_count(method, {"chat_id": 1}) == 0


def test_chat_key_reads_ids_and_usernames():
    assert chat_key({"chat_id": 5}) == 5
    assert chat_key({"chat_id": "-100123"}) == -100123
    assert chat_key({"chat_id": "@news"}) == "@news"
    assert chat_key({}) is None


# -- Flood: the three limits together -----------------------------------------
def test_a_private_chat_is_spaced_by_its_items_after_each_answer():
    flood = Flood()
    assert flood.wait(7, 1, 0.0) == Wait(0.0, 0.0)
    flood.admit(7, 3)
    # One call in flight per chat: the next waits for the answer.
    assert flood.wait(7, 1, 0.1).chat is None
    flood.answered(7, 3, 0.2)  # an album of three: three seconds
    assert flood.wait(7, 1, 1.0).chat == pytest.approx(2.2)
    assert flood.wait(7, 1, 3.2).ready
    # Other chats are not held up by this one.
    assert flood.wait(8, 1, 0.5).ready


def test_a_group_gets_20_a_minute():
    flood = Flood()
    now = 0.0
    for _ in range(20):
        wait = flood.wait(-100, 1, now)
        assert wait.chat is not None
        now += wait.chat
        flood.admit(-100, 1)
        flood.answered(-100, 1, now)
    # The 21st waits until the first of the minute is a minute old.
    assert flood.wait(-100, 1, now).chat == pytest.approx(60.0 - now + 0.0)
    assert now == pytest.approx(19.0)  # one a second meanwhile
    assert flood.wait(-200, 1, now).ready


def test_overall_limit_holds_30_in_flight_and_30_a_second():
    flood = Flood()
    for chat in range(1, 31):
        assert flood.wait(chat, 1, 0.0).ready
        flood.admit(chat, 1)
    assert flood.in_flight == 30
    assert flood.wait(31, 1, 0.0) == Wait(0.0, None)  # only an answer makes room
    for chat in range(1, 31):
        flood.answered(chat, 1, 0.1)
    assert flood.wait(31, 1, 0.5) == Wait(0.0, pytest.approx(0.6))
    assert flood.wait(31, 1, 1.1).ready


def test_a_429_holds_its_chat_only():
    flood = Flood()
    flood.admit(5, 1)
    flood.hold(5, 10.0)
    flood.answered(5, 1, 0.3)
    assert flood.wait(5, 1, 1.0).chat == pytest.approx(9.0)
    assert flood.wait(6, 1, 1.0).ready
