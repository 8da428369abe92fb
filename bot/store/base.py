"""The storage interface. Backends: sqlitedict (sqlite.py); PostgreSQL to follow.

Durability model: mutating methods are buffered and become durable together at
the next ``commit()``. Callers commit at the points where a crash must not lose
or repeat work:

* the poller, after it has marked a poll's new entries seen *and* queued their
  deliveries (one commit, so an entry is never seen-but-not-queued);
* the deliverer, after each delivery Telegram accepted;
* command handlers, after each subscription change.

All methods are synchronous and fast (a key look-up or a short range scan);
they are called from the event loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

from bot.models import Chat, Delivery, Entry, Feed, Subscription


class Store(ABC):
    # -- chats ---------------------------------------------------------------
    @abstractmethod
    def get_chat(self, chat_id: int) -> Chat | None: ...

    @abstractmethod
    def put_chat(self, chat: Chat) -> None: ...

    # -- feeds ---------------------------------------------------------------
    @abstractmethod
    def get_feed(self, url: str) -> Feed | None: ...

    @abstractmethod
    def put_feed(self, feed: Feed) -> None: ...

    @abstractmethod
    def delete_feed(self, url: str) -> None:
        """Remove a feed and its seen set (used when nobody follows it any more)."""

    @abstractmethod
    def feeds(self) -> list[Feed]: ...

    @abstractmethod
    def move_feed(self, old_url: str, new_url: str) -> None:
        """A permanent redirect: the feed, its seen set, its subscriptions and
        its pending deliveries now live under ``new_url``. If ``new_url`` is
        already a feed, the two merge (subscriptions and seen sets united)."""

    # -- subscriptions -------------------------------------------------------
    @abstractmethod
    def add_subscription(self, sub: Subscription) -> bool:
        """False (and nothing changed) if the chat already follows that URL."""

    @abstractmethod
    def put_subscription(self, sub: Subscription) -> None:
        """Create or replace (style changes)."""

    @abstractmethod
    def remove_subscription(self, chat_id: int, feed_url: str) -> bool:
        """False if there was no such subscription. Also drops that chat's
        pending deliveries of the feed."""

    @abstractmethod
    def get_subscription(self, chat_id: int, feed_url: str) -> Subscription | None: ...

    @abstractmethod
    def chat_subscriptions(self, chat_id: int) -> list[Subscription]:
        """The chat's subscriptions, oldest first (the order /list numbers them)."""

    @abstractmethod
    def feed_subscriptions(self, feed_url: str) -> list[Subscription]:
        """Every subscription to the feed, whatever the chat's state."""

    @abstractmethod
    def migrate_chat(self, old_id: int, new_id: int) -> None:
        """A group became a supergroup: move the chat record, its subscriptions
        and its pending deliveries to ``new_id``."""

    # -- seen entries --------------------------------------------------------
    @abstractmethod
    def seen(self, feed_url: str, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` are already recorded for the feed (one look-up each)."""

    @abstractmethod
    def mark_seen(self, feed_url: str, keys: Iterable[str], now: float) -> None:
        """Record keys as seen at ``now`` (re-marking refreshes the time)."""

    @abstractmethod
    def prune_seen(self, feed_url: str, keep: Iterable[str], older_than: float) -> int:
        """Forget keys last marked before ``older_than`` unless they are in
        ``keep`` (the keys still present in the feed). Returns how many went."""

    # -- outbox --------------------------------------------------------------
    @abstractmethod
    def enqueue(self, feed_url: str, entry: Entry, chat_ids: Iterable[int]) -> list[Delivery]:
        """Queue ``entry`` for each chat; returns the deliveries with their seq."""

    @abstractmethod
    def pending(self) -> list[Delivery]:
        """Every queued delivery, in seq order."""

    @abstractmethod
    def update_delivery(self, delivery: Delivery) -> None:
        """Persist a delivery's retry state (attempts, not_before) or new chat id."""

    @abstractmethod
    def complete(self, delivery: Delivery) -> None:
        """Telegram accepted it (or it can never be sent): remove it."""

    # -- lifecycle -----------------------------------------------------------
    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def close(self) -> None:
        """Commit and release the backend."""

    def pending_for_chat(self, chat_id: int) -> list[Delivery]:
        """The chat's queued deliveries, in seq order. Backends may index this."""
        return [d for d in self.pending() if d.chat_id == chat_id]
