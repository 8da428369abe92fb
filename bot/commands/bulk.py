"""Subscribing to many feeds at once (/subscribe with several URLs, /import).

The work runs in the background, not inside the update handler, so one
user's 300-feed import does not hold up anyone else's commands. The chat
gets one progress message, edited in place while the import runs, and then
one summary instead of a sample per feed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from telegram import Message, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.commands.background import run_in_background
from bot.commands.replies import NO_PREVIEW, reply
from bot.models import Chat
from bot.services import Services
from bot.subscriptions import BulkReport, Outcome, esc
from bot.texts import plural, say

log = logging.getLogger(__name__)

#: Progress is edited into its message at most this often (editMessageText
#: counts against the chat's limits like any message).
PROGRESS_EVERY = 3.0
#: Imports shorter than this get no progress message at all.
PROGRESS_AFTER = 2.0
#: A summary of up to this many feeds names each one; beyond, only the failures.
LIST_ALL_UP_TO = 10


def quota_for(services: Services, user_id: int | None) -> int | None:
    """The subscription limit for a chat managed by ``user_id`` (None: none)."""
    limit = services.config.limits.subscriptions_per_chat
    if not limit or (user_id is not None and user_id in services.config.telegram.admins):
        return None
    return limit


def summary(report: BulkReport, code: str = "subscribe.summary", where: str = "") -> list[str]:
    """One answer for many feeds: the counts (in the words of ``code``), then
    what failed and why; a handful of feeds are named one by one."""
    total = len(report.answers)
    # Added always; already there and failed only when some were.
    parts = [say("subscribe.added", count=report.count(Outcome.ADDED))]
    for outcome, code_of_part in (
        (Outcome.ALREADY, "subscribe.already"),
        (Outcome.FAILED, "subscribe.failed"),
    ):
        if report.count(outcome):
            parts.append(say(code_of_part, count=report.count(outcome)))
    head = say(
        code,
        where=f"{where}: " if where else "",
        total=total,
        feeds=plural(total, "feed", "feeds"),
        parts=", ".join(parts),
    )
    lines = [head]
    if total <= LIST_ALL_UP_TO:
        # A handful: name each one (the counts alone would hide which was which).
        lines.extend(a.text for a in report.answers if a.kind is not Outcome.OVER_QUOTA)
    else:
        lines.extend(answer.text for answer in report.of(Outcome.FAILED))
    left_out = report.count(Outcome.OVER_QUOTA)
    if left_out:
        quota = report.quota or 0
        feeds = plural(left_out, "feed", "feeds")
        lines.append(say("subscribe.left_out", count=left_out, feeds=feeds, quota=quota))
    return lines


def start_bulk(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    services: Services,
    chat: Chat,
    urls: Sequence[str],
    *,
    where: str = "",
    code: str = "subscribe.summary",
) -> None:
    """Subscribe ``chat`` to ``urls`` in the background and report to the
    chat the command came from, in the words of ``code``."""
    message = update.effective_message
    user = update.effective_user
    quota = quota_for(services, user.id if user else None)
    run_in_background(
        context,
        _run(update, services, chat, list(urls), quota, where, code, message),
        update=update,
        name=f"bulk subscribe {chat.id}",
    )


async def _run(
    update: Update,
    services: Services,
    chat: Chat,
    urls: list[str],
    quota: int | None,
    where: str,
    code: str,
    message: Message | None,
) -> None:
    started = time.monotonic()
    shown: Message | None = None
    last = 0.0

    async def progress(done: int, total: int) -> None:
        nonlocal shown, last
        now = time.monotonic()
        if message is None or done == total or now - started < PROGRESS_AFTER:
            return
        if now - last < PROGRESS_EVERY:
            return
        last = now
        text = say("subscribe.progress", done=done, total=total)
        try:
            if shown is None:
                shown = await message.reply_text(text, do_quote=False)
            else:
                await shown.edit_text(text)
        except TelegramError as exc:  # progress is a courtesy: never fail the import
            log.debug("progress message: %s", exc)

    report = await services.subscriptions.subscribe_many(chat, urls, quota=quota, progress=progress)
    lines = summary(report, code, esc(where))
    if shown is not None and len(lines) == 1:
        try:
            await shown.edit_text(
                lines[0], parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW
            )
            return
        except TelegramError as exc:
            log.debug("final progress edit: %s", exc)
    await reply(update, *lines)
