"""A user in a private chat: subscribe, receive each new entry once, list, unsubscribe."""

from __future__ import annotations

import asyncio

import pytest

from testkit.fake_telegram import FakeTelegram
from testkit.feed_server import FeedServer
from testkit.harness import eventually, load_test_config, running_bot, services

#: Every test here runs on the embedded file and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("e2e_store")

USER = 1001


async def test_subscribe_receive_list_unsubscribe(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER, "Ada")
    feed = feeds.rss("/news.xml", title="Daily News")
    for n in range(1, 6):
        feed.publish(f"Old story {n}", link=f"https://news.example/{n}", html=f"<p>Body {n}</p>")
    config = load_test_config(tmp_path, telegram)
    async with running_bot(config) as app:
        telegram.user_says(USER, USER, "/start")
        (welcome,) = await telegram.wait_sent(USER, 1)
        assert "/subscribe" in welcome.plain

        telegram.user_says(USER, USER, f"/subscribe {feeds.url('/news.xml')}")
        reply, sample = (await telegram.wait_sent(USER, 3))[1:]
        assert "Subscribed to Daily News" in reply.plain
        # The back catalogue is not replayed: only the newest entry, as a sample.
        assert "Old story 5" in sample.plain
        assert 'href="https://news.example/5"' in sample.text
        await asyncio.sleep(1.5)
        assert len(telegram.sent(USER)) == 3

        feed.publish(
            "Fresh story", link="https://news.example/fresh", html="<p>Fresh <b>news</b></p>"
        )
        messages = await telegram.wait_sent(USER, 4)
        assert "Fresh story" in messages[3].plain
        # Further polls must not send it again.
        await asyncio.sleep(2.5)
        assert [m.plain.count("Fresh story") for m in telegram.sent(USER)].count(1) == 1

        telegram.user_says(USER, USER, "/list")
        listing = (await telegram.wait_sent(USER, 5))[4]
        assert "1. Daily News" in listing.plain
        assert feeds.url("/news.xml") in listing.plain

        telegram.user_says(USER, USER, "/unsubscribe 1")
        bye = (await telegram.wait_sent(USER, 6))[5]
        assert "Unsubscribed from Daily News" in bye.plain
        assert (await services(app).store.chat_subscriptions(USER)) == []

        feed.publish("After unsubscribing", link="https://news.example/after")
        await asyncio.sleep(2.5)
        assert not any("After unsubscribing" in m.plain for m in telegram.sent(USER))


async def test_aliases_and_several_urls(tmp_path, telegram: FakeTelegram, feeds: FeedServer):
    telegram.add_user(USER)
    feeds.rss("/a.xml", title="Feed A").publish("A1")
    feeds.rss("/b.xml", title="Feed B").publish("B1")
    config = load_test_config(tmp_path, telegram, interval="1h")
    async with running_bot(config) as app:
        telegram.user_says(USER, USER, f"/sub {feeds.url('/a.xml')} {feeds.url('/b.xml')}")
        (reply,) = await telegram.wait_sent(USER, 1)
        assert reply.plain.startswith("2 feeds: added 2.")
        assert "Feed A" in reply.plain and "Feed B" in reply.plain
        await asyncio.sleep(0.5)
        assert len(telegram.sent(USER)) == 1, "several feeds at once: no sample flood"
        telegram.user_says(USER, USER, f"/unsub {feeds.url('/b.xml')}")
        await eventually(
            lambda: any("Unsubscribed from Feed B" in m.plain for m in telegram.sent(USER))
        )
        subs = await services(app).store.chat_subscriptions(USER)
        assert [s.feed_url for s in subs] == [feeds.url("/a.xml")]


async def test_bad_input_gets_one_clear_answer_and_changes_nothing(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    feeds.rss("/ok.xml", title="Fine Feed").publish("Hello")
    feeds.set_feed(
        "/page.html", "<html><head><title>Blog</title></head><body>hi</body></html>", "text/html"
    )
    feeds.set_feed(
        "/broken.xml", "<rss><channel><title>x</title><item><title>a</ti", "application/rss+xml"
    )
    feeds.fail("/missing.xml", status=404)
    config = load_test_config(tmp_path, telegram, interval="1h")
    cases = [
        ("/subscribe", "Usage"),
        ("/subscribe not-a-url", "not-a-url"),
        ("/subscribe ftp://example.com/feed", "ftp"),
        ("/subscribe http://127.0.0.1:1/feed.xml", "Could not subscribe"),
        (f"/subscribe {feeds.url('/missing.xml')}", "404"),
        (f"/subscribe {feeds.url('/page.html')}", "HTML"),
        (f"/subscribe {feeds.url('/broken.xml')}", "Could not subscribe"),
        ("/unsubscribe https://nowhere.example/feed", "Not subscribed"),
        ("/unsubscribe 7", "No subscription number 7"),
    ]
    async with running_bot(config) as app:
        store = services(app).store
        for number, (command, expected) in enumerate(cases, 1):
            telegram.user_says(USER, USER, command)
            answer = (await telegram.wait_sent(USER, number))[-1]
            assert expected.lower() in answer.plain.lower(), (command, answer.plain)
            assert (await store.chat_subscriptions(USER)) == []
        # Subscribing twice: the second answer says so, one subscription remains.
        telegram.user_says(USER, USER, f"/subscribe {feeds.url('/ok.xml')}")
        await telegram.wait_sent(USER, len(cases) + 2)  # reply + sample
        telegram.user_says(USER, USER, f"/subscribe {feeds.url('/ok.xml')}")
        again = (await telegram.wait_sent(USER, len(cases) + 3))[-1]
        assert "Already subscribed" in again.plain
        assert len(await store.chat_subscriptions(USER)) == 1
        await asyncio.sleep(0.5)
        assert len(telegram.sent(USER)) == len(cases) + 3


async def test_unknown_command_and_bare_link_get_a_pointer(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    async with running_bot(load_test_config(tmp_path, telegram, interval="1h")):
        telegram.user_says(USER, USER, "/frobnicate")
        (answer,) = await telegram.wait_sent(USER, 1)
        assert "/help" in answer.plain
        telegram.user_says(USER, USER, "https://blog.example/feed.xml")
        answer = (await telegram.wait_sent(USER, 2))[-1]
        assert "/subscribe https://blog.example/feed.xml" in answer.plain


async def test_a_web_page_is_followed_through_the_feed_it_names(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    feeds.rss("/blog/feed.xml", title="The Blog").publish("Post")
    feeds.set_feed(
        "/blog/",
        '<html><head><link rel="alternate" type="application/rss+xml" href="feed.xml">'
        "</head><body>A blog</body></html>",
        "text/html; charset=utf-8",
    )
    feeds.rss("/site/feed", title="Guessed").publish("Hello")  # a usual path, not named
    feeds.set_feed("/site/about.html", "<html><body>No links</body></html>", "text/html")
    async with running_bot(load_test_config(tmp_path, telegram, interval="1h")) as app:
        store = services(app).store
        telegram.user_says(USER, USER, f"/subscribe {feeds.url('/blog/')}")
        answer = (await telegram.wait_sent(USER, 1))[0]
        assert "Subscribed to The Blog" in answer.plain
        assert feeds.url("/blog/feed.xml") in answer.plain
        assert f"the feed that {feeds.url('/blog/')} names" in answer.plain
        telegram.user_says(USER, USER, f"/subscribe {feeds.url('/site/about.html')}")

        async def two() -> bool:
            return len(await store.chat_subscriptions(USER)) == 2

        await eventually(two, message="the guessed feed")
        subs = await store.chat_subscriptions(USER)
        assert [s.feed_url for s in subs] == [feeds.url("/blog/feed.xml"), feeds.url("/site/feed")]
        await eventually(lambda: any("usual address" in m.plain for m in telegram.sent(USER)))


async def test_a_page_naming_several_feeds_offers_them_as_buttons(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    feeds.rss("/news/all.xml", title="All news").publish("A")
    feeds.rss("/news/sport.xml", title="Sport").publish("S")
    feeds.set_feed(
        "/news/",
        '<html><head><link rel="alternate" type="application/rss+xml" title="All" href="all.xml">'
        '<link rel="alternate" type="application/rss+xml" title="Sport" href="sport.xml">'
        "</head></html>",
        "text/html",
    )
    async with running_bot(load_test_config(tmp_path, telegram, interval="1h")) as app:
        store = services(app).store
        telegram.user_says(USER, USER, f"/subscribe {feeds.url('/news/')}")
        (offer,) = await telegram.wait_sent(USER, 1)
        assert "names 2 feeds" in offer.plain
        rows = offer.reply_markup["inline_keyboard"]
        assert [row[0]["text"] for row in rows] == ["All", "Sport"]
        assert all(len(row[0]["callback_data"].encode()) <= 64 for row in rows)
        assert await store.chat_subscriptions(USER) == []
        telegram.user_presses_button(USER, USER, offer.message_id, rows[1][0]["callback_data"])

        async def one() -> bool:
            return len(await store.chat_subscriptions(USER)) == 1

        await eventually(one, message="picked")
        (sub,) = await store.chat_subscriptions(USER)
        assert sub.feed_url == feeds.url("/news/sport.xml")
        await eventually(
            lambda: "Subscribed to Sport" in telegram.message(USER, offer.message_id)["text"]
        )
        assert not telegram.message(USER, offer.message_id).get("reply_markup")
        assert telegram.unanswered_callbacks() == []


async def test_unsubscribe_several_numbers_means_what_list_showed(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    urls = []
    for name in ("A", "B", "C", "D"):
        feeds.rss(f"/{name}.xml", title=f"Feed {name}").publish(f"{name}1")
        urls.append(feeds.url(f"/{name}.xml"))
    async with running_bot(load_test_config(tmp_path, telegram, interval="1h")) as app:
        store = services(app).store
        for url in urls:  # one by one, so /list numbers them in this order
            telegram.user_says(USER, USER, f"/subscribe {url}")

            async def _cond1(u=url):
                return (await store.get_subscription(USER, u)) is not None

            await eventually(_cond1)
        telegram.user_says(USER, USER, f"/unsubscribe 1 3 9 {urls[2]}")
        await eventually(lambda: any("Unsubscribed" in m.plain for m in telegram.sent(USER)))
        answer = next(m.plain for m in telegram.sent(USER) if "Unsubscribed" in m.plain)
        assert "Unsubscribed from Feed A" in answer and "Unsubscribed from Feed C" in answer
        assert "No subscription number 9" in answer
        assert f"Not subscribed to {urls[2]}" in answer  # C, named twice
        assert [s.feed_url for s in (await store.chat_subscriptions(USER))] == [urls[1], urls[3]]
