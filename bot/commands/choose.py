"""A web page that names several feeds: the user picks one with a button.

The choices are kept in the chat's memory under a short token (URLs do not
fit Telegram's 64 bytes of callback data); a button pressed after a restart,
by someone else, or with forged data changes nothing and says so.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from bot.commands.bulk import quota_for
from bot.commands.replies import NO_PREVIEW
from bot.models import Chat
from bot.services import get_services
from bot.subscriptions import Answer
from bot.texts import say

PICK_PATTERN = r"^pick:[0-9a-f]{8}:\d{1,2}$"
CHOICES_KEY = "feedbot.feed_choices"
#: Telegram shows at most this many buttons comfortably; a page naming more is rare.
MAX_CHOICES = 10
#: Chats remember at most this many open choices (the oldest are forgotten).
MAX_OPEN = 20


@dataclass(frozen=True, slots=True)
class Choice:
    chat: Chat
    user_id: int | None
    urls: tuple[str, ...]


async def offer(
    update: Update, context: ContextTypes.DEFAULT_TYPE, chat: Chat, answer: Answer
) -> None:
    """Reply with one button per feed the page names."""
    message = update.effective_message
    if message is None or context.chat_data is None:
        return
    links = answer.choices[:MAX_CHOICES]
    token = secrets.token_hex(4)
    open_choices: dict[str, Choice] = context.chat_data.setdefault(CHOICES_KEY, {})
    while len(open_choices) >= MAX_OPEN:
        del open_choices[next(iter(open_choices))]
    user = update.effective_user
    open_choices[token] = Choice(chat, user.id if user else None, tuple(link.url for link in links))
    buttons = [
        [InlineKeyboardButton((link.title or link.url)[:64], callback_data=f"pick:{token}:{i}")]
        for i, link in enumerate(links)
    ]
    await message.reply_text(
        answer.text,
        parse_mode=ParseMode.HTML,
        link_preview_options=NO_PREVIEW,
        reply_markup=InlineKeyboardMarkup(buttons),
        do_quote=False,
    )


async def picked(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A feed was picked: subscribe to it and put the answer in place of the buttons."""
    query = update.callback_query
    if query is None or query.data is None:
        return
    _, token, index = query.data.split(":")
    open_choices: dict[str, Choice] = (context.chat_data or {}).get(CHOICES_KEY, {})
    choice = open_choices.get(token)
    if choice is None or int(index) >= len(choice.urls):
        await query.answer(say("subscribe.choice_gone"), show_alert=True)
        return
    if choice.user_id is not None and query.from_user.id != choice.user_id:
        await query.answer(say("subscribe.choice_not_yours"), show_alert=True)
        return
    del open_choices[token]  # one press: a second cannot subscribe twice
    await query.answer()
    services = get_services(context)
    answer = await services.subscriptions.subscribe(
        choice.chat, choice.urls[int(index)], quota=quota_for(services, choice.user_id)
    )
    try:
        await query.edit_message_text(
            answer.text, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW
        )
    except BadRequest:  # the message is gone: say it anew
        if query.message is not None:
            await context.bot.send_message(
                query.message.chat.id, answer.text, parse_mode=ParseMode.HTML
            )
    services.deliverer.wake()  # the sample, after the answer
