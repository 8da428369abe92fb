"""A self-hosted Bot API server is never handed media on a private address (issue 9)."""

from __future__ import annotations

from bot.config import load_config
from testkit.fake_telegram import FakeTelegram
from testkit.feed_server import FeedServer
from testkit.harness import running_bot, write_config

USER = 7101


async def test_private_media_goes_as_text_to_a_self_hosted_server(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    # The fake Bot API on 127.0.0.1 is "self-hosted"; feeds are allowed on
    # 127.0.0.1 by name only, so the address rule holds for everything else.
    path = write_config(tmp_path, telegram, interval="1h")
    text = path.read_text().replace(
        "allow_private_addresses = true",
        'allow_private_addresses = false\nallow_hosts = ["127.0.0.1"]',
    )
    path.write_text(text)
    config = load_config(str(path), env={})
    telegram.add_user(USER)
    feed = feeds.rss("/media.xml", title="Media")
    # In the entry's HTML: feedparser-rs blanks private enclosure URLs itself,
    # but a picture of the content reaches the renderer as it is.
    feed.publish(
        "Internal photo",
        html='<p>Look</p><img src="http://10.0.0.7/x.jpg" width="800" height="600">',
    )
    async with running_bot(config):
        telegram.user_says(USER, USER, f"/subscribe {feeds.url('/media.xml')}")
        sent = await telegram.wait_sent(USER, 2)  # the answer and the newest entry as a sample
        sample = sent[1]
        assert "Internal photo" in (sample.plain or "")
        assert sample.method == "sendMessage" and sample.media == []
        handed = [url for m in telegram.sent() for _, url in m.media]
        assert not any("10.0.0.7" in url for url in handed)
        assert not [r for r in telegram.rejections if r[0] != "getUpdates"]


async def test_public_media_still_goes_as_media(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    path = write_config(tmp_path, telegram, interval="1h")
    path.write_text(
        path.read_text().replace(
            "allow_private_addresses = true",
            'allow_private_addresses = false\nallow_hosts = ["127.0.0.1"]',
        )
    )
    telegram.add_user(USER)
    feeds.rss("/media.xml", title="Media").publish(
        "Public photo", enclosures=[("http://93.184.216.34/a.jpg", "image/jpeg", 50_000)]
    )
    async with running_bot(load_config(str(path), env={})):
        telegram.user_says(USER, USER, f"/subscribe {feeds.url('/media.xml')}")
        sample = (await telegram.wait_sent(USER, 2))[1]
        assert sample.method == "sendPhoto"
        assert sample.media == [("photo", "http://93.184.216.34/a.jpg")]
