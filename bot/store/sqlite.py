"""The sqlitedict backend: everything in ONE table of one SQLite file.

One table, because sqlitedict gives every ``SqliteDict`` its own connection
and thread: separate tables would commit separately, and a poll must mark its
entries seen and queue their deliveries in one atomic commit.

Keys are prefixed strings (``SEP`` is ``\\x1f``; a URL or entry key is escaped
with :func:`_esc` so it never contains ``SEP``)::

    meta:seq                     last outbox seq handed out (monotonic)
    meta:schema                  layout version
    chat:{chat_id}               Chat
    feed:{url}                   Feed
    sub:{chat_id}SEP{url}        Subscription            (a chat's subscriptions)
    fsub:{url}SEP{chat_id}       chat_id                 (index: a feed's subscribers)
    seen:{url}SEP{key}           unix time last marked   (one row per seen key)
    outbox:{seq:020d}            a Delivery, its entry by reference
    cbox:{chat_id}SEP{seq:020d}  1                       (index: a chat's deliveries)
    entry:{digest}               Entry, stored once however many chats get it
    eref:{digest}                how many outbox rows refer to entry:{digest}

Values are JSON (no pickle). Every look-up is a primary-key search and every
listing a range query on the key index (``prefix <= key < upper(prefix)``),
never a scan of the table; seen keys are individual rows, so checking or
marking one costs the same whatever the size of the feed's history.

SQL goes straight to sqlitedict's connection thread (``SqliteDict.conn``),
which runs statements in order on one sqlite3 connection: reads see the
writes not yet committed. ``synchronous=FULL`` (sqlitedict sets OFF) makes a
returned ``commit()`` durable even against power loss.
"""

from __future__ import annotations

import json
import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any

from sqlitedict import SqliteDict

from bot.models import Chat, ChatKind, Delivery, Entry, Feed, Subscription
from bot.store import codec
from bot.store.base import Store

log = logging.getLogger(__name__)

TABLE = "feedbot"
SCHEMA = 1
SEP = "\x1f"
OUTBOX = "outbox:"
ENTRY = "entry:"
#: Decoded entries kept in memory, by digest.
_ENTRY_CACHE = 256
#: Keys per ``WHERE key IN (…)`` statement (well under SQLite's variable limit).
_CHUNK = 500

_dumps = partial(json.dumps, separators=(",", ":"))

# \x1e starts an escape, \x1f separates key parts; lone surrogates cannot be
# encoded as UTF-8, so SQLite could not bind them.
_ESCAPED = re.compile("[\x1e\x1f\ud800-\udfff]")


def _esc(part: str) -> str:
    """Escape a key part injectively so that it never contains ``SEP``."""
    if _ESCAPED.search(part) is None:
        return part
    return _ESCAPED.sub(lambda m: f"\x1e{ord(m.group()):04x}", part)


def _upper(prefix: str) -> str:
    """The least string above every string that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


# -- keys --------------------------------------------------------------------
def _chat_key(chat_id: int) -> str:
    return f"chat:{chat_id}"


def _feed_key(url: str) -> str:
    return f"feed:{_esc(url)}"


def _sub_key(chat_id: int, url: str) -> str:
    return f"{_sub_prefix(chat_id)}{_esc(url)}"


def _sub_prefix(chat_id: int) -> str:
    return f"sub:{chat_id}{SEP}"


def _fsub_prefix(url: str) -> str:
    return f"fsub:{_esc(url)}{SEP}"


def _fsub_key(url: str, chat_id: int) -> str:
    return f"{_fsub_prefix(url)}{chat_id}"


def _seen_prefix(url: str) -> str:
    return f"seen:{_esc(url)}{SEP}"


def _outbox_key(seq: int) -> str:
    return f"{OUTBOX}{seq:020d}"


def _seq_of(outbox_key: str) -> int:
    return int(outbox_key.removeprefix(OUTBOX))


def _cbox_prefix(chat_id: int) -> str:
    return f"cbox:{chat_id}{SEP}"


def _cbox_key(chat_id: int, seq: int) -> str:
    return f"{_cbox_prefix(chat_id)}{seq:020d}"


def _entry_key(digest: str) -> str:
    return f"{ENTRY}{digest}"


def _eref_key(digest: str) -> str:
    return f"eref:{digest}"


class SqliteStore(Store):
    """:class:`Store` on one sqlitedict table in the SQLite file at ``path``.

    The parent directory must exist (``open_store`` creates it).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: SqliteDict | None = SqliteDict(
            path,
            tablename=TABLE,
            autocommit=False,
            journal_mode="WAL",
            encode=_dumps,
            decode=json.loads,
            outer_stack=False,
        )
        self._table = self._db.tablename  # already quote-escaped by sqlitedict
        self._db.conn.execute("PRAGMA synchronous=FULL")
        if self._get("meta:schema") is None:
            self._put("meta:schema", SCHEMA)
            self.commit()
        self._seq = self._load_seq()
        self._entry_cache: OrderedDict[str, Entry] = OrderedDict()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- raw access ------------------------------------------------------------
    # All SQL goes through _select and _execute (tests wrap them to see it).
    def _conn(self) -> Any:
        if self._db is None:
            raise RuntimeError("store is closed")
        return self._db.conn

    def _select(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self._conn().select(sql, tuple(args)))

    def _execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        self._conn().execute(sql, tuple(args))

    def _get(self, key: str) -> Any:
        rows = self._select(f'SELECT value FROM "{self._table}" WHERE key = ?', (key,))
        return json.loads(rows[0][0]) if rows else None

    def _get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for chunk in _chunks(list(dict.fromkeys(keys))):
            marks = ",".join("?" * len(chunk))
            sql = f'SELECT key, value FROM "{self._table}" WHERE key IN ({marks})'
            for key, value in self._select(sql, chunk):
                found[key] = json.loads(value)
        return found

    def _has_many(self, keys: Iterable[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(list(dict.fromkeys(keys))):
            marks = ",".join("?" * len(chunk))
            sql = f'SELECT key FROM "{self._table}" WHERE key IN ({marks})'
            found.update(key for (key,) in self._select(sql, chunk))
        return found

    def _scan(self, prefix: str) -> list[tuple[str, Any]]:
        """Every (key, value) whose key starts with ``prefix``, in key order."""
        sql = f'SELECT key, value FROM "{self._table}" WHERE key >= ? AND key < ? ORDER BY key'
        return [(k, json.loads(v)) for k, v in self._select(sql, (prefix, _upper(prefix)))]

    def _put(self, key: str, value: Any) -> None:
        sql = f'REPLACE INTO "{self._table}" (key, value) VALUES (?, ?)'
        self._execute(sql, (key, _dumps(value)))

    def _delete(self, key: str) -> None:
        self._execute(f'DELETE FROM "{self._table}" WHERE key = ?', (key,))

    def _delete_prefix(self, prefix: str) -> None:
        sql = f'DELETE FROM "{self._table}" WHERE key >= ? AND key < ?'
        self._execute(sql, (prefix, _upper(prefix)))

    def _load_seq(self) -> int:
        seq = int(self._get("meta:seq") or 0)
        sql = (
            f'SELECT key FROM "{self._table}" WHERE key >= ? AND key < ? ORDER BY key DESC LIMIT 1'
        )
        rows = self._select(sql, (OUTBOX, _upper(OUTBOX)))
        if rows:
            seq = max(seq, _seq_of(rows[0][0]))
        return seq

    # -- chats -----------------------------------------------------------------
    def get_chat(self, chat_id: int) -> Chat | None:
        d = self._get(_chat_key(chat_id))
        return None if d is None else codec.chat_from_dict(d)

    def put_chat(self, chat: Chat) -> None:
        self._put(_chat_key(chat.id), codec.chat_to_dict(chat))

    # -- feeds -----------------------------------------------------------------
    def get_feed(self, url: str) -> Feed | None:
        d = self._get(_feed_key(url))
        return None if d is None else codec.feed_from_dict(d)

    def put_feed(self, feed: Feed) -> None:
        self._put(_feed_key(feed.url), codec.feed_to_dict(feed))

    def delete_feed(self, url: str) -> None:
        self._delete(_feed_key(url))
        self._delete_prefix(_seen_prefix(url))

    def feeds(self) -> list[Feed]:
        return [codec.feed_from_dict(d) for _, d in self._scan("feed:")]

    def move_feed(self, old_url: str, new_url: str) -> None:
        if old_url == new_url:
            return
        old = self.get_feed(old_url)
        if old is not None:
            self._delete(_feed_key(old_url))
            new = self.get_feed(new_url)
            if new is None:
                old.url = new_url
                self.put_feed(old)
            elif not (new.title and new.link):
                new.title = new.title or old.title
                new.link = new.link or old.link
                self.put_feed(new)

        old_prefix, new_prefix = _seen_prefix(old_url), _seen_prefix(new_url)
        moved = {new_prefix + k[len(old_prefix) :]: t for k, t in self._scan(old_prefix)}
        if moved:
            for key, t in self._get_many(moved).items():
                moved[key] = max(moved[key], t)
            for key, t in moved.items():
                self._put(key, t)
            self._delete_prefix(old_prefix)

        for sub in self.feed_subscriptions(old_url):
            self._delete_subscription(sub.chat_id, old_url)
            if self.get_subscription(sub.chat_id, new_url) is None:
                sub.feed_url = new_url
                self.put_subscription(sub)

        rows = self._outbox()
        self._move_deliveries(rows, lambda r: r["feed_url"] == old_url, "feed_url", new_url)

    # -- subscriptions ---------------------------------------------------------
    def add_subscription(self, sub: Subscription) -> bool:
        if self._get(_sub_key(sub.chat_id, sub.feed_url)) is not None:
            return False
        self.put_subscription(sub)
        return True

    def put_subscription(self, sub: Subscription) -> None:
        self._put(_sub_key(sub.chat_id, sub.feed_url), codec.subscription_to_dict(sub))
        self._put(_fsub_key(sub.feed_url, sub.chat_id), sub.chat_id)

    def _delete_subscription(self, chat_id: int, feed_url: str) -> None:
        self._delete(_sub_key(chat_id, feed_url))
        self._delete(_fsub_key(feed_url, chat_id))

    def remove_subscription(self, chat_id: int, feed_url: str) -> bool:
        if self._get(_sub_key(chat_id, feed_url)) is None:
            return False
        self._delete_subscription(chat_id, feed_url)
        for seq, record in self._chat_outbox(chat_id):
            if record["feed_url"] == feed_url:
                self._drop_delivery(seq, record)
        return True

    def get_subscription(self, chat_id: int, feed_url: str) -> Subscription | None:
        d = self._get(_sub_key(chat_id, feed_url))
        return None if d is None else codec.subscription_from_dict(d)

    def chat_subscriptions(self, chat_id: int) -> list[Subscription]:
        subs = [codec.subscription_from_dict(d) for _, d in self._scan(_sub_prefix(chat_id))]
        subs.sort(key=lambda s: (s.created, s.feed_url))
        return subs

    def feed_subscriptions(self, feed_url: str) -> list[Subscription]:
        chat_ids = [chat_id for _, chat_id in self._scan(_fsub_prefix(feed_url))]
        found = self._get_many(_sub_key(chat_id, feed_url) for chat_id in chat_ids)
        subs = [codec.subscription_from_dict(d) for d in found.values()]
        subs.sort(key=lambda s: (s.created, s.chat_id))
        return subs

    def migrate_chat(self, old_id: int, new_id: int) -> None:
        if old_id == new_id:
            return
        old = self.get_chat(old_id)
        if old is not None:
            self._delete(_chat_key(old_id))
            if self.get_chat(new_id) is None:
                old.id = new_id
                if old.kind == ChatKind.GROUP:
                    old.kind = ChatKind.SUPERGROUP
                self.put_chat(old)

        for sub in self.chat_subscriptions(old_id):
            self._delete_subscription(old_id, sub.feed_url)
            if self.get_subscription(new_id, sub.feed_url) is None:
                sub.chat_id = new_id
                self.put_subscription(sub)

        rows = sorted(self._chat_outbox(old_id) + self._chat_outbox(new_id), key=lambda r: r[0])
        self._move_deliveries(rows, lambda r: r["chat_id"] == old_id, "chat_id", new_id)

    # -- seen entries ----------------------------------------------------------
    def seen(self, feed_url: str, keys: Sequence[str]) -> set[str]:
        prefix = _seen_prefix(feed_url)
        by_row = {prefix + _esc(key): key for key in keys}
        return {by_row[row] for row in self._has_many(by_row)}

    def mark_seen(self, feed_url: str, keys: Iterable[str], now: float) -> None:
        prefix = _seen_prefix(feed_url)
        for key in dict.fromkeys(keys):
            self._put(prefix + _esc(key), now)

    def prune_seen(self, feed_url: str, keep: Iterable[str], older_than: float) -> int:
        prefix = _seen_prefix(feed_url)
        kept = {prefix + _esc(key) for key in keep}
        sql = (
            f'SELECT key FROM "{self._table}" '
            "WHERE key >= ? AND key < ? AND CAST(value AS REAL) < ?"
        )
        doomed = [
            key
            for (key,) in self._select(sql, (prefix, _upper(prefix), older_than))
            if key not in kept
        ]
        for key in doomed:
            self._delete(key)
        return len(doomed)

    # -- outbox ----------------------------------------------------------------
    def _outbox(self) -> list[tuple[int, dict[str, Any]]]:
        """Every queued (seq, record), in seq order."""
        return [(_seq_of(key), record) for key, record in self._scan(OUTBOX)]

    def _chat_outbox(self, chat_id: int) -> list[tuple[int, dict[str, Any]]]:
        """The chat's queued (seq, record), in seq order, through the cbox index."""
        prefix = _cbox_prefix(chat_id)
        seqs = [int(key[len(prefix) :]) for key, _ in self._scan(prefix)]
        found = self._get_many(_outbox_key(seq) for seq in seqs)
        return [(seq, found[_outbox_key(seq)]) for seq in seqs if _outbox_key(seq) in found]

    def _put_delivery(self, seq: int, record: dict[str, Any], old_chat: int | None) -> None:
        """Write an outbox row; ``old_chat`` is the chat it was indexed under."""
        self._put(_outbox_key(seq), record)
        if record["chat_id"] != old_chat:
            if old_chat is not None:
                self._delete(_cbox_key(old_chat, seq))
            self._put(_cbox_key(record["chat_id"], seq), 1)

    def _drop_delivery(self, seq: int, record: dict[str, Any]) -> None:
        """Remove an outbox row and release its reference to the entry blob."""
        self._delete(_outbox_key(seq))
        self._delete(_cbox_key(record["chat_id"], seq))
        digest = record["entry"]
        refs = int(self._get(_eref_key(digest)) or 0) - 1
        if refs > 0:
            self._put(_eref_key(digest), refs)
        else:
            self._delete(_eref_key(digest))
            self._delete(_entry_key(digest))

    def _move_deliveries(
        self,
        rows: list[tuple[int, dict[str, Any]]],
        moving: Callable[[dict[str, Any]], bool],
        field: str,
        value: object,
    ) -> None:
        """Set ``field`` to ``value`` in the deliveries among ``rows`` (in seq
        order) that ``moving`` picks, keeping their seq. A moved delivery that
        then duplicates another one (same chat, feed and entry id) is
        dropped: the earlier of the two stays."""
        first: dict[tuple[Any, ...], bool] = {}  # (chat, feed, entry id) -> moved
        for seq, stored in rows:
            moved = moving(stored)
            record = {**stored, field: value} if moved else stored
            ident = (record["chat_id"], record["feed_url"], record["entry_id"])
            if ident in first and (moved or first[ident]):
                self._drop_delivery(seq, stored)
                continue
            first.setdefault(ident, moved)
            if moved:
                self._put_delivery(seq, record, stored["chat_id"])

    def _entries(self, digests: Iterable[str]) -> dict[str, Entry]:
        """Entries by digest, from the cache or the entry blobs.

        The cache is safe because a digest names its content: what is cached
        under a digest can never be out of date.
        """
        found: dict[str, Entry] = {}
        missing: list[str] = []
        for digest in set(digests):
            if digest in self._entry_cache:
                self._entry_cache.move_to_end(digest)
                found[digest] = self._entry_cache[digest]
            else:
                missing.append(digest)
        for key, d in self._get_many(_entry_key(digest) for digest in missing).items():
            digest = key.removeprefix(ENTRY)
            found[digest] = self._cache_entry(digest, codec.entry_from_dict(d))
        return found

    def _cache_entry(self, digest: str, entry: Entry) -> Entry:
        self._entry_cache[digest] = entry
        self._entry_cache.move_to_end(digest)
        while len(self._entry_cache) > _ENTRY_CACHE:
            self._entry_cache.popitem(last=False)
        return entry

    def _deliveries(self, rows: list[tuple[int, dict[str, Any]]]) -> list[Delivery]:
        entries = self._entries(record["entry"] for _, record in rows)
        deliveries = []
        for seq, r in rows:
            entry = entries.get(r["entry"])
            if entry is None:  # cannot happen unless the file was edited by hand
                log.error("outbox row %s refers to a missing entry; skipped", seq)
                continue
            deliveries.append(
                Delivery(
                    seq,
                    r["chat_id"],
                    r["feed_url"],
                    entry,
                    r["not_before"],
                    r["attempts"],
                    r.get("sent_parts", 0),
                )
            )
        return deliveries

    def enqueue(self, feed_url: str, entry: Entry, chat_ids: Iterable[int]) -> list[Delivery]:
        chats = list(dict.fromkeys(chat_ids))
        if not chats:
            return []
        digest = codec.entry_digest(entry)
        refs = int(self._get(_eref_key(digest)) or 0)
        if refs == 0:
            self._put(_entry_key(digest), codec.entry_to_dict(entry))
        self._put(_eref_key(digest), refs + len(chats))
        self._cache_entry(digest, entry)
        deliveries = []
        for chat_id in chats:
            self._seq += 1
            record = {
                "chat_id": chat_id,
                "feed_url": feed_url,
                "entry": digest,
                "entry_id": entry.id,
                "not_before": 0.0,
                "attempts": 0,
            }
            self._put_delivery(self._seq, record, None)
            deliveries.append(Delivery(self._seq, chat_id, feed_url, entry))
        self._put("meta:seq", self._seq)
        return deliveries

    def pending(self) -> list[Delivery]:
        return self._deliveries(self._outbox())

    def pending_for_chat(self, chat_id: int) -> list[Delivery]:
        return self._deliveries(self._chat_outbox(chat_id))

    def update_delivery(self, delivery: Delivery) -> None:
        stored = self._get(_outbox_key(delivery.seq))
        if stored is None:  # already completed
            return
        record = {
            **stored,
            "chat_id": delivery.chat_id,
            "feed_url": delivery.feed_url,
            "not_before": delivery.not_before,
            "attempts": delivery.attempts,
            "sent_parts": delivery.sent_parts,
        }
        self._put_delivery(delivery.seq, record, stored["chat_id"])

    def complete(self, delivery: Delivery) -> None:
        record = self._get(_outbox_key(delivery.seq))
        if record is not None:
            self._drop_delivery(delivery.seq, record)

    # -- lifecycle -------------------------------------------------------------
    def commit(self) -> None:
        """Make every write so far durable; blocks until SQLite has committed.

        sqlitedict runs writes asynchronously and reports a failed one at the
        next call. A round trip first surfaces any such failure, and then the
        whole transaction is rolled back instead of committing part of it.
        """
        try:
            self._select("SELECT 1")
        except Exception:
            try:
                self._select("ROLLBACK")
            except Exception:  # the failed write had not opened a transaction
                log.debug("nothing to roll back", exc_info=True)
            raise
        self._conn().commit(blocking=True)

    def close(self) -> None:
        if self._db is None:
            return
        try:
            self.commit()
        finally:
            self._db.close()
            self._db = None
