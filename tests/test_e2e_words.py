"""What /start and /help say, in private chats and groups."""

from __future__ import annotations

from testkit.fake_telegram import FakeTelegram
from testkit.harness import load_test_config, running_bot

USER = 7001
GROUP = -7002


async def test_start_greets_with_the_first_step_and_help_lists_commands(
    tmp_path, telegram: FakeTelegram
):
    telegram.add_user(USER)
    telegram.add_group(GROUP, "Readers", admins={USER})
    async with running_bot(load_test_config(tmp_path, telegram, interval="1h")):
        telegram.user_says(USER, USER, "/start")
        (start,) = await telegram.wait_sent(USER, 1)
        telegram.user_says(USER, USER, "/help")
        help_private = (await telegram.wait_sent(USER, 2))[-1]
        assert start.plain != help_private.plain
        assert start.plain.startswith("Hello")
        assert "/subscribe https://" in start.plain  # the first step, with an example
        assert "/help" in start.plain
        for command in ("/list", "/unsubscribe", "/set", "/export"):
            assert command in help_private.plain
        assert "from this private chat" in help_private.plain

        telegram.user_says(GROUP, USER, "/help")
        (help_group,) = await telegram.wait_sent(GROUP, 1)
        assert "this private chat" not in help_group.plain
        assert "private chat (@feedbot_test_bot)" in help_group.plain
