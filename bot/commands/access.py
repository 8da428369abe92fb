"""Who may do what, asked of Telegram at the moment of the command.

Group and channel rights are looked up with getChatMember each time rather
than cached: a demoted administrator must lose the right at once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from telegram import Bot, ChatFullInfo, ChatMember, Message
from telegram import Chat as TgChat
from telegram.constants import ChatType
from telegram.error import BadRequest, Forbidden

from bot.config import TelegramConfig
from bot.models import Chat, ChatKind

log = logging.getLogger(__name__)

ADMIN_STATUSES = (ChatMember.OWNER, ChatMember.ADMINISTRATOR)
#: A chat id as Telegram writes it: channels and supergroups "-100…", groups "-…".
CHAT_ID = re.compile(r"-\d+")
#: A Telegram username without its "@" (letters, digits, underscores; a letter first).
BARE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,31}")


class Denied(Exception):
    """The command may not run; str() is the answer for the user."""


@dataclass(frozen=True, slots=True)
class Target:
    """The chat a command acts on, and whether the caller may change it."""

    chat: Chat
    #: Set when the command named a channel from a private chat.
    named: bool = False


def may_use_bot(config: TelegramConfig, user_id: int | None) -> bool:
    if config.public:
        return True
    return user_id is not None and (user_id in config.admins or user_id in config.allowed_users)


def chat_from_telegram(chat: TgChat | ChatFullInfo) -> Chat:
    return Chat(
        id=chat.id,
        kind=ChatKind(chat.type) if chat.type in set(ChatKind) else ChatKind.PRIVATE,
        title=chat.title or chat.full_name or chat.username or str(chat.id),
        username=chat.username,
    )


def may_post(chat: TgChat | ChatFullInfo, member: ChatMember) -> bool:
    """In a channel only an administrator with the right to post may post; in
    groups and private chats, being there is enough."""
    if chat.type != ChatType.CHANNEL or member.status == ChatMember.OWNER:
        return True
    return member.status == ChatMember.ADMINISTRATOR and bool(
        getattr(member, "can_post_messages", False)
    )


@dataclass(frozen=True, slots=True)
class ChatArgs:
    """A command's arguments with the chat reference, if any, taken off the front."""

    #: The chat as getChat takes it: "@name" or a numeric id such as "-100…".
    ref: str | None
    rest: list[str]
    #: The first argument when it is neither an address nor a chat reference
    #: but more follow: the command must not guess what it meant.
    unclear: str | None = None


def _looks_like_address(word: str) -> bool:
    """A feed address has a dot, a slash or a colon; a chat reference has none."""
    return any(mark in word for mark in "./:")


def split_chat_ref(args: list[str], *, alone: bool = False) -> ChatArgs:
    """Take a chat reference off the front of ``args``.

    "@name" and a negative id ("-100…", or a short "-4…" that getChat will
    then refuse) are always references. A bare "name" is tried as "@name" when
    more arguments follow it (or, with ``alone``, for commands whose only
    argument is a chat): "/subscribe harness_chan URL" meant the channel, and
    subscribing this chat instead would act where the user did not mean to.
    """
    if not args:
        return ChatArgs(None, [])
    first, rest = args[0], args[1:]
    if first.startswith("@") or CHAT_ID.fullmatch(first):
        return ChatArgs(first, rest)
    if BARE_NAME.fullmatch(first) and (rest or alone):
        return ChatArgs("@" + first, rest)
    if rest and not first.isdigit() and not _looks_like_address(first):
        return ChatArgs(None, rest, unclear=first)
    return ChatArgs(None, args)


async def is_admin(bot: Bot, chat_id: int, user_id: int) -> bool:
    try:
        member = await bot.get_chat_member(chat_id, user_id)
    except (BadRequest, Forbidden) as exc:
        log.info("getChatMember(%s, %s) failed: %s", chat_id, user_id, exc)
        return False
    return member.status in ADMIN_STATUSES


async def check_may_change(bot: Bot, config: TelegramConfig, message: Message) -> None:
    """In a group only its administrators change subscriptions; raise Denied otherwise."""
    chat = message.chat
    if chat.type in (ChatType.PRIVATE, ChatType.CHANNEL):
        return  # one's own chat; a channel post comes from its administrators only
    # An anonymous administrator writes as the group itself.
    if message.sender_chat is not None and message.sender_chat.id == chat.id:
        return
    user = message.from_user
    if user is None:
        raise Denied("Only the group's administrators can change its subscriptions.")
    if user.id in config.admins or await is_admin(bot, chat.id, user.id):
        return
    raise Denied("Only the group's administrators can change its subscriptions.")


async def resolve_channel(
    bot: Bot, config: TelegramConfig, message: Message, ref: str, *, need_post: bool
) -> Chat:
    """The channel ``ref`` names, if the caller administers it (and, when
    ``need_post``, the bot may post there). Raises Denied with the reason."""
    if message.chat.type != ChatType.PRIVATE:
        raise Denied("Manage a channel's subscriptions from a private chat with me.")
    user = message.from_user
    assert user is not None
    try:
        channel = await bot.get_chat(int(ref) if ref.lstrip("-").isdigit() else ref)
    except (BadRequest, Forbidden):
        raise Denied(
            f"I can't find {ref}. Add me to the channel as an administrator, then try again."
        ) from None
    if channel.type != ChatType.CHANNEL:
        raise Denied(f"{ref} is not a channel.")
    name = channel.title or ref
    if user.id not in config.admins and not await is_admin(bot, channel.id, user.id):
        raise Denied(f"Only administrators of {name} can manage its subscriptions.")
    if need_post:
        try:
            me = await bot.get_chat_member(channel.id, bot.id)
        except (BadRequest, Forbidden):
            me = None
        if me is None or not may_post(channel, me):
            raise Denied(
                f"I can't post in {name}: make me an administrator of the channel "
                "with the right to post messages, then try again."
            )
    return chat_from_telegram(channel)


async def resolve_target(
    bot: Bot, config: TelegramConfig, message: Message, ref: str | None, *, change: bool
) -> Target:
    if ref is not None:
        return Target(await resolve_channel(bot, config, message, ref, need_post=change), True)
    if change:
        await check_may_change(bot, config, message)
    return Target(chat_from_telegram(message.chat))
