"""bot.poller: the scheduling rules as pure functions, then the Poller itself
with an injected clock and random source, a recording job queue, a real store
and a real fetcher against the local feed server (no Telegram, no waiting)."""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

import bot.poller as poller_module
from bot.config import PollConfig
from bot.fetch import Fetcher, FetchResult
from bot.models import Chat, ChatKind, Feed, FeedStatus, Subscription
from bot.poller import (
    BACKOFF_JITTER,
    DAY,
    FAILURE_NOTICE_AFTER,
    HOUR,
    MAX_BACKOFF,
    MAX_INTERVAL,
    MAX_RETRY_AFTER,
    STARTUP_RATE,
    STARTUP_SPREAD,
    Poller,
    PollResult,
    adaptive_interval,
    backoff_interval,
    jittered,
    poll_all,
    startup_delay,
)
from bot.store import SqliteStore
from bot.subscriptions import Scheduling, Subscriptions
from testkit.feed_server import FeedServer

T0 = 1_800_000_000.0


# ------------------------------------------------------------------ pure rules


def test_jittered_stays_within_ten_percent():
    assert jittered(100, lambda: 0.0) == pytest.approx(90)
    assert jittered(100, lambda: 0.5) == pytest.approx(100)
    assert jittered(100, lambda: 1.0) == pytest.approx(110)
    rng = random.Random(7).random
    values = [jittered(600, rng) for _ in range(1000)]
    assert 540 <= min(values) < 560 and 640 < max(values) <= 660


def test_busy_feed_is_polled_at_the_configured_rate():
    busy = [T0 - 3600 + 300 * i for i in range(12)]  # an entry every 5 minutes
    assert adaptive_interval(600, 60, busy, T0) == 600
    assert adaptive_interval(600, 60, [], T0) == 600
    assert adaptive_interval(600, 60, [T0 - 60], T0) == 600


def test_rare_feed_is_polled_less_often_up_to_a_cap():
    daily = [T0 - DAY * i for i in range(5, 0, -1)]  # one entry a day
    assert adaptive_interval(600, 60, daily, T0) == DAY / 4
    weekly = [T0 - 7 * DAY * i for i in range(4, 0, -1)]
    assert adaptive_interval(600, 60, weekly, T0) == MAX_INTERVAL
    # A busy feed that went quiet is stretched by how long it has been quiet.
    went_quiet = [T0 - 2 * HOUR - 60 * i for i in range(10, 0, -1)]
    assert adaptive_interval(600, 60, went_quiet, T0) == pytest.approx((2 * HOUR + 60) / 4)
    # One entry only: quiet since then.
    assert adaptive_interval(600, 60, [T0 - 8 * HOUR], T0) == 2 * HOUR
    # A configured interval above the cap is kept.
    assert adaptive_interval(12 * HOUR, 60, weekly, T0) == 12 * HOUR


def test_feed_with_nothing_new_since_it_was_followed_is_polled_less_often():
    assert adaptive_interval(600, 60, [], T0, since=T0 - 60) == 600
    assert adaptive_interval(600, 60, [], T0, since=T0 - 4 * HOUR) == HOUR
    assert adaptive_interval(600, 60, [], T0, since=T0 - 30 * DAY) == MAX_INTERVAL
    # Entries seen since following win over the following date.
    assert adaptive_interval(600, 60, [T0 - 60, T0 - 30], T0, since=T0 - 30 * DAY) == 600


def test_ttl_and_max_age_stretch_never_shrink_and_stay_under_the_cap():
    assert adaptive_interval(600, 60, [], T0, ttl=3600) == 3600
    assert adaptive_interval(600, 60, [], T0, max_age=1800) == 1800
    assert adaptive_interval(600, 60, [], T0, ttl=3600, max_age=7200) == 7200
    assert adaptive_interval(600, 60, [], T0, ttl=60, max_age=0) == 600  # never shorter
    assert adaptive_interval(600, 60, [], T0, max_age=365 * DAY) == MAX_INTERVAL
    assert adaptive_interval(600, 60, [], T0, ttl=-5) == 600


def test_never_below_min_interval():
    assert adaptive_interval(1, 30, [], T0) == 30
    assert adaptive_interval(1, 30, [], T0, ttl=5, max_age=10) == 30
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


def test_startup_delay_keeps_future_times_and_spreads_overdue_feeds():
    feed = Feed(url="u", next_poll=T0 + 100)
    assert startup_delay(feed, T0, 600) == 100
    overdue = Feed(url="u", next_poll=T0 - 100)
    assert startup_delay(overdue, T0, 600, lambda: 0.5) == STARTUP_SPREAD / 2
    assert startup_delay(overdue, T0, 10, lambda: 0.5) == 5  # within its interval
    assert startup_delay(overdue, T0, 600, lambda: 0.5, spread=200) == 100
    assert startup_delay(Feed(url="u"), T0, 600, lambda: 0.0) == 0


# ------------------------------------------------------------------- the rig


@dataclass
class FakeJob:
    delay: float
    url: str
    kwargs: dict[str, Any]
    removed: bool = False

    def schedule_removal(self) -> None:
        self.removed = True


@dataclass
class FakeJobs:
    """Records what the poller schedules instead of running it."""

    jobs: list[FakeJob] = field(default_factory=list)

    def run_once(self, callback, when, data=None, name=None, job_kwargs=None):
        job = FakeJob(float(when), str(data), dict(job_kwargs or {}))
        self.jobs.append(job)
        return job

    def pending(self, url: str) -> list[FakeJob]:
        return [j for j in self.jobs if j.url == url and not j.removed]

    def delay(self, url: str) -> float:
        (job,) = self.pending(url)
        return job.delay


class FakeDeliverer:
    def __init__(self) -> None:
        self.wakes = 0

    def wake(self) -> None:
        self.wakes += 1


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingStore(SqliteStore):
    """Counts write statements, commits and feed writes."""

    writes = commits = feed_writes = 0

    def _execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        self.writes += 1
        super()._execute(sql, args)

    def commit(self) -> None:
        self.commits += 1
        super().commit()

    def put_feed(self, feed: Feed) -> None:
        self.feed_writes += 1
        super().put_feed(feed)

    def reset(self) -> None:
        self.writes = self.commits = self.feed_writes = 0


class _NoScheduling(Scheduling):
    pass


@dataclass
class Rig:
    server: FeedServer
    store: CountingStore
    fetcher: Fetcher
    jobs: FakeJobs
    deliverer: FakeDeliverer
    clock: Clock
    poller: Poller
    notices: list[tuple[tuple[int, ...], str]]
    config: PollConfig
    parses: list[str]

    async def follow(self, path: str, *chat_ids: int) -> str:
        """Subscribe chats to a feed through the real Subscriptions."""
        url = self.server.url(path)
        subs = Subscriptions(
            self.store, self.fetcher, _NoScheduling(), clock=self.clock, first_poll_after=10
        )
        for chat_id in chat_ids or (1,):
            answer = await subs.subscribe(Chat(chat_id, ChatKind.PRIVATE), url)
            assert answer.ok, answer.text
        for delivery in self.store.pending():  # the samples
            self.store.complete(delivery)
        self.store.commit()
        self.store.reset()
        return url

    async def poll(self, url: str, advance: float = 0.0) -> poller_module.PollReport:
        self.clock.now += advance
        return await self.poller.poll(url)


@pytest.fixture
async def rig(tmp_path, monkeypatch):
    parses: list[str] = []
    real_parse = poller_module.parse_response

    def counting_parse(result: FetchResult) -> Any:
        parses.append(result.url)
        return real_parse(result)

    monkeypatch.setattr(poller_module, "parse_response", counting_parse)
    notices: list[tuple[tuple[int, ...], str]] = []

    async def notify(chat_ids: Sequence[int], text: str) -> None:
        notices.append((tuple(chat_ids), text))

    config = PollConfig(interval=600, min_interval=60, timeout=3, allow_private_addresses=True)
    async with FeedServer() as server, Fetcher(allow_private=True, timeout=3) as fetcher:
        store = CountingStore(str(tmp_path / "store.sqlite"))
        jobs = FakeJobs()
        deliverer = FakeDeliverer()
        clock = Clock(time.time())
        poller = Poller(
            store,
            fetcher,
            deliverer,  # type: ignore[arg-type]
            config,
            jobs,  # type: ignore[arg-type]
            notify,
            clock=clock,
            rng=lambda: 0.5,  # no jitter: delays are exact
        )
        try:
            yield Rig(
                server, store, fetcher, jobs, deliverer, clock, poller, notices, config, parses
            )
        finally:
            store.close()


# ------------------------------------------------------------------ the poller


async def test_unchanged_feeds_cost_one_request_no_parse_and_no_write(rig: Rig):
    rig.server.rss("/a.xml", "A").publish("a1")
    rig.server.rss("/b.xml", "B").publish("b1")
    rig.server.ignore_validators("/b.xml")  # always 200 with the same body
    a, b = await rig.follow("/a.xml"), await rig.follow("/b.xml")
    rig.parses.clear()
    rig.store.reset()
    for _ in range(3):
        reports = await poll_all(rig.poller, [a, b])
        assert [r.result for r in reports] == [PollResult.UNCHANGED] * 2
        rig.clock.now += 600
    assert rig.parses == []
    assert (rig.store.writes, rig.store.commits, rig.store.feed_writes) == (0, 0, 0)
    a_requests = rig.server.requests_for("/a.xml")[1:]
    assert [r.status for r in a_requests] == [304, 304, 304]
    assert all(r.if_none_match and r.if_modified_since for r in a_requests)
    assert [r.status for r in rig.server.requests_for("/b.xml")[1:]] == [200, 200, 200]
    # Still scheduled, at the configured interval.
    assert rig.jobs.delay(a) == rig.jobs.delay(b) == 600


async def test_changed_body_is_parsed_and_written_then_unchanged_again(rig: Rig):
    feed = rig.server.rss("/a.xml", "A")
    feed.publish("one")
    url = await rig.follow("/a.xml")
    rig.parses.clear()
    feed.publish("two")
    report = await rig.poll(url, 600)
    assert (report.result, report.new_entries) == (PollResult.NEW_ENTRIES, 1)
    assert rig.parses == [url] and rig.store.feed_writes == 1 and rig.deliverer.wakes == 1
    assert [d.entry.title for d in rig.store.pending()] == ["two"]
    stored = rig.store.get_feed(url)
    assert stored is not None and stored.recent_entry_times == [rig.clock.now]
    rig.store.reset()
    report = await rig.poll(url, 600)
    assert report.result is PollResult.UNCHANGED
    assert rig.parses == [url] and rig.store.writes == 0


async def test_validators_a_server_rotates_are_used_from_memory(rig: Rig):
    feed = rig.server.rss("/a.xml", "A")
    feed.publish("one")
    url = await rig.follow("/a.xml")
    first_etag = rig.store.get_feed(url).etag  # type: ignore[union-attr]
    feed.render()  # same body, new ETag and Last-Modified
    rig.store.reset()
    assert (await rig.poll(url, 600)).result is PollResult.UNCHANGED
    assert rig.server.requests[-1].status == 200 and rig.store.writes == 0
    assert rig.server.requests[-1].if_none_match == first_etag
    await rig.poll(url, 600)  # now with the server's new ETag
    last = rig.server.requests[-1]
    assert last.status == 304 and last.if_none_match != first_etag
    assert rig.parses == [] and rig.store.writes == 0
    # What memory knows reaches the store with the next write.
    feed.publish("two")
    await rig.poll(url, 600)
    stored = rig.store.get_feed(url)
    assert stored is not None and stored.etag not in (first_etag, last.if_none_match)


async def test_rss_ttl_and_max_age_stretch_the_interval(rig: Rig):
    ttl_feed = rig.server.rss("/ttl.xml", "T", ttl=60)  # minutes
    ttl_feed.publish("one")
    rig.server.rss("/cache.xml", "C").publish("one")
    rig.server.set_headers("/cache.xml", {"Cache-Control": "public, max-age=1800"})
    rig.server.rss("/short.xml", "S", ttl=0).publish("one")
    rig.server.set_headers("/short.xml", {"Cache-Control": "max-age=5"})
    ttl_url, cache_url = await rig.follow("/ttl.xml"), await rig.follow("/cache.xml")
    short_url = await rig.follow("/short.xml")
    # The <ttl> read at subscription is kept: a 304 still honours it.
    await poll_all(rig.poller, [ttl_url, cache_url, short_url])
    assert [r.status for r in rig.server.requests[-3:]] == [304, 304, 304]
    assert rig.jobs.delay(ttl_url) == 3600
    assert rig.jobs.delay(cache_url) == 1800
    assert rig.jobs.delay(short_url) == 600  # hints never shorten the interval
    ttl_feed.ttl = None
    ttl_feed.publish("two")
    await rig.poll(ttl_url, 600)
    assert rig.jobs.delay(ttl_url) == 600


async def test_quiet_feed_is_polled_less_often(rig: Rig):
    rig.server.rss("/quiet.xml", "Q").publish("old")
    busy = rig.server.rss("/busy.xml", "B")
    busy.publish("old")
    quiet_url, busy_url = await rig.follow("/quiet.xml"), await rig.follow("/busy.xml")
    for _ in range(8):  # 8 × 10 minutes; the busy feed posts every time
        busy.publish(f"news {rig.clock.now}")
        rig.clock.now += 600
        await poll_all(rig.poller, [quiet_url, busy_url])
    assert rig.jobs.delay(busy_url) == 600
    assert rig.jobs.delay(quiet_url) == pytest.approx(8 * 600 / 4)


async def test_errors_back_off_exponentially_and_keep_the_subscriptions(rig: Rig):
    rig.server.rss("/a.xml", "A").publish("one")
    rig.server.rss("/b.xml", "B").publish("one")
    a, b = await rig.follow("/a.xml", 1, 2), await rig.follow("/b.xml")
    rig.server.fail("/a.xml", 500)
    rig.server.fail("/b.xml", 404)
    delays: dict[str, list[float]] = {a: [], b: []}
    for _ in range(7):
        for report in await poll_all(rig.poller, [a, b]):
            assert report.result is PollResult.FAILED
            delays[report.url].append(rig.jobs.delay(report.url))
        rig.clock.now += 1
    expected = [600 * 0.875 * 2**n for n in range(5)] + [MAX_BACKOFF * 0.875] * 2
    assert delays[a] == pytest.approx(expected)  # rng 0.5: 1 - BACKOFF_JITTER / 2
    assert delays[b] == pytest.approx(expected)
    stored = rig.store.get_feed(a)
    assert stored is not None and stored.error_count == 7
    assert "500" in (stored.last_error or "")
    assert len(rig.store.feed_subscriptions(a)) == 2
    assert rig.notices == []
    # Recovery: back to the normal interval, error state cleared and written.
    rig.server.recover("/a.xml")
    rig.store.reset()
    assert (await rig.poll(a, 60)).result is PollResult.UNCHANGED
    assert rig.jobs.delay(a) == 600
    stored = rig.store.get_feed(a)
    assert stored is not None and stored.error_count == 0 and stored.failing_since is None
    assert rig.store.feed_writes == 1


async def test_retry_after_of_429_and_503_is_honoured(rig: Rig):
    for path in ("/429.xml", "/503.xml", "/date.xml", "/huge.xml"):
        rig.server.rss(path).publish("one")
    urls = [await rig.follow(p) for p in ("/429.xml", "/503.xml", "/date.xml", "/huge.xml")]
    rig.server.fail("/429.xml", 429, headers={"Retry-After": "5000"})
    rig.server.fail("/503.xml", 503, headers={"Retry-After": "7200"})
    when = email.utils.formatdate(time.time() + 3 * 3600, usegmt=True)
    rig.server.fail("/date.xml", 503, headers={"Retry-After": when})
    rig.server.fail("/huge.xml", 429, headers={"Retry-After": str(90 * 86400)})
    await poll_all(rig.poller, urls)
    d429, d503, ddate, dhuge = (rig.jobs.delay(u) for u in urls)
    assert d429 == 5000 and d503 == 7200
    assert 3 * 3600 - 5 <= ddate <= 3 * 3600
    assert dhuge == DAY


async def test_failing_for_a_day_tells_the_subscribers_once_and_goes_on(rig: Rig):
    rig.server.rss("/a.xml", "Alpha").publish("one")
    url = await rig.follow("/a.xml", 1, 2)
    rig.server.fail("/a.xml", 503)
    start = rig.clock.now
    await rig.poll(url)
    for _ in range(12):  # polls two hours apart: a day of failures
        await rig.poll(url, 2 * 3600)
    assert rig.clock.now - start == FAILURE_NOTICE_AFTER
    assert len(rig.notices) == 1
    chats, text = rig.notices[0]
    assert chats == (1, 2) and "Alpha" in text and "failing for a day" in text
    for _ in range(5):
        assert (await rig.poll(url, 4 * 3600)).result is PollResult.FAILED
        assert rig.jobs.pending(url)  # polling goes on, slowly
    assert len(rig.notices) == 1
    assert rig.jobs.delay(url) <= MAX_BACKOFF
    stored = rig.store.get_feed(url)
    assert stored is not None and stored.failure_notified and stored.failing_since == start
    # A new run of failures after a recovery is a new story.
    rig.server.recover("/a.xml")
    await rig.poll(url, 60)
    assert len(rig.notices) == 2 and "works again" in rig.notices[1][1]
    rig.server.fail("/a.xml", 500)
    await rig.poll(url, 60)
    await rig.poll(url, DAY)
    assert len(rig.notices) == 3 and "failing for a day" in rig.notices[2][1]


async def test_gone_stops_polling_and_tells_the_subscribers_once(rig: Rig):
    rig.server.rss("/a.xml", "Alpha").publish("one")
    url = await rig.follow("/a.xml", 1, 2)
    rig.server.fail("/a.xml", 410)
    report = await rig.poll(url, 600)
    assert report.result is PollResult.GONE
    assert rig.jobs.pending(url) == []
    assert len(rig.notices) == 1 and rig.notices[0][0] == (1, 2)
    assert "410" in rig.notices[0][1]
    stored = rig.store.get_feed(url)
    assert stored is not None and stored.status is FeedStatus.GONE
    count = rig.server.count("/a.xml")
    assert (await rig.poll(url, 600)).result is PollResult.SKIPPED
    assert rig.server.count("/a.xml") == count and len(rig.notices) == 1
    # A restart does not schedule it again.
    rig.poller.start()
    assert rig.jobs.pending(url) == []


async def test_unfollowed_feed_is_forgotten(rig: Rig):
    rig.server.rss("/a.xml").publish("one")
    url = await rig.follow("/a.xml")
    rig.store.remove_subscription(1, url)
    assert (await rig.poll(url)).result is PollResult.SKIPPED
    assert rig.store.get_feed(url) is None
    assert rig.server.count("/a.xml") == 1  # the subscription's fetch only


async def test_a_feed_is_polled_once_at_a_time(rig: Rig):
    rig.server.rss("/a.xml").publish("one")
    url = await rig.follow("/a.xml", 1, 2, 3)
    rig.server.stall("/a.xml", 0.2)
    reports = await asyncio.gather(*(rig.poller.poll(url) for _ in range(3)))
    assert sorted(r.result.value for r in reports) == ["skipped", "skipped", "unchanged"]
    assert rig.server.count("/a.xml") == 2


async def test_start_spreads_overdue_feeds_and_skips_gone_and_unfollowed(rig: Rig):
    now = rig.clock.now
    n = 2400
    for i in range(n):
        url = f"https://feeds.example/{i}"
        status = FeedStatus.GONE if i % 100 == 1 else FeedStatus.OK
        next_poll = now + 1000 if i % 100 == 2 else now - 50
        rig.store.put_feed(Feed(url=url, status=status, next_poll=next_poll, interval=3600))
        if i % 100 != 3:
            rig.store.put_chat(Chat(i, ChatKind.PRIVATE))
            rig.store.add_subscription(Subscription(i, url, created=now))
    rig.store.commit()
    rig.poller.rng = random.Random(5).random
    rig.poller.start()
    jobs = rig.jobs.jobs
    assert len(jobs) == n - 2 * n // 100
    assert all(j.kwargs == {"misfire_grace_time": None} for j in jobs)
    spread = len(jobs) / STARTUP_RATE  # 117.6 s: more feeds, a longer window
    future = [j.delay for j in jobs if j.delay > spread]
    assert len(future) == n // 100 and all(d == pytest.approx(1000) for d in future)
    overdue = sorted(j.delay for j in jobs if j.delay <= spread)
    assert spread > STARTUP_SPREAD
    assert 0 <= overdue[0] < 1 and spread - 1 < overdue[-1] <= spread
    # Spread evenly: no second of the window holds more than a few percent.
    per_second = [0] * int(spread + 1)
    for d in overdue:
        per_second[int(d)] += 1
    assert max(per_second) < 3 * len(overdue) / spread


async def test_restart_keeps_the_validators_that_were_written(rig: Rig):
    feed = rig.server.rss("/a.xml")
    feed.publish("one")
    url = await rig.follow("/a.xml")
    await rig.poll(url, 600)
    fresh = Poller(
        rig.store,
        rig.fetcher,
        rig.deliverer,  # type: ignore[arg-type]
        rig.config,
        rig.jobs,  # type: ignore[arg-type]
        lambda chats, text: asyncio.sleep(0),
        clock=rig.clock,
    )
    assert (await fresh.poll(url)).result is PollResult.UNCHANGED
    assert rig.server.requests[-1].status == 304


async def test_store_rewritten_by_someone_else_wins_over_memory(rig: Rig):
    feed = rig.server.rss("/a.xml")
    feed.publish("one")
    url = await rig.follow("/a.xml")
    feed.render()
    await rig.poll(url, 600)  # 200, same body: the new ETag in memory only
    stored = rig.store.get_feed(url)
    assert stored is not None
    rig.store.put_feed(replace(stored, etag='"elsewhere"', last_modified=None))
    await rig.poll(url, 600)
    assert rig.server.requests[-1].if_none_match == '"elsewhere"'
