"""kill -9 at random moments, again and again, during polls and a broadcast
(issue 9); the scenario is testkit/kills.py (bench/kills.py runs 20 kills)."""

from __future__ import annotations

from bot.flood import MESSAGES_PER_SECOND
from testkit.fake_telegram import FakeTelegram
from testkit.feed_server import FeedServer
from testkit.kills import kill_rounds


async def test_random_kills_during_polls_and_a_broadcast(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    report = await kill_rounds(tmp_path, telegram, feeds, kills=4, seed=9)
    assert report.kills == 4
    assert sum(1 for q in report.queued if q) >= 2, f"kills came mid-sending: {report.queued}"
    assert all(len(r) <= MESSAGES_PER_SECOND for r in report.in_flight), report.in_flight
