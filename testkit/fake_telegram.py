"""A fake Telegram Bot API server on loopback, as strict as Telegram where feedbot cares.

The bot under test talks real HTTP to it through python-telegram-bot's ``base_url``::

    async with FakeTelegram() as fake:
        fake.add_user(42)
        app = (
            Application.builder()
            .token(fake.token)
            .base_url(fake.base_url)            # "http://127.0.0.1:PORT/bot"
            .base_file_url(fake.base_file_url)  # "http://127.0.0.1:PORT/file/bot"
            .build()
        )
        ...
        fake.user_says(42, 42, "/start")
        [reply] = await fake.wait_sent(42, 1)

The server runs with aiohttp in the current event loop. Everything a test does to the
world (``add_user``, ``block``, ``user_says``…) is synchronous and takes effect at once.

Strictness:

* Every send (``sendMessage``, ``sendPhoto``/``Video``/``Audio``/``Document``,
  ``sendMediaGroup``, ``editMessageText``, ``editMessageCaption``) validates its text: with
  ``parse_mode=HTML`` through :func:`testkit.telegram_html.check_message` (Telegram's HTML
  subset, entity syntax, 4096/1024 UTF-16 limits); without ``parse_mode`` the explicit
  ``entities`` must lie inside the UTF-16 text; plain text must be non-empty and within the
  limits. Markdown parse modes are refused: the fake cannot check them and feedbot sends HTML.
* Unknown, deleted, blocked, kicked and migrated chats answer as Telegram does (400 chat not
  found / 403 Forbidden / 400 with ``migrate_to_chat_id``); PTB turns these into
  ``BadRequest``, ``Forbidden`` and ``ChatMigrated``.
* Media must be an http(s) URL, a ``file_id`` the fake issued, or an upload.
* With ``fake.limits = True`` Telegram's flood limits are enforced (429 + ``retry_after``).
* Unknown methods and paths answer 404 "Not Found", a wrong token 401 "Unauthorized".

World set-up (synchronous): ``add_user``, ``add_group``, ``add_channel``, ``block``,
``deactivate``, ``kick``, ``unblock``, ``delete_chat``, ``migrate``, ``fail_media_url``, ``flood``,
``fail_server``, ``limits``, ``privacy_mode``. Updates for getUpdates: ``user_says``,
``anonymous_admin_says``, ``channel_post``, ``user_sends_document``, ``user_presses_button``,
``add_bot_to_group``, ``add_bot_to_channel``, ``remove_bot_from_group``. Observation: ``sent()``,
``wait_sent()``, ``edits``, ``message()``, ``requests``, ``calls()``, ``rejections``,
``count_429``, ``update_conflicts``, ``callback_answers``, ``unanswered_callbacks()``, ``commands``,
``internal_errors`` (bugs of the fake itself).

Webhooks: after ``setWebhook`` (url, ``secret_token``, ``allowed_updates``) getUpdates answers
409 Conflict, as Telegram does, and the fake POSTs each queued update in order to the URL with
the ``X-Telegram-Bot-Api-Secret-Token`` header, retrying until the bot answers 2xx (failures in
``webhook_failures``); ``deleteWebhook`` goes back to getUpdates.

Files: ``getFile`` answers a relative ``file_path``; PTB prefixes it with ``base_file_url``, so
give the bot ``base_file_url=fake.base_file_url`` to download what ``user_sends_document`` sent.

A media group is recorded as one :class:`Sent` per item (Telegram returns one Message per item),
all sharing ``media_group_id``; each item counts against the rate limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import mimetypes
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from testkit.telegram_html import TelegramHTMLError, check_message, parse_telegram_html, utf16_len

__all__ = ["ANONYMOUS_ADMIN_ID", "FakeTelegram", "Sent", "Upload"]

logger = logging.getLogger(__name__)

#: The user id Telegram uses for messages of anonymous group admins (@GroupAnonymousBot).
ANONYMOUS_ADMIN_ID = 1087968824

SEND_METHODS = frozenset(
    {"sendmessage", "sendphoto", "sendvideo", "sendaudio", "senddocument", "sendmediagroup"}
)
MEDIA_KINDS = ("photo", "video", "audio", "document")
MAX_DOWNLOAD = 20 * 1024 * 1024
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
_ENTITY_TYPES = frozenset(
    {
        "mention",
        "hashtag",
        "cashtag",
        "bot_command",
        "url",
        "email",
        "phone_number",
        "bold",
        "italic",
        "underline",
        "strikethrough",
        "spoiler",
        "blockquote",
        "expandable_blockquote",
        "code",
        "pre",
        "text_link",
        "text_mention",
        "custom_emoji",
        "date_time",
    }
)
_COMMAND_RE = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{1,64})?(?![A-Za-z0-9_@/])")


@dataclass(frozen=True)
class Upload:
    """A file the bot uploaded with multipart/form-data."""

    filename: str
    content_type: str
    data: bytes


@dataclass
class Sent:
    """One message Telegram accepted (a media group gives one per item)."""

    chat_id: int
    method: str
    #: Text or caption exactly as sent (HTML when parse_mode is HTML); None for no caption.
    text: str | None
    #: The text as the user sees it (entities parsed out).
    plain: str | None
    #: [(kind, url)] with kind in photo/video/audio/document; uploads as "attach://<filename>",
    #: reused files by their file_id.
    media: list[tuple[str, str]]
    parse_mode: str | None
    disable_notification: bool
    link_preview_disabled: bool
    message_id: int
    time: float
    entities: list[dict] = field(default_factory=list)
    reply_markup: dict | None = None
    media_group_id: str | None = None
    #: Uploaded files of this message (e.g. the OPML export of sendDocument).
    files: list[Upload] = field(default_factory=list)
    #: The request's parameters as they came over the wire.
    params: dict[str, Any] = field(default_factory=dict)


#: Telegram's answer to a getUpdates that a newer one replaced.
_TERMINATED = "Conflict: terminated by other getUpdates request"


class ApiError(Exception):
    def __init__(
        self, code: int, description: str, parameters: dict | None = None, chat_id: Any = None
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters
        self.chat_id = chat_id


class _DropConnection(Exception):
    pass


@dataclass
class _Chat:
    id: int
    type: str  # private, group, supergroup, channel
    title: str | None = None
    username: str | None = None
    first_name: str | None = None
    creator: int | None = None
    admins: set[int] = field(default_factory=set)
    members: set[int] = field(default_factory=set)
    #: The bot's membership: member, administrator, left, kicked.
    bot_status: str = "member"
    bot_can_post: bool = True
    blocked: bool = False
    deactivated: bool = False
    deleted: bool = False
    migrated_to: int | None = None
    next_message_id: int = 1
    restore_status: str = "member"


@dataclass
class _File:
    file_id: str
    file_unique_id: str
    data: bytes | None
    file_name: str | None = None
    mime_type: str | None = None
    url: str | None = None
    file_path: str | None = None


def _utf16(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


class FakeTelegram:
    """A strict fake of the Telegram Bot API (see the module docstring)."""

    def __init__(self, token: str = "123456:TEST", *, host: str = "127.0.0.1") -> None:
        self.token = token
        self.host = host
        self.bot_id = int(token.split(":", 1)[0])
        self.bot_username = "feedbot_test_bot"
        self.bot_first_name = "Feedbot"
        self.port: int | None = None

        #: Enforce Telegram's flood limits (429 + retry_after) when True.
        self.limits = False
        self.global_per_second = 30
        self.private_per_second = 1.0
        self.private_burst = 3
        self.group_per_minute = 20
        #: In groups, a bot in privacy mode that is not an admin only gets commands.
        self.privacy_mode = True

        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.rejections: list[tuple[str, Any, int, str]] = []
        self.edits: list[Sent] = []
        self.callback_answers: list[dict[str, Any]] = []
        #: Exceptions raised inside the fake itself (answered 500); should stay empty.
        self.internal_errors: list[str] = []
        self.commands: dict[tuple[str, str], list[dict]] = {}
        self.webhook_url = ""
        self.webhook_secret: str | None = None
        #: (status or exception name, update_id) of every webhook POST the bot did not accept.
        self.webhook_failures: list[tuple[str, int]] = []
        #: getUpdates calls a newer getUpdates ended with 409 Conflict while
        #: their caller still listened: two consumers at once (a dead
        #: process's abandoned long poll is not counted).
        self.update_conflicts = 0
        self._pusher: asyncio.Task[None] | None = None

        self._sent: list[Sent] = []
        self._chats: dict[int, _Chat] = {}
        self._users: dict[int, dict] = {
            ANONYMOUS_ADMIN_ID: {
                "id": ANONYMOUS_ADMIN_ID,
                "is_bot": True,
                "first_name": "Group",
                "username": "GroupAnonymousBot",
            }
        }
        self._messages: dict[tuple[int, int], dict] = {}
        self._files: dict[str, _File] = {}
        self._files_by_path: dict[str, _File] = {}
        self._file_seq = itertools.count(1)
        self._media_group_seq = itertools.count(13_000_000_000_000_001)
        self._callback_seq = itertools.count(4_000_000_000_000_001)
        #: Callback query id → when it was pressed; answered ones are removed.
        self._pending_callbacks: dict[str, float] = {}
        #: Telegram refuses an answer this many seconds after the press.
        self.callback_timeout = 15.0
        self._updates: list[dict] = []
        self._next_update_id = 100_000_001
        self._allowed_updates: list[str] | None = None
        self._poll_generation = 0
        self._wakeup: asyncio.Event | None = None
        self._closing = False

        self._media_failures: list[tuple[str, str]] = []
        self._floods: dict[int | None, list[int]] = {}
        self._server_failures: list[tuple[int, str | None]] = []
        self._global_times: deque[float] = deque()
        self._group_times: dict[int, deque[float]] = {}
        self._private_buckets: dict[int, tuple[float, float]] = {}
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://{self.host}:{self.port}/file/bot"

    @property
    def bot_user(self) -> dict:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    async def start(self) -> FakeTelegram:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        # Anything else (a base URL missing its "/bot"): Telegram's JSON 404.
        app.router.add_route("*", "/{path:.*}", self._handle_unknown_path)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._closing = False
        return self

    async def stop(self) -> None:
        self._closing = True
        self._notify()
        await self._stop_pusher()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ world set-up

    def add_user(self, user_id: int, first_name: str = "U1", username: str | None = None) -> None:
        """A user who has started the bot: a private chat with id == user_id."""
        self._add_user_record(user_id, first_name, username)
        self._put_chat(_Chat(id=user_id, type="private", first_name=first_name, username=username))

    def add_group(
        self,
        chat_id: int,
        title: str,
        admins: set[int] | frozenset[int] | tuple[int, ...] = (),
        members: set[int] | frozenset[int] | tuple[int, ...] = (),
        supergroup: bool = False,
        *,
        creator: int | None = None,
        bot_is_admin: bool = False,
        username: str | None = None,
    ) -> None:
        """A group the bot is a member (or, with bot_is_admin, an administrator) of."""
        for uid in {*admins, *members, *([creator] if creator else [])}:
            self._ensure_user(uid)
        status = "administrator" if bot_is_admin else "member"
        self._put_chat(
            _Chat(
                id=chat_id,
                type="supergroup" if supergroup else "group",
                title=title,
                username=username,
                creator=creator,
                admins=set(admins),
                members=set(members),
                bot_status=status,
                restore_status=status,
            )
        )

    def add_channel(
        self,
        chat_id: int,
        title: str,
        username: str | None = "mychan",
        admins: set[int] | frozenset[int] | tuple[int, ...] = (),
        bot_is_admin: bool = True,
        bot_can_post: bool = True,
        *,
        creator: int | None = None,
    ) -> None:
        for uid in {*admins, *([creator] if creator else [])}:
            self._ensure_user(uid)
        status = "administrator" if bot_is_admin else "member"
        self._put_chat(
            _Chat(
                id=chat_id,
                type="channel",
                title=title,
                username=username,
                creator=creator,
                admins=set(admins),
                bot_status=status,
                bot_can_post=bot_can_post,
                restore_status=status,
            )
        )

    def block(self, chat_id: int) -> None:
        """The user blocked the bot: sends → 403 "Forbidden: bot was blocked by the user"."""
        self._chat(chat_id).blocked = True

    def deactivate(self, chat_id: int) -> None:
        """The user deleted their account: sends → 403 "Forbidden: user is deactivated"."""
        self._chat(chat_id).deactivated = True

    def kick(self, chat_id: int) -> None:
        """The bot was removed from the group/channel (silently; see remove_bot_from_group)."""
        self._chat(chat_id).bot_status = "kicked"

    def unblock(self, chat_id: int) -> None:
        """Undoes block, deactivate and kick."""
        chat = self._chat(chat_id)
        chat.blocked = chat.deactivated = False
        if chat.bot_status in ("kicked", "left"):
            chat.bot_status = chat.restore_status

    def delete_chat(self, chat_id: int) -> None:
        self._chat(chat_id).deleted = True

    def migrate(self, group_id: int, new_supergroup_id: int, *, announce: bool = False) -> None:
        """The group becomes a supergroup. With ``announce``, the bot also gets
        the service messages Telegram sends (migrate_to_chat_id in the old
        chat, migrate_from_chat_id in the new one), as it does to any member."""
        old = self._chat(group_id)
        old.migrated_to = new_supergroup_id
        self._chats[new_supergroup_id] = _Chat(
            id=new_supergroup_id,
            type="supergroup",
            title=old.title,
            creator=old.creator,
            admins=set(old.admins),
            members=set(old.members),
            bot_status=old.bot_status,
            restore_status=old.restore_status,
        )
        if announce:
            user = self._ensure_user(next(iter(old.admins or old.members), 1))
            to_msg = self._new_message(old, sender=user, text=None)
            to_msg["migrate_to_chat_id"] = new_supergroup_id
            from_msg = self._new_message(self._chats[new_supergroup_id], sender=user, text=None)
            from_msg["migrate_from_chat_id"] = group_id
            self._queue_update({"message": to_msg})
            self._queue_update({"message": from_msg})

    def fail_media_url(
        self,
        url_or_substring: str,
        description: str = "Bad Request: wrong file identifier/HTTP URL specified",
    ) -> None:
        """Media sends whose URL contains ``url_or_substring`` fail with 400 ``description``."""
        self._media_failures.append((url_or_substring, description))

    def flood(self, chat_id: int | None, retry_after: int = 3, times: int = 1) -> None:
        """The next ``times`` sends to ``chat_id`` (None: to any chat) answer 429."""
        self._floods.setdefault(chat_id, []).extend([retry_after] * times)

    def fail_server(self, times: int = 1, status: int = 500, method: str | None = None) -> None:
        """The next ``times`` sends (of ``method`` only, if given) answer HTTP
        ``status``; ``status=0`` drops the connection."""
        self._server_failures.extend([(status, method and method.lower())] * times)

    # ------------------------------------------------------------------ updates

    def user_says(self, chat_id: int, user_id: int, text: str) -> int | None:
        """A user's text message in a private chat or group.

        Returns the update_id, or None when Telegram would not deliver it to the bot (a group
        in privacy mode where the bot is no admin and the text is not a command for it).
        """
        chat = self._chats.get(chat_id)
        if chat is None and chat_id == user_id:
            self.add_user(user_id, first_name=f"User{user_id}")
            chat = self._chats[chat_id]
        if chat is None:
            raise ValueError(f"unknown chat {chat_id}: add it first")
        if chat.type == "channel":
            raise ValueError("use channel_post() for channels")
        user = self._ensure_user(user_id)
        if chat.type != "private" and user_id not in chat.admins and user_id != chat.creator:
            chat.members.add(user_id)
        msg = self._new_message(chat, sender=user, text=text)
        return self._deliver(chat, {"message": msg}, text)

    def anonymous_admin_says(self, group_id: int, text: str) -> int | None:
        chat = self._chat(group_id)
        msg = self._new_message(
            chat, sender=self._users[ANONYMOUS_ADMIN_ID], text=text, sender_chat=chat
        )
        return self._deliver(chat, {"message": msg}, text)

    def channel_post(self, channel_id: int, text: str) -> int | None:
        chat = self._chat(channel_id)
        if chat.type != "channel":
            raise ValueError(f"{channel_id} is not a channel")
        msg = self._new_message(chat, sender=None, text=text, sender_chat=chat)
        return self._deliver(chat, {"channel_post": msg}, text)

    def user_sends_document(
        self,
        chat_id: int,
        user_id: int,
        filename: str,
        content: bytes,
        caption: str | None = None,
        mime_type: str | None = None,
    ) -> int | None:
        """A message with a document; the bot can fetch it with getFile + the file URL."""
        chat = self._chats.get(chat_id)
        if chat is None and chat_id == user_id:
            self.add_user(user_id, first_name=f"User{user_id}")
            chat = self._chats[chat_id]
        if chat is None:
            raise ValueError(f"unknown chat {chat_id}: add it first")
        user = self._ensure_user(user_id)
        mime = mime_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        f = self._register_file(content, filename=filename, mime_type=mime)
        msg = self._new_message(chat, sender=user, text=None)
        msg["document"] = self._document_json(f)
        if caption:
            msg["caption"] = caption
            ents = self._command_entities(caption)
            if ents:
                msg["caption_entities"] = ents
        return self._deliver(chat, {"message": msg}, caption or "")

    def add_bot_to_group(self, chat_id: int, by_user_id: int) -> int:
        """my_chat_member update: left → member (registers the group if unknown)."""
        user = self._ensure_user(by_user_id)
        chat = self._chats.get(chat_id)
        if chat is None:
            supergroup = chat_id <= -1_000_000_000_000
            self.add_group(chat_id, f"Group {chat_id}", supergroup=supergroup)
            chat = self._chats[chat_id]
            old = "left"
        else:
            old = chat.bot_status if chat.bot_status in ("left", "kicked") else "left"
        chat.bot_status = chat.restore_status = "member"
        if by_user_id not in chat.admins and by_user_id != chat.creator:
            chat.members.add(by_user_id)
        return self._queue_update(
            {"my_chat_member": self._chat_member_update(chat, user, old, "member")}
        )

    def add_bot_to_channel(self, chat_id: int, by_user_id: int, can_post: bool = True) -> int:
        """my_chat_member update: left → administrator of a channel."""
        user = self._ensure_user(by_user_id)
        chat = self._chats.get(chat_id)
        if chat is None:
            self.add_channel(chat_id, f"Channel {chat_id}", username=None, admins={by_user_id})
            chat = self._chats[chat_id]
        chat.bot_status = chat.restore_status = "administrator"
        chat.bot_can_post = can_post
        return self._queue_update(
            {"my_chat_member": self._chat_member_update(chat, user, "left", "administrator")}
        )

    def set_bot_rights(self, chat_id: int, by_user_id: int, *, can_post: bool) -> int:
        """An administrator changes the bot's right to post in a channel:
        my_chat_member update administrator → administrator."""
        user = self._ensure_user(by_user_id)
        chat = self._chat(chat_id)
        chat.bot_can_post = can_post
        return self._queue_update(
            {
                "my_chat_member": self._chat_member_update(
                    chat, user, "administrator", "administrator"
                )
            }
        )

    def remove_bot_from_group(self, chat_id: int, by_user_id: int) -> int:
        """my_chat_member update: member → kicked; later sends to it answer 403."""
        user = self._ensure_user(by_user_id)
        chat = self._chat(chat_id)
        old = chat.bot_status if chat.bot_status not in ("left", "kicked") else "member"
        chat.bot_status = "kicked"
        return self._queue_update(
            {"my_chat_member": self._chat_member_update(chat, user, old, "kicked")}
        )

    def user_presses_button(self, chat_id: int, user_id: int, message_id: int, data: str) -> int:
        """A callback_query update for an inline button of a message the bot sent.

        As in Telegram, only a button the message shows now can be pressed:
        one an edit took away, or callback_data the message never had, raises.
        """
        user = self._ensure_user(user_id)
        msg = self._messages.get((chat_id, message_id))
        if msg is None:
            raise ValueError(f"no message {message_id} in chat {chat_id}")
        rows = (msg.get("reply_markup") or {}).get("inline_keyboard") or []
        if not any(button.get("callback_data") == data for row in rows for button in row):
            raise ValueError(f"message {message_id} in chat {chat_id} has no button {data!r}")
        query_id = str(next(self._callback_seq))
        self._pending_callbacks[query_id] = time.monotonic()
        query = {
            "id": query_id,
            "from": user,
            "message": msg,
            "chat_instance": str(abs(chat_id) * 7 + 1),
            "data": data,
        }
        return self._queue_update({"callback_query": query})

    def unanswered_callbacks(self) -> list[str]:
        """Callback queries the bot has not answered: Telegram's client shows a
        spinner on the button until answerCallbackQuery, so this should end empty."""
        return sorted(self._pending_callbacks)

    # ------------------------------------------------------------------ observation

    def sent(self, chat_id: int | None = None) -> list[Sent]:
        return [s for s in self._sent if chat_id is None or s.chat_id == chat_id]

    async def wait_sent(self, chat_id: int | None, count: int, timeout: float = 10.0) -> list[Sent]:
        """Wait until at least ``count`` messages reached ``chat_id`` (None: any chat)."""
        deadline = time.monotonic() + timeout
        while True:
            event = self._event()
            got = self.sent(chat_id)
            if len(got) >= count:
                return got
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"expected {count} message(s) in chat {chat_id} within {timeout}s, got "
                    f"{len(got)}: {[s.text for s in got]!r}; rejections: {self.rejections!r}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    @property
    def count_429(self) -> int:
        return sum(1 for r in self.rejections if r[2] == 429)

    def message(self, chat_id: int, message_id: int) -> dict | None:
        """The current JSON of a stored message (after edits), or None."""
        return self._messages.get((chat_id, message_id))

    def calls(self, method: str) -> list[dict[str, Any]]:
        """The parameters of every request to ``method`` (case-insensitive)."""
        return [p for m, p in self.requests if m.lower() == method.lower()]

    @property
    def pending_updates(self) -> list[dict]:
        return list(self._updates)

    # ------------------------------------------------------------------ internals: world

    def _put_chat(self, chat: _Chat) -> None:
        """Register (or re-register, keeping its message ids going) a chat."""
        old = self._chats.get(chat.id)
        if old is not None:
            chat.next_message_id = old.next_message_id
        self._chats[chat.id] = chat

    def _chat(self, chat_id: int) -> _Chat:
        try:
            return self._chats[chat_id]
        except KeyError:
            raise ValueError(f"unknown chat {chat_id}: add it first") from None

    def _add_user_record(self, user_id: int, first_name: str, username: str | None) -> dict:
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            user["username"] = username
        self._users[user_id] = user
        return user

    def _ensure_user(self, user_id: int) -> dict:
        if user_id == self.bot_id:
            return self.bot_user
        return self._users.get(user_id) or self._add_user_record(user_id, f"User{user_id}", None)

    def _chat_json(self, chat: _Chat) -> dict:
        out: dict[str, Any] = {"id": chat.id, "type": chat.type}
        if chat.type == "private":
            out["first_name"] = chat.first_name or f"User{chat.id}"
        else:
            out["title"] = chat.title or str(chat.id)
        if chat.username:
            out["username"] = chat.username
        return out

    def _new_message(
        self,
        chat: _Chat,
        *,
        sender: dict | None,
        text: str | None,
        sender_chat: _Chat | None = None,
        entities: list[dict] | None = None,
    ) -> dict:
        msg: dict[str, Any] = {
            "message_id": chat.next_message_id,
            "date": int(time.time()),
            "chat": self._chat_json(chat),
        }
        chat.next_message_id += 1
        if sender is not None:
            msg["from"] = sender
        if sender_chat is not None:
            msg["sender_chat"] = self._chat_json(sender_chat)
        if text is not None:
            msg["text"] = text
            ents = self._command_entities(text) if entities is None else entities
            if ents:
                msg["entities"] = ents
        self._messages[(chat.id, msg["message_id"])] = msg
        return msg

    def _command_entities(self, text: str) -> list[dict]:
        return [
            {
                "type": "bot_command",
                "offset": _utf16(text[: m.start()]),
                "length": _utf16(m.group()),
            }
            for m in _COMMAND_RE.finditer(text)
        ]

    def _deliver(self, chat: _Chat, update: dict, text: str) -> int | None:
        if chat.bot_status in ("left", "kicked") or chat.deleted or chat.migrated_to:
            return None
        if (
            chat.type in ("group", "supergroup")
            and self.privacy_mode
            and chat.bot_status != "administrator"
            and not self._is_command_for_us(text)
        ):
            return None
        if chat.type == "channel" and chat.bot_status != "administrator":
            return None
        return self._queue_update(update)

    def _is_command_for_us(self, text: str) -> bool:
        m = re.match(r"/[A-Za-z0-9_]+(?:@([A-Za-z0-9_]+))?", text)
        return bool(m) and (m.group(1) is None or m.group(1).lower() == self.bot_username.lower())

    def _chat_member_update(self, chat: _Chat, by: dict, old: str, new: str) -> dict:
        return {
            "chat": self._chat_json(chat),
            "from": by,
            "date": int(time.time()),
            "old_chat_member": self._member_json(chat, self.bot_user, old),
            "new_chat_member": self._member_json(chat, self.bot_user, new),
        }

    def _member_json(self, chat: _Chat, user: dict, status: str) -> dict:
        out: dict[str, Any] = {"status": status, "user": user}
        if status == "creator":
            out["is_anonymous"] = False
        elif status == "administrator":
            is_bot = user["id"] == self.bot_id
            out.update(
                can_be_edited=False,
                is_anonymous=False,
                can_manage_chat=True,
                can_delete_messages=True,
                can_manage_video_chats=True,
                can_restrict_members=not is_bot,
                can_promote_members=False,
                can_change_info=True,
                can_invite_users=True,
                can_post_stories=False,
                can_edit_stories=False,
                can_delete_stories=False,
            )
            if chat.type == "channel":
                out["can_post_messages"] = chat.bot_can_post if is_bot else True
                out["can_edit_messages"] = True
            else:
                out["can_pin_messages"] = True
        elif status == "kicked":
            out["until_date"] = 0
        return out

    def _queue_update(self, update: dict) -> int:
        update_id = self._next_update_id
        self._next_update_id += 1
        self._updates.append({"update_id": update_id, **update})
        self._notify()
        return update_id

    def _event(self) -> asyncio.Event:
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        return self._wakeup

    def _notify(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()
        self._wakeup = None

    def _register_file(
        self,
        data: bytes | None,
        *,
        filename: str | None = None,
        mime_type: str | None = None,
        url: str | None = None,
        kind: str = "document",
    ) -> _File:
        n = next(self._file_seq)
        ext = ""
        if filename and "." in filename:
            ext = filename.rsplit(".", 1)[1]
        elif kind == "photo":
            ext = "jpg"
        f = _File(
            file_id=f"BQACAgIAAxkBAAI{n:08d}",
            file_unique_id=f"AgAD{n:08d}",
            data=data,
            file_name=filename,
            mime_type=mime_type,
            url=url,
            file_path=f"{kind}s/file_{n}" + (f".{ext}" if ext else ""),
        )
        self._files[f.file_id] = f
        self._files_by_path[f.file_path or ""] = f
        return f

    def _document_json(self, f: _File) -> dict:
        out: dict[str, Any] = {"file_id": f.file_id, "file_unique_id": f.file_unique_id}
        if f.file_name:
            out["file_name"] = f.file_name
        if f.mime_type:
            out["mime_type"] = f.mime_type
        if f.data is not None:
            out["file_size"] = len(f.data)
        return out

    def _media_json(self, kind: str, f: _File) -> Any:
        base = {"file_id": f.file_id, "file_unique_id": f.file_unique_id}
        if kind == "photo":
            return [
                {**base, "file_id": f.file_id + "_s", "width": 90, "height": 60},
                {**base, "width": 800, "height": 600},
            ]
        if kind == "video":
            return {**base, "width": 640, "height": 360, "duration": 10}
        if kind == "audio":
            return {**base, "duration": 60}
        return self._document_json(f)

    # ------------------------------------------------------------------ internals: HTTP

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params = await self._read_params(request)
        self.requests.append((method, params))
        if request.match_info["token"] != self.token:
            return self._error_response(method, ApiError(401, "Unauthorized"))
        handler = getattr(self, f"_api_{method.lower()}", None)
        if handler is None:
            return self._error_response(method, ApiError(404, "Not Found"))
        try:
            failure = next(
                (
                    f
                    for f in self._server_failures
                    if method.lower() in SEND_METHODS and f[1] in (None, method.lower())
                ),
                None,
            )
            if failure is not None:
                self._server_failures.remove(failure)
                status = failure[0]
                if status == 0:
                    raise _DropConnection
                phrase = "Bad Gateway" if status == 502 else "Internal Server Error"
                raise ApiError(status, phrase, chat_id=params.get("chat_id"))
            result = await handler(params)
        except ApiError as exc:
            if exc.chat_id is None:
                exc.chat_id = params.get("chat_id")
            gone = request.transport is None or request.transport.is_closing()
            if exc.code == 409 and gone:
                # A long poll PTB already abandoned (e.g. Updater.stop): nobody reads this.
                return web.json_response({"ok": False}, status=409)
            if exc.code == 409 and exc.description.startswith(_TERMINATED):
                self.update_conflicts += 1
            return self._error_response(method, exc)
        except _DropConnection:
            chat_id: Any = params.get("chat_id")
            with contextlib.suppress(TypeError, ValueError):
                chat_id = int(chat_id)
            self.rejections.append((method, chat_id, 0, "connection dropped"))
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)
        except Exception as exc:  # a bug in the fake: make it loud, not a retried 500
            logger.exception("fake Telegram failed on %s %r", method, params)
            self.internal_errors.append(f"{method}: {exc!r}")
            return self._error_response(
                method, ApiError(500, f"Internal Server Error (fake Telegram bug: {exc!r})")
            )
        return web.json_response({"ok": True, "result": result})

    async def _handle_unknown_path(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, {}))
        return self._error_response(request.path, ApiError(404, "Not Found"))

    def _error_response(self, method: str, exc: ApiError) -> web.Response:
        chat_id = exc.chat_id
        with contextlib.suppress(TypeError, ValueError):
            chat_id = int(chat_id)
        self.rejections.append((method, chat_id, exc.code, exc.description))
        body: dict[str, Any] = {
            "ok": False,
            "error_code": exc.code,
            "description": exc.description,
        }
        if exc.parameters:
            body["parameters"] = exc.parameters
        self._notify()
        return web.json_response(body, status=exc.code)

    async def _read_params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.method != "POST" or not request.can_read_body:
            return params
        if request.content_type == "application/json":
            body = await request.json()
            for key, value in (body or {}).items():
                params[key] = value if isinstance(value, str) else json.dumps(value)
            return params
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                params[key] = Upload(value.filename or key, value.content_type, value.file.read())
            else:
                params[key] = value
        return params

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(("file", {"path": request.match_info["path"]}))
        f = self._files_by_path.get(request.match_info["path"])
        if request.match_info["token"] != self.token or f is None or f.data is None:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
            )
        return web.Response(body=f.data, content_type=f.mime_type or "application/octet-stream")

    # ------------------------------------------------------------------ internals: params

    @staticmethod
    def _str(params: dict, name: str) -> str | None:
        value = params.get(name)
        if value is None or isinstance(value, Upload):
            return None
        return str(value)

    @staticmethod
    def _int(params: dict, name: str, default: int | None = None) -> int | None:
        value = params.get(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ApiError(400, f"Bad Request: invalid {name} specified") from None

    @staticmethod
    def _bool(params: dict, name: str) -> bool:
        return str(params.get(name, "")).lower() in ("true", "1")

    @staticmethod
    def _json(params: dict, name: str) -> Any:
        value = params.get(name)
        if value is None or value == "" or isinstance(value, Upload):
            return None
        try:
            return json.loads(value)
        except ValueError:
            raise ApiError(400, f"Bad Request: can't parse {name} JSON object") from None

    def _resolve_chat(self, params: dict, *, send: bool = False) -> _Chat:
        raw = self._str(params, "chat_id")
        if not raw:
            raise ApiError(400, "Bad Request: chat_id is empty")
        chat: _Chat | None = None
        if raw.startswith("@"):
            name = raw[1:].lower()
            chat = next(
                (
                    c
                    for c in self._chats.values()
                    if c.username and c.username.lower() == name and c.type != "private"
                ),
                None,
            )
        else:
            with contextlib.suppress(ValueError):
                chat = self._chats.get(int(raw))
        if chat is None or chat.deleted:
            raise ApiError(400, "Bad Request: chat not found", chat_id=raw)
        if chat.migrated_to is not None:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": chat.migrated_to},
                chat_id=chat.id,
            )
        if chat.bot_status in ("kicked", "left"):
            if chat.type == "channel":
                raise ApiError(
                    403, "Forbidden: bot is not a member of the channel chat", chat_id=chat.id
                )
            if chat.bot_status == "kicked":
                raise ApiError(
                    403, f"Forbidden: bot was kicked from the {chat.type} chat", chat_id=chat.id
                )
            raise ApiError(
                403, f"Forbidden: bot is not a member of the {chat.type} chat", chat_id=chat.id
            )
        if send:
            if chat.blocked:
                raise ApiError(403, "Forbidden: bot was blocked by the user", chat_id=chat.id)
            if chat.deactivated:
                raise ApiError(403, "Forbidden: user is deactivated", chat_id=chat.id)
            if chat.type == "channel" and (
                chat.bot_status != "administrator" or not chat.bot_can_post
            ):
                raise ApiError(
                    400,
                    "Bad Request: need administrator rights in the channel chat",
                    chat_id=chat.id,
                )
        return chat

    # ------------------------------------------------------------------ internals: checks

    def _check_flood(self, chat: _Chat) -> None:
        for key in (chat.id, None):
            pending = self._floods.get(key)
            if pending:
                retry = pending.pop(0)
                raise ApiError(
                    429,
                    f"Too Many Requests: retry after {retry}",
                    {"retry_after": retry},
                    chat_id=chat.id,
                )

    def _check_limits(self, chat: _Chat, n: int) -> None:
        """Enforce (and then account for) Telegram's flood limits for ``n`` messages."""
        if not self.limits:
            return
        now = time.monotonic()
        waits: list[float] = []
        waits.append(self._window_wait(self._global_times, now, 1.0, self.global_per_second, n))
        if chat.type == "private":
            tokens, last = self._private_buckets.get(chat.id, (float(self.private_burst), now))
            tokens = min(float(self.private_burst), tokens + (now - last) * self.private_per_second)
            # An album larger than the burst goes through once the bucket is
            # full, and leaves it in debt: the chat's next messages wait longer.
            needed = min(n, self.private_burst)
            if tokens < needed:
                waits.append((needed - tokens) / self.private_per_second)
        else:
            times = self._group_times.setdefault(chat.id, deque())
            waits.append(self._window_wait(times, now, 60.0, self.group_per_minute, n))
        wait = max(waits)
        if wait > 0:
            retry = max(1, math.ceil(wait))
            raise ApiError(
                429,
                f"Too Many Requests: retry after {retry}",
                {"retry_after": retry},
                chat_id=chat.id,
            )
        self._global_times.extend([now] * n)
        if chat.type == "private":
            self._private_buckets[chat.id] = (tokens - n, now)
        else:
            self._group_times[chat.id].extend([now] * n)

    @staticmethod
    def _window_wait(times: deque[float], now: float, window: float, cap: int, n: int) -> float:
        while times and times[0] <= now - window:
            times.popleft()
        excess = len(times) + n - cap
        if excess <= 0:
            return 0.0
        if excess > len(times):
            return window
        return times[excess - 1] + window - now

    def _check_text(
        self,
        text: str | None,
        parse_mode: str | None,
        entities: Any,
        *,
        caption: bool,
    ) -> tuple[str, list[dict]]:
        """Validate a text or caption as Telegram would; return (plain, entities)."""
        limit = 1024 if caption else 4096
        if caption and not text:
            return "", []
        text = text or ""
        mode = (parse_mode or "").lower()
        if mode == "html":
            try:
                check_message(text, caption=caption)
                plain, ents = parse_telegram_html(text)
            except TelegramHTMLError as exc:
                raise ApiError(400, str(exc)) from None
            return plain, ents
        if mode in ("markdown", "markdownv2"):
            raise ApiError(
                400, f"Bad Request: the fake Telegram server does not check {parse_mode}"
            )
        if mode:
            raise ApiError(400, "Bad Request: unsupported parse_mode")
        if not caption and not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        size = utf16_len(text)
        if size > limit:
            raise ApiError(
                400,
                "Bad Request: message caption is too long"
                if caption
                else "Bad Request: message is too long",
            )
        ents = entities if entities is not None else []
        if not isinstance(ents, list):
            raise ApiError(400, "Bad Request: can't parse entities JSON object")
        for ent in ents:
            if not isinstance(ent, dict) or ent.get("type") not in _ENTITY_TYPES:
                raise ApiError(400, f"Bad Request: can't parse MessageEntity: {ent!r}")
            offset, length = ent.get("offset"), ent.get("length")
            if (
                not isinstance(offset, int)
                or not isinstance(length, int)
                or offset < 0
                or length <= 0
                or offset + length > size
            ):
                raise ApiError(
                    400,
                    f"Bad Request: can't parse entities: entity {ent.get('type')} at offset "
                    f"{offset} with length {length} is outside the text of {size} UTF-16 units",
                )
            if ent["type"] == "text_link" and not ent.get("url"):
                raise ApiError(400, "Bad Request: can't parse entities: text_link without url")
        return text, ents

    def _check_markup(self, params: dict) -> dict | None:
        markup = self._json(params, "reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise ApiError(400, "Bad Request: object expected as reply markup")
        rows = markup.get("inline_keyboard")
        if rows is None:
            return markup
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise ApiError(400, 'Bad Request: field "inline_keyboard" must be an Array')
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not button.get("text"):
                    raise ApiError(
                        400, "Bad Request: text buttons are unallowed in the inline keyboard"
                    )
                actions = set(button) - {"text", "style", "icon_custom_emoji_id"}
                if not actions:
                    raise ApiError(
                        400, "Bad Request: text buttons are unallowed in the inline keyboard"
                    )
                if "callback_data" in button:
                    size = len(str(button["callback_data"]).encode())
                    if not 1 <= size <= 64:
                        raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
                if "url" in button:
                    url = str(button["url"])
                    parts = urlsplit(url)
                    if parts.scheme not in ("http", "https", "tg") or not (
                        parts.netloc or parts.scheme == "tg"
                    ):
                        raise ApiError(400, "Bad Request: BUTTON_URL_INVALID")
        return markup

    def _media_ref(self, kind: str, value: Any, params: dict) -> tuple[str, _File, Upload | None]:
        """Resolve a photo/video/… parameter to (url-or-ref, file, upload)."""
        if isinstance(value, str) and value.startswith("attach://"):
            value = params.get(value[len("attach://") :])
            if not isinstance(value, Upload):
                raise ApiError(400, "Bad Request: can't parse InputMedia: media not found")
        if isinstance(value, Upload):
            if not value.data:
                raise ApiError(400, "Bad Request: file must be non-empty")
            mime = value.content_type
            if mime in ("", "application/octet-stream"):
                mime = mimetypes.guess_type(value.filename)[0] or mime
            f = self._register_file(value.data, filename=value.filename, mime_type=mime, kind=kind)
            return f"attach://{value.filename}", f, value
        if not value:
            raise ApiError(400, f"Bad Request: there is no {kind} in the request")
        value = str(value)
        parts = urlsplit(value)
        if parts.scheme in ("http", "https") and parts.netloc:
            for needle, description in self._media_failures:
                if needle in value:
                    raise ApiError(400, description)
            f = self._register_file(None, url=value, kind=kind)
            return value, f, None
        if value in self._files:
            return value, self._files[value], None
        raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")

    # ------------------------------------------------------------------ internals: sending

    def _record(
        self,
        chat: _Chat,
        method: str,
        params: dict,
        *,
        text: str | None,
        plain: str | None,
        entities: list[dict],
        parse_mode: str | None,
        media: list[tuple[str, str]] | None = None,
        files: list[Upload] | None = None,
        markup: dict | None = None,
        media_group_id: str | None = None,
        extra: dict | None = None,
        caption: bool = False,
    ) -> dict:
        lpo = self._json(params, "link_preview_options") or {}
        link_preview_disabled = bool(lpo.get("is_disabled")) or self._bool(
            params, "disable_web_page_preview"
        )
        sender = None if chat.type == "channel" else self.bot_user
        msg = self._new_message(
            chat,
            sender=sender,
            text=None,
            sender_chat=chat if chat.type == "channel" else None,
        )
        if plain is not None and (plain or not caption):
            msg["caption" if caption else "text"] = plain
            if entities:
                msg["caption_entities" if caption else "entities"] = entities
        if lpo and not caption:
            msg["link_preview_options"] = lpo
        if markup:
            msg["reply_markup"] = markup
        if media_group_id:
            msg["media_group_id"] = media_group_id
        if extra:
            msg.update(extra)
        replied = self._check_reply(chat, params)
        if replied:
            msg["reply_to_message"] = replied
        self._sent.append(
            Sent(
                chat_id=chat.id,
                method=method,
                text=text,
                plain=plain,
                media=media or [],
                parse_mode=parse_mode,
                disable_notification=self._bool(params, "disable_notification"),
                link_preview_disabled=link_preview_disabled,
                message_id=msg["message_id"],
                time=time.monotonic(),
                entities=entities,
                reply_markup=markup,
                media_group_id=media_group_id,
                files=files or [],
                params=params,
            )
        )
        self._notify()
        return msg

    def _check_reply(self, chat: _Chat, params: dict) -> dict | None:
        """The message replied to (reply_parameters / reply_to_message_id), if any."""
        reply = self._json(params, "reply_parameters")
        if reply is None and params.get("reply_to_message_id"):
            reply = {
                "message_id": self._int(params, "reply_to_message_id"),
                "allow_sending_without_reply": self._bool(params, "allow_sending_without_reply"),
            }
        if not reply:
            return None
        if not isinstance(reply, dict):
            raise ApiError(400, "Bad Request: can't parse reply parameters JSON object")
        target = self._messages.get((chat.id, reply.get("message_id")))
        if target is None and not reply.get("allow_sending_without_reply"):
            raise ApiError(400, "Bad Request: message to be replied not found")
        if target is None:
            return None
        return {k: v for k, v in target.items() if k != "reply_to_message"}

    async def _api_sendchataction(self, params: dict) -> bool:
        self._resolve_chat(params, send=True)
        return True

    async def _api_sendmessage(self, params: dict) -> dict:
        chat = self._resolve_chat(params, send=True)
        self._check_flood(chat)
        text = self._str(params, "text")
        parse_mode = self._str(params, "parse_mode")
        plain, ents = self._check_text(
            text, parse_mode, self._json(params, "entities"), caption=False
        )
        markup = self._check_markup(params)
        self._check_reply(chat, params)
        self._check_limits(chat, 1)
        return self._record(
            chat,
            "sendMessage",
            params,
            text=text,
            plain=plain,
            entities=ents,
            parse_mode=parse_mode,
            markup=markup,
        )

    async def _send_media(self, kind: str, method: str, params: dict) -> dict:
        chat = self._resolve_chat(params, send=True)
        self._check_flood(chat)
        caption = self._str(params, "caption")
        parse_mode = self._str(params, "parse_mode")
        plain, ents = self._check_text(
            caption, parse_mode, self._json(params, "caption_entities"), caption=True
        )
        markup = self._check_markup(params)
        ref, f, upload = self._media_ref(kind, params.get(kind), params)
        self._check_reply(chat, params)
        self._check_limits(chat, 1)
        return self._record(
            chat,
            method,
            params,
            text=caption,
            plain=plain if caption else None,
            entities=ents,
            parse_mode=parse_mode,
            media=[(kind, ref)],
            files=[upload] if upload else [],
            markup=markup,
            extra={kind: self._media_json(kind, f)},
            caption=True,
        )

    async def _api_sendphoto(self, params: dict) -> dict:
        return await self._send_media("photo", "sendPhoto", params)

    async def _api_sendvideo(self, params: dict) -> dict:
        return await self._send_media("video", "sendVideo", params)

    async def _api_sendaudio(self, params: dict) -> dict:
        return await self._send_media("audio", "sendAudio", params)

    async def _api_senddocument(self, params: dict) -> dict:
        return await self._send_media("document", "sendDocument", params)

    async def _api_sendmediagroup(self, params: dict) -> list[dict]:
        chat = self._resolve_chat(params, send=True)
        self._check_flood(chat)
        if "media" not in params:
            raise ApiError(400, 'Bad Request: parameter "media" is required')
        items = self._json(params, "media")
        if not items:
            raise ApiError(400, "Bad Request: there are no messages to send")
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ApiError(400, "Bad Request: expected an Array of InputMedia")
        if len(items) > 10:
            raise ApiError(400, "Bad Request: too many messages to send as an album")
        if len(items) < 2:
            # Telegram would send a lone item outside any album; feedbot should not ask.
            raise ApiError(400, "Bad Request: media group must include 2-10 items")
        kinds = [i.get("type") for i in items]
        for k in kinds:
            if k not in MEDIA_KINDS:
                raise ApiError(
                    400,
                    f"Bad Request: can't parse InputMedia: type \"{k}\" can't be used in "
                    "sendMediaGroup",
                )
        for special in ("audio", "document"):
            if special in kinds and len(set(kinds)) > 1:
                raise ApiError(400, f"Bad Request: {special} can't be mixed with other media types")
        checked = []
        for item in items:
            caption = item.get("caption")
            parse_mode = item.get("parse_mode")
            plain, ents = self._check_text(
                caption, parse_mode, item.get("caption_entities"), caption=True
            )
            ref, f, upload = self._media_ref(item["type"], item.get("media"), params)
            checked.append((item, caption, parse_mode, plain, ents, ref, f, upload))
        self._check_reply(chat, params)
        self._check_limits(chat, len(items))
        group_id = str(next(self._media_group_seq))
        out = []
        for item, caption, parse_mode, plain, ents, ref, f, upload in checked:
            kind = item["type"]
            out.append(
                self._record(
                    chat,
                    "sendMediaGroup",
                    params,
                    text=caption,
                    plain=plain if caption else None,
                    entities=ents,
                    parse_mode=parse_mode,
                    media=[(kind, ref)],
                    files=[upload] if upload else [],
                    media_group_id=group_id,
                    extra={kind: self._media_json(kind, f)},
                    caption=True,
                )
            )
        return out

    def _own_message(self, chat: _Chat, params: dict) -> dict:
        if params.get("inline_message_id"):
            raise ApiError(400, "Bad Request: the fake Telegram server has no inline messages")
        message_id = self._int(params, "message_id")
        if message_id is None:
            raise ApiError(400, "Bad Request: message identifier is not specified")
        msg = self._messages.get((chat.id, message_id))
        if msg is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if msg.get("from", {}).get("id") != self.bot_id and not (
            chat.type == "channel" and "from" not in msg and msg.get("sender_chat")
        ):
            raise ApiError(400, "Bad Request: message can't be edited")
        return msg

    def _record_edit(self, chat: _Chat, method: str, params: dict, msg: dict, **kw: Any) -> None:
        self.edits.append(
            Sent(
                chat_id=chat.id,
                method=method,
                media=[],
                disable_notification=False,
                link_preview_disabled=bool(
                    (self._json(params, "link_preview_options") or {}).get("is_disabled")
                ),
                message_id=msg["message_id"],
                time=time.monotonic(),
                reply_markup=msg.get("reply_markup"),
                params=params,
                **kw,
            )
        )
        self._notify()

    async def _api_editmessagetext(self, params: dict) -> dict:
        chat = self._resolve_chat(params, send=True)
        msg = self._own_message(chat, params)
        if "text" not in msg:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        text = self._str(params, "text")
        parse_mode = self._str(params, "parse_mode")
        plain, ents = self._check_text(
            text, parse_mode, self._json(params, "entities"), caption=False
        )
        markup = self._check_markup(params)
        if (
            plain == msg.get("text")
            and ents == msg.get("entities", [])
            and markup == msg.get("reply_markup")
        ):
            raise ApiError(400, _NOT_MODIFIED)
        msg["text"] = plain
        msg.pop("entities", None)
        if ents:
            msg["entities"] = ents
        msg.pop("reply_markup", None)  # Telegram drops a keyboard the edit does not repeat
        if markup:
            msg["reply_markup"] = markup
        msg["edit_date"] = int(time.time())
        self._record_edit(
            chat,
            "editMessageText",
            params,
            msg,
            text=text,
            plain=plain,
            parse_mode=parse_mode,
            entities=ents,
        )
        return msg

    async def _api_editmessagecaption(self, params: dict) -> dict:
        chat = self._resolve_chat(params, send=True)
        msg = self._own_message(chat, params)
        if "text" in msg:
            raise ApiError(400, "Bad Request: there is no caption in the message to edit")
        caption = self._str(params, "caption")
        parse_mode = self._str(params, "parse_mode")
        plain, ents = self._check_text(
            caption, parse_mode, self._json(params, "caption_entities"), caption=True
        )
        markup = self._check_markup(params)
        if (
            plain == msg.get("caption", "")
            and ents == msg.get("caption_entities", [])
            and markup == msg.get("reply_markup")
        ):
            raise ApiError(400, _NOT_MODIFIED)
        for key in ("caption", "caption_entities", "reply_markup"):
            msg.pop(key, None)
        if plain:
            msg["caption"] = plain
        if ents:
            msg["caption_entities"] = ents
        if markup:
            msg["reply_markup"] = markup
        msg["edit_date"] = int(time.time())
        self._record_edit(
            chat,
            "editMessageCaption",
            params,
            msg,
            text=caption,
            plain=plain,
            parse_mode=parse_mode,
            entities=ents,
        )
        return msg

    async def _api_editmessagereplymarkup(self, params: dict) -> dict:
        chat = self._resolve_chat(params, send=True)
        msg = self._own_message(chat, params)
        markup = self._check_markup(params)
        if markup == msg.get("reply_markup") or (not markup and "reply_markup" not in msg):
            raise ApiError(400, _NOT_MODIFIED)
        msg.pop("reply_markup", None)
        if markup:
            msg["reply_markup"] = markup
        msg["edit_date"] = int(time.time())
        self._record_edit(
            chat,
            "editMessageReplyMarkup",
            params,
            msg,
            text=None,
            plain=None,
            parse_mode=None,
        )
        return msg

    async def _api_deletemessage(self, params: dict) -> bool:
        chat = self._resolve_chat(params)
        message_id = self._int(params, "message_id")
        if self._messages.pop((chat.id, message_id or 0), None) is None:
            raise ApiError(400, "Bad Request: message to delete not found")
        return True

    # ------------------------------------------------------------------ other methods

    async def _api_getme(self, params: dict) -> dict:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": not self.privacy_mode,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _api_getupdates(self, params: dict) -> list[dict]:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify()  # wakes an older poller, which then answers 409
        offset = self._int(params, "offset", 0) or 0
        limit = max(1, min(100, self._int(params, "limit", 100) or 100))
        timeout = max(0.0, float(self._str(params, "timeout") or 0))
        allowed = self._json(params, "allowed_updates")
        if allowed is not None:
            self._allowed_updates = allowed or None
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        deadline = time.monotonic() + timeout
        while True:
            event = self._event()
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    f"{_TERMINATED}; make sure that only one bot instance is running",
                )
            ready = [u for u in self._updates if self._allowed(u)]
            remaining = deadline - time.monotonic()
            if ready or remaining <= 0 or self._closing:
                return ready[:limit]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    def _allowed(self, update: dict) -> bool:
        kind = next(k for k in update if k != "update_id")
        if self._allowed_updates is None:
            return kind not in ("chat_member", "message_reaction", "message_reaction_count")
        return kind in self._allowed_updates

    async def _api_deletewebhook(self, params: dict) -> bool:
        self.webhook_url = ""
        self.webhook_secret = None
        if self._bool(params, "drop_pending_updates"):
            self._updates.clear()
        # Not awaited: the pusher may be the one waiting on this bot's answer.
        if self._pusher is not None:
            self._pusher.cancel()
            self._pusher = None
        return True

    async def _api_setwebhook(self, params: dict) -> bool:
        url = self._str(params, "url") or ""
        if not url:
            return await self._api_deletewebhook(params)
        if not re.match(r"https?://[^/\s]+", url):
            raise ApiError(400, "Bad Request: bad webhook: invalid URL")
        secret = self._str(params, "secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        allowed = self._json(params, "allowed_updates")
        if allowed is not None:
            self._allowed_updates = allowed or None
        if self._bool(params, "drop_pending_updates"):
            self._updates.clear()
        self.webhook_url, self.webhook_secret = url, secret
        self._poll_generation += 1  # a getUpdates still waiting ends with 409
        self._notify()
        if self._pusher is None:
            self._pusher = asyncio.create_task(self._push_updates(), name="fake webhook pusher")
        return True

    async def _stop_pusher(self) -> None:
        if self._pusher is not None:
            self._pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pusher
            self._pusher = None

    async def _push_updates(self) -> None:
        """As Telegram does with a webhook: POST each update, in order, with
        the secret header; an update leaves the queue once the bot answered
        2xx, otherwise it is retried (Telegram backs off; here 0.1 s)."""
        async with aiohttp.ClientSession() as session:
            while not self._closing:
                event = self._event()
                ready = [u for u in self._updates if self._allowed(u)]
                if not ready:
                    await event.wait()
                    continue
                update = ready[0]
                headers = {"Content-Type": "application/json"}
                if self.webhook_secret is not None:
                    headers["X-Telegram-Bot-Api-Secret-Token"] = self.webhook_secret
                try:
                    async with session.post(
                        self.webhook_url, data=json.dumps(update), headers=headers
                    ) as response:
                        ok = 200 <= response.status < 300
                        failure = str(response.status)
                except (aiohttp.ClientError, OSError, TimeoutError) as e:
                    ok, failure = False, type(e).__name__
                if ok:
                    self._updates.remove(update)
                else:
                    self.webhook_failures.append((failure, update["update_id"]))
                    await asyncio.sleep(0.1)

    async def _api_getwebhookinfo(self, params: dict) -> dict:
        info: dict[str, Any] = {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook_failures:
            info["last_error_message"] = (
                f"Wrong response from the webhook: {self.webhook_failures[-1][0]}"
            )
        return info

    def _commands_key(self, params: dict) -> tuple[str, str]:
        scope = self._json(params, "scope") or {}
        if not isinstance(scope, dict):
            raise ApiError(400, "Bad Request: can't parse BotCommandScope JSON object")
        return scope.get("type", "default"), str(params.get("language_code") or "")

    async def _api_setmycommands(self, params: dict) -> bool:
        commands = self._json(params, "commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise ApiError(400, "Bad Request: can't parse commands JSON object")
        for cmd in commands:
            name = str(cmd.get("command", ""))
            desc = str(cmd.get("description", ""))
            if not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(desc) <= 256:
                raise ApiError(400, "Bad Request: command description must be 1-256 characters")
        self.commands[self._commands_key(params)] = commands
        return True

    async def _api_getmycommands(self, params: dict) -> list[dict]:
        return self.commands.get(self._commands_key(params), [])

    async def _api_deletemycommands(self, params: dict) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    async def _api_close(self, params: dict) -> bool:
        return True

    async def _api_logout(self, params: dict) -> bool:
        return True

    async def _api_getchat(self, params: dict) -> dict:
        chat = self._resolve_chat(params)
        return {
            **self._chat_json(chat),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    def _status(self, chat: _Chat, user_id: int) -> str:
        if user_id == self.bot_id:
            return chat.bot_status
        if chat.type == "private":
            if user_id == chat.id:
                return "member"
            raise ApiError(400, "Bad Request: user not found")
        if user_id == chat.creator:
            return "creator"
        if user_id in chat.admins:
            return "administrator"
        if user_id in chat.members:
            return "member"
        if user_id in self._users:
            return "left"
        raise ApiError(400, "Bad Request: user not found")

    async def _api_getchatmember(self, params: dict) -> dict:
        chat = self._resolve_chat(params)
        user_id = self._int(params, "user_id")
        if user_id is None:
            raise ApiError(400, "Bad Request: invalid user_id specified")
        status = self._status(chat, user_id)
        return self._member_json(chat, self._ensure_user(user_id), status)

    async def _api_getchatadministrators(self, params: dict) -> list[dict]:
        chat = self._resolve_chat(params)
        if chat.type == "private":
            raise ApiError(400, "Bad Request: there are no administrators in the private chat")
        out = []
        if chat.creator:
            out.append(self._member_json(chat, self._ensure_user(chat.creator), "creator"))
        for uid in sorted(chat.admins - {chat.creator}):
            out.append(self._member_json(chat, self._ensure_user(uid), "administrator"))
        if chat.bot_status == "administrator":
            out.append(self._member_json(chat, self.bot_user, "administrator"))
        return out

    async def _api_getchatmembercount(self, params: dict) -> int:
        chat = self._resolve_chat(params)
        if chat.type == "private":
            return 2
        humans = chat.admins | chat.members | ({chat.creator} if chat.creator else set())
        return len(humans) + (chat.bot_status in ("member", "administrator"))

    async def _api_leavechat(self, params: dict) -> bool:
        chat = self._resolve_chat(params)
        if chat.type == "private":
            raise ApiError(400, "Bad Request: chat member status can't be changed in private chats")
        chat.bot_status = "left"
        return True

    async def _api_answercallbackquery(self, params: dict) -> bool:
        query_id = self._str(params, "callback_query_id") or ""
        pressed = self._pending_callbacks.get(query_id)
        if pressed is None or time.monotonic() - pressed > self.callback_timeout:
            # Answered already, too late, or never sent: Telegram says the same for all.
            raise ApiError(
                400,
                "Bad Request: query is too old and response timeout expired or query ID is invalid",
            )
        text = self._str(params, "text")
        if text and len(text) > 200:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        del self._pending_callbacks[query_id]
        self.callback_answers.append(
            {
                "callback_query_id": query_id,
                "text": text,
                "show_alert": self._bool(params, "show_alert"),
            }
        )
        return True

    async def _api_getfile(self, params: dict) -> dict:
        f = self._files.get(self._str(params, "file_id") or "")
        if f is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if f.data is not None and len(f.data) > MAX_DOWNLOAD:
            raise ApiError(400, "Bad Request: file is too big")
        out: dict[str, Any] = {"file_id": f.file_id, "file_unique_id": f.file_unique_id}
        if f.data is not None:
            out["file_size"] = len(f.data)
            out["file_path"] = f.file_path
        return out
