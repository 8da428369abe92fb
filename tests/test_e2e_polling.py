"""Polling rules end to end: the real bot (scheduler, fetcher, store, deliverer)
against the fake Telegram API and the local feed server, counting the requests
the server saw and the messages chats received.

Intervals are 1 s (the test config's interval and min_interval). Rules whose
time scale is hours (the backoff cap, "a day of failures") are driven by
patching the cap or shifting the poller's clock, but every request still goes
through the real fetch to the feed server.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import math
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import bot.plan as plan_module
import bot.poller as poller_module
from bot.fetch import FetchResult
from bot.models import FeedStatus
from bot.plan import DAY, PollPlan
from bot.poller import PollResult
from testkit.fake_telegram import FakeTelegram
from testkit.feed_server import FeedServer, RssFeed
from testkit.harness import eventually, load_test_config, poll_now, running_bot, services

#: Every test here runs on the embedded file and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("e2e_store")

USER = 7001
OTHERS = (7002, 7003)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def follow(telegram: FakeTelegram, chat_id: int, *urls: str, samples: bool = False) -> None:
    """/subscribe in a private chat and wait for the answer. Several URLs go
    in one command (one summary, no samples) unless ``samples`` asks for one
    command per feed, each answered with its feed's newest entry."""
    commands = [[url] for url in urls] if samples else [list(urls)]
    for command in commands:
        before = len(telegram.sent(chat_id))
        telegram.user_says(chat_id, chat_id, "/subscribe " + " ".join(command))
        await eventually(
            lambda b=before: any(
                ("Subscribed" in m.plain or "added" in m.plain) for m in telegram.sent(chat_id)[b:]
            ),
            message=f"subscribed to {command}",
        )


def said(telegram: FakeTelegram, chat_id: int, text: str) -> int:
    return sum(text in (m.plain or "") for m in telegram.sent(chat_id))


def story(feed: RssFeed, n: int, **changes: Any) -> dict[str, Any]:
    """A story whose document text does not depend on the feed's path."""
    item = feed.publish(
        f"Story {n}",
        link=f"https://news.example/{n}",
        guid=f"story-{n}",
        html=f"<p>Body {n}</p>",
        pub_date=T0 + timedelta(hours=n),
    )
    if changes:
        feed.update(item["guid"], **changes)
    return item


def gaps(server: FeedServer, path: str) -> list[float]:
    times = [r.time for r in server.requests_for(path)]
    return [b - a for a, b in itertools.pairwise(times)]


@pytest.fixture
def counters(monkeypatch):
    """Count parses done by the poller."""
    parses: list[str] = []
    real = poller_module.parse_response

    def counting(result: FetchResult) -> Any:
        parses.append(result.url)
        return real(result)

    monkeypatch.setattr(poller_module, "parse_response", counting)
    return parses


# ------------------------------------------------------------------ unchanged feeds


async def test_unchanged_feeds_cost_one_request_per_interval_and_nothing_else(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer, counters: list[str], monkeypatch
):
    for chat in (USER, *OTHERS):
        telegram.add_user(chat)
    story(feeds.rss("/honest.xml", "Honest"), 1)
    story(feeds.rss("/stubborn.xml", "Stubborn"), 1)
    feeds.ignore_validators("/stubborn.xml")  # always 200, same body
    honest, stubborn = feeds.url("/honest.xml"), feeds.url("/stubborn.xml")
    async with running_bot(load_test_config(tmp_path, telegram)) as app:
        await follow(telegram, USER, honest, stubborn, samples=True)
        for chat in OTHERS:  # three chats follow the honest feed
            await follow(telegram, chat, honest)
        await telegram.wait_sent(USER, 3)  # the answer and two samples
        store = services(app).store

        async def _cond1():
            return not (await store.pending())

        await eventually(_cond1, message="samples delivered")
        await asyncio.sleep(0.2)  # ... and their completion committed
        plans: list[PollPlan] = []
        real_record = store.record_polls

        async def record(batch: Any, owner: str) -> list[bool]:
            plans.extend(batch)
            return await real_record(batch, owner)

        monkeypatch.setattr(store, "record_polls", record)
        start = time.monotonic()
        base, stubborn_base = feeds.count("/honest.xml"), feeds.count("/stubborn.xml")
        await eventually(
            lambda: feeds.count("/stubborn.xml") >= stubborn_base + 4, message="4 polls"
        )
        elapsed = time.monotonic() - start
        polls = feeds.count("/honest.xml") - base
        monkeypatch.undo()

    # Once per interval (1 s ± 10%), however many chats follow it.
    assert 2 <= polls <= elapsed / 0.9 + 1
    honest_requests = feeds.requests_for("/honest.xml")[1:]
    assert honest_requests and all(r.status == 304 for r in honest_requests)
    assert all(r.if_none_match and r.if_modified_since for r in honest_requests)
    stubborn_statuses = [r.status for r in feeds.requests_for("/stubborn.xml")]
    assert stubborn_statuses == [200] * len(stubborn_statuses)
    # A 304 or an unchanged body: no parse, and nothing recorded but the
    # schedule (a plan marked unchanged, with no seen keys and no deliveries).
    assert counters == []
    assert len(plans) >= polls
    assert all(not p.changed and not p.seen and not p.enqueue and not p.tell for p in plans)


async def test_polls_run_concurrently_under_a_bound(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    paths = [f"/c{i}.xml" for i in range(24)]
    for path in paths:
        feeds.rss(path, path)
    urls = [feeds.url(p) for p in paths]
    async with running_bot(load_test_config(tmp_path, telegram, interval="1h")) as app:
        await follow(telegram, USER, *urls)
        for path in paths:
            feeds.stall(path, 0.3)
        feeds.max_in_flight = 0
        start = time.monotonic()
        reports = await poll_now(app)
        elapsed = time.monotonic() - start
    assert [reports[url].result for url in urls] == [PollResult.UNCHANGED] * 24
    assert feeds.max_in_flight == services(app).fetcher.concurrency == 8
    assert 0.85 < elapsed < 3  # three rounds of eight, not 24 one after another


# ------------------------------------------------------------------ redirects


async def test_permanent_redirects_move_the_feed_and_its_subscriptions(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    names = {"/p301.xml": 301, "/p308.xml": 308, "/t302.xml": 302, "/t307.xml": 307}
    for path in names:
        story(feeds.rss(path, "Moving"), 1)
    async with running_bot(load_test_config(tmp_path, telegram)) as app:
        store = services(app).store
        await follow(telegram, USER, *(feeds.url(p) for p in names))
        targets: dict[str, RssFeed] = {}
        for path, status in names.items():
            target = path.replace(".xml", "-new.xml")
            targets[path] = feeds.rss(target, "Moving")
            story(targets[path], 1)  # the same document at the new address
            feeds.redirect(path, target, status)
        await eventually(
            lambda: all(feeds.count(p.replace(".xml", "-new.xml")) >= 3 for p in names),
            message="three polls of every new address",
        )
        followed = {s.feed_url for s in (await store.chat_subscriptions(USER))}
        assert followed == {
            feeds.url("/p301-new.xml"),
            feeds.url("/p308-new.xml"),
            feeds.url("/t302.xml"),
            feeds.url("/t307.xml"),
        }
        assert (await store.get_feed(feeds.url("/p301.xml"))) is None
        assert (await store.get_feed(feeds.url("/p308-new.xml"))) is not None
        # The old address of a permanent move is never asked again.
        assert feeds.count("/p301.xml") == feeds.count("/p308.xml") == 2
        assert feeds.count("/t302.xml") >= 3 and feeds.count("/t307.xml") >= 3
        # The moved feed's history moved with it: only new stories arrive.
        story(targets["/p301.xml"], 2)
        await eventually(lambda: said(telegram, USER, "Story 2") == 1, message="story 2")
        await asyncio.sleep(1.5)
    assert said(telegram, USER, "Story 2") == 1
    assert said(telegram, USER, "Story 1") == 0  # subscribed together (no samples), nothing resent


# ------------------------------------------------------------------ failures


async def test_gone_stops_polling_and_tells_the_subscribers_once(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    for chat in (USER, *OTHERS):
        telegram.add_user(chat)
    story(feeds.rss("/gone.xml", "Farewell"), 1)
    url = feeds.url("/gone.xml")
    async with running_bot(load_test_config(tmp_path, telegram)) as app:
        for chat in (USER, *OTHERS):
            await follow(telegram, chat, url)
        feeds.fail("/gone.xml", 410)
        for chat in (USER, *OTHERS):
            await eventually(lambda c=chat: said(telegram, c, "is gone"), message="notice")
        count = feeds.count("/gone.xml")
        await asyncio.sleep(2.5)
        assert feeds.count("/gone.xml") == count
        assert [r.status for r in feeds.requests_for("/gone.xml")].count(410) == 1
        feed = await services(app).store.get_feed(url)
        assert feed is not None and feed.status is FeedStatus.GONE
        telegram.user_says(USER, USER, "/list")
        await eventually(lambda: said(telegram, USER, "gone: the server removed it"))
    for chat in (USER, *OTHERS):
        assert said(telegram, chat, "is gone") == 1


async def test_errors_back_off_exponentially_capped_and_jittered(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer, monkeypatch
):
    # The real cap is hours; 2.5 s shows it holds within the test's time.
    monkeypatch.setattr(plan_module, "MAX_BACKOFF", 2.5)
    telegram.add_user(USER)
    paths = {"/e404.xml": 404, "/e500.xml": 500, "/e503.xml": 503}
    flaky = {path: feeds.rss(path, "Flaky") for path in paths}
    for feed in flaky.values():
        story(feed, 1)
    async with running_bot(load_test_config(tmp_path, telegram)) as app:
        await follow(telegram, USER, *(feeds.url(p) for p in paths))
        for path, status in paths.items():
            feeds.fail(path, status)
        await eventually(
            lambda: all(feeds.count(p) >= 5 for p in paths), timeout=15, message="4 failures"
        )
        store = services(app).store

        async def recorded() -> bool:  # the fifth request's poll is recorded too
            stored = [await store.get_feed(feeds.url(p)) for p in paths]
            return all(f is not None and f.error_count >= 4 for f in stored)

        await eventually(recorded, message="4 failures recorded")
        for path in paths:
            statuses = [r.status for r in feeds.requests_for(path)]
            assert statuses[:5] == [200, *[paths[path]] * 4]
            first, second, third = gaps(feeds, path)[1:4]
            assert 0.95 < first < 1.4  # 1 s × [0.75, 1], but never below min_interval (1 s)
            assert 1.45 < second < 2.4  # 2 s × [0.75, 1]
            assert 1.8 < third < 2.9  # 4 s (3 s at least), capped at 2.5 s, × [0.75, 1]
            feed = await store.get_feed(feeds.url(path))
            assert feed is not None and feed.error_count >= 4 and feed.status is FeedStatus.OK
        seconds = [gaps(feeds, p)[2] for p in paths]
        assert max(seconds) - min(seconds) > 0.005  # jittered, not in lockstep
        assert len(await store.chat_subscriptions(USER)) == 3  # subscriptions kept
        # Back to health: the next poll finds the new story.
        for path in paths:
            feeds.recover(path)
        story(flaky["/e500.xml"], 2)
        await eventually(lambda: said(telegram, USER, "Story 2") == 1, message="story 2")


async def test_failing_for_a_day_tells_the_subscribers_once_and_polling_goes_on(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer, monkeypatch
):
    monkeypatch.setattr(plan_module, "MAX_BACKOFF", 1.0)
    for chat in (USER, *OTHERS):
        telegram.add_user(chat)
    feed = feeds.rss("/down.xml", "Downtime")
    story(feed, 1)
    url = feeds.url("/down.xml")
    async with running_bot(load_test_config(tmp_path, telegram)) as app:
        for chat in (USER, *OTHERS):
            await follow(telegram, chat, url)
        store, poller = services(app).store, services(app).poller
        feeds.fail("/down.xml", 500)

        async def _cond2():
            return getattr((await store.get_feed(url)), "error_count", 0) >= 1

        await eventually(_cond2)
        assert said(telegram, USER, "failing") == 0
        poller.clock = lambda: time.time() + DAY  # a day later, still failing
        for chat in (USER, *OTHERS):
            await eventually(lambda c=chat: said(telegram, c, "failing for a day"), timeout=5)
        count = feeds.count("/down.xml")
        await eventually(lambda: feeds.count("/down.xml") >= count + 2, message="more polls")
        stored = await store.get_feed(url)
        assert stored is not None and stored.failure_notified and stored.error_count >= 3
        # Recovery: polling at the normal rate, new stories arrive, state cleared.
        feeds.recover("/down.xml")
        story(feed, 2)
        await eventually(lambda: said(telegram, USER, "Story 2") == 1, message="story 2")
        stored = await store.get_feed(url)
        assert stored is not None and stored.error_count == 0 and not stored.failure_notified
        for chat in (USER, *OTHERS):
            await eventually(lambda c=chat: said(telegram, c, "works again"), message="recovery")
    for chat in (USER, *OTHERS):
        assert said(telegram, chat, "failing for a day") == 1
        assert said(telegram, chat, "works again") == 1


async def test_retry_after_of_429_and_503_is_honoured(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    for path in ("/r429.xml", "/r503.xml"):
        story(feeds.rss(path, "Busy"), 1)
    async with running_bot(load_test_config(tmp_path, telegram)) as app:
        await follow(telegram, USER, feeds.url("/r429.xml"), feeds.url("/r503.xml"))
        feeds.fail("/r429.xml", 429, times=1, headers={"Retry-After": "3"})
        retry_at = math.ceil(time.time()) + 4.0
        feeds.fail("/r503.xml", 503, times=1, headers={"Retry-After": email_date(retry_at)})
        wall = time.time() - time.monotonic()
        await eventually(
            lambda: feeds.count("/r429.xml") >= 4 and feeds.count("/r503.xml") >= 4,
            timeout=10,
            message="two polls after the Retry-After",
        )
        assert (await services(app).store.get_feed(feeds.url("/r429.xml"))).error_count == 0  # type: ignore[union-attr]
    for path in ("/r429.xml", "/r503.xml"):
        statuses = [r.status for r in feeds.requests_for(path)]
        assert statuses[:4] == [200, int(path[2:5]), 304, 304]
        waited, after = gaps(feeds, path)[1:3]
        assert after < 1.6  # then the normal interval again
        assert waited < 4.5
    # Not before the server said: 3 s, or the date it gave.
    assert gaps(feeds, "/r429.xml")[1] >= 2.95
    assert feeds.requests_for("/r503.xml")[2].time + wall >= retry_at - 0.05


def email_date(when: float) -> str:
    return email.utils.formatdate(when, usegmt=True)


# ------------------------------------------------------------------ intervals


async def test_intervals_adapt_to_the_feed_and_to_ttl_and_max_age(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    story(feeds.rss("/plain.xml", "Plain"), 1)
    busy = feeds.rss("/busy.xml", "Busy")
    story(busy, 1)
    story(feeds.rss("/rare.xml", "Rare"), 1)
    story(feeds.rss("/ttl.xml", "Ttl", ttl=1), 1)  # <ttl>1</ttl>: one minute
    story(feeds.rss("/cached.xml", "Cached"), 1)
    feeds.set_headers("/cached.xml", {"Cache-Control": "max-age=3"})
    paths = ["/plain.xml", "/busy.xml", "/rare.xml", "/ttl.xml", "/cached.xml"]
    async with running_bot(load_test_config(tmp_path, telegram)) as app:
        store = services(app).store
        await follow(telegram, USER, *(feeds.url(p) for p in paths))
        # The rare feed has had nothing new for the 40 s since it was followed.
        rare = await store.get_subscription(USER, feeds.url("/rare.xml"))
        assert rare is not None
        assert await store.update_subscription(replace(rare, created=time.time() - 40))
        start = time.monotonic()
        n = 2
        while time.monotonic() - start < 5.2:
            story(busy, n)  # the busy feed posts twice a second
            n += 1
            await asyncio.sleep(0.5)
    polls = {p: feeds.count(p) - 1 for p in paths}
    assert 3 <= polls["/plain.xml"] <= 6
    assert 3 <= polls["/busy.xml"] <= 6  # busy: the configured rate
    assert polls["/rare.xml"] == 1  # quiet for 40 s: every 10 s
    assert polls["/ttl.xml"] == 1  # <ttl> one minute
    assert 2 <= polls["/cached.xml"] <= 3  # max-age 3 s


async def test_a_restart_sees_the_stored_schedule(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    """The schedule lives in the store: after a restart, feeds that are not
    due yet are left alone (no poll of everything at start-up)."""
    telegram.add_user(USER)
    paths = ["/a.xml", "/b.xml"]
    for path in paths:
        story(feeds.rss(path, path), 1)
    config = load_test_config(tmp_path, telegram, interval="1h")
    async with running_bot(config):
        await follow(telegram, USER, *(feeds.url(p) for p in paths))
    assert [feeds.count(p) for p in paths] == [1, 1]  # the subscribing fetch
    async with running_bot(config) as app:
        await asyncio.sleep(1.5)  # several ticks: nothing is due for an hour
        assert [feeds.count(p) for p in paths] == [1, 1]
        reports = await poll_now(app)
        assert {r.result for r in reports.values()} == {PollResult.UNCHANGED}
        assert [feeds.count(p) for p in paths] == [2, 2]


async def test_a_late_tick_still_polls(tmp_path, telegram: FakeTelegram, feeds: FeedServer):
    telegram.add_user(USER)
    story(feeds.rss("/late.xml", "Late"), 1)
    url = feeds.url("/late.xml")
    async with running_bot(load_test_config(tmp_path, telegram)):
        await follow(telegram, USER, url)
        await eventually(lambda: feeds.count("/late.xml") >= 2, message="first poll")
        count = feeds.count("/late.xml")
        time.sleep(1.6)  # the event loop is blocked: ticks and wake-ups are late
        await eventually(lambda: feeds.count("/late.xml") >= count + 2, timeout=4, message="polls")


# ------------------------------------------------------------------ dedupe


async def test_dedupe_survives_real_feeds(tmp_path, telegram: FakeTelegram, feeds: FeedServer):
    telegram.add_user(USER)
    feed = feeds.rss("/real.xml", "Real")
    for n in range(1, 7):
        story(feed, n)
    stamped = feeds.rss("/stamped.xml", "Stamped")  # no GUIDs, no links
    for n in range(1, 4):
        stamped.publish(f"Notice {n}", link="", guid="", html=f"<p>Notice {n}</p>")
    url, stamped_url = feeds.url("/real.xml"), feeds.url("/stamped.xml")
    async with running_bot(load_test_config(tmp_path, telegram, interval="1h")) as app:
        await follow(telegram, USER, url, stamped_url)

        async def nothing_new(target: str = url) -> None:
            report = (await poll_now(app))[target]
            assert (report.result, report.new_entries) == (PollResult.UNCHANGED, 0)

        # A GUID changes, link and title kept (a CMS migration).
        feed.update("story-1", guid="https://news.example/?p=1")
        await nothing_new()
        # Old items republished with new dates, one with a new GUID too.
        later = datetime.now(UTC).replace(microsecond=0)
        feed.update("story-2", pub_date=later)
        feed.update("story-3", pub_date=later, guid="story-3-v2")
        await nothing_new()
        # An entry drops out of the feed, then comes back.
        dropped = next(i for i in feed.items if i["guid"] == "story-4")
        feed.remove("story-4")
        await nothing_new()
        feed.items.append(dropped)
        feed.render()
        await nothing_new()
        # An entry edited in place.
        feed.update("story-5", title="Story 5 (corrected)", html="<p>Fixed</p>")
        await nothing_new()
        # A feed that stamps every item with the time it was generated.
        for item in stamped.items:
            item["pub_date"] = later
        stamped.render()
        await nothing_new(stamped_url)
        # A real new entry, once.
        story(feed, 7)
        report = (await poll_now(app))[url]
        assert (report.result, report.new_entries) == (PollResult.NEW_ENTRIES, 1)
        await nothing_new()
        await eventually(lambda: said(telegram, USER, "Story 7") == 1, message="story 7")
        await asyncio.sleep(0.5)
    texts = [m.plain or "" for m in telegram.sent(USER)]
    # Subscribed together (no samples): Story 7 is the only entry that ever arrives.
    assert sum("Story" in t for t in texts) == 1
    assert sum("Notice" in t for t in texts) == 0
