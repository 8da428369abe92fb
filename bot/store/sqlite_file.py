"""The embedded store's file: its lock, its checks at start, its connection
and the one transaction rule (commit at the end, or roll all of it back).

SQL goes to sqlitedict's connection thread (``SqliteDict.conn``), which runs
statements in order on one sqlite3 connection: reads see the writes not yet
committed. Writes are queued without waiting; a failed one is reported at the
next call, so a transaction ends with a round trip that surfaces it before
``COMMIT``. ``COMMIT`` goes as SQL, not through sqlitedict's ``commit()``:
a failing ``conn.commit()`` kills sqlitedict's worker thread and every later
call would then wait forever. Every wait here is bounded and checks that the
thread lives; a dead one is replaced by a fresh connection at the next call.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from queue import Empty, Queue
from typing import Any

from sqlitedict import _RESPONSE_NO_MORE, SqliteDict

from bot.store.base import StoreError
from bot.store.sqlite_keys import upper

log = logging.getLogger(__name__)
# sqlitedict logs every failed statement as a dozen ERROR lines of its worker
# thread's stack; the failure reaches the caller here as one StoreError line.
logging.getLogger("sqlitedict").setLevel(logging.CRITICAL)

TABLE = "feedbot"
#: Keys per ``WHERE key IN (…)`` statement (well under SQLite's variable limit).
_CHUNK = 500
#: How often a wait for the worker thread checks that it still lives (s).
_PATIENCE = 0.5

dumps = partial(json.dumps, separators=(",", ":"))


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class SqlFailure(StoreError):
    """SQLite refused a statement; ``cause`` is its error."""

    def __init__(self, message: str, cause: sqlite3.Error) -> None:
        super().__init__(message)
        self.cause = cause


def _explain(exc: BaseException) -> str:
    """The error, and what the operator can do about it when that is known."""
    text = one_line(exc)
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL or "disk is full" in text:
        return f"{text} (free some space: nothing was half-written, and later calls retry)"
    if code == sqlite3.SQLITE_READONLY or "readonly" in text:
        return f"{text} (check the permissions of the file and its directory)"
    return text


class SqliteFile:
    """One SQLite file, held by this process alone (an exclusive file lock)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: SqliteDict | None = None
        self._lock_fd: int | None = None

    # -- lifecycle ---------------------------------------------------------------
    def open(self) -> bool:
        """Lock, check and open the file. True when it was created now."""
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as e:
            raise StoreError(f"{self.path}: cannot create its directory: {e.strerror}") from e
        self._lock()
        try:
            created = not os.path.exists(self.path)
            if created:
                self._create()
            else:
                self._check_existing()
            self._connect()
        except BaseException:
            self.close()
            raise
        return created

    def _lock(self) -> None:
        lock_path = f"{self.path}.lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StoreError(f"{lock_path}: cannot open the lock file: {e.strerror}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            pid = f" (pid {holder})" if holder.isdigit() else ""
            raise StoreError(f"{self.path} is in use by another feedbot process{pid}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _create(self) -> None:
        """Make the table here, in this thread: were it sqlitedict's first
        commit that failed (a full disk), its thread would die and its
        constructor wait forever."""
        try:
            with contextlib.closing(sqlite3.connect(self.path, timeout=5)) as conn:
                conn.execute(
                    f'CREATE TABLE IF NOT EXISTS "{TABLE}" (key TEXT PRIMARY KEY, value BLOB)'
                )
                conn.commit()
        except sqlite3.Error as e:
            with contextlib.suppress(OSError):  # or the next start refuses an empty file
                os.remove(self.path)
            raise StoreError(f"{self.path}: cannot create the store: {one_line(e)}") from e

    def _check_existing(self) -> None:
        """Refuse a file that is empty, not a feedbot store, or not writable,
        with one line, before sqlitedict sees it (it would make an empty file
        a new empty store, and bury the rest in tracebacks)."""
        if os.path.getsize(self.path) == 0:
            raise StoreError(
                f"{self.path} is empty (0 bytes), not a feedbot store: refusing to start"
                " (restore it from a backup, or delete it to start with a new store)"
            )
        try:
            with contextlib.closing(sqlite3.connect(self.path, timeout=5)) as conn:
                tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
                if TABLE not in tables:
                    raise StoreError(f"{self.path} is not a feedbot store (no {TABLE} table)")
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path}: cannot use the store: {_explain(e)}") from e

    def _connect(self) -> None:
        try:
            self._db = SqliteDict(
                self.path,
                tablename=TABLE,
                autocommit=False,
                journal_mode="WAL",
                encode=dumps,
                decode=json.loads,
                outer_stack=False,
            )
        except Exception as e:
            raise StoreError(f"{self.path}: cannot open the store: {one_line(e)}") from e
        # sqlitedict sets synchronous=OFF; FULL makes a returned COMMIT
        # durable even against power loss.
        self.execute("PRAGMA synchronous=FULL")

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            try:
                # Forced: a plain close waits for an answer a dead worker
                # thread never gives. The close request still queues behind
                # any statement sent before it.
                conn = db.conn
                db.close(force=True)
                conn.join(timeout=10)
            except Exception:  # closing what failed: nothing more to save
                log.debug("closing %s", self.path, exc_info=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    @property
    def closed(self) -> bool:
        return self._db is None

    # -- transactions ------------------------------------------------------------
    def revive(self) -> None:
        """A new connection if sqlitedict's worker thread died (nothing was
        committed that the file does not hold, so nothing is lost)."""
        db = self._db
        if db is None:
            raise StoreError(f"{self.path}: the store is closed")
        if not db.conn.is_alive():
            log.warning("%s: the SQLite worker thread had stopped; reconnecting", self.path)
            self._db = None
            with contextlib.suppress(Exception):
                db.close(force=True)
            self._connect()

    @contextlib.contextmanager
    def transaction(self, what: str) -> Iterator[None]:
        """Everything inside is committed at the end, or rolled back whole
        and reported as one StoreError."""
        self.revive()
        try:
            self.execute("BEGIN IMMEDIATE")
            yield
            self.select("SELECT 1")  # surfaces a failed write queued before
            self.select("COMMIT")
        except BaseException as exc:
            if self._db is not None:
                self._rollback(self._db)
            if isinstance(exc, SqlFailure):
                exc = exc.cause
            elif isinstance(exc, StoreError) or not isinstance(exc, Exception):
                raise
            raise StoreError(f"{self.path}: {what} failed: {_explain(exc)}") from exc

    def _rollback(self, db: SqliteDict) -> None:
        with contextlib.suppress(Exception):
            self._wait(db, "ROLLBACK", ())
        with contextlib.suppress(Exception):  # a failure left queued
            db.conn.check_raise_error()

    # -- raw access --------------------------------------------------------------
    # All SQL goes through select and execute (tests wrap them to see it).
    def _conn(self) -> Any:
        if self._db is None:
            raise StoreError(f"{self.path}: the store is closed")
        return self._db.conn

    def _wait(self, db: SqliteDict, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run one statement and wait for its rows, never forever."""
        conn = db.conn
        res: Queue[Any] = Queue()
        rows: list[tuple[Any, ...]] = []
        try:
            conn.execute(sql, tuple(args), res)
            while True:
                try:
                    rec = res.get(timeout=_PATIENCE)
                except Empty:
                    if not conn.is_alive():
                        raise StoreError(f"{self.path}: the SQLite worker thread stopped") from None
                    continue
                conn.check_raise_error()
                if rec == _RESPONSE_NO_MORE:
                    return rows
                rows.append(rec)
        except sqlite3.Error as e:  # this statement's, or a queued write's before it
            raise SqlFailure(f"{self.path}: {_explain(e)}", e) from e

    def select(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self._db is None:
            raise StoreError(f"{self.path}: the store is closed")
        return self._wait(self._db, sql, args)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        self._conn().execute(sql, tuple(args))

    def get(self, key: str) -> Any:
        rows = self.select(f'SELECT value FROM "{TABLE}" WHERE key = ?', (key,))
        return json.loads(rows[0][0]) if rows else None

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for chunk in _chunks(list(dict.fromkeys(keys))):
            marks = ",".join("?" * len(chunk))
            sql = f'SELECT key, value FROM "{TABLE}" WHERE key IN ({marks})'
            for key, value in self.select(sql, chunk):
                found[key] = json.loads(value)
        return found

    def has_many(self, keys: Iterable[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(list(dict.fromkeys(keys))):
            marks = ",".join("?" * len(chunk))
            sql = f'SELECT key FROM "{TABLE}" WHERE key IN ({marks})'
            found.update(key for (key,) in self.select(sql, chunk))
        return found

    def scan(self, prefix: str, below: str | None = None, limit: int = -1) -> list[tuple[str, Any]]:
        """(key, value) whose key starts with ``prefix`` (and is below
        ``below``), in key order."""
        sql = f'SELECT key, value FROM "{TABLE}" WHERE key >= ? AND key < ? ORDER BY key LIMIT ?'
        rows = self.select(sql, (prefix, below or upper(prefix), limit))
        return [(k, json.loads(v)) for k, v in rows]

    def scan_many(self, prefixes: Sequence[str]) -> dict[str, list[tuple[str, Any]]]:
        """``scan`` of each prefix, in one statement per _CHUNK / 3 prefixes
        instead of one per prefix. A UNION ALL of range searches, not one
        WHERE with OR'd ranges: with a few dozen ORs SQLite's planner scans
        the whole table instead."""
        out: dict[str, list[tuple[str, Any]]] = {p: [] for p in prefixes}
        ordered = list(out)
        step = _CHUNK // 3
        one = f'SELECT ?, key, value FROM "{TABLE}" WHERE key >= ? AND key < ?'
        for i in range(0, len(ordered), step):
            chunk = ordered[i : i + step]
            sql = " UNION ALL ".join([one] * len(chunk))
            args = [a for n, p in enumerate(chunk) for a in (n, p, upper(p))]
            for n, key, value in sorted(self.select(sql, args)):
                out[chunk[n]].append((key, json.loads(value)))
        return out

    def first_key(self, prefix: str) -> str | None:
        sql = f'SELECT key FROM "{TABLE}" WHERE key >= ? AND key < ? ORDER BY key LIMIT 1'
        rows = self.select(sql, (prefix, upper(prefix)))
        return rows[0][0] if rows else None

    def last_key(self, prefix: str) -> str | None:
        sql = f'SELECT key FROM "{TABLE}" WHERE key >= ? AND key < ? ORDER BY key DESC LIMIT 1'
        rows = self.select(sql, (prefix, upper(prefix)))
        return rows[0][0] if rows else None

    def count(self, prefix: str, where: str = "", below: str | None = None) -> int:
        sql = f'SELECT COUNT(*) FROM "{TABLE}" WHERE key >= ? AND key < ?'
        if where:
            sql += f" AND {where}"
        return int(self.select(sql, (prefix, below or upper(prefix)))[0][0])

    def put(self, key: str, value: Any) -> None:
        sql = f'REPLACE INTO "{TABLE}" (key, value) VALUES (?, ?)'
        self.execute(sql, (key, dumps(value)))

    def put_many(self, items: Sequence[tuple[str, Any]]) -> None:
        """``put`` of many rows, a few statements instead of one per row."""
        for i in range(0, len(items), _CHUNK // 2):
            chunk = items[i : i + _CHUNK // 2]
            marks = ",".join(["(?, ?)"] * len(chunk))
            sql = f'REPLACE INTO "{TABLE}" (key, value) VALUES {marks}'
            self.execute(sql, [x for key, value in chunk for x in (key, dumps(value))])

    def delete_many(self, keys: Sequence[str]) -> None:
        for chunk in _chunks(list(keys)):
            marks = ",".join("?" * len(chunk))
            self.execute(f'DELETE FROM "{TABLE}" WHERE key IN ({marks})', chunk)

    def delete(self, key: str) -> None:
        self.execute(f'DELETE FROM "{TABLE}" WHERE key = ?', (key,))

    def delete_prefix(self, prefix: str) -> None:
        sql = f'DELETE FROM "{TABLE}" WHERE key >= ? AND key < ?'
        self.execute(sql, (prefix, upper(prefix)))
