"""The embedded store's outbox: deliveries in ``seq`` order, a per-chat index
(``cbox``), each chat's oldest delivery (``chead``), entries stored once.

These run inside the caller's transaction (``SqliteFile.transaction``); none
commits. A chat's head is kept so that "which chats may send now" reads one
row per waiting chat, not every queued delivery.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from bot.models import Delivery, Entry, Notice
from bot.store import codec
from bot.store import sqlite_keys as k
from bot.store.sqlite_file import SqliteFile

log = logging.getLogger(__name__)

#: Decoded entries kept in memory, by digest.
_ENTRY_CACHE = 256

Row = tuple[int, dict[str, Any]]


class Outbox:
    def __init__(self, file: SqliteFile) -> None:
        self.f = file
        #: The last seq handed out; None: read it from the file at next use
        #: (after open, or a rollback that took back the seqs handed out).
        self._seq: int | None = None
        self._entry_cache: OrderedDict[str, Entry] = OrderedDict()

    def forget_seq(self) -> None:
        self._seq = None

    def _next_seq(self) -> int:
        if self._seq is None:
            seq = int(self.f.get("meta:seq") or 0)
            last = self.f.last_key(k.OUTBOX)
            self._seq = max(seq, k.seq_of(last)) if last else seq
        self._seq += 1
        return self._seq

    # -- reading -----------------------------------------------------------------
    def rows(self) -> list[Row]:
        return [(k.seq_of(key), record) for key, record in self.f.scan(k.OUTBOX)]

    def chat_rows(self, chat_id: int) -> list[Row]:
        """The chat's queued (seq, record), in seq order, through its index."""
        prefix = k.cbox_prefix(chat_id)
        seqs = [k.seq_of(key, prefix) for key, _ in self.f.scan(prefix)]
        found = self.f.get_many(k.outbox_key(seq) for seq in seqs)
        return [(seq, found[k.outbox_key(seq)]) for seq in seqs if k.outbox_key(seq) in found]

    def heads(self) -> list[Row]:
        """Each waiting chat's oldest (seq, record), oldest first."""
        seqs = [k.seq_of(key, k.CHEAD) for key, _ in self.f.scan(k.CHEAD)]
        found = self.f.get_many(k.outbox_key(seq) for seq in seqs)
        return [(seq, found[k.outbox_key(seq)]) for seq in seqs if k.outbox_key(seq) in found]

    def first(self, chat_id: int) -> Delivery | None:
        seq = self.f.get(k.hseq_key(chat_id))
        if seq is None:
            return None
        record = self.f.get(k.outbox_key(seq))
        found = [] if record is None else self.deliveries([(seq, record)])
        return found[0] if found else None

    def deliveries(self, rows: Sequence[Row]) -> list[Delivery]:
        entries = self._entries(r["entry"] for _, r in rows if r.get("entry"))
        out = []
        for seq, r in rows:
            entry = entries.get(r["entry"]) if r.get("entry") else None
            notice = codec.notice_from_dict(r["notice"]) if r.get("notice") else None
            if entry is None and notice is None:  # only if the file was edited by hand
                log.error("outbox row %s has neither entry nor notice; skipped", seq)
                continue
            out.append(
                Delivery(
                    seq,
                    r["chat_id"],
                    r["feed_url"],
                    entry,
                    r.get("not_before", 0.0),
                    r.get("attempts", 0),
                    r.get("sent_parts", 0),
                    notice,
                )
            )
        return out

    # -- writing -----------------------------------------------------------------
    def queue(
        self,
        feed_url: str,
        chat_ids: Iterable[int],
        now: float,
        entry: Entry | None = None,
        notice: Notice | None = None,
    ) -> list[Delivery]:
        chats = list(dict.fromkeys(chat_ids))
        if not chats:
            return []
        digest = None
        if entry is not None:
            digest = codec.entry_digest(entry)
            refs = int(self.f.get(k.eref_key(digest)) or 0)
            if refs == 0:
                self.f.put(k.entry_key(digest), codec.entry_to_dict(entry))
            self.f.put(k.eref_key(digest), refs + len(chats))
        notice_dict = None if notice is None else codec.notice_to_dict(notice)
        heads = self.f.get_many(k.hseq_key(c) for c in chats)
        out = []
        seq = 0
        for chat_id in chats:
            seq = self._next_seq()
            record = {
                "chat_id": chat_id,
                "feed_url": feed_url,
                "entry": digest,
                "entry_id": None if entry is None else entry.id,
                "notice": notice_dict,
                "not_before": 0.0,
                "attempts": 0,
                "sent_parts": 0,
                "created": now,
            }
            self.f.put(k.outbox_key(seq), record)
            self.f.put(k.cbox_key(chat_id, seq), 1)
            if k.hseq_key(chat_id) not in heads:  # new seqs are the largest
                self._set_head(chat_id, None, seq)
            out.append(Delivery(seq, chat_id, feed_url, entry, notice=notice))
        self.f.put("meta:seq", seq)
        if entry is not None and digest is not None:
            self._cache_entry(digest, entry)
        return out

    def update(self, seq: int, stored: dict[str, Any], record: dict[str, Any]) -> None:
        """Rewrite a row; re-index it when its chat changed."""
        self.f.put(k.outbox_key(seq), record)
        old, new = stored["chat_id"], record["chat_id"]
        if old != new:
            self.f.delete(k.cbox_key(old, seq))
            self._refresh_head(old)
            self.f.put(k.cbox_key(new, seq), 1)
            head = self.f.get(k.hseq_key(new))
            if head is None or seq < head:
                self._set_head(new, head, seq)

    def drop(self, seq: int, record: dict[str, Any]) -> None:
        """Remove a row and release its reference to the entry blob."""
        self.f.delete(k.outbox_key(seq))
        self.f.delete(k.cbox_key(record["chat_id"], seq))
        if self.f.get(k.hseq_key(record["chat_id"])) == seq:
            self._refresh_head(record["chat_id"])
        digest = record.get("entry")
        if digest:
            refs = int(self.f.get(k.eref_key(digest)) or 0) - 1
            if refs > 0:
                self.f.put(k.eref_key(digest), refs)
            else:
                self.f.delete(k.eref_key(digest))
                self.f.delete(k.entry_key(digest))

    def drop_chat(
        self, chat_id: int, keep: Callable[[dict[str, Any]], bool] = lambda r: False
    ) -> None:
        for seq, record in self.chat_rows(chat_id):
            if not keep(record):
                self.drop(seq, record)

    def move(
        self,
        rows: Sequence[Row],
        moving: Callable[[dict[str, Any]], bool],
        field: str,
        value: object,
    ) -> None:
        """Set ``field`` to ``value`` in the deliveries among ``rows`` (in seq
        order) that ``moving`` picks, keeping their seq. A moved delivery that
        then repeats another (same chat, feed and entry or notice) is dropped:
        the earlier of the two stays."""
        first: dict[tuple[Any, ...], bool] = {}  # identity -> moved
        for seq, stored in rows:
            moved = moving(stored)
            record = {**stored, field: value} if moved else stored
            ident = (
                record["chat_id"],
                record["feed_url"],
                record.get("entry_id"),
                json.dumps(record.get("notice"), sort_keys=True),
            )
            if ident in first and (moved or first[ident]):
                self.drop(seq, stored)
                continue
            first.setdefault(ident, moved)
            if moved:
                self.update(seq, stored, record)

    def rebuild_heads(self) -> None:
        """The chead index from cbox (a store written before it existed)."""
        self.f.delete_prefix(k.CHEAD)
        self.f.delete_prefix("hseq:")
        for chat_id in {r["chat_id"] for _, r in self.rows()}:
            self._refresh_head(chat_id)

    def _set_head(self, chat_id: int, old: int | None, new: int | None) -> None:
        if old is not None:
            self.f.delete(k.chead_key(old))
        if new is None:
            self.f.delete(k.hseq_key(chat_id))
        else:
            self.f.put(k.chead_key(new), chat_id)
            self.f.put(k.hseq_key(chat_id), new)

    def _refresh_head(self, chat_id: int) -> None:
        old = self.f.get(k.hseq_key(chat_id))
        first = self.f.first_key(k.cbox_prefix(chat_id))
        new = None if first is None else k.seq_of(first, k.cbox_prefix(chat_id))
        if new != old:
            self._set_head(chat_id, old, new)

    # -- entries -----------------------------------------------------------------
    def _entries(self, digests: Iterable[str]) -> dict[str, Entry]:
        """Entries by digest, from the cache or the entry blobs. The cache is
        safe because a digest names its content: it is never out of date."""
        found: dict[str, Entry] = {}
        missing: list[str] = []
        for digest in set(digests):
            if digest in self._entry_cache:
                self._entry_cache.move_to_end(digest)
                found[digest] = self._entry_cache[digest]
            else:
                missing.append(digest)
        for key, d in self.f.get_many(k.entry_key(digest) for digest in missing).items():
            digest = key.removeprefix(k.ENTRY)
            found[digest] = self._cache_entry(digest, codec.entry_from_dict(d))
        return found

    def _cache_entry(self, digest: str, entry: Entry) -> Entry:
        self._entry_cache[digest] = entry
        self._entry_cache.move_to_end(digest)
        while len(self._entry_cache) > _ENTRY_CACHE:
            self._entry_cache.popitem(last=False)
        return entry
