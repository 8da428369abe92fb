"""bot/metrics.py: the counters the loops report to, the gauges sampled from the store."""

from __future__ import annotations

import pytest

from bot.metrics import Metrics
from bot.store.base import OutboxStats, StoreStats


def test_every_outcome_is_exported_from_the_start_at_zero() -> None:
    m = Metrics()
    text = m.render().decode()
    for outcome in ("new_entries", "unchanged", "failed", "gone", "dropped", "lost"):
        assert f'feedbot_polls_total{{outcome="{outcome}"}} 0.0' in text
    for outcome in ("sent", "retry", "chat_gone", "migrated", "fallback", "refused"):
        assert f'feedbot_deliveries_total{{outcome="{outcome}"}} 0.0' in text


def test_polls_count_by_outcome_and_time_the_fetch() -> None:
    m = Metrics()
    m.poll_done("new_entries", 0.2)
    m.poll_done("new_entries", 3.0)
    m.poll_done("failed", 20.0)
    assert m.value("feedbot_polls_total", outcome="new_entries") == 2
    assert m.value("feedbot_polls_total", outcome="failed") == 1
    assert m.value("feedbot_fetch_seconds_count") == 3
    assert m.value("feedbot_fetch_seconds_sum") == pytest.approx(23.2)
    assert m.value("feedbot_fetch_seconds_bucket", le="0.25") == 1
    assert m.value("feedbot_fetch_seconds_bucket", le="5.0") == 2


def test_new_entries_deliveries_and_429s() -> None:
    m = Metrics()
    m.new_entries(3)
    m.new_entries(0)
    m.delivery_done("sent")
    m.delivery_done("retry")
    m.delivery_done("sent")
    m.rate_limited()
    assert m.value("feedbot_new_entries_total") == 3
    assert m.value("feedbot_deliveries_total", outcome="sent") == 2
    assert m.value("feedbot_deliveries_total", outcome="retry") == 1
    assert m.value("feedbot_telegram_429_total") == 1


def test_unknown_outcomes_are_refused_so_series_stay_bounded() -> None:
    m = Metrics()
    with pytest.raises(ValueError, match="unknown poll outcome"):
        m.poll_done("timeout", 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown delivery outcome"):
        m.delivery_done("chat gone")  # type: ignore[arg-type]


def test_store_gauges() -> None:
    m = Metrics()
    stats = StoreStats(
        chats=5,
        active_chats=4,
        feeds=7,
        failing_feeds=2,
        subscriptions=9,
        outbox=OutboxStats(depth=12, oldest=1000.0),
    )
    m.observe_store(stats, due=3, now=1042.5)
    assert m.value("feedbot_outbox_depth") == 12
    assert m.value("feedbot_outbox_oldest_age_seconds") == 42.5
    assert m.value("feedbot_feeds_due") == 3
    assert m.value("feedbot_feeds") == 7
    assert m.value("feedbot_failing_feeds") == 2
    assert m.value("feedbot_subscriptions") == 9
    assert m.value("feedbot_active_chats") == 4
    empty = StoreStats(0, 0, 0, 0, 0, OutboxStats(depth=0, oldest=None))
    m.observe_store(empty, due=0, now=2000.0)
    assert m.value("feedbot_outbox_oldest_age_seconds") == 0


def test_sender_gauge_names_the_process() -> None:
    m = Metrics()
    m.set_sender(False, "host-1-ab")
    assert m.value("feedbot_sender", owner="host-1-ab") == 0
    m.set_sender(True, "host-1-ab")
    assert m.value("feedbot_sender", owner="host-1-ab") == 1
    m.set_sender(True, "host-2-cd")  # one series per process, not one per owner ever seen
    assert m.value("feedbot_sender", owner="host-1-ab") is None
    assert m.value("feedbot_sender", owner="host-2-cd") == 1


def test_each_instance_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.rate_limited()
    assert b.value("feedbot_telegram_429_total") == 0


def test_recent_count_keeps_the_last_hour_only() -> None:
    from bot.metrics import RecentCount

    now = [1000.0]
    count = RecentCount(lambda: now[0])
    count.add()
    count.add(2)
    now[0] += 1800
    count.add()
    assert count.last_hour() == 4
    now[0] += 1800 + 61  # the first minute's events are more than an hour old
    assert count.last_hour() == 1
    now[0] += 3700
    assert count.last_hour() == 0


def test_polls_and_sent_deliveries_are_counted_for_the_last_hour() -> None:
    m = Metrics(clock=lambda: 50.0)
    m.poll_done("unchanged", 0.1)
    m.poll_recorded("failed")
    m.delivery_done("sent")
    m.delivery_done("retry")  # not a delivery made
    assert (m.recent_polls.last_hour(), m.recent_deliveries.last_hour()) == (2, 1)
    assert m.value("feedbot_polls_total", outcome="failed") == 1
