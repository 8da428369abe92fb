"""Chat-facing commands. Handlers stay thin: parse, check rights, call
bot.subscriptions, reply."""

from __future__ import annotations

from telegram import BotCommand, Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.commands import admin, basic, choose, feeds, gate, opml

#: Commands arrive as messages in private chats and groups, and as channel
#: posts in channels (which only the channel's administrators can make).
COMMAND_UPDATES = filters.UpdateType.MESSAGE | filters.UpdateType.CHANNEL_POST

MENU = [
    BotCommand("subscribe", "Follow a feed: /subscribe URL"),
    BotCommand("list", "This chat's subscriptions"),
    BotCommand("unsubscribe", "Stop a feed: /unsubscribe URL or N"),
    BotCommand("set", "A subscription's settings: /set N [key value]"),
    BotCommand("export", "Subscriptions as an OPML file"),
    BotCommand("import", "Subscribe to the feeds of an OPML file"),
    BotCommand("help", "What I do and how"),
]


def register(application: Application) -> None:
    # Before every command: access and the per-user command rate.
    application.add_handler(TypeHandler(Update, gate.gate), group=-1)
    handlers = {
        ("start",): basic.start,
        ("help",): basic.help_command,
        ("subscribe", "sub"): feeds.subscribe,
        ("unsubscribe", "unsub"): feeds.unsubscribe,
        ("list",): feeds.list_command,
        ("set",): feeds.set_command,
        ("export",): opml.export_command,
        ("import",): opml.import_command,
        # Operators only (telegram.admins); not in the menu everyone sees.
        ("stats",): admin.stats_command,
        ("broadcast",): admin.broadcast_command,
    }
    for names, callback in handlers.items():
        application.add_handler(CommandHandler(names, callback, filters=COMMAND_UPDATES))
    # A document sent with "/import" as its caption (CommandHandler reads text only).
    application.add_handler(
        MessageHandler(
            filters.Document.ALL & filters.CaptionRegex(r"^/import(@\w+)?(\s|$)"),
            opml.import_command,
        )
    )
    # The button of the offer below.
    application.add_handler(
        CallbackQueryHandler(opml.import_button, pattern=opml.IMPORT_BUTTON_PATTERN)
    )
    # A feed picked among those a web page names.
    application.add_handler(CallbackQueryHandler(choose.picked, pattern=choose.PICK_PATTERN))
    application.add_handler(
        CallbackQueryHandler(admin.broadcast_button, pattern=admin.BUTTON_PATTERN)
    )
    application.add_handler(ChatMemberHandler(basic.membership, ChatMemberHandler.MY_CHAT_MEMBER))
    application.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, basic.migrated))
    # Last: whatever no handler above took, in a private chat.
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    # Any other document: an OPML file gets an offer to import it, the rest a hint.
    application.add_handler(MessageHandler(private & filters.Document.ALL, opml.document_offer))
    application.add_handler(MessageHandler(private & filters.COMMAND, basic.unknown_command))
    application.add_handler(MessageHandler(private & filters.TEXT, basic.plain_text))
