"""Plan: what one poll of a feed changes, decided by a pure function.

The poller fetches and parses; :func:`plan_poll` (given the claimed feed, the
fetch outcome, the parsed entries, the seen keys, the subscribers and the
clock) returns a :class:`PollPlan`; the store applies the whole plan in one
transaction (``Store.record_polls``). Nothing here does I/O, so every rule can
be tested with plain values.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass, replace

from bot.fetch import FetchResult
from bot.identity import dedupe_keys, new_entries
from bot.models import Entry, Feed, FeedStatus, Notice, ParsedFeed, Subscription


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


# -- the rules ------------------------------------------------------------------

HOUR = 3600.0
DAY = 24 * HOUR
#: A failing feed is retried at most this far apart (or its interval, if
#: longer), and polling never stops.
MAX_BACKOFF = 4 * HOUR
#: A server's Retry-After is honoured up to this long (beyond it, it is a mistake).
MAX_RETRY_AFTER = DAY
#: Backoff delays are drawn from [1 - BACKOFF_JITTER, 1] × the exponential step,
#: so feeds that failed together (one host down) do not come back together.
BACKOFF_JITTER = 0.25
#: Healthy intervals are jittered by ± this fraction.
INTERVAL_JITTER = 0.1
#: A failing feed's subscribers are told once, after this long.
FAILURE_NOTICE_AFTER = DAY
#: Seen keys of entries that left the feed are forgotten after this long.
SEEN_RETENTION = 90 * DAY
#: How many new-entry times a feed remembers for its adaptive interval.
RECENT_ENTRIES = 20


@dataclass(frozen=True, slots=True)
class PollRules:
    """The operator's polling settings, in seconds (from PollConfig)."""

    interval: float
    min_interval: float
    #: However quiet a feed, or however long its TTL or max-age, poll it at
    #: least this often.
    max_interval: float = HOUR
    #: Stretch the interval of quiet feeds (towards max_interval).
    adaptive: bool = True


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a poll failed: the fetch (FetchError) or the parse (ParseError)."""

    #: One sentence, for the log, /list and the failing notice.
    message: str
    retry_after: float | None = None
    #: 410 Gone: stop polling.
    gone: bool = False


def jittered(
    seconds: float, rng: Callable[[], float] = random.random, spread: float = INTERVAL_JITTER
) -> float:
    """``seconds`` ± ``spread`` (10%), so feeds that started together drift apart."""
    return seconds * (1 - spread + 2 * spread * rng())


def adaptive_interval(
    rules: PollRules,
    recent_entry_times: Sequence[float],
    now: float,
    *,
    ttl: float | None = None,
    max_age: float | None = None,
    since: float | None = None,
) -> float:
    """How long to wait before the next poll of a healthy feed.

    Busy feeds are polled at the configured ``interval``; a feed that posts
    rarely is polled about four times per gap between its entries (or per
    time it has been quiet), up to ``max_interval``, so a quiet feed is
    never out of sight for longer than the operator allows. ``since`` is
    when the bot started following the feed. The feed's <ttl> and the
    server's Cache-Control max-age may stretch the interval (within
    ``max_interval``). Never below ``min_interval``.
    """
    interval = rules.interval
    ceiling = max(rules.interval, rules.max_interval)
    if rules.adaptive:
        quiet = 0.0
        if len(recent_entry_times) >= 2:
            span = recent_entry_times[-1] - recent_entry_times[0]
            average_gap = span / (len(recent_entry_times) - 1)
            quiet = max(average_gap, now - recent_entry_times[-1])
        elif recent_entry_times:
            quiet = now - recent_entry_times[-1]
        elif since is not None:
            quiet = now - since
        interval = max(interval, min(ceiling, quiet / 4))
    for hint in (ttl, max_age):
        if hint and hint > 0:
            interval = max(interval, min(ceiling, hint))
    return max(interval, rules.min_interval)


def backoff_interval(
    base: float,
    min_interval: float,
    error_count: int,
    retry_after: float | None,
    rng: Callable[[], float] | None = None,
) -> float:
    """How long to wait after ``error_count`` consecutive failures.

    Exponential from ``base`` (the feed's interval), capped at MAX_BACKOFF (or
    ``base`` if that is longer), jittered downwards with ``rng`` (so the cap
    holds), and never sooner than the server's Retry-After (itself honoured up
    to MAX_RETRY_AFTER) or ``min_interval``.
    """
    exponent = min(max(0, error_count - 1), 32)  # 2**32 × base is past any cap
    delay = min(max(base, MAX_BACKOFF), base * 2.0**exponent)
    if rng is not None:
        delay *= 1 - BACKOFF_JITTER * rng()
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return max(delay, min_interval)


def _notice(code: str, feed: Feed, **more: str) -> Notice:
    return Notice(code, {"title": feed.title or feed.url, "url": feed.url, **more})


def _tell(notice: Notice, claim: Claim) -> tuple[Tell, ...]:
    chats = tuple(dict.fromkeys(sub.chat_id for sub in claim.subscribers))
    return (Tell(notice, chats),) if chats else ()


def plan_poll(
    claim: Claim,
    rules: PollRules,
    now: float,
    *,
    result: FetchResult | None = None,
    parsed: ParsedFeed | None = None,
    seen: Set[str] = frozenset(),
    failure: Failure | None = None,
    rng: Callable[[], float] = random.random,
    entry_keys: Sequence[tuple[str, ...]] | None = None,
) -> PollPlan:
    """What one poll of ``claim.feed`` changes.

    Exactly one of ``result`` (the fetch answered: 304, or 200 with
    ``parsed`` when the body changed) and ``failure`` is given. ``seen`` is
    which of the parsed entries' dedupe keys the store already holds;
    ``entry_keys``, when the caller computed them for that look-up, are
    those keys entry by entry (computed here otherwise).
    """
    old = claim.feed
    if not claim.followed:
        # Nobody follows it any more: forget it and its seen set.
        return PollPlan(old.url, None, now)
    feed = replace(old, recent_entry_times=list(old.recent_entry_times))
    if failure is not None or result is None:
        return _plan_failure(claim, feed, rules, now, failure or Failure("no answer"), rng)

    moved_to = None
    if result.permanent_url and result.permanent_url != old.url:
        moved_to = feed.url = result.permanent_url
    changed = moved_to is not None or bool(old.error_count) or old.failing_since is not None
    tell: tuple[Tell, ...] = ()
    if old.failure_notified:
        tell = _tell(_notice("feed.back", feed), claim)

    enqueue: tuple[Enqueue, ...] = ()
    keys: tuple[str, ...] = ()
    prune_before = None
    if parsed is not None:
        changed = True
        keys_of = entry_keys or [dedupe_keys(entry) for entry in parsed.entries]
        keys = tuple(key for entry_key in keys_of for key in entry_key)
        new = new_entries(parsed.entries, seen, keys_of)
        chats = tuple(dict.fromkeys(sub.chat_id for sub in claim.subscribers))
        if chats:
            # oldest first: the order chats receive them
            enqueue = tuple(Enqueue(entry, chats) for entry in new)
        if new:
            feed.recent_entry_times = [*feed.recent_entry_times, now][-RECENT_ENTRIES:]
        # Prune at most once a day: on the first parse of a new (UTC) day.
        if old.last_success is None or int(old.last_success // DAY) != int(now // DAY):
            prune_before = now - SEEN_RETENTION
        feed.ttl = parsed.ttl
        feed.title = parsed.title or feed.title
        feed.link = parsed.link or feed.link
    if result.status != 304 and result.body_hash:
        feed.body_hash = result.body_hash
    feed.etag = result.etag or feed.etag
    feed.last_modified = result.last_modified or feed.last_modified
    feed.last_success = now
    feed.last_error = None
    feed.error_count = 0
    feed.failing_since = None
    feed.failure_notified = False
    interval = adaptive_interval(
        _rules_for(rules, claim),
        feed.recent_entry_times,
        now,
        ttl=feed.ttl,
        max_age=result.max_age,
        since=min((sub.created for sub in claim.subscribers), default=None),
    )
    feed.interval = interval
    feed.next_poll = now + max(rules.min_interval, jittered(interval, rng))
    return PollPlan(
        old.url,
        feed,
        now,
        moved_to=moved_to,
        seen=keys,
        prune_before=prune_before,
        enqueue=enqueue,
        tell=tell,
        changed=changed,
    )


def _rules_for(rules: PollRules, claim: Claim) -> PollRules:
    """The operator's rules, with the interval the most eager subscriber asks
    for (never below min_interval; a longer ceiling if it asks for more)."""
    asked = [sub.style.interval for sub in claim.subscribers if sub.style.interval]
    if not asked:
        return rules
    interval = max(min(asked), rules.min_interval)
    return replace(rules, interval=interval, max_interval=max(rules.max_interval, interval))


def _plan_failure(
    claim: Claim,
    feed: Feed,
    rules: PollRules,
    now: float,
    failure: Failure,
    rng: Callable[[], float],
) -> PollPlan:
    feed.error_count += 1
    feed.last_error = failure.message
    feed.failing_since = feed.failing_since or now
    if failure.gone:
        feed.status = FeedStatus.GONE
        return PollPlan(feed.url, feed, now, tell=_tell(_notice("feed.gone", feed), claim))
    tell: tuple[Tell, ...] = ()
    if not feed.failure_notified and now - feed.failing_since >= FAILURE_NOTICE_AFTER:
        feed.failure_notified = True
        tell = _tell(_notice("feed.failing", feed, error=failure.message), claim)
    base = max(feed.interval or _rules_for(rules, claim).interval, rules.min_interval)
    delay = backoff_interval(base, rules.min_interval, feed.error_count, failure.retry_after, rng)
    feed.next_poll = now + delay
    return PollPlan(feed.url, feed, now, tell=tell)
