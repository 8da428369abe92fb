"""Prometheus metrics: what the bot counts, as a small typed API.

The modules that do the work report through the one process-wide instance,
``from bot.metrics import metrics``::

    metrics.poll_done("unchanged", 0.3)   # the poller, once per poll, with its fetch time
    metrics.new_entries(3)                # the poller, entries a poll queued
    metrics.delivery_done("sent")         # the deliverer, once per Telegram answer
    metrics.rate_limited()                # every 429 from Telegram
    metrics.set_sender(True, owner)       # the sender role (bot/roles.py)

The gauges that describe the store (outbox depth, age of its oldest row,
feeds due but not yet polled, …) are read from it every few seconds by
:class:`bot.health.StoreSampler`, which calls :meth:`Metrics.observe_store`:
a scrape never waits on the database.

Labels take a fixed set of values (typed as Literal and checked at run time),
so a bug cannot blow up the number of series. Each :class:`Metrics` has its
own registry, so tests build their own and read them with :meth:`value`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Literal, get_args

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.store.base import StoreStats

__all__ = ["CONTENT_TYPE", "DeliveryOutcome", "Metrics", "PollOutcome", "metrics"]

#: What one poll of a feed came to, as bot/poller.py's PollResult names it
#: (``result.name.lower()``): new entries queued, nothing new (a 304 or the
#: same entries), a failure (network, HTTP error, not a feed), a 410, nobody
#: follows it any more (deleted), the lease was lost to another process.
PollOutcome = Literal["new_entries", "unchanged", "failed", "gone", "dropped", "lost"]
#: What Telegram's answer to one send came to, as bot/delivery_rules.py
#: classifies it: sent; to be retried later (429, 5xx, network); chat
#: unreachable (paused); group migrated (re-sent to the new id); sent again
#: without media or as plain text ("fallback"); refused for good (dropped).
DeliveryOutcome = Literal["sent", "retry", "chat_gone", "migrated", "fallback", "refused"]

_POLL_OUTCOMES: tuple[str, ...] = get_args(PollOutcome)
_DELIVERY_OUTCOMES: tuple[str, ...] = get_args(DeliveryOutcome)
#: Fetch latency buckets, seconds: loopback answers to the 20 s default timeout.
_FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)


class RecentCount:
    """Events of the last hour, in one-minute buckets: what /stats shows
    (Prometheus counters count since the start; rate() is the server's job)."""

    BUCKET = 60.0
    SPAN = 3600.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        #: (bucket start, events), oldest first; at most SPAN / BUCKET + 1 of them.
        self._buckets: deque[list[float]] = deque()

    def add(self, count: int = 1) -> None:
        start = self._clock() // self.BUCKET * self.BUCKET
        if self._buckets and self._buckets[-1][0] == start:
            self._buckets[-1][1] += count
        else:
            self._buckets.append([start, float(count)])
        self._expire()

    def last_hour(self) -> int:
        self._expire()
        return int(sum(n for _, n in self._buckets))

    def _expire(self) -> None:
        # A bucket counts while any of it is within the hour.
        horizon = self._clock() - self.SPAN - self.BUCKET
        while self._buckets and self._buckets[0][0] <= horizon:
            self._buckets.popleft()


class Metrics:
    """The bot's metric objects on their own registry (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        #: Polls recorded and deliveries sent in the last hour (/stats).
        self.recent_polls = RecentCount(clock)
        self.recent_deliveries = RecentCount(clock)
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._polls = Counter("feedbot_polls", "Feed polls, by outcome.", ["outcome"], registry=r)
        self._fetch = Histogram(
            "feedbot_fetch_seconds", "Fetch latency of a poll.", buckets=_FETCH_BUCKETS, registry=r
        )
        self._entries = Counter("feedbot_new_entries", "New entries found by polls.", registry=r)
        self._deliveries = Counter(
            "feedbot_deliveries",
            "Telegram's answers to deliveries, by outcome.",
            ["outcome"],
            registry=r,
        )
        self._429 = Counter(
            "feedbot_telegram_429", "Telegram answers 429 Too Many Requests.", registry=r
        )
        self._outbox_depth = Gauge("feedbot_outbox_depth", "Deliveries queued.", registry=r)
        self._outbox_age = Gauge(
            "feedbot_outbox_oldest_age_seconds",
            "Age of the oldest queued delivery (0 when the outbox is empty).",
            registry=r,
        )
        self._due = Gauge(
            "feedbot_feeds_due", "Feeds due and not yet claimed by any process.", registry=r
        )
        self._feeds = Gauge("feedbot_feeds", "Feeds in the store.", registry=r)
        self._failing = Gauge("feedbot_failing_feeds", "Feeds whose last poll failed.", registry=r)
        self._subscriptions = Gauge("feedbot_subscriptions", "Subscriptions.", registry=r)
        self._chats = Gauge("feedbot_active_chats", "Chats that can be reached.", registry=r)
        self._sender = Gauge(
            "feedbot_sender",
            "1 while this process is the one that talks to Telegram.",
            ["owner"],
            registry=r,
        )
        self._owner: str | None = None
        # Every outcome exists from the start, at 0: rate() over a series that
        # appears only at its first increment misses that increment.
        for outcome in _POLL_OUTCOMES:
            self._polls.labels(outcome)
        for outcome in _DELIVERY_OUTCOMES:
            self._deliveries.labels(outcome)

    # -- what the loops report -------------------------------------------------
    def poll_done(self, outcome: PollOutcome, seconds: float) -> None:
        """One poll ended with ``outcome``; its fetch took ``seconds``."""
        if outcome not in _POLL_OUTCOMES:
            raise ValueError(f"unknown poll outcome {outcome!r}")
        self.poll_recorded(outcome)
        self._fetch.observe(max(0.0, seconds))

    def poll_recorded(self, outcome: PollOutcome) -> None:
        """One poll ended with ``outcome`` (its fetch time unknown here)."""
        if outcome not in _POLL_OUTCOMES:
            raise ValueError(f"unknown poll outcome {outcome!r}")
        self._polls.labels(outcome).inc()
        self.recent_polls.add()

    def new_entries(self, count: int) -> None:
        if count > 0:
            self._entries.inc(count)

    def delivery_done(self, outcome: DeliveryOutcome) -> None:
        if outcome not in _DELIVERY_OUTCOMES:
            raise ValueError(f"unknown delivery outcome {outcome!r}")
        self._deliveries.labels(outcome).inc()
        if outcome == "sent":
            self.recent_deliveries.add()

    def rate_limited(self) -> None:
        """Telegram answered 429 (to a delivery or to any other call)."""
        self._429.inc()

    def set_sender(self, is_sender: bool, owner: str) -> None:
        """Whether this process holds the sender role; ``owner`` labels the
        series so that a dashboard shows which process it is."""
        if self._owner is not None and self._owner != owner:
            self._sender.remove(self._owner)
        self._owner = owner
        self._sender.labels(owner).set(1 if is_sender else 0)

    def observe_store(self, stats: StoreStats, due: int, now: float) -> None:
        """The store's gauges, as sampled at ``now``."""
        oldest = stats.outbox.oldest
        self._outbox_depth.set(stats.outbox.depth)
        self._outbox_age.set(0.0 if oldest is None else max(0.0, now - oldest))
        self._due.set(due)
        self._feeds.set(stats.feeds)
        self._failing.set(stats.failing_feeds)
        self._subscriptions.set(stats.subscriptions)
        self._chats.set(stats.active_chats)

    # -- reading ---------------------------------------------------------------
    def render(self) -> bytes:
        """The text exposition format, as /metrics serves it (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)

    def value(self, name: str, **labels: str) -> float | None:
        """One sample's current value (tests, /stats), None when absent."""
        return self.registry.get_sample_value(name, labels)


#: The process's metrics: every module reports here, /metrics serves it.
metrics = Metrics()
