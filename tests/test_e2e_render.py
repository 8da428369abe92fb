"""What entries look like in a chat, end to end: the real bot polls the local
feed server and sends through the strict fake Telegram, as a user would see it.
Media (groups, photos, audio, media Telegram refuses) and /set styles."""

from __future__ import annotations

from bot.models import Style
from testkit.fake_telegram import FakeTelegram, Sent
from testkit.feed_server import FeedServer
from testkit.harness import eventually, load_test_config, running_bot, services

USER = 7001

REFUSALS = (
    "Bad Request: wrong file identifier/HTTP URL specified",
    "Bad Request: failed to get HTTP URL content",
    "Bad Request: IMAGE_PROCESS_FAILED",
)


def messages_of(telegram: FakeTelegram, title: str) -> list[Sent]:
    """The messages an entry arrived as: those showing its title, the other
    items of their media groups, and a bare media message sent just before
    the text."""
    sent = telegram.sent(USER)
    out: list[Sent] = []
    for index, message in enumerate(sent):
        if message.plain is None or title not in message.plain:
            continue
        if message.media_group_id:
            out += [m for m in sent if m.media_group_id == message.media_group_id]
            continue
        before = sent[index - 1] if index else None
        # A lone photo without a caption, then the text: one entry.
        if before is not None and before.text is None and before.media_group_id is None and not out:
            out.append(before)
        out.append(message)
    return out


async def arrived(telegram: FakeTelegram, title: str, count: int = 1) -> list[Sent]:
    await eventually(
        lambda: len(messages_of(telegram, title)) >= count, timeout=15, message=repr(title)
    )
    return messages_of(telegram, title)


async def say(telegram: FakeTelegram, text: str) -> Sent:
    """Send a command and return the bot's answer."""
    before = len(telegram.sent(USER))
    telegram.user_says(USER, USER, text)
    return (await telegram.wait_sent(USER, before + 1))[before]


async def subscribe(telegram: FakeTelegram, url: str) -> None:
    telegram.user_says(USER, USER, f"/subscribe {url}")
    await eventually(lambda: any("Subscribed to" in (m.plain or "") for m in telegram.sent(USER)))


def jpg(name: str) -> tuple[str, str, int]:
    return (f"https://img.example/{name}.jpg", "image/jpeg", 120_000)


async def test_media_arrive_whole_or_as_text(tmp_path, telegram: FakeTelegram, feeds: FeedServer):
    telegram.add_user(USER)
    feed = feeds.rss("/media.xml", title="Media Feed")
    feed.publish("Zero")
    for number, description in enumerate(REFUSALS, 1):
        telegram.fail_media_url(f"refused-{number}", description)
    async with running_bot(load_test_config(tmp_path, telegram, interval="1s")) as app:
        await subscribe(telegram, feeds.url("/media.xml"))
        await arrived(telegram, "Zero")

        feed.publish(
            "Three pictures",
            link="https://news.example/gallery",
            html="<p>The launch, in pictures.</p>",
            enclosures=[jpg("launch-1"), jpg("launch-2"), jpg("launch-3")],
        )
        feed.publish(
            "One picture",
            link="https://news.example/photo",
            html="<p>A photo and a line.</p>",
            enclosures=[jpg("photo")],
        )
        feed.publish(
            "Episode 12",
            link="https://pod.example/12",
            html="<p>We talk about feeds.</p>",
            enclosures=[("https://pod.example/ep12.mp3", "audio/mpeg", 9_000_000)],
        )
        for number in range(1, len(REFUSALS) + 1):
            feed.publish(
                f"Refused picture {number}",
                link=f"https://news.example/refused/{number}",
                html="<p>Telegram cannot take this picture.</p>",
                enclosures=[jpg(f"refused-{number}")],
            )
        feed.publish(
            "Group with a refused picture",
            link="https://news.example/refused-group",
            html="<p>One of three cannot be fetched.</p>",
            enclosures=[jpg("fine-1"), jpg("refused-2"), jpg("fine-3")],
        )

        # Several images: one media group, whole, the caption on the first item.
        group = await arrived(telegram, "Three pictures", 3)
        assert [m.method for m in group] == ["sendMediaGroup"] * 3
        assert len({m.media_group_id for m in group}) == 1
        assert [m.media for m in group] == [
            [("photo", f"https://img.example/launch-{n}.jpg")] for n in (1, 2, 3)
        ]
        assert "The launch, in pictures." in group[0].plain
        assert 'href="https://news.example/gallery"' in group[0].text
        assert group[1].text is None and group[2].text is None

        # One image: a photo with the text as its caption.
        (photo,) = await arrived(telegram, "One picture")
        assert photo.method == "sendPhoto"
        assert photo.media == [("photo", "https://img.example/photo.jpg")]
        assert "A photo and a line." in photo.plain
        assert 'href="https://news.example/photo"' in photo.text

        # A podcast: its audio, with the notes as the caption.
        (episode,) = await arrived(telegram, "Episode 12")
        assert episode.method == "sendAudio"
        assert episode.media == [("audio", "https://pod.example/ep12.mp3")]
        assert "We talk about feeds." in episode.plain

        # Media Telegram refuses: the entry still arrives, as text with its link.
        for number, description in enumerate(REFUSALS, 1):
            (text,) = await arrived(telegram, f"Refused picture {number}")
            assert text.method == "sendMessage", description
            assert f'href="https://news.example/refused/{number}"' in text.text
            assert "Telegram cannot take this picture." in text.plain
            assert ("sendPhoto", USER, 400, description) in telegram.rejections
        (text,) = await arrived(telegram, "Group with a refused picture")
        assert text.method == "sendMessage"
        assert 'href="https://news.example/refused-group"' in text.text
        assert ("sendMediaGroup", USER, 400, REFUSALS[1]) in telegram.rejections

        async def _cond1():
            return not (await services(app).store.pending())

        await eventually(_cond1, message="outbox empty")
        assert telegram.internal_errors == []


async def test_set_changes_what_the_next_entry_looks_like(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    feed = feeds.rss("/style.xml", title="Garden Notes")
    feed.publish("Zero")
    numbers = iter(range(1, 100))

    async def next_entry(**extra) -> list[Sent]:
        n = next(numbers)
        title = f"Entry {n} of the garden"
        feed.publish(
            title,
            link=f"https://garden.example/{n}",
            html=extra.pop("html", f"<p>Body of entry {n}: tomatoes are ripe.</p>"),
            author="ann@example.com (Ann Gardener)",
            categories=["Gardening"],
            enclosures=[jpg(f"garden-{n}")],
        )
        return await arrived(telegram, title, extra.pop("count", 1))

    async with running_bot(load_test_config(tmp_path, telegram, interval="1s")) as app:
        store = services(app).store
        await subscribe(telegram, feeds.url("/style.xml"))
        await arrived(telegram, "Zero")

        shown = await say(telegram, "/set 1")
        assert "Settings of Garden Notes" in shown.plain
        for line in ("summary: short", "media: on", "preview: off", "silent: off"):
            assert line in shown.plain
        for line in ("author: on", "feed: on", "tags: on"):
            assert line in shown.plain

        # The defaults: a photo, captioned with the summary and the footer.
        (first,) = await next_entry()
        assert first.method == "sendPhoto" and not first.disable_notification
        assert "tomatoes are ripe" in first.plain
        assert first.plain.endswith("Garden Notes · Ann Gardener\n#Gardening")

        async def setting(command: str) -> Sent:
            answer = await say(telegram, command)
            key, value = command.split()[2:]
            assert f"{key} is now {value}" in answer.plain, answer.plain
            return answer

        await setting("/set 1 summary none")
        (msg,) = await next_entry()
        assert msg.method == "sendPhoto"
        assert "tomatoes" not in msg.plain and msg.plain.startswith("Entry 2 of the garden")

        await setting("/set 1 media off")
        (msg,) = await next_entry()
        assert msg.method == "sendMessage" and msg.media == []
        assert msg.link_preview_disabled

        await setting("/set 1 preview on")
        (msg,) = await next_entry()
        assert msg.method == "sendMessage" and not msg.link_preview_disabled

        await setting("/set 1 silent on")
        (msg,) = await next_entry()
        assert msg.disable_notification

        await setting("/set 1 author off")
        (msg,) = await next_entry()
        assert "Ann Gardener" not in msg.plain
        assert msg.plain.endswith("Garden Notes\n#Gardening")

        await setting("/set 1 feed off")
        (msg,) = await next_entry()
        assert "Garden Notes" not in msg.plain and msg.plain.endswith("#Gardening")

        await setting("/set 1 tags off")
        (msg,) = await next_entry()
        assert "#Gardening" not in msg.plain
        assert msg.plain == "Entry 8 of the garden"

        # A long entry with its whole text: too long for a caption, so the
        # photo first, then the text.
        await setting("/set 1 summary full")
        await setting("/set 1 media on")
        long_html = "<p>" + "The beans climb the fence, row after row. " * 60 + "</p>"
        photo, text = await next_entry(html=long_html, count=2)
        assert photo.method == "sendPhoto" and photo.text is None
        assert photo.media == [("photo", "https://img.example/garden-9.jpg")]
        assert text.method == "sendMessage" and len(text.plain) > 1024
        assert text.plain.count("The beans climb the fence") == 60
        assert photo.disable_notification and text.disable_notification

        shown = await say(telegram, "/set 1")
        for line in ("summary: full", "media: on", "preview: on", "silent: on"):
            assert line in shown.plain
        for line in ("author: off", "feed: off", "tags: off"):
            assert line in shown.plain

        # Bad /set: one clear answer each, nothing changed.
        style = (await store.chat_subscriptions(USER))[0].style
        assert style == Style(
            summary="full",
            link_preview=True,
            silent=True,
            show_author=False,
            show_feed=False,
            show_tags=False,
        )
        for command, expected in [
            ("/set 1 colour blue", "Unknown setting 'colour'"),
            ("/set 1 summary long", "summary takes one of: none, short, full"),
            ("/set 1 silent maybe", "silent takes on or off"),
            ("/set 9 media off", "No subscription 9"),
            ("/set 9", "No subscription 9"),
            ("/set 1 media", "Usage: /set N"),
            ("/set", "Usage: /set N"),
        ]:
            answer = await say(telegram, command)
            assert expected in answer.plain, (command, answer.plain)
            assert (await store.chat_subscriptions(USER))[0].style == style, command
        assert len(await store.chat_subscriptions(USER)) == 1
        assert telegram.internal_errors == []
