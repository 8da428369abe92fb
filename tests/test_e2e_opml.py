"""/export sends the chat's subscriptions as OPML; /import subscribes to an OPML file's feeds."""

from __future__ import annotations

import pytest

from bot.opml import Outline, build_opml, parse_opml
from testkit.fake_telegram import FakeTelegram
from testkit.feed_server import FeedServer
from testkit.harness import eventually, load_test_config, running_bot, services

#: Every test here runs on the embedded file and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("e2e_store")

USER = 6001
OTHER = 6002


async def test_export_then_import_into_another_chat(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    telegram.add_user(OTHER)
    for name in ("one", "two"):
        feeds.rss(f"/{name}.xml", title=f"Feed {name}").publish(f"{name} entry")
    async with running_bot(load_test_config(tmp_path, telegram, interval="1h")) as app:
        store = services(app).store
        telegram.user_says(
            USER, USER, f"/subscribe {feeds.url('/one.xml')} {feeds.url('/two.xml')}"
        )

        async def _cond1():
            return len(await store.chat_subscriptions(USER)) == 2

        await eventually(_cond1)

        telegram.user_says(USER, USER, "/export")
        await eventually(lambda: any(m.method == "sendDocument" for m in telegram.sent(USER)))
        (document,) = [m for m in telegram.sent(USER) if m.method == "sendDocument"]
        (upload,) = document.files
        assert upload.filename.endswith(".opml")
        exported = parse_opml(upload.data)
        assert [o.url for o in exported] == [feeds.url("/one.xml"), feeds.url("/two.xml")]
        assert [o.title for o in exported] == ["Feed one", "Feed two"]
        assert document.params["caption"] == "2 subscriptions"

        # The other user, who follows one already, imports it with a bad outline and a
        # feed that answers 404 added, "/import" as the caption.
        feeds.fail("/gone.xml", status=404)
        telegram.user_says(OTHER, OTHER, f"/subscribe {feeds.url('/two.xml')}")

        async def _cond1():
            return len(await store.chat_subscriptions(OTHER)) == 1

        await eventually(_cond1)
        extra = f"<outline xmlUrl='not a url'/><outline xmlUrl='{feeds.url('/gone.xml')}'/>"
        mixed = upload.data.replace(b"</body>", extra.encode() + b"</body>")
        telegram.user_sends_document(OTHER, OTHER, "mixed.opml", mixed, caption="/import")
        await eventually(lambda: any("added" in (m.plain or "") for m in telegram.sent(OTHER)))
        answer = next(m.plain for m in telegram.sent(OTHER) if "added" in (m.plain or ""))
        assert answer.startswith("The file lists 4 feeds: added 1, already there 1, failed 2.")
        assert "Imported 4" not in answer
        assert "not a url" in answer and "404" in answer  # each failure named
        imported = {s.feed_url for s in (await store.chat_subscriptions(OTHER))}
        assert imported == {feeds.url("/one.xml"), feeds.url("/two.xml")}

        telegram.user_says(OTHER, OTHER, "/unsubscribe 2")

        async def _cond2():
            return len(await store.chat_subscriptions(OTHER)) == 1

        await eventually(_cond2)
        telegram.user_says(OTHER, OTHER, "/export")
        await eventually(lambda: any(m.method == "sendDocument" for m in telegram.sent(OTHER)))
        (single,) = [m for m in telegram.sent(OTHER) if m.method == "sendDocument"]
        assert single.params["caption"] == "1 subscription"


async def test_opml_file_without_caption_gets_an_offer_with_a_button(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    for name in ("one", "two"):
        feeds.rss(f"/{name}.xml", title=f"Feed {name}").publish(f"{name} entry")
    opml = build_opml([Outline(feeds.url("/one.xml")), Outline(feeds.url("/two.xml"))], "mine")
    async with running_bot(load_test_config(tmp_path, telegram, interval="1h")) as app:
        store = services(app).store
        telegram.user_sends_document(USER, USER, "photo.jpg", b"\xff\xd8\xff not opml")
        (hint,) = await telegram.wait_sent(USER, 1)
        assert "OPML" in hint.plain and not hint.reply_markup

        telegram.user_sends_document(USER, USER, "feeds.opml", opml)
        offer = (await telegram.wait_sent(USER, 2))[-1]
        assert "2 feeds" in offer.plain
        ((button,),) = offer.reply_markup["inline_keyboard"]
        assert (await store.chat_subscriptions(USER)) == []

        telegram.user_presses_button(USER, USER, offer.message_id, button["callback_data"])

        async def _cond3():
            return len(await store.chat_subscriptions(USER)) == 2

        await eventually(_cond3, message="import")
        await eventually(
            lambda: any("lists 2 feeds: added 2" in (m.plain or "") for m in telegram.sent(USER))
        )
        assert telegram.unanswered_callbacks() == []
        assert len(telegram.callback_answers) == 1
        # The button is gone, so the file cannot be imported twice.
        assert not telegram.message(USER, offer.message_id).get("reply_markup")
        assert [e.method for e in telegram.edits] == ["editMessageReplyMarkup"]
        assert not [r for r in telegram.rejections if r[0] != "getUpdates"]


async def test_import_without_a_file_or_with_a_broken_one(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    async with running_bot(load_test_config(tmp_path, telegram, interval="1h")) as app:
        # A caption addressed to another bot is not for us: no answer at all.
        telegram.user_sends_document(USER, USER, "x.opml", b"<opml/>", caption="/import@otherbot")
        telegram.user_says(USER, USER, "/import")
        (answer,) = await telegram.wait_sent(USER, 1)
        assert "OPML file" in answer.plain
        telegram.user_sends_document(
            USER, USER, "x.opml", b"<opml><body><outline", caption="/import"
        )
        answer = (await telegram.wait_sent(USER, 2))[-1]
        assert "not valid OPML" in answer.plain
        telegram.user_says(USER, USER, "/export")
        answer = (await telegram.wait_sent(USER, 3))[-1]
        assert "Nothing to export" in answer.plain
        assert (await services(app).store.chat_subscriptions(USER)) == []
