"""The pacer (bot/pacing.py) and the deliverer's own rules, in process.

The end-to-end cases (the whole bot against the strict fake) are in
test_e2e_delivery.py and test_e2e_restart.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest
from telegram import Bot
from telegram.request import HTTPXRequest

import bot.deliver
from bot.deliver import Deliverer, backoff_delay, fit_plain, message_items
from bot.models import Chat, ChatKind, Entry, Media, Style, Subscription
from bot.pacing import Pacer, Window
from bot.render import MediaItem, Message
from bot.store.sqlite import SqliteStore
from testkit.fake_telegram import FakeTelegram
from testkit.harness import TOKEN, eventually

FEED = "https://feed.example/rss"


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


def test_backoff_grows_with_jitter_and_is_capped():
    assert backoff_delay(1, rng=lambda: 0.0) == pytest.approx(1.0)
    assert backoff_delay(1, rng=lambda: 1.0) == pytest.approx(3.0)
    assert backoff_delay(3, rng=lambda: 0.5) == pytest.approx(8.0)
    assert backoff_delay(50, rng=lambda: 0.5) == pytest.approx(bot.deliver.BACKOFF_CAP)


# -- Pacer (real time, short windows) -----------------------------------------
def max_in_window(stamps: list[tuple[float, int]], period: float) -> int:
    """The most units whose admission fell within any ``period`` (half-open)."""
    return max(sum(n for u, n in stamps if t - period < u <= t) for t, _ in stamps)


async def test_pacer_overall_window_counts_media_items():
    pacer = Pacer(per_second=6, second=0.3, chat_interval=0.0)
    stamps: list[tuple[float, int]] = []

    async def send(chat_id: int, items: int) -> None:
        async with pacer.slot(chat_id, items):
            stamps.append((time.monotonic(), items))
            await asyncio.sleep(0.01)  # the request

    started = time.monotonic()
    await asyncio.gather(*(send(chat_id, 2) for chat_id in range(1, 10)))
    assert max_in_window(stamps, 0.3) <= 6
    # 18 items at 6 per 0.3 s: three windows, and each waits for the answers.
    assert time.monotonic() - started >= 0.6
    assert pacer.in_flight == 0


async def test_pacer_spaces_a_chat_by_its_items():
    pacer = Pacer(chat_interval=0.2)
    times = []
    for items in (3, 1, 1):
        async with pacer.slot(42, items):
            times.append(time.monotonic())
    assert times[1] - times[0] >= 0.6 - 0.01  # after an album of three
    assert times[2] - times[1] >= 0.2 - 0.01


async def test_pacer_group_window():
    pacer = Pacer(group_per_minute=3, minute=0.5, chat_interval=0.0)
    times = []
    for _ in range(7):
        async with pacer.slot(-100, 1):
            times.append(time.monotonic())
    stamps = [(t, 1) for t in times]
    assert max_in_window(stamps, 0.5) <= 3
    assert times[6] - times[0] >= 1.0 - 0.01
    # Another group is not held up by the first one's window.
    started = time.monotonic()
    async with pacer.slot(-200, 1):
        pass
    assert time.monotonic() - started < 0.1


async def test_pacer_lets_other_chats_go_while_one_waits_for_its_pace():
    pacer = Pacer(chat_interval=1.0)
    async with pacer.slot(1, 1):
        pass
    order = []

    async def send(chat_id: int) -> None:
        async with pacer.slot(chat_id, 1):
            order.append(chat_id)

    await asyncio.wait_for(asyncio.gather(send(1), send(2), send(3)), 3)
    assert order[-1] == 1


# -- Deliverer against the strict fake, in process ----------------------------
@asynccontextmanager
async def deliverer(store: SqliteStore, telegram: FakeTelegram) -> AsyncIterator[Deliverer]:
    request = HTTPXRequest(connection_pool_size=64)
    async with Bot(TOKEN, base_url=telegram.base_url, request=request) as tg_bot:
        running = Deliverer(store, tg_bot)
        running.start()
        running.wake()
        try:
            yield running
        finally:
            await running.stop()


@pytest.fixture
def store(tmp_path) -> SqliteStore:
    opened = SqliteStore(str(tmp_path / "store.sqlite"))
    yield opened
    opened.close()


def add_private_chats(store: SqliteStore, telegram: FakeTelegram, ids: range) -> None:
    for chat_id in ids:
        telegram.add_user(chat_id)
        store.put_chat(Chat(chat_id, ChatKind.PRIVATE))


async def test_broadcast_within_telegram_limits_gets_no_429(store, telegram: FakeTelegram):
    telegram.limits = True
    chats = range(9001, 9041)
    add_private_chats(store, telegram, chats)
    text = Entry("t", "Text entry", link="https://e.example/t")
    album = Entry(
        "a",
        "Album entry",
        link="https://e.example/a",
        media=tuple(Media(f"https://img.example/{i}.jpg", "image", "image/jpeg") for i in range(3)),
    )
    store.enqueue(FEED, text, chats)
    store.enqueue(FEED, album, chats)
    store.commit()
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
    add_private_chats(store, telegram, range(1, 2))
    telegram.fail_media_url("broken")
    entry = Entry(
        "long",
        "Long read",
        link="https://e.example/long",
        html="<p>" + "Many words here. " * 150 + "</p>",
        media=(Media("https://img.example/broken.jpg", "image", "image/jpeg"),),
    )
    store.enqueue(FEED, entry, [1])
    store.commit()
    async with deliverer(store, telegram) as running:
        assert await running.drain(10)
    (message,) = telegram.sent(1)
    assert message.method == "sendMessage"
    assert message.plain.count("Long read") == 1
    assert running.stats.fallbacks == 1


async def test_the_photo_of_a_photo_then_text_entry_is_sent_once_across_a_restart(
    store, telegram: FakeTelegram
):
    add_private_chats(store, telegram, range(1, 2))
    store.put_subscription(Subscription(1, FEED, created=0.0, style=Style(summary="full")))
    entry = Entry(
        "long",
        "Long read",
        link="https://e.example/long",
        html="<p>" + "Many words here. " * 150 + "</p>",
        media=(Media("https://img.example/fine.jpg", "image", "image/jpeg"),),
    )
    store.enqueue(FEED, entry, [1])
    store.commit()
    telegram.fail_server(times=1, status=502, method="sendMessage")
    async with deliverer(store, telegram):
        # The photo went, the text met a 502: the delivery waits, its progress stored.
        await eventually(lambda: any(r[2] == 502 for r in telegram.rejections))
        await eventually(lambda: store.pending()[0].attempts == 1, message="retry recorded")
        (queued,) = store.pending()
        assert queued.sent_parts == 1
    # A new process (a restart) with the same store sends only the text.
    store.update_delivery(replace(queued, not_before=0.0))
    store.commit()
    async with deliverer(store, telegram) as running:
        assert await running.drain(10)
    assert [m.method for m in telegram.sent(1)] == ["sendPhoto", "sendMessage"]
    assert telegram.sent(1)[1].plain.count("Long read") == 1


async def test_a_delivery_that_keeps_crashing_is_dropped_and_others_go_on(
    store, telegram: FakeTelegram, monkeypatch
):
    add_private_chats(store, telegram, range(1, 3))
    original = bot.deliver.render_entry

    def render(entry, feed_title, style):
        if entry.id == "bad":
            raise RuntimeError("renderer bug")
        return original(entry, feed_title, style)

    monkeypatch.setattr(bot.deliver, "render_entry", render)
    monkeypatch.setattr(bot.deliver, "BACKOFF_BASE", 0.01)
    store.enqueue(FEED, Entry("bad", "Bad"), [1])
    store.enqueue(FEED, Entry("good", "Good after bad", link="https://e.example/g"), [1, 2])
    store.commit()
    async with deliverer(store, telegram) as running:
        await eventually(lambda: telegram.sent(2), message="the other chat")
        assert await running.drain(10)
    assert [m.plain.splitlines()[0] for m in telegram.sent(1)] == ["Good after bad"]
    assert running.stats.rejected == 1


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
    store.enqueue(FEED, Entry("e", "Entry", link="https://e.example/e"), [1, 2, 3])
    store.enqueue(FEED, Entry("f", "Next", link="https://e.example/f"), [1, 2, 3])
    store.commit()
    slow = SlowBot(0.5)
    running = Deliverer(store, slow)  # type: ignore[arg-type]
    running.start()
    running.wake()
    await eventually(lambda: len(slow.started) == 3, message="three sends on the wire")
    await running.stop()
    # Answered and committed: a restart sends none of them again.
    assert sorted(slow.answered) == [1, 2, 3]
    assert [d.entry.id for d in store.pending()] == ["f", "f", "f"]
    assert len(slow.started) == 3, "nothing new started while stopping"
