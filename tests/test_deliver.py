"""The deliverer (bot/deliver.py) on a real store, against the strict fake.

The pure parts have their own tests (test_delivery_rules.py, test_flood.py,
test_limiter.py); the whole bot end to end is in test_e2e_delivery.py and
test_e2e_restart.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest
from telegram.ext import ExtBot
from telegram.request import HTTPXRequest

import bot.deliver
import bot.delivery_rules
from bot.deliver import Deliverer
from bot.health import heartbeats
from bot.limiter import Limiter
from bot.metrics import metrics
from bot.models import Chat, ChatKind, Entry, Feed, Media, Notice, Style, Subscription
from bot.outgoing import fit_plain, message_items
from bot.plan import PollPlan, Tell
from bot.render import MediaItem, Message
from bot.store.sqlite import SqliteStore
from bot.texts import say
from testkit.fake_telegram import FakeTelegram
from testkit.harness import TOKEN, eventually

FEED = "https://feed.example/rss"


def test_message_items_counts_each_item_of_a_media_group():
    photos = tuple(MediaItem("photo", f"https://img.example/{i}.jpg") for i in range(4))
    assert message_items("plain") == 1
    assert message_items(Message("<b>x</b>")) == 1
    assert message_items(Message("", photos[:1])) == 1
    assert message_items(Message("", photos)) == 4


def test_fit_plain_measures_utf16():
    assert fit_plain("abc", 2) == "ab"
    assert fit_plain("a😀b", 2) == "a"  # the emoji is two units
    assert fit_plain("a😀b", 3) == "a😀"
    assert fit_plain("x" * 5000) == "x" * 4096


# -- fixtures -----------------------------------------------------------------
@pytest.fixture
async def store(tmp_path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(str(tmp_path / "store.sqlite"))
    await opened.open()
    yield opened
    await opened.close()


@asynccontextmanager
async def deliverer(store: SqliteStore, telegram: FakeTelegram) -> AsyncIterator[Deliverer]:
    request = HTTPXRequest(connection_pool_size=64)
    async with ExtBot(
        TOKEN, base_url=telegram.base_url, request=request, rate_limiter=Limiter()
    ) as tg_bot:
        running = Deliverer(store, tg_bot)
        running.start()
        running.wake()
        try:
            yield running
        finally:
            await running.stop()


async def add_private_chats(store: SqliteStore, telegram: FakeTelegram, ids: range) -> None:
    for chat_id in ids:
        telegram.add_user(chat_id)
        await store.save_chat(Chat(chat_id, ChatKind.PRIVATE))


async def subscribe(store: SqliteStore, chat: Chat, style: Style | None = None) -> None:
    await store.subscribe(
        chat,
        Subscription(chat.id, FEED, created=0.0, style=style or Style()),
        new_feed=Feed(FEED, "F"),
    )


LONG = Entry(
    "long",
    "Long read",
    link="https://e.example/long",
    html="<p>" + "Many words here. " * 150 + "</p>",
    media=(Media("https://img.example/fine.jpg", "image", "image/jpeg"),),
)


# -- the deliverer --------------------------------------------------------------
async def test_broadcast_within_telegram_limits_gets_no_429_and_scans_no_outbox(
    store, telegram: FakeTelegram, monkeypatch
):
    telegram.limits = True
    chats = range(9001, 9041)
    await add_private_chats(store, telegram, chats)
    text = Entry("t", "Text entry", link="https://e.example/t")
    album = Entry(
        "a",
        "Album entry",
        link="https://e.example/a",
        media=tuple(Media(f"https://img.example/{i}.jpg", "image", "image/jpeg") for i in range(3)),
    )
    await store.enqueue(FEED, text, chats, 0.0)
    await store.enqueue(FEED, album, chats, 0.0)

    async def no_scan() -> list:
        raise AssertionError("the deliverer scanned the whole outbox")

    monkeypatch.setattr(store, "pending", no_scan)  # issue 9: no send costs a scan
    started = time.monotonic()
    async with deliverer(store, telegram) as running:
        assert await running.drain(30)
    elapsed = time.monotonic() - started
    assert telegram.count_429 == 0, telegram.rejections[:5]
    # 40 × (1 + 3 items) = 160 messages at 30 a second: the first 30 at once.
    assert elapsed >= (160 - 30) / 30
    for chat_id in chats:
        sent = telegram.sent(chat_id)
        assert [m.method for m in sent] == ["sendMessage"] + ["sendMediaGroup"] * 3
        assert "Text entry" in sent[0].plain
        # The chat's own pace: the album came a second or more after the text.
        assert sent[1].time - sent[0].time >= 1.0


async def test_refused_media_of_a_media_then_text_entry_sends_the_text_once(
    store, telegram: FakeTelegram
):
    await add_private_chats(store, telegram, range(1, 2))
    telegram.fail_media_url("broken")
    entry = replace(LONG, media=(Media("https://img.example/broken.jpg", "image", "image/jpeg"),))
    await store.enqueue(FEED, entry, [1], 0.0)
    async with deliverer(store, telegram) as running:
        assert await running.drain(10)
    (message,) = telegram.sent(1)
    assert message.method == "sendMessage"
    assert message.plain.count("Long read") == 1
    assert running.stats.fallbacks == 1


async def test_the_photo_of_a_photo_then_text_entry_is_sent_once_across_a_restart(
    store, telegram: FakeTelegram
):
    await add_private_chats(store, telegram, range(1, 2))
    await subscribe(store, Chat(1, ChatKind.PRIVATE), Style(summary="full"))
    await store.enqueue(FEED, LONG, [1], 0.0)
    telegram.fail_server(times=1, status=502, method="sendMessage")
    async with deliverer(store, telegram):
        # The photo went, the text met a 502: the delivery waits, its progress stored.
        await eventually(lambda: any(r[2] == 502 for r in telegram.rejections))
        queued = None
        for _ in range(100):
            (queued,) = await store.pending()
            if queued.attempts == 1:
                break
            await asyncio.sleep(0.05)
        assert queued is not None and queued.attempts == 1, "retry recorded"
        assert queued.sent_parts == 1
    # A new process (a restart) with the same store sends only the text.
    await store.reschedule_delivery(replace(queued, not_before=0.0))
    async with deliverer(store, telegram) as running:
        assert await running.drain(10)
    assert [m.method for m in telegram.sent(1)] == ["sendPhoto", "sendMessage"]
    assert telegram.sent(1)[1].plain.count("Long read") == 1


async def test_a_delivery_that_keeps_crashing_is_dropped_and_others_go_on(
    store, telegram: FakeTelegram, monkeypatch
):
    await add_private_chats(store, telegram, range(1, 3))
    original = bot.deliver.render_entry

    def render(entry, feed_title, style):
        if entry.id == "bad":
            raise RuntimeError("renderer bug")
        return original(entry, feed_title, style)

    monkeypatch.setattr(bot.deliver, "render_entry", render)
    monkeypatch.setattr(bot.delivery_rules, "BACKOFF_BASE", 0.01)
    await store.enqueue(FEED, Entry("bad", "Bad"), [1], 0.0)
    await store.enqueue(
        FEED, Entry("good", "Good after bad", link="https://e.example/g"), [1, 2], 0.0
    )
    async with deliverer(store, telegram) as running:
        await eventually(lambda: telegram.sent(2), message="the other chat")
        assert await running.drain(10)
    assert [m.plain.splitlines()[0] for m in telegram.sent(1)] == ["Good after bad"]
    assert running.stats.rejected == 1


async def test_a_notice_goes_from_the_outbox_as_plain_text_in_order(store, telegram: FakeTelegram):
    await add_private_chats(store, telegram, range(1, 2))
    await subscribe(store, Chat(1, ChatKind.PRIVATE))
    notice = Notice("feed.gone", {"title": "F <b>", "url": FEED})
    await store.enqueue(FEED, Entry("before", "Before", link="https://e.example/b"), [1], 0.0)
    await _queue_notice(store, 1, notice)
    await store.enqueue(FEED, Entry("after", "After", link="https://e.example/a"), [1], 0.0)
    async with deliverer(store, telegram) as running:
        assert await running.drain(10)
    sent = telegram.sent(1)
    assert [m.plain.splitlines()[0] for m in sent][::2] == ["Before", "After"]
    assert sent[1].parse_mode is None
    assert sent[1].plain == say("feed.gone", notice.params)  # "<b>" shown as it is


async def test_a_migrated_group_gets_its_delivery_at_the_new_id_once(store, telegram: FakeTelegram):
    telegram.add_group(-100, "Group", [4242])
    group = Chat(-100, ChatKind.GROUP)
    await subscribe(store, group)
    await store.enqueue(FEED, Entry("e", "Moved along", link="https://e.example/e"), [-100], 0.0)
    telegram.migrate(-100, -1000100)
    async with deliverer(store, telegram) as running:
        assert await running.drain(10)
    assert [m.plain.splitlines()[0] for m in telegram.sent(-1000100)] == ["Moved along"]
    assert await store.get_subscription(-1000100, FEED) is not None
    assert running.stats.migrated == 1


async def test_a_blocked_chat_is_paused_and_its_queue_dropped(store, telegram: FakeTelegram):
    await add_private_chats(store, telegram, range(1, 3))
    await subscribe(store, Chat(1, ChatKind.PRIVATE))
    telegram.block(1)
    for n in range(3):
        await store.enqueue(
            FEED, Entry(f"e{n}", f"E{n}", link=f"https://e.example/{n}"), [1, 2], 0.0
        )
    gone = metrics.value("feedbot_deliveries_total", outcome="chat_gone") or 0.0
    sent = metrics.value("feedbot_deliveries_total", outcome="sent") or 0.0
    async with deliverer(store, telegram) as running:
        assert await running.drain(10)
        assert "deliver" in heartbeats.snapshot()
    assert "deliver" not in heartbeats.snapshot()  # stopped on purpose
    assert metrics.value("feedbot_deliveries_total", outcome="chat_gone") == gone + 1
    assert metrics.value("feedbot_deliveries_total", outcome="sent") == sent + 3
    chat = await store.get_chat(1)
    assert chat is not None and not chat.active
    assert len([r for r in telegram.rejections if r[1] == 1]) == 1, "tried once, then paused"
    assert len(telegram.sent(2)) == 3
    assert running.stats.chats_gone == 1


async def _queue_notice(store: SqliteStore, chat_id: int, notice: Notice) -> None:
    """As a poll queues a notice: a claim, then its plan recorded."""
    (claim,) = await store.claim_due_feeds("test", time.time(), 1, 60.0)
    plan = PollPlan(FEED, claim.feed, time.time(), tell=(Tell(notice, (chat_id,)),))
    assert await store.record_polls([plan], "test") == [True]


class SlowBot:
    """Stands in for telegram.Bot: each send takes ``delay`` seconds to be answered."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.started: list[int] = []
        self.answered: list[int] = []

    async def send_message(self, chat_id: int, text: str, **kwargs: object) -> None:
        self.started.append(chat_id)
        await asyncio.sleep(self.delay)
        self.answered.append(chat_id)


async def test_stop_lets_the_sends_on_the_wire_finish_and_starts_no_more(store):
    await store.enqueue(FEED, Entry("e", "Entry", link="https://e.example/e"), [1, 2, 3], 0.0)
    await store.enqueue(FEED, Entry("f", "Next", link="https://e.example/f"), [1, 2, 3], 0.0)
    slow = SlowBot(0.5)
    running = Deliverer(store, slow)  # type: ignore[arg-type]
    running.start()
    running.wake()
    await eventually(lambda: len(slow.started) == 3, message="three sends on the wire")
    await running.stop()
    # Answered and recorded: a restart sends none of them again.
    assert sorted(slow.answered) == [1, 2, 3]
    assert [d.entry.id for d in await store.pending()] == ["f", "f", "f"]
    assert len(slow.started) == 3, "nothing new started while stopping"


async def test_stop_refuses_the_sends_still_waiting_for_a_place(store, telegram: FakeTelegram):
    chats = range(1, 61)
    await add_private_chats(store, telegram, chats)
    await store.enqueue(FEED, Entry("e", "Entry", link="https://e.example/e"), chats, 0.0)
    async with deliverer(store, telegram):
        await eventually(lambda: telegram.sent(), message="the first sends")
    # 60 sends at 30 a second: stopped within the first second, the second
    # half never went, and all that went are recorded.
    left = await store.pending()
    assert len(telegram.sent()) + len(left) == 60
    assert 0 < len(left) < 60
    assert {m.chat_id for m in telegram.sent()}.isdisjoint(d.chat_id for d in left)
