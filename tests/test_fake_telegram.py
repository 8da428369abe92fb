"""The fake Telegram server answers a real PTB Bot the way Telegram would."""

from __future__ import annotations

import asyncio
import datetime as dtm
import time

import httpx
import pytest
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaAudio,
    InputMediaPhoto,
    LinkPreviewOptions,
    MessageEntity,
    Update,
)
from telegram.constants import ChatMemberStatus, ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
)
from telegram.ext import (
    Application,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    filters,
)

from testkit.fake_telegram import ANONYMOUS_ADMIN_ID, FakeTelegram

USER = 42
GROUP = -100
SUPERGROUP = -1001234567890
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
CHANNEL = -1009876543210


def seconds(value: int | dtm.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


@pytest.fixture
async def fake():
    async with FakeTelegram(token="123456:TEST") as fake:
        fake.add_user(USER, first_name="Alice", username="alice")
        fake.add_user(43, first_name="Bob")
        fake.add_group(GROUP, "Readers", admins={USER}, members={43}, creator=44)
        fake.add_channel(CHANNEL, "News", username="mychan", admins={USER})
        yield fake
        assert fake.internal_errors == []


@pytest.fixture
async def bot(fake):
    async with Bot(fake.token, base_url=fake.base_url, base_file_url=fake.base_file_url) as bot:
        yield bot


# --------------------------------------------------------------------------- basics


async def test_get_me_unknown_method_and_bad_token(fake, bot):
    me = await bot.get_me()
    assert (me.id, me.username, me.first_name) == (123456, "feedbot_test_bot", "Feedbot")
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("noSuchMethod")
    with pytest.raises(InvalidToken):
        async with Bot("999:WRONG", base_url=fake.base_url):
            pass
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{fake.base_url}{fake.token}/noSuchMethod")
    assert r.status_code == 404
    assert r.json() == {"ok": False, "error_code": 404, "description": "Not Found"}


async def test_valid_html_is_accepted_and_recorded(fake, bot):
    msg = await bot.send_message(
        USER,
        '<b>Title</b> &amp; <a href="https://example.com/a?b=1&amp;c=2">link</a> 🎉',
        parse_mode=ParseMode.HTML,
        link_preview_options=LinkPreviewOptions(is_disabled=True),
        disable_notification=True,
    )
    assert msg.text == "Title & link 🎉"
    assert msg.chat.id == USER and msg.from_user.id == fake.bot_id
    assert [e.type for e in msg.entities] == ["bold", "text_link"]
    assert msg.entities[1].url == "https://example.com/a?b=1&c=2"
    [sent] = fake.sent(USER)
    assert sent.method == "sendMessage"
    assert sent.text.startswith("<b>Title</b>")
    assert sent.plain == "Title & link 🎉"
    assert sent.parse_mode == "HTML"
    assert sent.link_preview_disabled and sent.disable_notification
    assert sent.message_id == msg.message_id
    assert fake.sent(43) == []


@pytest.mark.parametrize(
    ("html", "fragment"),
    [
        ("<p>para</p>", 'Unsupported start tag "p"'),
        ("<b>bold <i>both</b></i>", "Unmatched end tag"),
        ("<b>never closed", "Can't find end tag"),
        ("fish &chips", "Unsupported HTML entity"),
        ("1 > 0", "Unescaped '>'"),
    ],
)
async def test_invalid_html_is_rejected(fake, bot, html, fragment):
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities") as info:
        await bot.send_message(USER, html, parse_mode=ParseMode.HTML)
    # PTB drops "Bad Request: " and capitalizes (lower-casing the rest); the fake keeps
    # Telegram's exact description.
    assert fragment.lower() in info.value.message.lower()
    assert fake.sent() == []
    [(method, chat_id, code, description)] = fake.rejections
    assert (method, chat_id, code) == ("sendMessage", USER, 400)
    assert description.startswith("Bad Request: can't parse entities: ")
    assert fragment in description


async def test_lengths_are_counted_in_utf16(fake, bot):
    # 2100 emoji: only 2100 code points but 4200 UTF-16 units.
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(USER, "😀" * 2100, parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(USER, "😀" * 2100)
    await bot.send_message(USER, "😀" * 2048, parse_mode=ParseMode.HTML)  # exactly 4096
    # Markup does not count, only the parsed text.
    await bot.send_message(USER, "<b>" + "x" * 4096 + "</b>", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match=r"(?i)message caption is too long"):
        await bot.send_photo(USER, "https://e.com/p.jpg", caption="é😀" * 342, parse_mode="HTML")
    await bot.send_photo(USER, "https://e.com/p.jpg", caption="😀" * 512, parse_mode="HTML")
    assert [s.method for s in fake.sent()] == ["sendMessage", "sendMessage", "sendPhoto"]


async def test_empty_text_and_plain_entities(fake, bot):
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(USER, " \n ")
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(USER, "<b> </b>", parse_mode=ParseMode.HTML)
    # Explicit entities are checked against the UTF-16 length: "😀ab" is 4 units.
    await bot.send_message(USER, "😀ab", entities=[MessageEntity("bold", 0, 4)])
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(USER, "😀ab", entities=[MessageEntity("bold", 1, 4)])
    with pytest.raises(BadRequest, match=r"(?i)unsupported parse_mode"):
        await bot.send_message(USER, "x", parse_mode="XML")
    [ok] = fake.sent()
    assert ok.plain == "😀ab" and ok.entities == [{"type": "bold", "offset": 0, "length": 4}]


# --------------------------------------------------------------------------- chat errors


async def test_flood_gives_retry_after(fake, bot):
    fake.flood(USER, retry_after=3, times=1)
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(USER, "one")
    assert seconds(info.value.retry_after) == 3
    await bot.send_message(USER, "two")
    assert [s.text for s in fake.sent()] == ["two"]
    assert fake.count_429 == 1


async def test_blocked_kicked_deleted_unknown(fake, bot):
    fake.block(USER)
    with pytest.raises(Forbidden, match=r"(?i)bot was blocked by the user"):
        await bot.send_message(USER, "hi")
    fake.unblock(USER)
    await bot.send_message(USER, "hi again")

    fake.kick(GROUP)
    with pytest.raises(Forbidden, match=r"(?i)bot was kicked from the group chat"):
        await bot.send_message(GROUP, "hi")
    fake.kick(CHANNEL)
    with pytest.raises(Forbidden, match=r"(?i)bot is not a member of the channel chat"):
        await bot.send_message("@mychan", "hi")

    fake.delete_chat(43)
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message(43, "hi")
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message(777, "hi")
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.get_chat("@nosuchchannel")
    assert [s.text for s in fake.sent()] == ["hi again"]
    assert [r[2] for r in fake.rejections] == [403, 403, 403, 400, 400, 400]


async def test_channel_without_post_rights(fake, bot):
    fake.add_channel(-1005, "Quiet", username=None, bot_can_post=False)
    with pytest.raises(BadRequest, match=r"(?i)need administrator rights"):
        await bot.send_message(-1005, "hi")


async def test_migrated_group(fake, bot):
    fake.migrate(GROUP, SUPERGROUP)
    with pytest.raises(ChatMigrated) as info:
        await bot.send_message(GROUP, "hi")
    assert info.value.new_chat_id == SUPERGROUP
    msg = await bot.send_message(SUPERGROUP, "hi")
    assert msg.chat.type == "supergroup"
    assert [s.chat_id for s in fake.sent()] == [SUPERGROUP]


async def test_server_failures(fake, bot):
    fake.fail_server(times=1, status=500)
    with pytest.raises(NetworkError):
        await bot.send_message(USER, "a")
    fake.fail_server(times=1, status=0)  # dropped connection
    with pytest.raises(NetworkError):
        await bot.send_message(USER, "b")
    await bot.send_message(USER, "c")
    assert [s.text for s in fake.sent()] == ["c"]
    assert [r[2] for r in fake.rejections] == [500, 0]


# --------------------------------------------------------------------------- media


async def test_media_checks(fake, bot):
    fake.fail_media_url("broken.example", "Bad Request: failed to get HTTP URL content")
    with pytest.raises(BadRequest, match=r"(?i)failed to get HTTP URL content"):
        await bot.send_photo(USER, "https://broken.example/a.jpg")
    with pytest.raises(BadRequest, match=r"(?i)wrong file identifier/HTTP URL specified"):
        await bot.send_photo(USER, "ftp://example.com/a.jpg")
    with pytest.raises(BadRequest, match=r"(?i)wrong file identifier/HTTP URL specified"):
        await bot.send_video(USER, "not-a-file-id")
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_photo(USER, "https://e.com/a.jpg", caption="<x>", parse_mode="HTML")
    msg = await bot.send_video(
        USER, "https://e.com/v.mp4", caption="<b>v</b>", parse_mode=ParseMode.HTML
    )
    assert msg.video is not None and msg.caption == "v"
    audio = await bot.send_audio(USER, "https://e.com/a.mp3")
    assert audio.audio is not None and audio.caption is None
    [video, audio_sent] = fake.sent(USER)
    assert video.media == [("video", "https://e.com/v.mp4")] and video.plain == "v"
    assert audio_sent.text is None and audio_sent.media == [("audio", "https://e.com/a.mp3")]


async def test_media_group(fake, bot):
    photos = [
        InputMediaPhoto("https://e.com/1.jpg", caption="<b>One</b>", parse_mode="HTML"),
        InputMediaPhoto("https://e.com/2.jpg"),
        InputMediaPhoto("https://e.com/3.jpg"),
    ]
    msgs = await bot.send_media_group(USER, photos)
    assert len(msgs) == 3 and len({m.media_group_id for m in msgs}) == 1
    sent = fake.sent(USER)
    assert [s.media for s in sent] == [[("photo", f"https://e.com/{i}.jpg")] for i in (1, 2, 3)]
    assert [s.plain for s in sent] == ["One", None, None]

    with pytest.raises(BadRequest, match=r"(?i)audio can't be mixed"):
        await bot.send_media_group(
            USER, [InputMediaPhoto("https://e.com/1.jpg"), InputMediaAudio("https://e.com/a.mp3")]
        )
    with pytest.raises(BadRequest, match=r"(?i)2-10 items"):
        await bot.send_media_group(USER, photos[:1])
    with pytest.raises(BadRequest, match=r"(?i)too many messages"):
        await bot.send_media_group(USER, [InputMediaPhoto(f"https://e.com/{i}") for i in range(11)])
    with pytest.raises(BadRequest, match=r"(?i)message caption is too long"):
        await bot.send_media_group(
            USER, [InputMediaPhoto("https://e.com/1", caption="x" * 1025), photos[1]]
        )
    fake.fail_media_url("e.com/2.jpg")
    with pytest.raises(BadRequest, match=r"(?i)wrong file identifier"):
        await bot.send_media_group(USER, photos)
    assert len(fake.sent()) == 3


async def test_send_document_upload_and_user_document(fake, bot):
    opml = b'<?xml version="1.0"?><opml version="2.0"><body/></opml>'
    msg = await bot.send_document(USER, opml, filename="feeds.opml", caption="Your feeds")
    assert msg.document.file_name == "feeds.opml"
    [sent] = fake.sent(USER)
    assert sent.media == [("document", "attach://feeds.opml")]
    assert sent.files[0].data == opml and sent.files[0].filename == "feeds.opml"
    # The file_id Telegram returned can be sent again.
    await bot.send_document(43, msg.document.file_id)

    update_id = fake.user_sends_document(USER, USER, "mine.opml", b"<opml/>", caption="import")
    [update] = await bot.get_updates(offset=update_id, timeout=1)
    doc = update.message.document
    assert (doc.file_name, doc.file_size, update.message.caption) == ("mine.opml", 7, "import")
    file = await bot.get_file(doc.file_id)
    assert file.file_path.startswith(fake.base_file_url)
    assert bytes(await file.download_as_bytearray()) == b"<opml/>"
    with pytest.raises(BadRequest, match=r"(?i)invalid file_id"):
        await bot.get_file("nope")


# --------------------------------------------------------------------------- rate limits


async def test_limits_private_burst(fake, bot):
    fake.limits = True
    with pytest.raises(RetryAfter) as info:
        for i in range(5):
            await bot.send_message(USER, f"m{i}")
    assert seconds(info.value.retry_after) >= 1
    assert 1 <= len(fake.sent(USER)) < 5
    assert fake.count_429 == 1


async def test_limits_private_album_larger_than_the_burst(fake, bot):
    fake.limits = True
    album = [InputMediaPhoto(f"https://e.com/{i}") for i in range(10)]
    await bot.send_media_group(USER, album)  # a full bucket lets a whole album through
    assert len(fake.sent(USER)) == 10
    with pytest.raises(RetryAfter) as info:  # and leaves the chat in debt
        await bot.send_message(USER, "right after")
    assert seconds(info.value.retry_after) >= 7


async def test_limits_group_per_minute_counts_media_group_items(fake, bot):
    fake.limits = True
    for i in range(9):
        await bot.send_message(GROUP, f"m{i}")
    await bot.send_media_group(GROUP, [InputMediaPhoto(f"https://e.com/{i}") for i in range(10)])
    assert len(fake.sent(GROUP)) == 19
    with pytest.raises(RetryAfter) as info:
        await bot.send_media_group(GROUP, [InputMediaPhoto(f"https://e.com/{i}") for i in (1, 2)])
    assert 50 <= seconds(info.value.retry_after) <= 60
    await bot.send_message(GROUP, "the twentieth")
    with pytest.raises(RetryAfter):
        await bot.send_message(GROUP, "the twenty-first")


async def test_limits_off_by_default(fake, bot):
    for i in range(6):
        await bot.send_message(USER, f"m{i}")
    assert fake.count_429 == 0


# --------------------------------------------------------------------------- chat info


async def test_chat_member_statuses(fake, bot):
    async def status(chat, user):
        return (await bot.get_chat_member(chat, user)).status

    assert await status(GROUP, 44) == ChatMemberStatus.OWNER
    assert await status(GROUP, USER) == ChatMemberStatus.ADMINISTRATOR
    assert await status(GROUP, 43) == ChatMemberStatus.MEMBER
    assert await status(GROUP, fake.bot_id) == ChatMemberStatus.MEMBER
    fake.add_user(45)
    assert await status(GROUP, 45) == ChatMemberStatus.LEFT
    with pytest.raises(BadRequest, match=r"(?i)user not found"):
        await bot.get_chat_member(GROUP, 999)

    me = await bot.get_chat_member("@mychan", fake.bot_id)
    assert me.status == ChatMemberStatus.ADMINISTRATOR and me.can_post_messages is True
    fake.add_channel(-1006, "Other", username="other", bot_can_post=False)
    me = await bot.get_chat_member(-1006, fake.bot_id)
    assert me.status == ChatMemberStatus.ADMINISTRATOR and me.can_post_messages is False
    fake.add_channel(-1007, "Third", username=None, bot_is_admin=False)
    assert await status(-1007, fake.bot_id) == ChatMemberStatus.MEMBER

    admins = await bot.get_chat_administrators(GROUP)
    assert {(a.user.id, a.status) for a in admins} == {(44, "creator"), (USER, "administrator")}
    chat = await bot.get_chat("@mychan")
    assert (chat.id, chat.type, chat.title) == (CHANNEL, "channel", "News")
    assert (await bot.get_chat(USER)).first_name == "Alice"
    assert await bot.leave_chat(GROUP) is True
    with pytest.raises(Forbidden):
        await bot.send_message(GROUP, "gone")


async def test_edit_message_and_keyboard(fake, bot):
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Unsub", callback_data="u:1")]])
    msg = await bot.send_message(USER, "<b>list</b>", parse_mode="HTML", reply_markup=keyboard)
    assert msg.reply_markup == keyboard
    edited = await bot.edit_message_text(
        "<i>new</i>", chat_id=USER, message_id=msg.message_id, parse_mode="HTML"
    )
    assert edited.text == "new" and edited.reply_markup is None  # keyboard not repeated
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text("<i>new</i>", USER, msg.message_id, parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.edit_message_text("<i>new", USER, msg.message_id, parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", USER, 999)
    await bot.edit_message_reply_markup(USER, msg.message_id, reply_markup=keyboard)
    assert fake.message(USER, msg.message_id)["reply_markup"] == keyboard.to_dict()
    assert [e.method for e in fake.edits] == ["editMessageText", "editMessageReplyMarkup"]
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        bad = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="d" * 65)]])
        await bot.send_message(USER, "x", reply_markup=bad)

    fake.user_presses_button(USER, USER, msg.message_id, "u:1")
    [update] = await bot.get_updates(timeout=1)
    assert update.callback_query.data == "u:1"
    assert await bot.answer_callback_query(update.callback_query.id, "Done") is True
    assert fake.callback_answers[0]["text"] == "Done"


async def test_callback_queries_are_as_strict_as_telegram(fake, bot):
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Go", callback_data="go")]])
    msg = await bot.send_message(USER, "offer", reply_markup=keyboard)
    with pytest.raises(ValueError, match="no button"):
        fake.user_presses_button(USER, USER, msg.message_id, "other")  # not on the message
    fake.user_presses_button(USER, USER, msg.message_id, "go")
    [update] = await bot.get_updates(timeout=1)
    query_id = update.callback_query.id
    assert fake.unanswered_callbacks() == [query_id]
    assert await bot.answer_callback_query(query_id) is True
    assert fake.unanswered_callbacks() == []
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query(query_id)  # once only
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query("12345")  # never sent

    fake.callback_timeout = 0.0
    fake.user_presses_button(USER, USER, msg.message_id, "go")
    [late] = await bot.get_updates(offset=update.update_id + 1, timeout=1)
    await asyncio.sleep(0.01)
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query(late.callback_query.id)

    # The keyboard taken away: its button can no longer be pressed.
    await bot.edit_message_reply_markup(USER, msg.message_id, reply_markup=None)
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_reply_markup(USER, msg.message_id, reply_markup=None)
    with pytest.raises(ValueError, match="no button"):
        fake.user_presses_button(USER, USER, msg.message_id, "go")


async def test_replies_and_chat_action(fake, bot):
    fake.user_says(GROUP, 43, "/list")
    [update] = await bot.get_updates(timeout=0)
    update.message.set_bot(bot)
    reply = await update.message.reply_text("Nothing yet", do_quote=True)
    assert reply.reply_to_message.message_id == update.message.message_id
    assert fake.sent(GROUP)[0].params["reply_parameters"]
    with pytest.raises(BadRequest, match=r"(?i)message to be replied not found"):
        await bot.send_message(GROUP, "x", reply_to_message_id=9999)
    await bot.send_message(GROUP, "x", reply_to_message_id=9999, allow_sending_without_reply=True)
    assert await bot.send_chat_action(USER, "typing") is True


async def test_commands(fake, bot):
    assert await bot.set_my_commands([("start", "Start"), ("list", "List feeds")]) is True
    assert [c.command for c in await bot.get_my_commands()] == ["start", "list"]
    with pytest.raises(BadRequest, match=r"(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([("Bad-Command", "x")])
    assert await bot.delete_webhook() is True


# --------------------------------------------------------------------------- updates


async def test_get_updates_long_poll_offset_and_entities(fake, bot):
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, fake.user_says, USER, USER, "😀 /add@feedbot_test_bot https://e.com")
    start = time.monotonic()
    [update] = await bot.get_updates(timeout=5)
    assert time.monotonic() - start < 2  # answered as soon as the update arrived
    assert update.message.text.startswith("😀 /add")
    [entity] = update.message.entities
    assert (entity.type, entity.offset, entity.length) == ("bot_command", 3, 21)
    assert update.message.parse_entity(entity) == "/add@feedbot_test_bot"

    second = fake.user_says(USER, USER, "/start")
    assert len(await bot.get_updates(timeout=0)) == 2  # not confirmed yet
    [update] = await bot.get_updates(offset=second, timeout=0)
    assert update.update_id == second and update.message.text == "/start"
    assert await bot.get_updates(offset=second + 1, timeout=0) == ()

    # Privacy mode: plain talk in a group is not delivered, commands are.
    assert fake.user_says(GROUP, 43, "hello all") is None
    assert fake.user_says(GROUP, 43, "/list@other_bot") is None
    assert fake.user_says(GROUP, 43, "/list") is not None
    anon = fake.anonymous_admin_says(GROUP, "/start")
    updates = await bot.get_updates(offset=second + 1, timeout=0)
    assert [u.message.text for u in updates] == ["/list", "/start"]
    assert updates[-1].update_id == anon
    assert updates[-1].message.from_user.id == ANONYMOUS_ADMIN_ID
    assert updates[-1].message.sender_chat.id == GROUP


async def test_concurrent_get_updates_conflict(fake, bot):
    first = asyncio.create_task(bot.get_updates(timeout=3))
    await asyncio.sleep(0.1)
    async with Bot(fake.token, base_url=fake.base_url) as other_instance:
        assert await other_instance.get_updates(timeout=0) == ()
    with pytest.raises(Conflict, match=r"(?i)terminated by other getUpdates request"):
        await first
    assert fake.update_conflicts == 1


async def test_application_polling_handlers(fake):
    seen: dict[str, Update] = {}

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        seen["start"] = update
        await update.effective_chat.send_message("Welcome!")

    async def chan(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        seen["channel"] = update
        await context.bot.send_message(update.effective_chat.id, f"args={context.args}")

    async def member(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        seen[update.my_chat_member.new_chat_member.status] = update

    app = (
        Application.builder()
        .token(fake.token)
        .base_url(fake.base_url)
        .base_file_url(fake.base_file_url)
        .build()
    )
    app.add_handler(CommandHandler("start", start, filters=~filters.UpdateType.CHANNEL_POST))
    app.add_handler(CommandHandler("ping", chan, filters=filters.UpdateType.CHANNEL_POST))
    app.add_handler(ChatMemberHandler(member, ChatMemberHandler.MY_CHAT_MEMBER))
    await app.initialize()
    await app.start()
    await app.updater.start_polling(poll_interval=0.0, timeout=1)
    try:
        fake.user_says(USER, USER, "/start")
        [reply] = await fake.wait_sent(USER, 1, timeout=5)
        assert reply.text == "Welcome!"
        assert seen["start"].message.from_user.id == USER

        fake.channel_post(CHANNEL, "/ping now")
        [post] = await fake.wait_sent(CHANNEL, 1, timeout=5)
        assert post.text == "args=['now']"
        assert seen["channel"].channel_post.sender_chat.id == CHANNEL

        fake.add_bot_to_group(-555, by_user_id=43)
        fake.remove_bot_from_group(-555, by_user_id=43)
        for _ in range(100):
            if "kicked" in seen:
                break
            await asyncio.sleep(0.05)
        added = seen["member"].my_chat_member
        assert (added.chat.id, added.from_user.id, added.old_chat_member.status) == (
            -555,
            43,
            "left",
        )
        assert seen["kicked"].my_chat_member.old_chat_member.status == "member"
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
    # Stopping abandons a long poll; its late 409 is not counted as a rejection.
    assert [r for r in fake.rejections if r[0] == "getUpdates"] == []
    assert fake.update_conflicts == 0
    with pytest.raises(AssertionError, match=r"(?i)expected 5 message"):
        await fake.wait_sent(USER, 5, timeout=0.1)
    async with Bot(fake.token, base_url=fake.base_url) as bot:
        with pytest.raises(Forbidden, match=r"(?i)kicked"):
            await bot.send_message(-555, "still there?")
