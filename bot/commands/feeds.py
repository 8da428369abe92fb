"""/subscribe, /unsubscribe, /list and /set: argument parsing and rights, then
bot.subscriptions does the work."""

from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from bot.commands.access import Denied, Target, may_use_bot, resolve_target, split_channel_ref
from bot.commands.basic import PRIVATE_ONLY
from bot.commands.bulk import quota_for, start_bulk
from bot.commands.replies import reply
from bot.services import Services, get_services
from bot.subscriptions import esc

USAGE_SUBSCRIBE = "Usage: /subscribe URL [URL…], or /subscribe @channel URL from a private chat."
USAGE_UNSUBSCRIBE = "Usage: /unsubscribe URL or N (the number /list shows)."
USAGE_SET = "Usage: /set N to see a subscription's settings, /set N key value to change one."


async def command_target(
    update: Update, services: Services, ref: str | None, *, change: bool
) -> Target | None:
    """The chat the command acts on, or None after telling the user why not."""
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
    try:
        return await resolve_target(
            message.get_bot(), services.config.telegram, message, ref, change=change
        )
    except Denied as exc:
        await reply(update, esc(str(exc)))
        return None


async def subscribe(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    services = get_services(context)
    ref, urls = split_channel_ref(context.args or [])
    if not urls:
        await reply(update, USAGE_SUBSCRIBE)
        return
    target = await command_target(update, services, ref, change=True)
    if target is None:
        return
    unique = list(dict.fromkeys(urls))
    where = f" for {target.chat.title}" if target.named else ""
    if len(unique) > 1:
        # Many feeds: in the background, one summary, no samples.
        start_bulk(update, context, services, target.chat, unique, where=where)
        return
    user = update.effective_user
    answer = await services.subscriptions.subscribe(
        target.chat, unique[0], quota=quota_for(services, user.id if user else None)
    )
    lines = [answer.text]
    if where:
        lines.insert(0, f"Subscriptions{esc(where)}:")
    await reply(update, *lines)
    services.deliverer.wake()  # the sample, after the answer


async def unsubscribe(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    services = get_services(context)
    ref, args = split_channel_ref(context.args or [])
    if not args:
        await reply(update, USAGE_UNSUBSCRIBE)
        return
    target = await command_target(update, services, ref, change=True)
    if target is None:
        return
    answers = await services.subscriptions.unsubscribe(target.chat.id, args)
    await reply(update, *(answer.text for answer in answers))


async def list_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    services = get_services(context)
    ref, _ = split_channel_ref(context.args or [])
    target = await command_target(update, services, ref, change=False)
    if target is None:
        return
    name = target.chat.title if target.named or target.chat.kind != "private" else "this chat"
    await reply(update, *(await services.subscriptions.listing(target.chat.id, name)))


async def set_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    services = get_services(context)
    ref, args = split_channel_ref(context.args or [])
    if len(args) not in (1, 3):
        await reply(update, USAGE_SET)
        return
    target = await command_target(update, services, ref, change=len(args) == 3)
    if target is None:
        return
    if len(args) == 1:
        answer = await services.subscriptions.settings(target.chat.id, args[0])
    else:
        answer = await services.subscriptions.set_style(target.chat.id, *args)
    await reply(update, answer.text)
