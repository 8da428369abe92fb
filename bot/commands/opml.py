"""/export and /import: a chat's subscriptions as an OPML file, and back.

An OPML file sent to a private chat without the /import caption gets an offer
to import it, as an inline button; the offer quotes the file, so pressing the
button finds it again (even after a restart) through the quoted message.
"""

from __future__ import annotations

import io

from telegram import Document, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from bot.commands.access import chat_from_telegram, may_use_bot, split_chat_ref
from bot.commands.basic import PRIVATE_ONLY
from bot.commands.bulk import start_bulk
from bot.commands.feeds import command_target
from bot.commands.replies import NO_PREVIEW, reply
from bot.opml import MAX_OPML_BYTES, OPMLError, Outline, build_opml, parse_opml
from bot.services import get_services
from bot.subscriptions import esc
from bot.texts import plural, say

IMPORT_HELP = (
    "Send an OPML file with /import as its caption, or answer a message that "
    "holds one with /import."
)
#: callback_data of the offer's button (Telegram allows 1–64 bytes).
IMPORT_BUTTON = "opml:import"
IMPORT_BUTTON_PATTERN = rf"^{IMPORT_BUTTON}$"


def export_caption(count: int) -> str:
    return say("export.caption" if count == 1 else "export.caption_plural", count=count)


async def export_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    services = get_services(context)
    args = split_chat_ref(context.args or [], alone=True)
    target = await command_target(update, services, args, change=False)
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
        caption=export_caption(len(outlines)),
        do_quote=False,
    )


def _document(message: Message | None) -> Document | None:
    if message is None:
        return None
    if message.document is not None:
        return message.document
    if message.reply_to_message is not None:
        return message.reply_to_message.document
    return None


async def _read_opml(document: Document) -> list[Outline]:
    """The file's feeds; OPMLError says why not."""
    if document.file_size and document.file_size > MAX_OPML_BYTES:
        raise OPMLError("The file is larger than 1 MB; that is not an OPML subscription list.")
    data = bytes(await (await document.get_file()).download_as_bytearray())
    outlines = parse_opml(data)
    if not outlines:
        raise OPMLError("The file lists no feeds (no outline has an xmlUrl).")
    return outlines


async def import_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    services = get_services(context)
    message = update.effective_message
    assert message is not None
    command, *words = (message.text or message.caption or "/import").split()
    _, _, addressee = command.partition("@")
    if addressee and addressee.lower() != (context.bot.username or "").lower():
        return  # "/import@otherbot" in a caption: not for us
    args = split_chat_ref(words, alone=True)
    document = _document(message)
    if document is None:
        await reply(update, IMPORT_HELP)
        return
    target = await command_target(update, services, args, change=True)
    if target is None:
        return
    try:
        outlines = await _read_opml(document)
    except OPMLError as exc:
        await reply(update, esc(str(exc)))
        return
    where = target.chat.title if target.named else ""
    urls = [o.url for o in outlines]
    start_bulk(update, context, services, target.chat, urls, where=where, code="import.summary")


# ---------------------------------------------------------------- the offer


async def document_offer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A document in a private chat, without the /import caption: offer to
    import it if it is OPML, else say what files are for."""
    services = get_services(context)
    message = update.effective_message
    if message is None or message.document is None:
        return
    user = message.from_user
    if not may_use_bot(services.config.telegram, user.id if user else None):
        await reply(update, PRIVATE_ONLY)
        return
    try:
        outlines = await _read_opml(message.document)
    except OPMLError:
        await reply(update, say("import.document_hint"))
        return
    count = len(outlines)
    feeds = plural(count, "feed", "feeds")
    button = InlineKeyboardButton(
        say("import.offer_button", count=count, feeds=feeds), callback_data=IMPORT_BUTTON
    )
    await message.reply_text(
        say("import.offer", count=count, feeds=feeds, them=plural(count, "it", "them")),
        parse_mode=ParseMode.HTML,
        link_preview_options=NO_PREVIEW,
        reply_markup=InlineKeyboardMarkup([[button]]),
        do_quote=True,  # the quoted file is where the button finds it again
    )


async def import_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The offer's button was pressed: answer the query at once (Telegram
    shows a spinner until then), take the button away so that a second press
    cannot import twice, then import into the private chat."""
    query = update.callback_query
    if query is None:
        return
    services = get_services(context)
    if not may_use_bot(services.config.telegram, query.from_user.id):
        await query.answer(PRIVATE_ONLY)
        return
    offer = query.message
    document = _document(offer) if isinstance(offer, Message) else None
    if not isinstance(offer, Message) or document is None or offer.chat.type != "private":
        await query.answer(say("import.offer_gone"), show_alert=True)
        return
    await query.answer(say("import.offer_started"))
    try:
        await offer.edit_reply_markup(reply_markup=None)
    except BadRequest as exc:
        if "not modified" in str(exc).lower():
            return  # pressed twice: the first press is importing already
        raise
    try:
        outlines = await _read_opml(document)
    except OPMLError as exc:
        await offer.reply_text(esc(str(exc)), parse_mode=ParseMode.HTML, do_quote=False)
        return
    urls = [o.url for o in outlines]
    chat = chat_from_telegram(offer.chat)
    start_bulk(update, context, services, chat, urls, code="import.summary")
