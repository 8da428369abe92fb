"""One rendered message (or a plain-text one) as the right Bot API call.

Every send here is marked ``rate_limit_args=BULK`` so that the limiter
(bot/limiter.py) lets replies to people go first.
"""

from __future__ import annotations

from typing import Any

from telegram import (
    InputMediaAudio,
    InputMediaDocument,
    InputMediaPhoto,
    InputMediaVideo,
    LinkPreviewOptions,
)
from telegram.constants import ParseMode
from telegram.ext import ExtBot

from bot.delivery_rules import MessageKind
from bot.limiter import BULK
from bot.render import MESSAGE_LIMIT, Message
from bot.render.text import prefix_fitting

#: A message of an entry (HTML, maybe media), or plain text (a notice, a fallback).
Outgoing = Message | str

_MEDIA_TYPES: dict[
    str, type[InputMediaAudio | InputMediaDocument | InputMediaPhoto | InputMediaVideo]
] = {
    "photo": InputMediaPhoto,
    "video": InputMediaVideo,
    "audio": InputMediaAudio,
    "document": InputMediaDocument,
}


def kind_of(message: Outgoing) -> MessageKind:
    if isinstance(message, str):
        return "plain"
    return "media" if message.media else "html"


def message_items(message: Outgoing) -> int:
    """How many messages Telegram counts for it: each item of a media group."""
    return len(message.media) if isinstance(message, Message) and message.media else 1


def fit_plain(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` cut to ``limit`` UTF-16 units (how Telegram measures), on a
    character boundary."""
    return text[: prefix_fitting(text, limit)]


async def send_message(bot: ExtBot[Any], chat_id: int, message: Outgoing) -> None:
    """Send one rendered message (or plain text) with the right API method, as bulk."""
    if isinstance(message, str):
        await bot.send_message(
            chat_id,
            fit_plain(message),
            link_preview_options=LinkPreviewOptions(is_disabled=True),
            rate_limit_args=BULK,
        )
        return
    silent = message.silent
    caption = message.text or None
    html = ParseMode.HTML
    if not message.media:
        await bot.send_message(
            chat_id,
            message.text,
            parse_mode=html,
            link_preview_options=LinkPreviewOptions(is_disabled=not message.link_preview),
            disable_notification=silent,
            rate_limit_args=BULK,
        )
    elif len(message.media) == 1:
        item = message.media[0]
        send = {
            "photo": bot.send_photo,
            "video": bot.send_video,
            "audio": bot.send_audio,
        }.get(item.kind, bot.send_document)
        await send(  # type: ignore[operator]
            chat_id,
            item.url,
            caption=caption,
            parse_mode=html,
            disable_notification=silent,
            rate_limit_args=BULK,
        )
    else:
        group = [
            _MEDIA_TYPES[item.kind](
                item.url,
                caption=caption if index == 0 else None,
                parse_mode=html if index == 0 else None,
            )
            for index, item in enumerate(message.media)
        ]
        await bot.send_media_group(
            chat_id, group, disable_notification=silent, rate_limit_args=BULK
        )
