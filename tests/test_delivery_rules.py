"""The verdict on each Telegram answer (bot/delivery_rules.py), with plain values."""

from __future__ import annotations

import datetime as dtm

import pytest
from hypothesis import given
from hypothesis import strategies as st
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TimedOut,
)

import bot.delivery_rules as rules
from bot.delivery_rules import (
    ChatGone,
    Migrated,
    PlainText,
    Refused,
    Retry,
    Sent,
    TextOnly,
    backoff_delay,
    classify,
)

HALF = 0.5  # rng() → no jitter: the nominal step


def mid() -> float:
    return HALF


def test_accepted_is_sent():
    assert classify(None, "html") == Sent()


def test_429_waits_its_retry_after_and_is_not_a_failure():
    verdict = classify(RetryAfter(dtm.timedelta(seconds=45)), "media", attempts=3)
    assert isinstance(verdict, Retry)
    assert verdict.delay == 45.0
    assert verdict.counts is False


def test_migrated_group_moves_to_the_new_id():
    assert classify(ChatMigrated(-1009001), "html") == Migrated(-1009001)


@pytest.mark.parametrize(
    "error",
    [
        Forbidden("Forbidden: bot was blocked by the user"),
        Forbidden("Forbidden: bot was kicked from the group chat"),
        Forbidden("Forbidden: bot is not a member of the channel chat"),
        BadRequest("Chat not found"),
        BadRequest("Bad Request: need administrator rights in the channel chat"),
        BadRequest("Bad Request: not enough rights to send text messages to the chat"),
    ],
)
@pytest.mark.parametrize("kind", ["media", "html", "plain"])
def test_unreachable_chats_are_gone(error, kind):
    assert isinstance(classify(error, kind), ChatGone)


@pytest.mark.parametrize(
    "description",
    [
        "Bad Request: wrong file identifier/HTTP URL specified",
        "Bad Request: failed to get HTTP URL content",
        "Bad Request: IMAGE_PROCESS_FAILED",
        "Bad Request: group send failed",
        "Bad Request: wrong type of the web page content",
    ],
)
def test_refused_media_falls_back_to_text_only(description):
    assert isinstance(classify(BadRequest(description), "media"), TextOnly)
    # Without media the same words mean Telegram refuses the message itself.
    assert isinstance(classify(BadRequest(description), "html"), Refused)


@pytest.mark.parametrize(
    "description",
    [
        'Bad Request: can\'t parse entities: unsupported start tag "blink" at byte offset 3',
        "Bad Request: message is too long",
        "Bad Request: message caption is too long",
    ],
)
def test_refused_markup_falls_back_to_plain_text_once(description):
    assert isinstance(classify(BadRequest(description), "html"), PlainText)
    assert isinstance(classify(BadRequest(description), "media"), PlainText)
    # Plain text refused as well: there is nothing simpler to send.
    assert isinstance(classify(BadRequest(description), "plain"), Refused)


def test_other_400s_are_refused_for_good():
    assert isinstance(classify(BadRequest("Bad Request: message text is empty"), "html"), Refused)


@pytest.mark.parametrize(
    "error", [NetworkError("Bad Gateway"), TimedOut(), NetworkError("connection reset")]
)
def test_transient_errors_back_off_with_the_attempts(error):
    first = classify(error, "html", attempts=0, rng=mid)
    third = classify(error, "html", attempts=2, rng=mid)
    assert first == Retry(rules.BACKOFF_BASE, first.reason)  # type: ignore[union-attr]
    assert isinstance(third, Retry) and third.counts
    assert third.delay == rules.BACKOFF_BASE * 4


def test_a_bug_is_retried_a_few_times_then_refused():
    bug = RuntimeError("renderer bug")
    for attempts in range(rules.MAX_UNEXPECTED_ATTEMPTS - 1):
        assert isinstance(classify(bug, "html", attempts, rng=mid), Retry)
    assert isinstance(classify(bug, "html", rules.MAX_UNEXPECTED_ATTEMPTS - 1), Refused)


def test_backoff_grows_with_jitter_and_is_capped():
    assert backoff_delay(1, rng=lambda: 0.0) == pytest.approx(1.0)
    assert backoff_delay(1, rng=lambda: 1.0) == pytest.approx(3.0)
    assert backoff_delay(3, rng=lambda: 0.5) == pytest.approx(8.0)
    assert backoff_delay(50, rng=lambda: 0.5) == pytest.approx(rules.BACKOFF_CAP)


@given(st.integers(min_value=1, max_value=200), st.floats(min_value=0.0, max_value=1.0))
def test_backoff_stays_within_half_and_one_and_a_half_of_its_cap(attempts, r):
    delay = backoff_delay(attempts, rng=lambda: r)
    assert 0.5 * rules.BACKOFF_BASE <= delay <= 1.5 * rules.BACKOFF_CAP
    assert backoff_delay(attempts + 1, rng=lambda: r) >= delay
