"""Plan: what one poll of a feed changes, decided by a pure function.

The poller fetches and parses; :func:`plan_poll` (given the claimed feed, the
fetch outcome, the parsed entries, the seen keys, the subscribers and the
clock) returns a :class:`PollPlan`; the store applies the whole plan in one
transaction (``Store.record_polls``). Nothing here does I/O, so every rule can
be tested with plain values.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.models import Entry, Feed, Notice, Subscription


@dataclass(frozen=True, slots=True)
class Claim:
    """A due feed, leased to one process until ``lease_until``."""

    feed: Feed
    #: Subscriptions whose chat is active: who gets the new entries.
    subscribers: tuple[Subscription, ...]
    #: Anyone at all follows the feed (paused chats included): if not, the
    #: poll deletes it instead. A feed whose chats are all paused is still
    #: polled, so that resuming does not flood the chat with its backlog.
    followed: bool
    lease_until: float


@dataclass(frozen=True, slots=True)
class Enqueue:
    """Queue ``entry`` for each of ``chat_ids`` (skipping chats that left meanwhile)."""

    entry: Entry
    chat_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Tell:
    """Queue ``notice`` for each of ``chat_ids``, in the outbox like an entry."""

    notice: Notice
    chat_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PollPlan:
    """Everything one poll changes; applied atomically, or not at all.

    Applied in this order: move (``moved_to``), then write ``feed`` (or delete
    the feed when ``feed`` is None), mark ``seen``, prune, queue ``enqueue``
    and ``tell``, release the lease.
    """

    #: The URL that was claimed.
    url: str
    #: The feed's new state (its ``next_poll`` included). None: nobody follows
    #: it any more; delete it with its seen keys.
    feed: Feed | None
    #: When the plan was made: the time seen keys are marked with.
    now: float
    #: A permanent redirect (301/308): the feed, its seen keys, subscriptions
    #: and pending deliveries move from ``url`` to this URL first (merging
    #: with a feed already there). ``feed.url`` is then this URL.
    moved_to: str | None = None
    #: Keys to mark seen at ``now`` (re-marking refreshes their time).
    seen: tuple[str, ...] = ()
    #: Forget seen keys last marked before this time, except those in ``seen``.
    prune_before: float | None = None
    enqueue: tuple[Enqueue, ...] = ()
    tell: tuple[Tell, ...] = ()
    #: False when nothing but the schedule (next_poll, validators, interval,
    #: last_success) changed: a backend may write that more cheaply.
    changed: bool = True
