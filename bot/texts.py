"""The words the bot says to people, by code.

Templates are Telegram HTML: whoever fills one escapes user and feed text
(``bot.subscriptions.esc``) before passing it in. Keeping the words here, and
only codes and parameters in the services, is what a translation will need.
"""

from __future__ import annotations

from collections.abc import Mapping

CATALOGUE: dict[str, str] = {
    # Notices about a feed, sent from the outbox as plain text.
    "feed.gone": (
        "The feed {title} ({url}) is gone: the server says it was removed (410). "
        "I stopped checking it; /unsubscribe it when you like."
    ),
    "feed.failing": (
        "The feed {title} ({url}) has been failing for a day: {error} "
        "I keep trying, less often; nothing is lost when it comes back."
    ),
    "feed.back": "The feed {title} ({url}) works again; what it published meanwhile follows.",
    # /start and /help
    "start.greeting": (
        "Hello! I post new entries of RSS, Atom and JSON feeds into this chat.\n\n"
        "To begin, send /subscribe and the address of a feed or of a site, for example:\n"
        "/subscribe https://blog.python.org/feeds/posts/default\n\n"
        "/help lists everything I can do."
    ),
    "start.welcome_back": "Welcome back: your subscriptions are active again.",
    "help.commands": (
        "I post new entries of RSS, Atom and JSON feeds into this chat.\n\n"
        "/subscribe URL [URL…] (or /sub): follow feeds\n"
        "/list: this chat's subscriptions, numbered\n"
        "/unsubscribe URL or N (or /unsub): stop one\n"
        "/set N: show a subscription's settings; /set N key value changes one:\n"
        "  summary none|short|full, media on|off, preview on|off, silent on|off,\n"
        "  author on|off, feed on|off, tags on|off\n"
        "/export and /import: subscriptions as OPML\n\n"
        "In a group, only its administrators change subscriptions; anyone may /list.\n"
        "{channel_help}"
    ),
    "help.channel_private": (
        "For a channel, make me an administrator who may post there,\n"
        "then from this private chat:\n"
        "/subscribe @channel URL, /list @channel, /unsubscribe @channel N."
    ),
    "help.channel_group": (
        "For a channel, make me an administrator who may post there,\n"
        "then write to me in a private chat (@{bot}):\n"
        "/subscribe @channel URL, /list @channel, /unsubscribe @channel N."
    ),
    # chat references (/subscribe @channel URL …)
    "ref.neither": (
        "“{word}” is neither a feed address nor a channel (@name or its -100… id), "
        "so I did nothing."
    ),
    "usage.list": "Usage: /list, or /list @channel from a private chat.",
    # /export
    "export.caption": "{count} subscription",
    "export.caption_plural": "{count} subscriptions",
    # /import
    "import.summary": "{where}The file lists {total} {feeds}: {parts}.",
    "subscribe.summary": "{where}{total} {feeds}: {parts}.",
    "subscribe.added": "added {count}",
    "subscribe.already": "already there {count}",
    "subscribe.failed": "failed {count}",
    "subscribe.left_out": (
        "Left out {count} {feeds}: this chat may have at most {quota} subscriptions."
    ),
    "subscribe.choose": "{page} is a web page that names {count} feeds. Which one?",
    "subscribe.chosen_declared": "(the feed that {page} names)",
    "subscribe.chosen_guessed": "(found at a usual address beside {page})",
    "subscribe.choice_gone": "That choice is no longer available: send /subscribe again.",
    "subscribe.choice_not_yours": "Only the one who sent /subscribe can choose.",
    "subscribe.host_busy": (
        "Not subscribed to {url}: {host} is answering many other requests of mine "
        "slowly right now. Try again in a minute."
    ),
    "subscribe.progress": "Subscribing… {done} of {total} feeds checked.",
    "import.offer": ("This file lists {count} {feeds} (OPML). Import {them} into this chat?"),
    "import.offer_button": "Import {count} {feeds}",
    "import.offer_gone": "That file is no longer available: send it again.",
    "import.offer_started": "Importing…",
    # operators (bot/commands/admin.py)
    "admin.refused": "That command is for the bot's operators.",
    "admin.stats": (
        "<b>Chats</b>: {chats}\n"
        "<b>Feeds</b>: {feeds}, failing {failing}\n"
        "<b>Subscriptions</b>: {subscriptions}\n"
        "<b>Outbox</b>: {depth} queued{oldest}\n"
        "<b>Last hour</b> (this process): {polls} polls, {sent} deliveries sent"
    ),
    "admin.stats_kind": "{kind} {active} active, {paused} paused",
    "admin.stats_no_chats": "none",
    "admin.stats_oldest": ", the oldest waiting {age}",
    "admin.broadcast_usage": (
        "Usage: /broadcast TEXT: sends TEXT, as plain text, to every active private chat."
    ),
    "admin.broadcast_confirm": ("Send this to every active private chat ({count} now)?\n\n{text}"),
    "admin.broadcast_button": "Send to {count} chats",
    "admin.broadcast_cancel_button": "Cancel",
    "admin.broadcast_cancelled": "Broadcast cancelled.",
    "admin.broadcast_gone": "That broadcast can no longer be found: send /broadcast again.",
    "admin.broadcast_started": "Broadcasting…",
    "admin.broadcast_progress": "Broadcast: {done} of {total} chats done.",
    "admin.broadcast_done": "Broadcast done: {total} chats.",
    # The broadcast itself, as the outbox sends it (plain text).
    "admin.broadcast": "{text}",
    "import.document_hint": (
        "I can import an OPML file of subscriptions; other files I can't use. "
        "To follow a feed, send /subscribe URL."
    ),
}


def say(code: str, params: Mapping[str, object] | None = None, **more: object) -> str:
    """The catalogue's text for ``code``, filled with ``params`` and ``more``."""
    values = {**(params or {}), **more}
    return CATALOGUE[code].format_map(values)


def plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many
