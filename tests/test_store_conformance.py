"""The one suite every store backend passes (bot/store/base.py is the spec).

Each test runs on every backend: the embedded sqlitedict file, and
PostgreSQL on the machine's real server (a fresh database per test; skipped,
with the reason, where no server answers or the backend is not there yet).
Values are plain: feeds, chats and plans built by hand, the clock a number.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bot.models import (
    Chat,
    ChatKind,
    Delivery,
    Entry,
    Feed,
    FeedStatus,
    Notice,
    Style,
    Subscription,
)
from bot.plan import Claim, Enqueue, PollPlan, Tell
from bot.store.base import Store

A, B, C = "https://a.example/feed", "https://b.example/feed", "https://c.example/feed"
OWNER, OTHER = "proc-1", "proc-2"
LEASE = 60.0

Factory = Callable[[], Awaitable[Store]]


async def reopen(backend: Factory, store: Store) -> Store:
    await store.close()
    return await backend()


def entry(n: int | str, **kw: object) -> Entry:
    return Entry(id=f"id-{n}", title=f"Title {n}", link=f"https://example.com/{n}", **kw)  # type: ignore[arg-type]


def chat(chat_id: int, **kw: object) -> Chat:
    return Chat(chat_id, ChatKind.PRIVATE if chat_id > 0 else ChatKind.GROUP, **kw)  # type: ignore[arg-type]


async def follow(
    store: Store,
    chat_id: int,
    url: str,
    *,
    next_poll: float = 0.0,
    new: bool = True,
    seen: tuple[str, ...] = (),
    created: float = 1.0,
) -> Subscription:
    sub = await store.subscribe(
        chat(chat_id),
        Subscription(chat_id, url, created),
        new_feed=Feed(url=url, next_poll=next_poll) if new else None,
        seen=seen,
        now=created,
    )
    assert sub is not None
    return sub


async def claim_one(store: Store, url: str, now: float = 100.0, owner: str = OWNER) -> Claim:
    claims = await store.claim_due_feeds(owner, now, 100, LEASE)
    [claim] = [c for c in claims if c.feed.url == url]
    return claim


def plan(url: str, now: float = 100.0, **kw: object) -> PollPlan:
    kw.setdefault("feed", Feed(url=str(kw.get("moved_to") or url), next_poll=now + 600))
    return PollPlan(url=url, now=now, **kw)  # type: ignore[arg-type]


def what(ds: list[Delivery]) -> list[tuple[int, str, str]]:
    """(chat, feed, entry id or notice code) of each delivery, in order."""
    return [
        (d.chat_id, d.feed_url, d.entry.id if d.entry else f"notice:{d.notice.code}")  # type: ignore[union-attr]
        for d in ds
    ]


# -- lifecycle ---------------------------------------------------------------
async def test_a_new_store_is_empty(store: Store) -> None:
    assert await store.get_feed(A) is None
    assert await store.get_chat(1) is None
    assert await store.pending() == []
    assert await store.next_poll_at() is None
    assert await store.next_delivery_at() is None
    assert await store.outbox_chats(1e12, 10) == []
    assert await store.claim_due_feeds(OWNER, 1e12, 10, LEASE) == []
    assert await store.due_count(1e12) == 0
    stats = await store.stats()
    assert (stats.chats, stats.feeds, stats.subscriptions, stats.outbox.depth) == (0, 0, 0, 0)
    assert stats.outbox.oldest is None
    assert await store.hold_sender(OWNER) is True


async def test_everything_survives_a_reopen(backend: Factory, store: Store) -> None:
    sub = await follow(store, 5, A, next_poll=50.0, seen=("k1", "k2"))
    [d] = await store.enqueue(A, entry(1), [5], now=3.0)
    store = await reopen(backend, store)
    assert await store.get_subscription(5, A) == sub
    assert await store.get_chat(5) == chat(5)
    assert await store.get_feed(A) == Feed(url=A, next_poll=50.0)
    assert await store.seen(A, ["k1", "k2", "k3"]) == {"k1", "k2"}
    assert await store.pending() == [d]


# -- the schedule ------------------------------------------------------------
async def test_claim_takes_due_feeds_earliest_first_up_to_the_limit(store: Store) -> None:
    for i, when in enumerate([30.0, 10.0, 20.0, 200.0]):
        await follow(store, i + 1, f"https://{i}.example/", next_poll=when)
    assert await store.next_poll_at() == 10.0
    assert await store.due_count(100.0) == 3
    first = await store.claim_due_feeds(OWNER, 100.0, 2, LEASE)
    assert [c.feed.url for c in first] == ["https://1.example/", "https://2.example/"]
    assert all(c.lease_until == 100.0 + LEASE for c in first)
    assert await store.due_count(100.0) == 1  # leased feeds are not a backlog
    assert await store.next_poll_at() == 10.0  # leased or not
    rest = await store.claim_due_feeds(OWNER, 100.0, 10, LEASE)
    assert [c.feed.url for c in rest] == ["https://0.example/"]
    # Leased (until 160) or not yet due (200).
    assert await store.claim_due_feeds(OWNER, 150.0, 10, LEASE) == []
    # Leases expired, and the boundary is inclusive.
    late = await store.claim_due_feeds(OWNER, 200.0, 10, LEASE)
    assert [c.feed.url for c in late] == [f"https://{i}.example/" for i in (1, 2, 0, 3)]
    assert await store.claim_due_feeds(OWNER, 200.0, 0, LEASE) == []


async def test_claim_carries_the_feed_and_its_active_subscribers(store: Store) -> None:
    await follow(store, 1, A, next_poll=5.0)
    s2 = await follow(store, 2, A, new=False)
    await follow(store, 3, A, new=False)
    assert await store.pause_chat(3)
    claim = await claim_one(store, A)
    assert claim.feed == Feed(url=A, next_poll=5.0)
    assert sorted(s.chat_id for s in claim.subscribers) == [1, 2]
    assert s2 in claim.subscribers
    assert claim.followed is True
    assert sorted(s.chat_id for s in await store.active_subscribers(A)) == [1, 2]


async def test_a_feed_whose_chats_are_all_paused_is_still_claimed(store: Store) -> None:
    await follow(store, 1, A)
    await store.pause_chat(1)
    claim = await claim_one(store, A)
    assert claim.subscribers == ()
    assert claim.followed is True


async def test_gone_feeds_are_never_claimed(store: Store) -> None:
    await follow(store, 1, A, next_poll=5.0)
    await follow(store, 1, B, next_poll=5.0)
    await claim_one(store, A)
    gone = Feed(url=A, next_poll=0.0, status=FeedStatus.GONE)
    assert await store.record_polls([plan(A, feed=gone)], OWNER) == [True]
    assert (await store.get_feed(A)) == gone
    assert await store.next_poll_at() == 5.0  # B only
    assert await store.due_count(1e9) == 1
    claims = await store.claim_due_feeds(OWNER, 1e9, 10, LEASE)
    assert [c.feed.url for c in claims] == [B]


async def test_a_live_lease_excludes_every_owner_until_it_expires(store: Store) -> None:
    await follow(store, 1, A, next_poll=5.0)
    await claim_one(store, A, now=100.0)
    assert await store.claim_due_feeds(OWNER, 100.0, 10, LEASE) == []
    assert await store.claim_due_feeds(OTHER, 100.0 + LEASE - 1, 10, LEASE) == []
    # Expired: another process takes the feed over.
    [taken] = await store.claim_due_feeds(OTHER, 100.0 + LEASE, 10, LEASE)
    assert taken.lease_until == 100.0 + 2 * LEASE
    assert await store.claim_due_feeds(OWNER, 100.0 + LEASE, 10, LEASE) == []


async def test_two_owners_never_get_the_same_feed(store: Store) -> None:
    for i in range(10):
        await follow(store, 1, f"https://{i}.example/", next_poll=float(i))
    a = await store.claim_due_feeds(OWNER, 100.0, 4, LEASE)
    b = await store.claim_due_feeds(OTHER, 100.0, 4, LEASE)
    c = await store.claim_due_feeds(OWNER, 100.0, 4, LEASE)
    urls = [x.feed.url for x in a + b + c]
    assert len(urls) == 10 and len(set(urls)) == 10
    assert await store.claim_due_feeds(OTHER, 100.0, 4, LEASE) == []


async def test_concurrent_claims_never_share_a_feed(store: Store) -> None:
    for i in range(12):
        await follow(store, 1, f"https://{i}.example/", next_poll=float(i))
    batches = await asyncio.gather(
        *(store.claim_due_feeds(f"proc-{n}", 100.0, 3, LEASE) for n in range(6))
    )
    urls = [c.feed.url for batch in batches for c in batch]
    assert sorted(urls) == sorted(f"https://{i}.example/" for i in range(12))


async def test_record_writes_the_feed_marks_seen_and_releases_the_lease(store: Store) -> None:
    await follow(store, 1, A, next_poll=5.0, seen=("old",))
    await claim_one(store, A)
    new = Feed(url=A, title="A", etag='"e"', next_poll=700.0, last_success=100.0)
    assert await store.record_polls([plan(A, feed=new, seen=("k1", "k2"))], OWNER) == [True]
    assert await store.get_feed(A) == new
    assert await store.seen(A, ["old", "k1", "k2", "k3"]) == {"old", "k1", "k2"}
    assert await store.next_poll_at() == 700.0
    # Released: due again at its new time, by anyone.
    [again] = await store.claim_due_feeds(OTHER, 700.0, 10, LEASE)
    assert again.feed == new
    # A released lease is not held any more: recording twice is refused.
    assert await store.record_polls([plan(A, now=800.0)], OWNER) == [False]


async def test_record_prunes_old_seen_keys_but_keeps_those_it_marks(store: Store) -> None:
    await follow(store, 1, A, seen=("a", "b", "c"), created=10.0)
    await claim_one(store, A)
    result = await store.record_polls([plan(A, seen=("b", "new"), prune_before=50.0)], OWNER)
    assert result == [True]
    assert await store.seen(A, ["a", "b", "c", "new"]) == {"b", "new"}
    # Re-marking refreshed "b": a later prune before 100 keeps it.
    await claim_one(store, A, now=700.0)
    assert await store.record_polls([plan(A, now=700.0, prune_before=100.0)], OWNER) == [True]
    assert await store.seen(A, ["b", "new"]) == {"b", "new"}
    await claim_one(store, A, now=1300.0)
    assert await store.record_polls([plan(A, now=1300.0, prune_before=101.0)], OWNER) == [True]
    assert await store.seen(A, ["b", "new"]) == set()


async def test_record_queues_entries_only_for_chats_still_subscribed_and_active(
    store: Store,
) -> None:
    await follow(store, 1, A)
    await follow(store, 2, A, new=False)
    await follow(store, 3, A, new=False)
    await follow(store, 4, B)  # follows another feed only
    await claim_one(store, A)
    # Meanwhile chat 2 leaves and chat 3 becomes unreachable.
    assert await store.unsubscribe(2, A)
    assert await store.pause_chat(3)
    p = plan(
        A,
        seen=("id-1", "id-2"),
        enqueue=(Enqueue(entry(1), (1, 2, 3, 4)), Enqueue(entry(2), (1,))),
        tell=(Tell(Notice("feed_failing", {"error": "timeout"}), (1, 3)),),
    )
    assert await store.record_polls([p], OWNER) == [True]
    pending = await store.pending()
    assert what(pending) == [(1, A, "id-1"), (1, A, "id-2"), (1, A, "notice:feed_failing")]
    assert pending[0].entry == entry(1)
    assert pending[2].notice == Notice("feed_failing", {"error": "timeout"})
    assert pending[2].entry is None
    assert [d.seq for d in pending] == sorted({d.seq for d in pending})


async def test_record_polls_applies_many_plans_and_reports_each(store: Store) -> None:
    await follow(store, 1, A)
    await follow(store, 1, B)
    await follow(store, 1, C)
    assert len(await store.claim_due_feeds(OWNER, 100.0, 10, LEASE)) == 3
    # The leases expire and another process takes one of the feeds.
    [c] = await store.claim_due_feeds(OTHER, 100.0 + LEASE, 1, LEASE)
    lost = c.feed.url
    plans = [plan(u, enqueue=(Enqueue(entry(u[8]), (1,)),), seen=("s",)) for u in (A, B, C)]
    result = await store.record_polls(plans, OWNER)
    assert result == [u != lost for u in (A, B, C)]
    assert await store.record_polls([], OWNER) == []
    # Nothing of the lost plan was applied.
    assert await store.seen(lost, ["s"]) == set()
    assert sorted(d.feed_url for d in await store.pending()) == sorted({A, B, C} - {lost})
    assert await store.get_feed(lost) == Feed(url=lost)
    # The other owner still holds it, and may record.
    assert await store.record_polls([plan(lost, seen=("t",))], OTHER) == [True]
    assert await store.seen(lost, ["t"]) == {"t"}


async def test_a_plan_for_a_deleted_feed_is_skipped(store: Store) -> None:
    await follow(store, 1, A)
    await claim_one(store, A)
    assert await store.unsubscribe(1, A)  # the last subscriber: the feed is deleted
    assert await store.get_feed(A) is None
    p = plan(A, seen=("x",), enqueue=(Enqueue(entry(1), (1,)),))
    assert await store.record_polls([p], OWNER) == [False]
    assert await store.get_feed(A) is None
    assert await store.seen(A, ["x"]) == set()
    assert await store.pending() == []


async def test_a_moved_feed_takes_its_seen_keys_subscriptions_and_deliveries(
    store: Store,
) -> None:
    await follow(store, 1, A, seen=("a1",), created=1.0)
    await follow(store, 2, A, new=False, created=2.0)
    [queued] = await store.enqueue(A, entry(1), [2], now=3.0)
    await claim_one(store, A)
    new = Feed(url=B, title="moved", next_poll=700.0)
    p = plan(A, feed=new, moved_to=B, seen=("b1",), enqueue=(Enqueue(entry(2), (1, 2)),))
    assert await store.record_polls([p], OWNER) == [True]
    assert await store.get_feed(A) is None
    assert await store.get_feed(B) == new
    assert await store.seen(A, ["a1", "b1"]) == set()
    assert await store.seen(B, ["a1", "b1"]) == {"a1", "b1"}
    assert await store.get_subscription(1, A) is None
    assert [s.feed_url for s in await store.chat_subscriptions(2)] == [B]
    assert what(await store.pending()) == [(2, B, "id-1"), (1, B, "id-2"), (2, B, "id-2")]
    assert (await store.pending())[0].seq == queued.seq
    assert [c.feed.url for c in await store.claim_due_feeds(OWNER, 700.0, 10, LEASE)] == [B]


async def test_a_move_merges_into_a_feed_already_followed(store: Store) -> None:
    await follow(store, 1, A, seen=("a",))
    await follow(store, 2, A, new=False)
    b_sub = await follow(store, 2, B, seen=("b",), next_poll=9999.0)
    await store.update_subscription(replace(b_sub, style=Style(silent=True)))
    await store.enqueue(A, entry(1), [2], now=1.0)
    await store.enqueue(B, entry(1), [2], now=1.0)  # the same entry, already queued
    await claim_one(store, A)
    p = plan(A, feed=Feed(url=B, next_poll=700.0), moved_to=B)
    assert await store.record_polls([p], OWNER) == [True]
    assert await store.seen(B, ["a", "b"]) == {"a", "b"}
    # Chat 2 keeps its own subscription of B (and its style); chat 1 moves.
    assert [s.style.silent for s in await store.chat_subscriptions(2)] == [True]
    assert [s.feed_url for s in await store.chat_subscriptions(1)] == [B]
    assert what(await store.pending()) == [(2, B, "id-1")]


# -- the outbox --------------------------------------------------------------
async def test_outbox_order_per_chat_and_across_retries(store: Store) -> None:
    d1 = await store.enqueue(A, entry(1), [10, 20, 10], now=5.0)
    d2 = await store.enqueue(B, entry(2), [20], now=6.0)
    assert await store.enqueue(A, entry(3), [], now=7.0) == []
    assert what(d1 + d2) == [(10, A, "id-1"), (20, A, "id-1"), (20, B, "id-2")]
    assert [d.seq for d in d1 + d2] == sorted({d.seq for d in d1 + d2})
    assert await store.pending() == d1 + d2
    assert await store.next_delivery(20) == d1[1]
    assert await store.outbox_chats(0.0, 10) == [10, 20]
    assert await store.next_delivery_at() == 0.0
    # Chat 20's first delivery must wait: its later one does not jump ahead.
    retry = replace(d1[1], attempts=1, not_before=50.0, sent_parts=1)
    await store.reschedule_delivery(retry)
    assert await store.next_delivery(20) == retry
    assert await store.outbox_chats(10.0, 10) == [10]
    assert await store.outbox_chats(50.0, 10) == [10, 20]
    assert await store.outbox_chats(50.0, 1) == [10]
    await store.complete_delivery(d1[0])
    await store.complete_delivery(d1[0])  # twice is harmless
    assert await store.next_delivery(10) is None
    assert await store.next_delivery_at() == 50.0
    assert await store.outbox_chats(10.0, 10) == []
    await store.complete_delivery(retry)
    assert await store.next_delivery(20) == d2[0]
    assert await store.next_delivery_at() == 0.0
    await store.reschedule_delivery(replace(retry, attempts=9))  # gone: nothing happens
    assert await store.pending() == d2
    await store.complete_delivery(d2[0])
    assert await store.next_delivery_at() is None


async def test_outbox_chats_puts_the_chat_with_the_oldest_delivery_first(store: Store) -> None:
    await store.enqueue(A, entry(1), [3], now=1.0)
    await store.enqueue(A, entry(2), [1, 2], now=1.0)
    await store.enqueue(A, entry(3), [3], now=1.0)
    assert await store.outbox_chats(0.0, 10) == [3, 1, 2]


async def test_reschedule_can_move_a_delivery_to_another_chat(store: Store) -> None:
    [d1] = await store.enqueue(A, entry(1), [1], now=1.0)
    [d2] = await store.enqueue(A, entry(2), [-5], now=1.0)
    moved = replace(d1, chat_id=-5)
    await store.reschedule_delivery(moved)
    assert await store.next_delivery(1) is None
    assert await store.next_delivery(-5) == moved  # it keeps its place (seq)
    assert await store.outbox_chats(0.0, 10) == [-5]
    await store.complete_delivery(moved)
    assert await store.next_delivery(-5) == d2


async def test_stats(store: Store) -> None:
    await follow(store, 1, A)
    await follow(store, 2, A, new=False)
    await follow(store, 2, B)
    await store.pause_chat(1)
    await store.enqueue(B, entry(1), [2], now=30.0)
    await store.enqueue(B, entry(2), [2], now=20.0)
    await claim_one(store, B)
    failing = Feed(url=B, next_poll=700.0, error_count=2, last_error="timeout")
    assert await store.record_polls([plan(B, feed=failing)], OWNER) == [True]
    stats = await store.stats()
    assert (stats.chats, stats.active_chats) == (2, 1)
    assert (stats.feeds, stats.failing_feeds, stats.subscriptions) == (2, 1, 3)
    assert (stats.outbox.depth, stats.outbox.oldest) == (2, 20.0)


async def test_seq_is_monotonic_across_reopen(backend: Factory, store: Store) -> None:
    [d] = await store.enqueue(A, entry(1), [1], now=1.0)
    await store.complete_delivery(d)
    store = await reopen(backend, store)
    [d2] = await store.enqueue(A, entry(2), [1], now=2.0)
    assert d2.seq > d.seq
    s1 = await follow(store, 1, A)
    store = await reopen(backend, store)
    s2 = await follow(store, 1, B)
    assert s2.seq > s1.seq > 0


# -- subscriptions and chats -------------------------------------------------
async def test_subscribe_stores_the_chat_feed_seen_keys_and_sample(store: Store) -> None:
    group = Chat(-7, ChatKind.GROUP, "G", active=False)
    sub = Subscription(-7, A, 5.0, Style(summary="full"))
    stored = await store.subscribe(
        group, sub, new_feed=Feed(url=A, title="A"), seen=("x", "y"), sample=entry(1), now=9.0
    )
    assert stored == replace(sub, seq=stored.seq) and stored.seq > 0  # type: ignore[union-attr]
    assert await store.get_chat(-7) == replace(group, active=True)
    assert await store.get_feed(A) == Feed(url=A, title="A")
    assert await store.seen(A, ["x", "y", "z"]) == {"x", "y"}
    assert what(await store.pending()) == [(-7, A, "id-1")]
    assert await store.get_subscription(-7, A) == stored
    # The same URL again: nothing changes.
    again = await store.subscribe(group, sub, new_feed=Feed(url=A, title="other"), sample=entry(2))
    assert again is None
    assert (await store.get_feed(A)).title == "A"  # type: ignore[union-attr]
    assert len(await store.pending()) == 1
    # A second chat joins the existing feed.
    other = await follow(store, 3, A, new=False)
    assert other.seq > stored.seq
    assert await store.seen(A, ["x"]) == {"x"}


async def test_subscribe_with_a_new_feed_replaces_a_gone_one(store: Store) -> None:
    await follow(store, 1, A, seen=("old",))
    await claim_one(store, A)
    gone = Feed(url=A, status=FeedStatus.GONE, last_error="410")
    assert await store.record_polls([plan(A, feed=gone)], OWNER) == [True]
    assert await store.unsubscribe(1, A)
    await follow(store, 1, A, seen=("new",))  # gone feed deleted with its last subscriber
    await follow(store, 2, B)
    await store.subscribe(
        chat(3), Subscription(3, B, 1.0), new_feed=Feed(url=B, title="B2"), seen=("n",)
    )
    assert await store.get_feed(B) == Feed(url=B, title="B2")
    assert await store.seen(B, ["n"]) == {"n"}
    assert await store.seen(A, ["old", "new"]) == {"new"}


async def test_chat_subscriptions_in_the_order_subscribed(store: Store) -> None:
    urls = [f"https://{c}.example/" for c in "zyxw"]
    for url in urls:
        await follow(store, 1, url, created=1.0)  # all in the same second
    assert [s.feed_url for s in await store.chat_subscriptions(1)] == urls
    assert await store.chat_subscriptions(2) == []


async def test_unsubscribe(store: Store) -> None:
    await follow(store, 1, A, seen=("s",))
    await follow(store, 2, A, new=False)
    await follow(store, 1, B)
    await store.enqueue(A, entry(1), [1, 2], now=1.0)
    await store.enqueue(B, entry(2), [1], now=1.0)
    assert await store.unsubscribe(1, A) is True
    assert await store.unsubscribe(1, A) is False  # twice
    assert await store.unsubscribe(9, A) is False
    assert what(await store.pending()) == [(2, A, "id-1"), (1, B, "id-2")]
    assert await store.get_feed(A) is not None  # chat 2 still follows it
    assert await store.unsubscribe(2, A) is True
    assert await store.get_feed(A) is None
    assert await store.seen(A, ["s"]) == set()
    assert await store.active_subscribers(A) == []
    assert [s.feed_url for s in await store.chat_subscriptions(1)] == [B]


async def test_update_subscription(store: Store) -> None:
    sub = await follow(store, 1, A)
    changed = replace(sub, style=Style(media=False, silent=True), seq=0)
    assert await store.update_subscription(changed) is True
    assert await store.get_subscription(1, A) == replace(changed, seq=sub.seq)
    assert await store.update_subscription(replace(sub, chat_id=2)) is False
    assert await store.get_subscription(2, A) is None


async def test_save_chat_and_pause_and_resume(store: Store) -> None:
    assert await store.pause_chat(1) is False  # unknown
    await store.save_chat(Chat(1, ChatKind.PRIVATE, "me", "user"))
    assert await store.get_chat(1) == Chat(1, ChatKind.PRIVATE, "me", "user")
    assert await store.resume_chat(Chat(1, ChatKind.PRIVATE, "me")) is False  # was active
    await follow(store, 1, A)
    await store.enqueue(A, entry(1), [1], now=1.0)
    assert await store.pause_chat(1) is True
    assert (await store.get_chat(1)).active is False  # type: ignore[union-attr]
    assert await store.pending() == []
    assert await store.pause_chat(1) is False  # already paused
    assert [s.feed_url for s in await store.chat_subscriptions(1)] == [A]  # kept
    assert await store.active_subscribers(A) == []
    assert await store.resume_chat(Chat(1, ChatKind.PRIVATE, "new title", active=False)) is True
    assert await store.get_chat(1) == Chat(1, ChatKind.PRIVATE, "new title", active=True)
    # Paused without subscriptions: nothing to welcome back to.
    await store.save_chat(Chat(2, ChatKind.PRIVATE, active=False))
    assert await store.resume_chat(Chat(2, ChatKind.PRIVATE)) is False
    assert (await store.get_chat(2)).active is True  # type: ignore[union-attr]


async def test_pause_drops_deliveries_even_when_already_paused(store: Store) -> None:
    await store.save_chat(Chat(1, ChatKind.PRIVATE, active=False))
    await store.enqueue(A, entry(1), [1, 2], now=1.0)
    assert await store.pause_chat(1) is False
    assert what(await store.pending()) == [(2, A, "id-1")]


async def test_migrate_chat_moves_record_subscriptions_and_deliveries(store: Store) -> None:
    await store.save_chat(Chat(-1, ChatKind.GROUP, "Group"))
    sa = await store.subscribe(
        Chat(-1, ChatKind.GROUP, "Group"),
        Subscription(-1, A, 1.0, Style(silent=True)),
        new_feed=Feed(url=A),
    )
    await follow(store, -1, B, created=2.0)
    # The new chat already follows B with its own style: that one stays.
    sb = await store.subscribe(
        Chat(-100, ChatKind.SUPERGROUP), Subscription(-100, B, 3.0, Style(media=False))
    )
    await follow(store, 5, A, new=False)
    await store.enqueue(A, entry(1), [-1, 5], now=1.0)
    await store.enqueue(B, entry(2), [-100], now=1.0)
    await store.enqueue(B, entry(2), [-1], now=1.0)  # the same entry, already queued for -100
    await store.enqueue(B, entry(3), [-1], now=1.0)
    await store.migrate_chat(-1, -100)
    await store.migrate_chat(-100, -100)  # nothing
    assert await store.get_chat(-1) is None
    new_chat = await store.get_chat(-100)
    assert new_chat is not None and new_chat.title in ("Group", "")
    assert await store.chat_subscriptions(-1) == []
    subs = await store.chat_subscriptions(-100)
    assert {s.feed_url: s.style for s in subs} == {A: Style(silent=True), B: Style(media=False)}
    assert sa is not None and sb is not None
    assert sorted(s.chat_id for s in await store.active_subscribers(A)) == [-100, 5]
    assert what(await store.pending()) == [
        (-100, A, "id-1"),
        (5, A, "id-1"),
        (-100, B, "id-2"),
        (-100, B, "id-3"),
    ]
    assert what([await store.next_delivery(-100)]) == [(-100, A, "id-1")]  # type: ignore[list-item]
    assert await store.next_delivery(-1) is None


async def test_migrate_a_group_without_a_new_record(store: Store) -> None:
    await store.save_chat(Chat(-1, ChatKind.GROUP, "Group"))
    await store.migrate_chat(-1, -100)
    assert await store.get_chat(-100) == Chat(-100, ChatKind.SUPERGROUP, "Group")


# -- crash safety ------------------------------------------------------------
class Unwritable(datetime):
    """A date no backend can store: every way to turn it into text or a
    timestamp fails. It stands for a write that fails half-way through a
    plan (a full disk, a dropped connection) at a point a test can choose."""

    def _fail(self, *a: object, **kw: object) -> object:
        raise ValueError("this date cannot be written")

    isoformat = _fail  # type: ignore[assignment]
    timestamp = _fail  # type: ignore[assignment]
    astimezone = _fail  # type: ignore[assignment]
    utcoffset = _fail  # type: ignore[assignment]
    __str__ = _fail  # type: ignore[assignment]
    __sub__ = _fail  # type: ignore[assignment]


BAD = entry("bad", published=Unwritable(2024, 1, 1, tzinfo=UTC))


async def test_a_poll_lands_whole_or_not_at_all(backend: Factory, store: Store) -> None:
    await follow(store, 1, A, seen=("before",))
    await follow(store, 2, B)
    assert len(await store.claim_due_feeds(OWNER, 100.0, 10, LEASE)) == 2
    before = (await store.get_feed(A), await store.pending(), await store.stats())
    good_b = plan(B, seen=("b",), enqueue=(Enqueue(entry(1), (2,)),))
    bad_a = plan(
        A,
        feed=Feed(url=A, title="changed", next_poll=900.0),
        seen=("a1", "a2"),
        prune_before=1e9,
        enqueue=(Enqueue(entry(1), (1,)), Enqueue(BAD, (1,)), Enqueue(entry(2), (1,))),
        tell=(Tell(Notice("feed_back"), (1,)),),
    )
    with pytest.raises(Exception):  # noqa: B017 - StoreError on the built-in backends
        await store.record_polls([good_b, bad_a], OWNER)
    # Neither plan landed: not B's (the same transaction), nothing of A's.
    assert (await store.get_feed(A), await store.pending(), await store.stats()) == before
    assert await store.seen(A, ["before", "a1", "a2"]) == {"before"}
    assert await store.seen(B, ["b"]) == set()
    assert await store.get_feed(B) == Feed(url=B)
    # The leases are still held: the poll can be recorded once it can be written.
    assert await store.record_polls([good_b], OWNER) == [True]
    assert what(await store.pending()) == [(2, B, "id-1")]
    store = await reopen(backend, store)
    assert await store.seen(A, ["a1"]) == set()
    assert what(await store.pending()) == [(2, B, "id-1")]


async def test_a_failed_subscribe_changes_nothing(store: Store) -> None:
    with pytest.raises(Exception):  # noqa: B017
        await store.subscribe(
            chat(1), Subscription(1, A, 1.0), new_feed=Feed(url=A), seen=("x",), sample=BAD
        )
    assert await store.get_subscription(1, A) is None
    assert await store.get_feed(A) is None
    assert await store.get_chat(1) is None
    assert await store.seen(A, ["x"]) == set()
    # And the store carries on.
    await follow(store, 1, A)
    assert await store.pending() == []


async def test_a_plan_to_delete_a_feed_someone_followed_meanwhile_keeps_it(
    store: Store,
) -> None:
    # The planner says "delete" (feed None) only when the claim found nobody
    # following; a chat that subscribed since must not be left pointing at
    # nothing. The feed stays, and its next poll plans again.
    await follow(store, 1, A, seen=("s",), next_poll=5.0)
    await claim_one(store, A)
    await store.record_polls([plan(A, feed=None)], OWNER)
    assert await store.get_feed(A) == Feed(url=A, next_poll=5.0)
    assert await store.seen(A, ["s"]) == {"s"}
    assert [s.chat_id for s in await store.active_subscribers(A)] == [1]
    [again] = await store.claim_due_feeds(OTHER, 100.0, 10, LEASE)
    assert again.followed and again.feed.url == A


async def test_keys_and_urls_with_odd_characters_never_mix(store: Store) -> None:
    urls = [
        "https://a.example/",
        "https://a.example/\x1f",
        "https://a.example/\x1e001f",
        "https://😀.example/\U0010ffff",
    ]
    marks = {url: (f"k{i}", "shared", "\x1f", "\uffff😀") for i, url in enumerate(urls)}
    for i, url in enumerate(urls):
        await follow(store, i + 1, url, seen=marks[url][: i + 1])
    for i, url in enumerate(urls):
        probe = [key for keys in marks.values() for key in keys]
        assert await store.seen(url, probe) == set(marks[url][: i + 1])
        assert [s.feed_url for s in await store.chat_subscriptions(i + 1)] == [url]
        assert [s.chat_id for s in await store.active_subscribers(url)] == [i + 1]
    assert await store.unsubscribe(1, urls[0])
    assert await store.get_feed(urls[0]) is None
    assert await store.seen(urls[0], list(marks[urls[0]])) == set()
    for i, url in enumerate(urls[1:], 1):
        assert await store.get_feed(url) is not None
        assert await store.seen(url, list(marks[url])) == set(marks[url][: i + 1])


async def test_a_rescheduled_delivery_keeps_its_entry_or_notice(store: Store) -> None:
    await follow(store, 1, A)
    await claim_one(store, A)
    tell = (Tell(Notice("feed_gone", {"url": A}), (1,)),)
    assert await store.record_polls(
        [plan(A, enqueue=(Enqueue(entry(1), (1,)),), tell=tell)], OWNER
    ) == [True]
    first, second = await store.pending()
    for d in (first, second):
        await store.reschedule_delivery(replace(d, attempts=3, not_before=7.0, sent_parts=1))
    again = await store.pending()
    assert [
        (d.entry, d.notice, d.feed_url, d.attempts, d.not_before, d.sent_parts) for d in again
    ] == [
        (entry(1), None, A, 3, 7.0, 1),
        (None, Notice("feed_gone", {"url": A}), A, 3, 7.0, 1),
    ]
    assert await store.next_delivery_at() == 7.0
    assert await store.outbox_chats(6.9, 10) == []
    assert await store.outbox_chats(7.0, 10) == [1]


# -- operating: /stats and /broadcast ---------------------------------------------
async def test_stats_count_chats_by_kind_and_state(store: Store) -> None:
    await follow(store, 1, A)
    await follow(store, 2, A, new=False)
    await follow(store, -3, A, new=False)
    await store.save_chat(Chat(-1004, ChatKind.CHANNEL, "news"))
    await store.pause_chat(2)
    by_kind = {c.kind: (c.active, c.paused) for c in (await store.stats()).by_kind}
    assert by_kind == {"private": (1, 1), "group": (1, 0), "channel": (1, 0)}


async def test_a_broadcast_goes_to_every_active_private_chat_once(store: Store) -> None:
    await follow(store, 5, A)
    await follow(store, 1, A, new=False)
    await follow(store, 2, A, new=False)
    await follow(store, -3, A, new=False)  # a group: not a broadcast's
    await store.save_chat(Chat(-1004, ChatKind.CHANNEL, "news"))
    await store.pause_chat(2)  # blocked the bot: not sent to
    await store.enqueue(A, entry(1), [1], now=10.0)
    notice = Notice("admin.broadcast", {"text": "Maintenance at 10"})
    assert await store.notify_private_chats(notice, now=50.0) == 2
    queued = [d for d in await store.pending() if d.notice is not None]
    assert [(d.chat_id, d.feed_url, d.notice) for d in queued] == [(1, "", notice), (5, "", notice)]
    assert await store.pending_notices("admin.broadcast") == 2
    assert await store.pending_notices("feed.gone") == 0
    # Each chat's own order is kept: the entry queued before goes first.
    first = await store.next_delivery(1)
    assert first is not None and first.entry is not None
    await store.complete_delivery(first)
    second = await store.next_delivery(1)
    assert second is not None and second.notice == notice
    await store.complete_delivery(second)
    assert await store.pending_notices("admin.broadcast") == 1
    assert (await store.stats()).outbox.depth == 1


async def test_a_broadcast_with_no_private_chat_queues_nothing(store: Store) -> None:
    await follow(store, -3, A)
    assert await store.notify_private_chats(Notice("admin.broadcast", {"text": "x"}), 1.0) == 0
    assert await store.pending() == []
