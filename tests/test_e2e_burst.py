"""Issue 8, "under a burst, replies are lost": 60 private chats and 3 groups
send /subscribe within about a second, with Telegram's flood limits on in the
fake. Every chat gets its answer, then its sample entry exactly once, with at
most a handful of 429s, and no handler dies of one.
"""

from __future__ import annotations

import asyncio
import logging
import time

from testkit.fake_telegram import FakeTelegram
from testkit.feed_server import FeedServer
from testkit.harness import eventually, load_test_config, running_bot

USERS = range(6001, 6061)
GROUPS = (-6001, -6002, -6003)
ADMIN = 6999
#: "A handful": the limiter keeps to Telegram's limits, so a 429 is a rare
#: disagreement about a window's edge, not the rule.
MAX_429 = 5


def feed_of(chat_id: int) -> int:
    return chat_id if chat_id > 0 else 7000 - chat_id


def count(telegram: FakeTelegram, chat_id: int, text: str) -> int:
    return sum(1 for m in telegram.sent(chat_id) if m.plain and text in m.plain)


async def test_a_burst_of_subscribes_is_answered_and_delivered_once(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer, caplog
):
    caplog.set_level(logging.ERROR)
    telegram.limits = True
    for user in USERS:
        telegram.add_user(user)
    telegram.add_user(ADMIN)
    for group in GROUPS:
        telegram.add_group(group, f"Group {group}", admins={ADMIN})
    chats = [(user, user) for user in USERS] + [(group, ADMIN) for group in GROUPS]
    # A feed of its own for each chat: a new feed's newest entry comes as a
    # sample (a feed someone already follows gives none).
    for chat_id, _ in chats:
        feed = feeds.rss(f"/burst{feed_of(chat_id)}.xml", title=f"Burst Feed {feed_of(chat_id)}")
        feed.publish("Older", link=f"https://burst.example/{feed_of(chat_id)}/old")
        feed.publish(
            f"Sample of feed {feed_of(chat_id)}",
            link=f"https://burst.example/{feed_of(chat_id)}/sample",
        )

    async with running_bot(load_test_config(tmp_path, telegram, interval="1h")):
        started = time.monotonic()
        for index, (chat_id, user) in enumerate(chats):
            telegram.user_says(
                chat_id, user, f"/subscribe {feeds.url(f'/burst{feed_of(chat_id)}.xml')}"
            )
            if index % 8 == 7:
                await asyncio.sleep(0.1)  # 63 commands in about a second
        await eventually(
            lambda: all(count(telegram, c, "Subscribed to") for c, _ in chats),
            timeout=60,
            message="every chat's answer",
        )
        answered = time.monotonic() - started
        await eventually(
            lambda: all(count(telegram, c, f"Sample of feed {feed_of(c)}") for c, _ in chats),
            timeout=60,
            message="every chat's sample",
        )
        delivered = time.monotonic() - started
        await asyncio.sleep(2.0)  # anything sent twice would be in by now

    for chat_id, _ in chats:
        assert count(telegram, chat_id, "Subscribed to") == 1, chat_id
        assert count(telegram, chat_id, f"Sample of feed {feed_of(chat_id)}") == 1, chat_id
        assert count(telegram, chat_id, "Older") == 0, "only the newest entry as a sample"
    assert telegram.count_429 <= MAX_429, telegram.rejections[:10]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors[:5]]
    print(
        f"\nburst of {len(chats)} /subscribe: last answer after {answered:.1f}s, "
        f"last sample after {delivered:.1f}s, 429s: {telegram.count_429}"
    )
