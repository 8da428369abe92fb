"""The poll plan: pure rules, plain values (bot/plan.py)."""

from __future__ import annotations

import random

import pytest

from bot.fetch import FetchResult
from bot.identity import dedupe_keys
from bot.models import Entry, Feed, FeedStatus, ParsedFeed, Subscription
from bot.plan import (
    BACKOFF_JITTER,
    DAY,
    FAILURE_NOTICE_AFTER,
    HOUR,
    MAX_BACKOFF,
    MAX_RETRY_AFTER,
    SEEN_RETENTION,
    Claim,
    Failure,
    PollRules,
    adaptive_interval,
    backoff_interval,
    jittered,
    plan_poll,
)

T0 = 1_700_000_000.0
#: The ceiling these rule tests were written against.
CAP = 6 * HOUR


def R(interval: float, min_interval: float, **kw) -> PollRules:
    return PollRules(interval, min_interval, kw.pop("max_interval", CAP), **kw)


def test_jittered_stays_within_ten_percent():
    assert jittered(100, lambda: 0.0) == pytest.approx(90)
    assert jittered(100, lambda: 0.5) == pytest.approx(100)
    assert jittered(100, lambda: 1.0) == pytest.approx(110)
    rng = random.Random(7).random
    values = [jittered(600, rng) for _ in range(1000)]
    assert 540 <= min(values) < 560 and 640 < max(values) <= 660


def test_busy_feed_is_polled_at_the_configured_rate():
    busy = [T0 - 3600 + 300 * i for i in range(12)]  # an entry every 5 minutes
    assert adaptive_interval(R(600, 60), busy, T0) == 600
    assert adaptive_interval(R(600, 60), [], T0) == 600
    assert adaptive_interval(R(600, 60), [T0 - 60], T0) == 600


def test_rare_feed_is_polled_less_often_up_to_a_cap():
    daily = [T0 - DAY * i for i in range(5, 0, -1)]  # one entry a day
    assert adaptive_interval(R(600, 60), daily, T0) == DAY / 4
    weekly = [T0 - 7 * DAY * i for i in range(4, 0, -1)]
    assert adaptive_interval(R(600, 60), weekly, T0) == CAP
    # A busy feed that went quiet is stretched by how long it has been quiet.
    went_quiet = [T0 - 2 * HOUR - 60 * i for i in range(10, 0, -1)]
    assert adaptive_interval(R(600, 60), went_quiet, T0) == pytest.approx((2 * HOUR + 60) / 4)
    # One entry only: quiet since then.
    assert adaptive_interval(R(600, 60), [T0 - 8 * HOUR], T0) == 2 * HOUR
    # A configured interval above the cap is kept.
    assert adaptive_interval(R(12 * HOUR, 60), weekly, T0) == 12 * HOUR


def test_feed_with_nothing_new_since_it_was_followed_is_polled_less_often():
    assert adaptive_interval(R(600, 60), [], T0, since=T0 - 60) == 600
    assert adaptive_interval(R(600, 60), [], T0, since=T0 - 4 * HOUR) == HOUR
    assert adaptive_interval(R(600, 60), [], T0, since=T0 - 30 * DAY) == CAP
    # Entries seen since following win over the following date.
    assert adaptive_interval(R(600, 60), [T0 - 60, T0 - 30], T0, since=T0 - 30 * DAY) == 600


def test_ttl_and_max_age_stretch_never_shrink_and_stay_under_the_cap():
    assert adaptive_interval(R(600, 60), [], T0, ttl=3600) == 3600
    assert adaptive_interval(R(600, 60), [], T0, max_age=1800) == 1800
    assert adaptive_interval(R(600, 60), [], T0, ttl=3600, max_age=7200) == 7200
    assert adaptive_interval(R(600, 60), [], T0, ttl=60, max_age=0) == 600  # never shorter
    assert adaptive_interval(R(600, 60), [], T0, max_age=365 * DAY) == CAP
    assert adaptive_interval(R(600, 60), [], T0, ttl=-5) == 600


def test_never_below_min_interval():
    assert adaptive_interval(R(1, 30), [], T0) == 30
    assert adaptive_interval(R(1, 30), [], T0, ttl=5, max_age=10) == 30
    assert backoff_interval(1, 30, 1, None, lambda: 1.0) == 30
    assert backoff_interval(1, 30, 1, 3) == 30


def test_backoff_is_exponential_capped_and_jittered():
    exact = [backoff_interval(600, 60, n, None) for n in range(1, 10)]
    assert exact[:5] == [600, 1200, 2400, 4800, 9600]
    assert exact[5:] == [MAX_BACKOFF] * 4  # 14400
    assert backoff_interval(600, 60, 0, None) == 600
    # Jitter only shortens, by up to BACKOFF_JITTER, so the cap holds.
    assert backoff_interval(600, 60, 3, None, lambda: 0.0) == 2400
    assert backoff_interval(600, 60, 3, None, lambda: 1.0) == pytest.approx(
        2400 * (1 - BACKOFF_JITTER)
    )
    rng = random.Random(3).random
    capped = [backoff_interval(600, 60, 20, None, rng) for _ in range(500)]
    assert max(capped) <= MAX_BACKOFF
    assert min(capped) >= MAX_BACKOFF * (1 - BACKOFF_JITTER)
    assert len({round(c) for c in capped}) > 100  # spread, not one instant
    # A feed polled rarely anyway backs off from its own interval.
    assert backoff_interval(6 * HOUR, 60, 5, None) == 6 * HOUR


def test_backoff_survives_years_of_failures():
    assert backoff_interval(600, 60, 10_000, None) == MAX_BACKOFF
    assert backoff_interval(1e-9, 0, 5000, None) == pytest.approx(1e-9 * 2**32)


def test_retry_after_is_honoured_and_capped():
    assert backoff_interval(60, 10, 1, 300) == 300
    assert backoff_interval(60, 10, 1, 300, lambda: 1.0) == 300  # jitter cannot undercut it
    assert backoff_interval(600, 10, 1, 30) == 600  # exponential backoff still applies
    assert backoff_interval(60, 10, 1, 30 * DAY) == MAX_RETRY_AFTER == DAY
    assert backoff_interval(60, 10, 1, 0.0) == 60
    assert backoff_interval(60, 10, 1, -5) == 60


def test_max_interval_bounds_quiet_feeds_and_adaptivity_can_be_off():
    quiet = [T0 - 30 * DAY]
    # The surprise: interval 5s, a quiet feed, must stay within the operator's ceiling.
    assert adaptive_interval(PollRules(5, 1, max_interval=60), quiet, T0) == 60
    assert adaptive_interval(PollRules(5, 1, max_interval=60, adaptive=False), quiet, T0) == 5
    # TTL still stretches with adaptivity off, within the ceiling.
    assert adaptive_interval(PollRules(5, 1, 60, adaptive=False), [], T0, ttl=3600) == 60


# ------------------------------------------------------------------ plan_poll

RULES = PollRules(interval=600, min_interval=60, max_interval=HOUR)


def entry(n: int) -> Entry:
    return Entry(id=f"id{n}", title=f"Entry {n}", link=f"https://example.org/{n}")


def claim(feed: Feed | None = None, chats=(1, 2), followed=True) -> Claim:
    feed = feed or Feed(url="https://example.org/feed", title="Example", body_hash="old")
    subs = tuple(Subscription(chat, feed.url, created=T0 - DAY) for chat in chats)
    return Claim(feed, subs, followed, lease_until=T0 + 60)


def ok(status=200, body_hash="new", permanent_url=None, max_age=None, etag=None) -> FetchResult:
    return FetchResult(
        url="https://example.org/feed",
        status=status,
        body=b"" if status == 304 else b"<rss/>",
        content_type="application/rss+xml",
        content_location=None,
        etag=etag,
        last_modified=None,
        permanent_url=permanent_url,
        max_age=max_age,
        body_hash=None if status == 304 else body_hash,
    )


def parsed(*entries: Entry, title="Example", ttl=None) -> ParsedFeed:
    return ParsedFeed(title=title, link="https://example.org/", entries=entries, ttl=ttl)


def mid(_rng=None) -> float:
    return 0.5


def test_unchanged_feed_changes_only_its_schedule():
    c = claim(Feed(url="https://example.org/feed", etag='"a"', last_success=T0 - 600))
    plan = plan_poll(c, RULES, T0, result=ok(304, etag='"b"'), rng=mid)
    assert plan.changed is False
    assert plan.seen == () and plan.enqueue == () and plan.tell == ()
    assert plan.feed is not None
    assert plan.feed.etag == '"b"' and plan.feed.last_success == T0
    # Followed for a day with nothing new: quiet, so polled at the operator's ceiling.
    assert plan.feed.next_poll == pytest.approx(T0 + HOUR)
    assert c.feed.etag == '"a"', "the claimed feed is not mutated"


def test_new_entries_are_queued_oldest_first_for_every_subscriber_and_all_keys_marked():
    doc = parsed(entry(3), entry(2), entry(1))  # newest first, as feeds list them
    seen = set(dedupe_keys(entry(1)))
    plan = plan_poll(claim(), RULES, T0, result=ok(), parsed=doc, seen=seen, rng=mid)
    assert [q.entry.id for q in plan.enqueue] == ["id2", "id3"]
    assert all(q.chat_ids == (1, 2) for q in plan.enqueue)
    assert set(plan.seen) == {k for e in doc.entries for k in dedupe_keys(e)}
    assert plan.changed and plan.feed is not None and plan.feed.body_hash == "new"
    assert plan.feed.recent_entry_times[-1] == T0


def test_nothing_queued_when_no_chat_is_active_but_keys_still_marked():
    plan = plan_poll(claim(chats=()), RULES, T0, result=ok(), parsed=parsed(entry(1)), rng=mid)
    assert plan.enqueue == ()
    assert plan.seen  # resuming later must not flood the chat with this backlog


def test_unfollowed_feed_is_deleted_without_fetching():
    plan = plan_poll(claim(chats=(), followed=False), RULES, T0)
    assert plan.feed is None and plan.url == "https://example.org/feed"


def test_permanent_redirect_moves_the_feed():
    plan = plan_poll(
        claim(), RULES, T0, result=ok(permanent_url="https://new.example/feed"), rng=mid
    )
    assert plan.moved_to == "https://new.example/feed"
    assert plan.feed is not None and plan.feed.url == "https://new.example/feed"
    assert plan.url == "https://example.org/feed" and plan.changed


def test_failures_back_off_and_tell_once_after_a_day():
    feed = Feed(url="https://example.org/feed", title="Ex", interval=600)
    first = plan_poll(claim(feed), RULES, T0, failure=Failure("HTTP 500"), rng=lambda: 0.0)
    assert first.feed is not None
    assert first.feed.error_count == 1 and first.feed.failing_since == T0
    assert first.feed.next_poll == T0 + 600 and first.tell == ()
    later = T0 + FAILURE_NOTICE_AFTER
    second = plan_poll(claim(first.feed), RULES, later, failure=Failure("HTTP 500"), rng=mid)
    assert second.feed is not None and second.feed.failure_notified
    assert [t.notice.code for t in second.tell] == ["feed.failing"]
    assert second.tell[0].notice.params["error"] == "HTTP 500"
    assert second.tell[0].chat_ids == (1, 2)
    third = plan_poll(claim(second.feed), RULES, later + 1, failure=Failure("x"), rng=mid)
    assert third.tell == ()  # once
    back = plan_poll(claim(third.feed), RULES, later + 2, result=ok(304), rng=mid)
    assert [t.notice.code for t in back.tell] == ["feed.back"]
    assert back.feed is not None and back.feed.error_count == 0 and back.changed


def test_retry_after_is_honoured_in_the_plan():
    plan = plan_poll(claim(), RULES, T0, failure=Failure("429", retry_after=7200), rng=mid)
    assert plan.feed is not None and plan.feed.next_poll == T0 + 7200


def test_gone_stops_and_tells():
    plan = plan_poll(claim(), RULES, T0, failure=Failure("410 Gone", gone=True), rng=mid)
    assert plan.feed is not None and plan.feed.status is FeedStatus.GONE
    assert [t.notice.code for t in plan.tell] == ["feed.gone"]


def test_seen_keys_are_pruned_once_a_day():
    day = (T0 // DAY) * DAY + 10
    fresh = Feed(url="https://example.org/feed", last_success=day - 20)  # yesterday
    plan = plan_poll(claim(fresh), RULES, day, result=ok(), parsed=parsed(entry(1)), rng=mid)
    assert plan.prune_before == day - SEEN_RETENTION
    again = Feed(url="https://example.org/feed", last_success=day + 5)  # today already
    plan = plan_poll(claim(again), RULES, day + 50, result=ok(), parsed=parsed(entry(1)), rng=mid)
    assert plan.prune_before is None


def test_ttl_and_title_come_from_the_document():
    doc = parsed(entry(1), title="New title", ttl=7200.0)
    plan = plan_poll(claim(), RULES, T0, result=ok(), parsed=doc, rng=mid)
    assert plan.feed is not None and plan.feed.title == "New title" and plan.feed.ttl == 7200
    assert plan.feed.interval == HOUR  # the TTL stretches to the operator's ceiling, no further


def test_plans_are_deterministic_given_the_same_inputs():
    rng = random.Random(1)
    a = plan_poll(claim(), RULES, T0, result=ok(), parsed=parsed(entry(1)), rng=rng.random)
    rng = random.Random(1)
    b = plan_poll(claim(), RULES, T0, result=ok(), parsed=parsed(entry(1)), rng=rng.random)
    assert a == b


def test_a_subscription_may_ask_for_a_shorter_interval_within_the_floor():
    from dataclasses import replace as change

    from bot.models import Style

    base = claim()
    eager = change(base.subscribers[0], style=Style(interval=120.0))
    lazy = change(base.subscribers[1], style=Style(interval=7200.0))
    fast = Claim(base.feed, (eager, lazy), True, base.lease_until)
    plan = plan_poll(fast, PollRules(600, 60, 600, adaptive=False), T0, result=ok(304), rng=mid)
    assert plan.feed is not None and plan.feed.interval == 120  # the most eager subscriber
    too_fast = Claim(base.feed, (change(eager, style=Style(interval=5.0)),), True, T0)
    plan = plan_poll(too_fast, PollRules(600, 60, 600, adaptive=False), T0, result=ok(304), rng=mid)
    assert plan.feed is not None and plan.feed.interval == 60  # never below min_interval
    slow = Claim(base.feed, (lazy,), True, T0)
    plan = plan_poll(slow, PollRules(600, 60, 600, adaptive=False), T0, result=ok(304), rng=mid)
    assert plan.feed is not None and plan.feed.interval == 7200  # asked for: above the ceiling


def test_keys_given_by_the_caller_change_nothing():
    doc = parsed(entry(3), entry(2), entry(1))
    seen = set(dedupe_keys(entry(1)))
    keys = [dedupe_keys(e) for e in doc.entries]
    given = plan_poll(
        claim(), RULES, T0, result=ok(), parsed=doc, seen=seen, rng=mid, entry_keys=keys
    )
    assert given == plan_poll(claim(), RULES, T0, result=ok(), parsed=doc, seen=seen, rng=mid)
