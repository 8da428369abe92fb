"""Answering the chat a command came from."""

from __future__ import annotations

from collections.abc import Iterable

from telegram import LinkPreviewOptions, Update
from telegram.constants import MessageLimit, ParseMode

NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


def pack(lines: Iterable[str], limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """Join lines into as few messages as fit Telegram's limit (UTF-16 units),
    never splitting a line, so no tag is cut in two."""
    messages: list[str] = []
    current = ""
    for line in lines:
        candidate = f"{current}\n{line}" if current else line
        if current and _utf16(candidate) > limit:
            messages.append(current)
            candidate = line
        current = candidate
    if current:
        messages.append(current)
    return messages


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


async def reply(update: Update, *lines: str) -> None:
    """Answer in Telegram HTML; the caller escapes user and feed text."""
    message = update.effective_message
    if message is None:
        return
    for text in pack(lines):
        await message.reply_text(
            text, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW, do_quote=False
        )
