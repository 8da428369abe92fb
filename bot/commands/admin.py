"""Operator commands, for ``telegram.admins`` only: /stats and /broadcast.

A broadcast goes through the outbox, as one notice per active private chat
queued in one transaction (``Store.notify_private_chats``): it is paced like
every other send (the one limiter, as bulk) and a restart loses none of it.
It starts only when the operator presses the confirmation button; the
confirmation quotes the /broadcast message, so the button finds the text
again through it (even after a restart) and callback_data stays short.
Progress is edited into that confirmation message until the last notice of
the broadcast has left the outbox.
"""

from __future__ import annotations

import asyncio
import logging
import time

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

from bot.commands.replies import NO_PREVIEW, reply
from bot.metrics import metrics
from bot.models import ChatKind, Notice
from bot.services import Services, get_services
from bot.store.base import StoreStats
from bot.subscriptions import esc
from bot.texts import say

log = logging.getLogger(__name__)

BROADCAST = "admin.broadcast"
#: callback_data of the confirmation's buttons.
SEND_BUTTON = "admin:broadcast"
CANCEL_BUTTON = "admin:broadcast:cancel"
BUTTON_PATTERN = rf"^({SEND_BUTTON}|{CANCEL_BUTTON})$"
#: How often progress is edited into the message (each edit is one API call).
PROGRESS_EVERY = 3.0


def is_operator(services: Services, user_id: int | None) -> bool:
    return user_id is not None and user_id in services.config.telegram.admins


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def stats_text(stats: StoreStats, now: float, polls: int, sent: int) -> str:
    """/stats' answer: the store's counts and this process's last hour."""
    kinds = [
        say("admin.stats_kind", kind=c.kind, active=c.active, paused=c.paused)
        for c in stats.by_kind
    ]
    oldest = stats.outbox.oldest
    return say(
        "admin.stats",
        chats="; ".join(kinds) or say("admin.stats_no_chats"),
        feeds=stats.feeds,
        failing=stats.failing_feeds,
        subscriptions=stats.subscriptions,
        depth=stats.outbox.depth,
        oldest="" if oldest is None else say("admin.stats_oldest", age=_age(now - oldest)),
        polls=polls,
        sent=sent,
    )


async def stats_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    services = get_services(context)
    user = update.effective_user
    if not is_operator(services, user.id if user else None):
        await reply(update, say("admin.refused"))
        return
    stats = await services.store.stats()
    polls, sent = metrics.recent_polls.last_hour(), metrics.recent_deliveries.last_hour()
    await reply(update, stats_text(stats, time.time(), polls, sent))


def broadcast_text(message: Message | None) -> str:
    """What follows "/broadcast" in the message, its lines kept."""
    words = (message.text or "") if message is not None else ""
    parts = words.split(maxsplit=1)
    return parts[1].strip() if len(parts) == 2 else ""


async def broadcast_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    services = get_services(context)
    user = update.effective_user
    if not is_operator(services, user.id if user else None):
        await reply(update, say("admin.refused"))
        return
    message = update.effective_message
    text = broadcast_text(message)
    if message is None or not text:
        await reply(update, say("admin.broadcast_usage"))
        return
    stats = await services.store.stats()
    count = sum(c.active for c in stats.by_kind if c.kind == ChatKind.PRIVATE)
    buttons = [
        InlineKeyboardButton(say("admin.broadcast_button", count=count), callback_data=SEND_BUTTON),
        InlineKeyboardButton(say("admin.broadcast_cancel_button"), callback_data=CANCEL_BUTTON),
    ]
    await message.reply_text(
        say("admin.broadcast_confirm", count=count, text=esc(text)),
        parse_mode=ParseMode.HTML,
        link_preview_options=NO_PREVIEW,
        reply_markup=InlineKeyboardMarkup([buttons]),
        do_quote=True,  # the quoted command is where the button finds the text
    )


async def broadcast_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Send or Cancel pressed: answer the query at once, take the buttons
    away (a second press finds none), then queue the broadcast."""
    query = update.callback_query
    if query is None:
        return
    services = get_services(context)
    if not is_operator(services, query.from_user.id):
        await query.answer(say("admin.refused"), show_alert=True)
        return
    offer = query.message
    quoted = offer.reply_to_message if isinstance(offer, Message) else None
    text = broadcast_text(quoted)
    if not isinstance(offer, Message) or not text:
        await query.answer(say("admin.broadcast_gone"), show_alert=True)
        return
    cancel = query.data == CANCEL_BUTTON
    await query.answer(say("admin.broadcast_cancelled" if cancel else "admin.broadcast_started"))
    try:
        await offer.edit_reply_markup(reply_markup=None)
    except BadRequest as exc:
        if "not modified" in str(exc).lower():
            return  # pressed twice: the first press did it
        raise
    if cancel:
        await offer.edit_text(say("admin.broadcast_cancelled"))
        return
    total = await services.store.notify_private_chats(
        Notice(BROADCAST, {"text": text}), time.time()
    )
    services.deliverer.wake()
    log.info("broadcast by %s queued for %d private chats", query.from_user.id, total)
    context.application.create_task(
        _progress(services, offer, total), name=f"broadcast progress {offer.message_id}"
    )


async def _progress(services: Services, message: Message, total: int) -> None:
    """Edit "n of total done" into the message until no broadcast notice is
    queued. (Two broadcasts at once share the count: both end together.)"""
    shown = ""
    while True:
        left = await services.store.pending_notices(BROADCAST)
        done = max(0, total - left)
        text = (
            say("admin.broadcast_done", total=total)
            if left == 0
            else say("admin.broadcast_progress", done=done, total=total)
        )
        if text != shown:
            try:
                await message.edit_text(text, parse_mode=ParseMode.HTML)
                shown = text
            except TelegramError as exc:  # progress is a courtesy; the broadcast goes on
                log.warning("broadcast progress not shown: %s", exc)
        if left == 0:
            return
        await asyncio.sleep(PROGRESS_EVERY)
