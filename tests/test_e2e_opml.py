"""/export sends the chat's subscriptions as OPML; /import subscribes to an OPML file's feeds."""

from __future__ import annotations

from bot.opml import parse_opml
from testkit.fake_telegram import FakeTelegram
from testkit.feed_server import FeedServer
from testkit.harness import eventually, load_test_config, running_bot, services

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

        # The other user imports it, with one bad outline added, "/import" as the caption.
        mixed = upload.data.replace(b"</body>", b"<outline xmlUrl='not a url'/></body>")
        telegram.user_sends_document(OTHER, OTHER, "mixed.opml", mixed, caption="/import")
        await eventually(lambda: any("Imported" in (m.plain or "") for m in telegram.sent(OTHER)))
        answer = next(
            m.plain for m in telegram.sent(OTHER) if "Imported 3 feeds" in (m.plain or "")
        )
        assert "Subscribed to Feed one" in answer and "Subscribed to Feed two" in answer
        assert "not a url" in answer  # the bad outline is named, the rest went in
        imported = {s.feed_url for s in (await store.chat_subscriptions(OTHER))}
        assert imported == {feeds.url("/one.xml"), feeds.url("/two.xml")}


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
