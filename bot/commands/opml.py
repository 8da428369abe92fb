"""/export and /import: a chat's subscriptions as an OPML file, and back."""

from __future__ import annotations

import io

from telegram import Document, Update
from telegram.ext import ContextTypes

from bot.commands.access import split_channel_ref
from bot.commands.bulk import start_bulk
from bot.commands.feeds import command_target
from bot.commands.replies import reply
from bot.opml import MAX_OPML_BYTES, OPMLError, Outline, build_opml, parse_opml
from bot.services import get_services
from bot.subscriptions import esc

IMPORT_HELP = (
    "Send an OPML file with /import as its caption, or answer a message that "
    "holds one with /import."
)


async def export_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    services = get_services(context)
    ref, _ = split_channel_ref(context.args or [])
    target = await command_target(update, services, ref, change=False)
    if target is None:
        return
    store = services.store
    subs = await store.chat_subscriptions(target.chat.id)
    if not subs:
        await reply(update, "Nothing to export: no subscriptions yet.")
        return
    outlines = []
    for sub in subs:
        feed = await store.get_feed(sub.feed_url)
        outlines.append(Outline(sub.feed_url, feed.title if feed else ""))
    data = build_opml(outlines, f"feedbot subscriptions of {target.chat.title}")
    message = update.effective_message
    assert message is not None
    await message.reply_document(
        io.BytesIO(data),
        filename="feedbot-subscriptions.opml",
        caption=f"{len(outlines)} subscriptions",
        do_quote=False,
    )


def _document(update: Update) -> Document | None:
    message = update.effective_message
    if message is None:
        return None
    if message.document is not None:
        return message.document
    if message.reply_to_message is not None:
        return message.reply_to_message.document
    return None


async def import_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    services = get_services(context)
    message = update.effective_message
    assert message is not None
    command, *words = (message.text or message.caption or "/import").split()
    _, _, addressee = command.partition("@")
    if addressee and addressee.lower() != (context.bot.username or "").lower():
        return  # "/import@otherbot" in a caption: not for us
    ref, _ = split_channel_ref(words)
    document = _document(update)
    if document is None:
        await reply(update, IMPORT_HELP)
        return
    target = await command_target(update, services, ref, change=True)
    if target is None:
        return
    if document.file_size and document.file_size > MAX_OPML_BYTES:
        await reply(update, "The file is larger than 1 MB; that is not an OPML subscription list.")
        return
    data = bytes(await (await document.get_file()).download_as_bytearray())
    try:
        outlines = parse_opml(data)
    except OPMLError as exc:
        await reply(update, esc(str(exc)))
        return
    if not outlines:
        await reply(update, "The file lists no feeds (no outline has an xmlUrl).")
        return
    where = f" from {document.file_name or 'the file'}"
    if target.named:
        where += f" for {target.chat.title}"
    start_bulk(update, context, services, target.chat, [o.url for o in outlines], where=where)
