"""Entry identity and dedupe: which entries of a fetched feed are new.

Pure functions. The poller keeps, per feed, a set of *keys* (strings) for the
entries it has already handled; :func:`new_entries` picks the entries none of
whose keys is in that set, and :func:`dedupe_keys` says which keys to record
once an entry has been handled.

An entry is remembered under its id and, when it can be, a second key:

* its id (the GUID / Atom id, else its link, else a hash of title and date), so
  an entry edited in place (same GUID, new text, new date) is not new;
* with a link and a title, ``"lt:" + hash(link, title)``, so an entry whose
  GUID changes while its link and title stay (CMS migrations, http→https
  moves, feeds that put a timestamp in the GUID) is not sent again;
* with neither GUID nor link (the id hashes title and date),
  ``"tb:" + hash(title, text)``, so a feed that stamps every item with the
  time it was generated does not resend them all on every poll.

The price: two entries with different GUIDs but the same link and title count
as one; so do two entries with neither GUID nor link but the same title and
text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from bot.models import Entry
from bot.urls import strip_tracking

__all__ = [
    "body_hash",
    "dedupe_keys",
    "entry_date",
    "entry_id",
    "new_entries",
    "newest",
    "newest_first",
]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def body_hash(body: bytes) -> str:
    """SHA-256 hex digest of a response body (detects unchanged 200 answers)."""
    return hashlib.sha256(body).hexdigest()


def entry_id(
    *, guid: str | None, link: str | None, title: str, published: datetime | None, html: str
) -> str:
    """The stable identity of an entry within its feed.

    The GUID (RSS ``<guid>``, Atom ``<id>``, JSON Feed ``id``) when present,
    else the link, else ``"h:"`` + a hash of the title and the publication date
    (or of the body when there is no date either).
    """
    if guid is not None:
        guid = guid.strip()
        if guid:
            return guid
    if link is not None:
        link = link.strip()
        if link:
            return link
    stamp = published.isoformat() if published is not None else html
    return "h:" + _sha(f"{title}\n{stamp}")[:32]


def _normal_link(link: str) -> str:
    """A link reduced to what identifies the page: no scheme (http and https
    count as one), no ``www.``, no default port, no fragment, no tracking
    parameters (``utm_*``, ``fbclid``, ``wt_mc``, …: :func:`bot.urls.strip_tracking`),
    no trailing slash."""
    try:
        parts = urlsplit(strip_tracking(link.strip()))
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return link.strip()
    host = host.removeprefix("www.")
    if port is not None and port not in (80, 443):
        host = f"{host}:{port}"
    query = parts.query
    path = parts.path.rstrip("/")
    return urlunsplit(("", host, path, query, ""))


def _normal_title(title: str) -> str:
    return " ".join(title.split()).casefold()


def dedupe_keys(entry: Entry) -> tuple[str, ...]:
    """Every key under which ``entry`` is remembered (see the module docstring)."""
    link = (entry.link or "").strip()
    title = _normal_title(entry.title or "")
    if link and title:
        return (entry.id, "lt:" + _sha(f"{_normal_link(link)}\n{title}")[:32])
    if entry.id.startswith("h:"):  # neither GUID nor link
        text = " ".join(entry.html.split())
        return (entry.id, "tb:" + _sha(f"{title}\n{text}")[:32])
    return (entry.id,)


def entry_date(entry: Entry) -> datetime | None:
    """The date an entry is ordered by: published, else updated."""
    return entry.published if entry.published is not None else entry.updated


def _oldest_first(entries: list[tuple[int, Entry]]) -> list[Entry]:
    """Sort (document index, entry) pairs oldest first.

    By date when every entry has one (ties: later in the document is older);
    otherwise reverse document order, since feeds list newest first.
    """
    dates = [entry_date(e) for _, e in entries]
    if entries and all(d is not None for d in dates):
        keyed = sorted(
            zip(dates, entries, strict=True),
            key=lambda pair: (pair[0], -pair[1][0]),
        )
        return [e for _, (_, e) in keyed]
    return [e for _, e in reversed(entries)]


def new_entries(
    entries: Sequence[Entry],
    seen: Collection[str],
    keys_of: Sequence[tuple[str, ...]] | None = None,
) -> list[Entry]:
    """The entries none of whose :func:`dedupe_keys` is in ``seen``, oldest first.

    An entry listed twice in the same document (by any key) counts once: the
    first occurrence in document order wins. ``keys_of``: the entries' keys,
    when the caller has them already (one per entry, in order).
    """
    taken: set[str] = set()
    fresh: list[tuple[int, Entry]] = []
    for index, entry in enumerate(entries):
        keys = keys_of[index] if keys_of is not None else dedupe_keys(entry)
        if any(k in seen or k in taken for k in keys):
            continue
        taken.update(keys)
        fresh.append((index, entry))
    return _oldest_first(fresh)


def newest_first(entries: Sequence[Entry]) -> list[Entry]:
    """All entries, newest first: by date when every entry has one (ties keep
    document order), else document order. The reverse of what
    :func:`new_entries` returns."""
    return list(reversed(_oldest_first(list(enumerate(entries)))))


def newest(entries: Sequence[Entry]) -> Entry | None:
    """The newest entry: by date when every entry has one (ties: the first in
    the document), else the first in the document."""
    if not entries:
        return None
    dates = [entry_date(e) for e in entries]
    if all(d is not None for d in dates):
        best = 0
        for i in range(1, len(entries)):
            if dates[i] > dates[best]:  # type: ignore[operator]
                best = i
        return entries[best]
    return entries[0]
