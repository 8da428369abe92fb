"""The storage interface, shaped around the work the bot does.

Backends: the embedded sqlitedict file (sqlite.py, the default) and
PostgreSQL (postgres.py), which several feedbot processes may share.

Every method is a coroutine, and every method that changes state is atomic by
itself: it has happened entirely when it returns, or not at all when it
raises. No caller commits, and no caller has to know where a transaction
begins or ends. The one conformance suite (tests/test_store_conformance.py)
holds every backend to this text.

The work, as the store sees it:

* **Polling.** ``claim_due_feeds`` leases a bounded batch of feeds whose
  ``next_poll`` has come; the poller fetches, parses and plans each one
  (bot/plan.py) and hands the plans to ``record_polls``, which applies each
  plan whole (feed state, seen keys, queued deliveries and notices, the next
  poll) and releases the lease. A process that dies holding a lease loses it
  when ``lease_until`` passes; another process then claims the feed.
* **Sending.** The outbox holds deliveries (an entry, or a notice, for one
  chat) in ``seq`` order, a number the store hands out. The sender takes a
  chat's oldest delivery (``next_delivery``), sends it, then completes or
  reschedules it.
* **Commands.** Subscribing, unsubscribing, settings, chats paused, resumed or
  migrated: one method each.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from bot.models import Chat, Delivery, Entry, Feed, Notice, Subscription
from bot.plan import Claim, PollPlan


class StoreError(Exception):
    """The store cannot do its work (disk full, file corrupt or read-only,
    database unreachable). ``str(e)`` is one line for the operator."""


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int
    #: ``created`` of the oldest queued delivery (unix time), None when empty.
    oldest: float | None


@dataclass(frozen=True, slots=True)
class ChatCount:
    """Chats of one kind (ChatKind's value), reachable and paused."""

    kind: str
    active: int
    paused: int


@dataclass(frozen=True, slots=True)
class StoreStats:
    """For start-up logs, /stats and metrics."""

    chats: int
    active_chats: int
    feeds: int
    failing_feeds: int
    subscriptions: int
    outbox: OutboxStats
    #: Chats by kind (sorted by kind), only the kinds the store holds.
    by_kind: tuple[ChatCount, ...] = ()


class Store(ABC):
    #: Other processes may work on this store at the same time (so a lease
    #: held longer than needed delays their taking over a dead one's feeds).
    shared: bool = False

    # -- lifecycle -----------------------------------------------------------
    @abstractmethod
    async def open(self) -> None:
        """Create or upgrade the schema and take what the backend needs
        (the embedded file's lock). Raises StoreError with one clear line
        (another process holds the file, the file is corrupt or read-only, a
        database that cannot be reached)."""

    @abstractmethod
    async def close(self) -> None:
        """Release the backend (and any lease this process still holds is
        left to expire)."""

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the schedule --------------------------------------------------------
    @abstractmethod
    async def claim_due_feeds(
        self, owner: str, now: float, limit: int, lease: float
    ) -> list[Claim]:
        """Lease to ``owner`` up to ``limit`` feeds that are not gone, whose
        ``next_poll <= now`` and that nobody holds a live lease on, earliest
        ``next_poll`` first, until ``now + lease``. Two processes never get
        the same feed while a lease is live (PostgreSQL: FOR UPDATE SKIP
        LOCKED)."""

    @abstractmethod
    async def record_polls(self, plans: Sequence[PollPlan], owner: str) -> list[bool]:
        """Apply each plan whole (see PollPlan for what it holds and in what
        order) and release its lease; all the plans in one transaction.

        A plan whose lease ``owner`` no longer holds (it expired and another
        process claimed the feed) is skipped: False in its place in the
        result. A plan for a feed deleted meanwhile (its last subscriber left)
        is skipped too. Deliveries go only to chats that are still subscribed
        and active when the plan is applied."""

    @abstractmethod
    async def next_poll_at(self) -> float | None:
        """The earliest ``next_poll`` of a feed that is not gone (leased or
        not), or None when there is none: when the poll loop next has work."""

    @abstractmethod
    async def due_count(self, now: float) -> int:
        """Feeds due (``next_poll <= now``, not gone) and not leased: a backlog."""

    # -- feeds ---------------------------------------------------------------
    @abstractmethod
    async def get_feed(self, url: str) -> Feed | None: ...

    @abstractmethod
    async def seen(self, feed_url: str, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` are recorded as seen for the feed (one query)."""

    # -- subscriptions and chats (what the commands change) ------------------
    @abstractmethod
    async def subscribe(
        self,
        chat: Chat,
        sub: Subscription,
        *,
        new_feed: Feed | None = None,
        seen: Sequence[str] = (),
        sample: Entry | None = None,
        now: float = 0.0,
    ) -> Subscription | None:
        """Subscribe ``chat`` (stored, and made active) to ``sub.feed_url``.

        With ``new_feed``, the feed is (re)created from it first: any earlier
        record of that URL (a gone feed, say) is replaced and its seen keys
        forgotten, then ``seen`` are marked at ``now``. ``sample`` is queued
        for the chat alone. Returns the stored subscription (its ``seq``
        assigned), or None, with nothing changed, when the chat already
        follows that URL."""

    @abstractmethod
    async def unsubscribe(self, chat_id: int, feed_url: str) -> bool:
        """Remove the subscription and the chat's pending deliveries of the
        feed; delete the feed (and its seen keys) when nobody follows it any
        more. False, nothing changed, when there was no such subscription."""

    @abstractmethod
    async def update_subscription(self, sub: Subscription) -> bool:
        """Replace a subscription's settings. False when it no longer exists."""

    @abstractmethod
    async def get_subscription(self, chat_id: int, feed_url: str) -> Subscription | None: ...

    @abstractmethod
    async def chat_subscriptions(self, chat_id: int) -> list[Subscription]:
        """The chat's subscriptions in the order it subscribed (``seq``)."""

    @abstractmethod
    async def active_subscribers(self, feed_url: str) -> list[Subscription]:
        """The feed's subscriptions whose chat is active (or unknown)."""

    @abstractmethod
    async def get_chat(self, chat_id: int) -> Chat | None: ...

    @abstractmethod
    async def save_chat(self, chat: Chat) -> None:
        """Create or replace the chat record (title, username, kind, active)."""

    @abstractmethod
    async def pause_chat(self, chat_id: int) -> bool:
        """Telegram says the chat cannot be reached: mark it inactive (its
        subscriptions kept) and drop its pending deliveries. False when it
        was already paused or unknown (its deliveries are dropped anyway)."""

    @abstractmethod
    async def resume_chat(self, chat: Chat) -> bool:
        """Store ``chat`` as active. True when it had been paused and has
        subscriptions (worth a "welcome back")."""

    @abstractmethod
    async def migrate_chat(self, old_id: int, new_id: int) -> None:
        """A group became a supergroup: move the chat record, its
        subscriptions and its pending deliveries to ``new_id`` (merging with
        what ``new_id`` already has)."""

    # -- the outbox ----------------------------------------------------------
    @abstractmethod
    async def outbox_chats(self, now: float, limit: int) -> list[int]:
        """Up to ``limit`` chats whose oldest delivery may be sent at ``now``
        (its ``not_before`` has passed), the chat with the oldest such
        delivery first."""

    @abstractmethod
    async def next_delivery(self, chat_id: int) -> Delivery | None:
        """The chat's oldest queued delivery (lowest ``seq``), whether or not
        its ``not_before`` has come: a chat's order is kept across retries."""

    @abstractmethod
    async def next_delivery_at(self) -> float | None:
        """The earliest ``not_before`` among the chats' oldest deliveries (0
        for one that may go now), None when the outbox is empty."""

    @abstractmethod
    async def complete_delivery(self, delivery: Delivery) -> None:
        """Telegram accepted it (or it can never be sent): remove it.
        Completing one already gone is not an error."""

    @abstractmethod
    async def reschedule_delivery(self, delivery: Delivery) -> None:
        """Write a delivery's retry state: ``not_before``, ``attempts``,
        ``sent_parts`` and ``chat_id``. Nothing happens if it is gone."""

    @abstractmethod
    async def enqueue(
        self, feed_url: str, entry: Entry, chat_ids: Sequence[int], now: float
    ) -> list[Delivery]:
        """Queue one entry for chats outside a poll (tools, benchmarks)."""

    @abstractmethod
    async def pending(self) -> list[Delivery]:
        """Every queued delivery in ``seq`` order (tests, tools; not a hot path)."""

    @abstractmethod
    async def notify_private_chats(self, notice: Notice, now: float) -> int:
        """Queue ``notice`` (feed_url "") for every active private chat, in
        chat id order, in one transaction: an operator's broadcast, which
        then goes out paced like every other delivery and survives a
        restart. Returns how many were queued."""

    @abstractmethod
    async def pending_notices(self, code: str) -> int:
        """How many queued deliveries are notices with ``code`` (a
        broadcast's progress: queued minus this is sent)."""

    # -- operating -----------------------------------------------------------
    @abstractmethod
    async def stats(self) -> StoreStats: ...

    @abstractmethod
    async def hold_sender(self, owner: str) -> bool:
        """Become, or stay, the one process that talks to Telegram (receives
        updates, sends). True while ``owner`` holds the role. The embedded
        store has one process by construction (its file lock): always True.
        PostgreSQL: a session-level advisory lock on a connection kept for
        it; when the holder dies its connection closes and another process
        gets the role at its next call."""
