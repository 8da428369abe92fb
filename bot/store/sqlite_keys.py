"""The key layout of the sqlitedict backend: everything in ONE table.

One table, because sqlitedict gives every ``SqliteDict`` its own connection
and thread: separate tables would commit separately, and a poll must mark its
entries seen and queue their deliveries in one atomic commit.

Keys are prefixed strings (``SEP`` is ``\\x1f``; a URL or entry key is escaped
with :func:`esc` so it never contains ``SEP``)::

    meta:schema                  layout version
    meta:seq                     last outbox seq handed out (monotonic)
    meta:subseq                  last Subscription.seq handed out
    chat:{chat_id}               Chat
    feed:{url}                   Feed
    due:{when}SEP{url}           url      (index: feeds not gone, by next_poll)
    lease:{url}                  {"owner", "until"}   (a claimed feed)
    sub:{chat_id}SEP{url}        Subscription            (a chat's subscriptions)
    fsub:{url}SEP{chat_id}       chat_id                 (index: a feed's subscribers)
    seen:{url}SEP{key}           unix time last marked   (one row per seen key)
    outbox:{seq:020d}            a delivery, its entry by reference
    cbox:{chat_id}SEP{seq:020d}  1        (index: a chat's deliveries, in order)
    chead:{seq:020d}             chat_id  (index: each chat's oldest delivery)
    hseq:{chat_id}               seq of that chat's chead row
    entry:{digest}               Entry, stored once however many chats get it
    eref:{digest}                how many outbox rows refer to entry:{digest}

Every look-up is a primary-key search and every listing a range query on the
key index (``prefix <= key < upper(prefix)``), never a scan of the table.
"""

from __future__ import annotations

import re
import struct

SCHEMA = 2
SEP = "\x1f"
OUTBOX = "outbox:"
ENTRY = "entry:"
DUE = "due:"
LEASE = "lease:"
CHEAD = "chead:"

# \x1e starts an escape, \x1f separates key parts; lone surrogates cannot be
# encoded as UTF-8, so SQLite could not bind them.
_ESCAPED = re.compile("[\x1e\x1f\ud800-\udfff]")
_UNESCAPE = re.compile("\x1e([0-9a-f]{4})")


def esc(part: str) -> str:
    """Escape a key part injectively so that it never contains ``SEP``."""
    if _ESCAPED.search(part) is None:
        return part
    return _ESCAPED.sub(lambda m: f"\x1e{ord(m.group()):04x}", part)


def unesc(part: str) -> str:
    return _UNESCAPE.sub(lambda m: chr(int(m.group(1), 16)), part)


def upper(prefix: str) -> str:
    """The least string above every string that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def sortable(value: float) -> str:
    """A float as 16 hex digits that sort as the numbers do, losslessly.

    A rounded decimal would put 100.0000001 and 100 in the same place, and a
    claim at ``now == 100`` must not take the first. IEEE doubles compare like
    their bits once the sign is folded in: flip every bit of a negative, the
    sign bit of a positive.
    """
    (bits,) = struct.unpack(">Q", struct.pack(">d", float(value) + 0.0))
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits | 1 << 63
    return f"{bits:016x}"


def chat_key(chat_id: int) -> str:
    return f"chat:{chat_id}"


def feed_key(url: str) -> str:
    return f"feed:{esc(url)}"


def due_key(next_poll: float, url: str) -> str:
    return f"{DUE}{sortable(next_poll)}{SEP}{esc(url)}"


def due_upto(now: float) -> str:
    """The least key above every due key with ``next_poll <= now``."""
    return f"{DUE}{sortable(now)}{upper(SEP)}"


def lease_key(url: str) -> str:
    return f"{LEASE}{esc(url)}"


def sub_prefix(chat_id: int) -> str:
    return f"sub:{chat_id}{SEP}"


def sub_key(chat_id: int, url: str) -> str:
    return f"{sub_prefix(chat_id)}{esc(url)}"


def fsub_prefix(url: str) -> str:
    return f"fsub:{esc(url)}{SEP}"


def fsub_key(url: str, chat_id: int) -> str:
    return f"{fsub_prefix(url)}{chat_id}"


def seen_prefix(url: str) -> str:
    return f"seen:{esc(url)}{SEP}"


def outbox_key(seq: int) -> str:
    return f"{OUTBOX}{seq:020d}"


def seq_of(key: str, prefix: str = OUTBOX) -> int:
    return int(key[len(prefix) :])


def cbox_prefix(chat_id: int) -> str:
    return f"cbox:{chat_id}{SEP}"


def cbox_key(chat_id: int, seq: int) -> str:
    return f"{cbox_prefix(chat_id)}{seq:020d}"


def chead_key(seq: int) -> str:
    return f"{CHEAD}{seq:020d}"


def hseq_key(chat_id: int) -> str:
    return f"hseq:{chat_id}"


def entry_key(digest: str) -> str:
    return f"{ENTRY}{digest}"


def eref_key(digest: str) -> str:
    return f"eref:{digest}"
