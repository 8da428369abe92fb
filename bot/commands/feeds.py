"""/subscribe, /unsubscribe, /list and /set: argument parsing and rights, then
bot.subscriptions does the work."""

from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from bot.commands import choose
from bot.commands.access import (
    ChatArgs,
    Denied,
    Target,
    may_use_bot,
    resolve_target,
    split_chat_ref,
)
from bot.commands.background import run_in_background
from bot.commands.basic import PRIVATE_ONLY
from bot.commands.bulk import quota_for, start_bulk
from bot.commands.replies import reply
from bot.services import Services, get_services
from bot.subscriptions import Outcome, esc
from bot.texts import say

USAGE_SUBSCRIBE = "Usage: /subscribe URL [URL…], or /subscribe @channel URL from a private chat."
USAGE_UNSUBSCRIBE = "Usage: /unsubscribe URL or N (the number /list shows)."
USAGE_SET = "Usage: /set N to see a subscription's settings, /set N key value to change one."


async def command_target(
    update: Update, services: Services, args: ChatArgs, *, change: bool
) -> Target | None:
    """The chat the command acts on, or None after telling the user why not."""
    ref = args.ref
    message = update.effective_message
    assert message is not None
    user = message.from_user
    if user is not None or ref is not None:
        allowed = may_use_bot(services.config.telegram, user.id if user else None)
    else:
        # A channel post has no sender to check: allowed in a public bot only.
        # (An anonymous group admin writes as GroupAnonymousBot, a user.)
        allowed = services.config.telegram.public
    if not allowed:
        await reply(update, PRIVATE_ONLY)
        return None
    if args.unclear is not None:
        await reply(update, say("ref.neither", word=esc(args.unclear)))
        return None
    try:
        return await resolve_target(
            message.get_bot(), services.config.telegram, message, ref, change=change
        )
    except Denied as exc:
        await reply(update, esc(str(exc)))
        return None


async def subscribe(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    services = get_services(context)
    args = split_chat_ref(context.args or [])
    urls = args.rest
    if not urls:
        await reply(update, USAGE_SUBSCRIBE)
        return
    target = await command_target(update, services, args, change=True)
    if target is None:
        return
    unique = list(dict.fromkeys(urls))
    if len(unique) > 1:
        # Many feeds: in the background, one summary, no samples.
        where = target.chat.title if target.named else ""
        start_bulk(update, context, services, target.chat, unique, where=where)
        return
    # Fetching a feed can take up to the fetch deadline: in the background,
    # so that a stalling server never holds an update handler (and with it
    # everyone else's commands).
    run_in_background(
        context, _subscribe_one(update, context, target, unique[0]), update=update, name="subscribe"
    )


async def _subscribe_one(
    update: Update, context: ContextTypes.DEFAULT_TYPE, target: Target, url: str
) -> None:
    services = get_services(context)
    user = update.effective_user
    answer = await services.subscriptions.subscribe(
        target.chat, url, quota=quota_for(services, user.id if user else None)
    )
    if answer.kind is Outcome.CHOOSE:
        await choose.offer(update, context, target.chat, answer)
        return
    lines = [answer.text]
    if target.named:
        lines.insert(0, f"Subscriptions for {esc(target.chat.title)}:")
    await reply(update, *lines)
    services.deliverer.wake()  # the sample, after the answer


async def unsubscribe(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    services = get_services(context)
    args = split_chat_ref(context.args or [])
    if not args.rest:
        await reply(update, USAGE_UNSUBSCRIBE)
        return
    target = await command_target(update, services, args, change=True)
    if target is None:
        return
    answers = await services.subscriptions.unsubscribe(target.chat.id, args.rest)
    await reply(update, *(answer.text for answer in answers))


async def list_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    services = get_services(context)
    args = split_chat_ref(context.args or [], alone=True)
    if args.rest:  # /list takes a chat at most: anything else is no chat we know
        await reply(update, say("usage.list"))
        return
    target = await command_target(update, services, args, change=False)
    if target is None:
        return
    name = target.chat.title if target.named or target.chat.kind != "private" else "this chat"
    await reply(update, *(await services.subscriptions.listing(target.chat.id, name)))


async def set_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    services = get_services(context)
    chat_args = split_chat_ref(context.args or [])
    args = chat_args.rest
    if len(args) not in (1, 3):
        await reply(update, USAGE_SET)
        return
    target = await command_target(update, services, chat_args, change=len(args) == 3)
    if target is None:
        return
    if len(args) == 1:
        answer = await services.subscriptions.settings(target.chat.id, args[0])
    else:
        answer = await services.subscriptions.set_style(target.chat.id, *args)
    await reply(update, answer.text)
