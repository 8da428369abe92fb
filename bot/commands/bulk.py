"""Subscribing one chat to many feeds at once (/import, and /subscribe with
several URLs): one summary with counts instead of a line per feed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from bot.commands.access import Target
from bot.fetch import InvalidURL, normalize_url
from bot.services import Services
from bot.texts import plural, say

#: Feeds fetched at once: the same bound as polling.
CONCURRENCY = 4


class Outcome(Enum):
    ADDED = "added"
    ALREADY = "already"
    FAILED = "failed"


@dataclass(slots=True)
class BulkSummary:
    """How a bulk subscribe went, feed by feed, for one reply."""

    total: int = 0
    counts: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    #: The answer line of each feed that failed, in file order.
    failures: list[str] = field(default_factory=list)

    def add(self, outcome: Outcome, line: str) -> None:
        self.total += 1
        self.counts[outcome] += 1
        if outcome is Outcome.FAILED:
            self.failures.append(line)

    def lines(self, code: str = "subscribe.summary") -> list[str]:
        """The reply: the counts (in the words of ``code``), then each failure."""
        head = say(
            code,
            total=self.total,
            feeds=plural(self.total, "feed", "feeds"),
            added=self.counts[Outcome.ADDED],
            already=self.counts[Outcome.ALREADY],
            failed=self.counts[Outcome.FAILED],
        )
        return [head, *self.failures]


async def subscribe_many(services: Services, target: Target, urls: Sequence[str]) -> BulkSummary:
    """Subscribe the target chat to each URL, and count how each went.

    "Already there" is read from the store before subscribing, because
    Subscriptions.subscribe answers only ok or not; URLs naming the same feed
    twice (after normalizing) count once.
    """
    chat = target.chat
    store = services.store
    unique: dict[str, str] = {}
    for url in urls:
        try:
            key = normalize_url(url)
        except InvalidURL:
            key = url
        unique.setdefault(key, url)
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(key: str, url: str) -> tuple[Outcome, str]:
        if store.get_subscription(chat.id, key) is not None:
            return Outcome.ALREADY, ""
        async with limit:
            answer = await services.subscriptions.subscribe(chat, url)
        return (Outcome.ADDED if answer.ok else Outcome.FAILED), answer.text

    summary = BulkSummary()
    for outcome, line in await asyncio.gather(*(one(k, u) for k, u in unique.items())):
        summary.add(outcome, line)
    return summary
