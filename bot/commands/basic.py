"""/start, /help, and the bot joining or leaving a chat."""

from __future__ import annotations

import logging

from telegram import ChatMember, Update
from telegram.constants import ChatType, ParseMode
from telegram.ext import ContextTypes

from bot.commands.access import chat_from_telegram, may_post, may_use_bot
from bot.commands.replies import NO_PREVIEW, reply
from bot.services import get_services
from bot.subscriptions import esc
from bot.texts import say

log = logging.getLogger(__name__)

GROUP_INTRO = """Hello! I post new entries of RSS, Atom and JSON feeds here.
Administrators: /subscribe URL to follow a feed, /list to see what this group
follows, /help for more."""

PRIVATE_ONLY = "This bot is private: ask its operator to let you use it."


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    services = get_services(context)
    user = update.effective_user
    if not may_use_bot(services.config.telegram, user.id if user else None):
        await reply(update, PRIVATE_ONLY)
        return
    chat = update.effective_chat
    assert chat is not None
    resumed = await services.store.resume_chat(chat_from_telegram(chat))
    if resumed:
        await reply(update, say("start.welcome_back"), "", help_text(chat.type, context))
        return
    await reply(update, say("start.greeting"))


def help_text(chat_type: str, context: ContextTypes.DEFAULT_TYPE) -> str:
    """/help: the commands. Channels are managed from a private chat with the
    bot, so a group is told to go there rather than "this private chat"."""
    if chat_type == ChatType.PRIVATE:
        channel_help = say("help.channel_private")
    else:
        channel_help = say("help.channel_group", bot=esc(context.bot.username or "me"))
    return say("help.commands", channel_help=channel_help)


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    chat = update.effective_chat
    await reply(update, help_text(chat.type if chat else ChatType.PRIVATE, context))


async def membership(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The bot was added to or removed from a chat (or a user blocked it)."""
    change = update.my_chat_member
    if change is None:
        return
    services = get_services(context)
    old = change.old_chat_member.status
    new = change.new_chat_member.status
    chat = chat_from_telegram(change.chat)
    present = (ChatMember.MEMBER, ChatMember.ADMINISTRATOR, ChatMember.OWNER)
    if new not in present or not may_post(change.chat, change.new_chat_member):
        await services.store.pause_chat(chat.id)
        log.info("chat %s (%s): I may not post there; subscriptions paused", chat.id, chat.title)
        return
    resumed = await services.store.resume_chat(chat)
    if resumed:
        log.info("chat %s (%s) is back: subscriptions resumed", chat.id, chat.title)
    if old not in present and change.chat.type in (ChatType.GROUP, ChatType.SUPERGROUP):
        text = GROUP_INTRO
        if resumed:
            text += "\nThis group's earlier subscriptions are active again."
        await context.bot.send_message(
            chat.id, text, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW
        )


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """In a private chat, a command we don't know gets a pointer to /help
    (in groups it may be meant for another bot: stay quiet)."""
    await reply(update, "I don't know that command. /help lists what I can do.")


async def plain_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A private message that isn't a command: a bare link most likely means
    "subscribe me", so say how."""
    message = update.effective_message
    text = (message.text or "").strip() if message else ""
    if text and " " not in text and ("." in text or "://" in text):
        await reply(update, f"To follow this feed, send: /subscribe {esc(text)}")
    else:
        await reply(update, "Send /subscribe URL to follow a feed, or /help.")


async def migrated(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A group became a supergroup: its subscriptions move to the new id now,
    so /list there shows them at once (a send to the old id would also move
    them, but only when the next entry arrives)."""
    message = update.effective_message
    if message is None or message.migrate_to_chat_id is None:
        return
    services = get_services(context)
    old, new = message.chat_id, message.migrate_to_chat_id
    if await services.store.chat_subscriptions(old) or await services.store.get_chat(old):
        await services.store.migrate_chat(old, new)
        services.deliverer.wake()
        log.info("chat %s became supergroup %s; subscriptions moved", old, new)
