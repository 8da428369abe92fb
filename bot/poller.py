"""Poll: claim due feeds from the store, fetch, parse, plan, record.

The schedule lives in the store (each feed's ``next_poll`` and lease), not in
this process: one periodic APScheduler job (python-telegram-bot's JobQueue)
claims a bounded batch of due feeds whenever fetch slots are free, and each
finished poll frees its slot and claims again at once, so the loop runs at
the speed of the wire while the job only wakes it when nothing was running.
A restart, or a second process on the same PostgreSQL database, sees the same
schedule; a feed's lease keeps two processes from polling it at once, and a
dead process's feeds come back when their leases run out.

One poll is: fetch → parse (only a changed body) → look up the parsed keys in
the seen set (one query) → ``plan_poll`` (pure, bot/plan.py) → the plan is
handed to the recorder, which applies the plans finished close together in
one ``Store.record_polls`` call (one transaction): an unchanged feed costs a
request and a share of one write.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import cast

from telegram.ext import ContextTypes, Job, JobQueue

from bot.config import PollConfig
from bot.fetch import Fetcher, FetchError, FetchResult
from bot.health import heartbeats
from bot.identity import dedupe_keys
from bot.metrics import PollOutcome, metrics
from bot.models import FeedStatus, ParsedFeed
from bot.parse import ParseError, parse_response
from bot.plan import Claim, Failure, PollPlan, PollRules, plan_poll
from bot.roles import owner_id
from bot.store import Store

log = logging.getLogger(__name__)

#: How long a stop waits for the polls in flight before cancelling them.
STOP_GRACE = 5.0
#: How often the periodic job looks for due feeds when nothing is running.
TICK = 1.0
#: Plans finished within this long of each other are recorded together
#: (one transaction and one commit). A poll does not hold its fetch slot
#: while it waits, so the window costs latency, not throughput.
RECORD_WINDOW = 0.02
#: At most this many plans per record_polls transaction.
RECORD_BATCH = 200
#: The poll loop's heartbeat (bot/health.py): the tick beats each second, so
#: a minute without one is a loop that died or an event loop that hangs.
HEARTBEAT = "poll"
HEARTBEAT_MAX_AGE = 60.0

#: Feeds claimed per claim transaction, in fetch slots' worth: one claim per
#: freed slot cost more than the fetch itself (a transaction and its commit
#: each), so the poller claims a few rounds ahead and keeps them in a backlog.
CLAIM_ROUNDS = 4


class PollResult(Enum):
    NEW_ENTRIES = "new entries"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    GONE = "gone"
    #: Nobody follows it any more: deleted.
    DROPPED = "dropped"
    #: The lease was lost meanwhile (another process polled it): nothing recorded.
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class PollReport:
    url: str
    result: PollResult
    new_entries: int = 0
    error: str | None = None
    #: How long the fetch took (0 when nothing was fetched).
    fetch_seconds: float = 0.0


def rules_of(config: PollConfig) -> PollRules:
    return PollRules(
        interval=config.interval,
        min_interval=config.min_interval,
        max_interval=config.max_interval,
        adaptive=config.adaptive,
    )


def report_of(plan: PollPlan, recorded: bool) -> PollReport:
    """What a recorded plan amounted to, for logs, metrics and tests."""
    if not recorded:
        return PollReport(plan.url, PollResult.LOST)
    if plan.feed is None:
        return PollReport(plan.url, PollResult.DROPPED)
    if plan.feed.status is FeedStatus.GONE:
        return PollReport(plan.url, PollResult.GONE, error=plan.feed.last_error)
    if plan.feed.error_count:
        return PollReport(plan.url, PollResult.FAILED, error=plan.feed.last_error)
    new = len(plan.enqueue)
    return PollReport(plan.url, PollResult.NEW_ENTRIES if new else PollResult.UNCHANGED, new)


class Poller:
    def __init__(
        self,
        store: Store,
        fetcher: Fetcher,
        config: PollConfig,
        *,
        owner: str | None = None,
        on_new_entries: Callable[[], None] = lambda: None,
        concurrency: int = 16,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._fetcher = fetcher
        self._config = config
        self.rules = rules_of(config)
        self.owner = owner or owner_id()
        self._on_new_entries = on_new_entries
        self._concurrency = concurrency
        #: Wall clock and random source; tests may replace them on a running bot.
        self.clock = clock
        self.rng = rng
        #: A lease outlives the longest fetch (its deadline) with room to record.
        self.lease = config.lease or max(30.0, 1.5 * config.timeout + 10.0)
        self._in_flight: set[asyncio.Task[None]] = set()
        #: Claimed, not yet started (at most CLAIM_ROUNDS slots' worth).
        self._backlog: deque[Claim] = deque()
        self._filling = False
        #: A fill() is scheduled for after the latest recorded batch.
        self._refill = False
        self._stopping = False
        self._job: Job[ContextTypes.DEFAULT_TYPE] | None = None
        #: The wake-up set for the earliest next poll, when it is before the next tick.
        self._timer: asyncio.TimerHandle | None = None
        self._plans: list[tuple[PollPlan, asyncio.Future[bool]]] = []
        self._flush: asyncio.Task[None] | None = None
        self.reports: Callable[[PollReport], None] = lambda report: None
        #: Each poll's fetch time, from plan() to poll(), by URL (a feed is
        #: polled once at a time here: its lease); plan() returns only the plan.
        self._fetch_seconds: dict[str, float] = {}

    # -- the loop --------------------------------------------------------------

    def start(self, job_queue: JobQueue[ContextTypes.DEFAULT_TYPE]) -> None:
        self._stopping = False
        self._job = job_queue.run_repeating(
            self._tick,
            interval=TICK,
            first=0.0,
            name="poll",
            # A busy loop must delay a tick, never drop it (APScheduler's
            # default drops a job more than 1 s late).
            job_kwargs={"misfire_grace_time": None, "max_instances": 1, "coalesce": True},
        )

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Claim nothing more; let the polls in flight finish for ``grace``
        seconds, then cancel them (harmless: a cancelled poll recorded
        nothing, and its lease runs out). Runs before the JobQueue stops."""
        self._stopping = True
        heartbeats.forget(HEARTBEAT)
        if self._job is not None:
            self._job.schedule_removal()
            self._job = None
        if self._timer is not None:
            self._timer.cancel()
        # Claimed but never started: their leases run out (nothing recorded).
        self._backlog.clear()
        running = list(self._in_flight)
        if running:
            _, late = await asyncio.wait(running, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._flush is not None:
            await asyncio.gather(self._flush, return_exceptions=True)

    async def _tick(self, context: ContextTypes.DEFAULT_TYPE) -> None:
        heartbeats.beat(HEARTBEAT, HEARTBEAT_MAX_AGE)
        await self.fill()

    async def fill(self) -> None:
        """Start a poll in every free fetch slot, from the backlog of claimed
        feeds, claiming a few rounds of due feeds when it is empty."""
        if self._filling or self._stopping:
            return
        self._filling = True
        try:
            while not self._stopping:
                free = self._concurrency - len(self._in_flight)
                if free <= 0:
                    return
                exhausted = False
                if not self._backlog:
                    # Claiming ahead saves claim transactions, but stretches
                    # the leases: with other processes on the store, claim
                    # only what starts now, so a dead one's feeds come back
                    # within lease + interval.
                    rounds = 1 if self._store.shared else CLAIM_ROUNDS
                    wanted = max(free, rounds * self._concurrency)
                    claims = await self._store.claim_due_feeds(
                        self.owner, self.clock(), wanted, self._batch_lease(wanted)
                    )
                    self._backlog.extend(claims)
                    exhausted = len(claims) < wanted
                while self._backlog and len(self._in_flight) < self._concurrency:
                    self._start(self._backlog.popleft())
                if exhausted and not self._backlog:
                    await self._wake_for_next_poll()
                    return
        except Exception:
            log.exception("claiming due feeds failed")
        finally:
            self._filling = False

    def _batch_lease(self, claimed: int) -> float:
        """A claimed feed may wait in the backlog for the rounds before it,
        each at most one fetch deadline: its lease covers them."""
        rounds = math.ceil(claimed / self._concurrency)
        return self.lease + (rounds - 1) * self._config.timeout

    async def _wake_for_next_poll(self) -> None:
        """Nothing more is due: wake up when the earliest feed will be, if
        that comes before the next tick (a 1 s interval is then kept to the
        millisecond, not rounded up to the tick). A time already past belongs
        to a poll in flight, whose end calls fill() anyway."""
        at = await self._store.next_poll_at()
        if at is not None:
            self._wake_at(at)

    def _wake_at(self, at: float) -> None:
        """Run fill() at ``at`` if that is before the next tick and before
        the wake-up already set. Also called with the next poll of every
        plan this process records: the store's earliest time may belong to
        a feed still in flight (past, so no wake-up), while the feed just
        recorded is due in a second."""
        delay = at - self.clock()
        if self._stopping or not 0 < delay < TICK:
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        if self._timer is not None and not self._timer.cancelled():
            if self._timer.when() <= when and self._timer.when() > loop.time():
                return  # an earlier wake-up is already set
            self._timer.cancel()
        self._timer = loop.call_at(when, lambda: loop.create_task(self.fill()))

    def _start(self, claim: Claim) -> None:
        task = asyncio.create_task(self._run(claim), name=f"poll {claim.feed.url}")
        self._in_flight.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if self._stopping:
            return
        if self._backlog and not self._filling:
            # The freed slot takes the next claimed feed at once; fill() (a
            # task of its own) is needed only to claim more.
            self._start(self._backlog.popleft())
            if self._backlog:
                return
        asyncio.get_running_loop().create_task(self.fill())

    async def _run(self, claim: Claim) -> None:
        """Plan in the fetch slot; record outside it. A poll's slot is freed
        once its plan is made, not when the recorder's batch is committed:
        otherwise every slot would sit idle for the recording window and the
        loop could not run faster than ``concurrency / RECORD_WINDOW``."""
        try:
            plan = await self.plan(claim)
        except asyncio.CancelledError:
            if self._stopping:
                return  # stop() cancelled it: the poll ends quietly
            raise
        except Exception:
            # A bug must not end a feed's polling: its lease runs out and it
            # is claimed again then.
            log.exception("poll of %s crashed", claim.feed.url)
            self._fetch_seconds.pop(claim.feed.url, None)
            return
        self._queue_plan(plan).add_done_callback(lambda done: self._recorded(plan, done))

    def _recorded(self, plan: PollPlan, done: asyncio.Future[bool]) -> None:
        if done.cancelled():
            return
        if done.exception() is not None:
            log.error("recording the poll of %s failed: %s", plan.url, done.exception())
            self._fetch_seconds.pop(plan.url, None)
            return  # nothing recorded: the lease runs out and it is polled again
        self.reports(self._finish(plan, done.result()))
        # Its next poll time is stored only now: a fill() that ran while it
        # waited saw the old one (past) and set no wake-up for it.
        if not self._stopping and not self._refill:
            self._refill = True
            asyncio.get_running_loop().call_soon(self._refill_now)

    def _refill_now(self) -> None:
        self._refill = False
        if not self._stopping:
            asyncio.get_running_loop().create_task(self.fill())

    # -- one poll --------------------------------------------------------------

    async def poll(self, claim: Claim) -> PollReport:
        """Poll one claimed feed and record what changed."""
        try:
            plan = await self.plan(claim)
        except BaseException:
            self._fetch_seconds.pop(claim.feed.url, None)
            raise
        return self._finish(plan, await self._queue_plan(plan))

    def _finish(self, plan: PollPlan, recorded: bool) -> PollReport:
        fetch_seconds = self._fetch_seconds.pop(plan.url, 0.0)
        report = replace(report_of(plan, recorded), fetch_seconds=fetch_seconds)
        metrics.poll_done(cast(PollOutcome, report.result.name.lower()), fetch_seconds)
        metrics.new_entries(report.new_entries)
        if report.result is PollResult.NEW_ENTRIES:
            log.debug("%s: %d new entries", plan.url, report.new_entries)
        if plan.enqueue or plan.tell:
            self._on_new_entries()
        return report

    async def plan(self, claim: Claim) -> PollPlan:
        """Fetch, parse and decide; no write."""
        feed = claim.feed
        now = self.clock
        if not claim.followed:
            return plan_poll(claim, self.rules, now(), rng=self.rng)
        started = time.monotonic()
        try:
            result = await self._fetcher.fetch(
                feed.url, etag=feed.etag, last_modified=feed.last_modified
            )
        except FetchError as exc:
            self._fetch_seconds[feed.url] = time.monotonic() - started
            return self._failed(claim, Failure(str(exc), exc.retry_after, exc.gone))
        self._fetch_seconds[feed.url] = time.monotonic() - started
        parsed: ParsedFeed | None = None
        seen: set[str] = set()
        entry_keys: list[tuple[str, ...]] | None = None
        if _changed(result, feed.body_hash):
            try:
                parsed = parse_response(result)
            except ParseError as exc:
                return self._failed(claim, Failure(str(exc)))
            entry_keys = [dedupe_keys(entry) for entry in parsed.entries]
            keys = [key for entry_key in entry_keys for key in entry_key]
            seen = await self._store.seen(result.permanent_url or feed.url, keys)
            if result.permanent_url and result.permanent_url != feed.url:
                # The moved feed's history is under the old URL until the plan moves it.
                seen |= await self._store.seen(feed.url, keys)
        if feed.error_count:
            log.info("%s: recovered after %d failed polls", feed.url, feed.error_count)
        if result.permanent_url and result.permanent_url != feed.url:
            log.info(
                "%s moved permanently to %s; subscriptions follow", feed.url, result.permanent_url
            )
        return plan_poll(
            claim,
            self.rules,
            now(),
            result=result,
            parsed=parsed,
            seen=seen,
            rng=self.rng,
            entry_keys=entry_keys,
        )

    def _failed(self, claim: Claim, failure: Failure) -> PollPlan:
        feed = claim.feed
        log.warning(
            "poll %s failed (%d in a row): %s", feed.url, feed.error_count + 1, failure.message
        )
        return plan_poll(claim, self.rules, self.clock(), failure=failure, rng=self.rng)

    # -- recording -------------------------------------------------------------

    def _queue_plan(self, plan: PollPlan) -> asyncio.Future[bool]:
        """Hand the plan to the recorder; the future is True once it is applied."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._plans.append((plan, done))
        if self._flush is None or self._flush.done():
            self._flush = asyncio.create_task(self._flush_plans(), name="record polls")
        return done

    async def _flush_plans(self) -> None:
        while self._plans:
            await asyncio.sleep(RECORD_WINDOW)
            batch, self._plans = self._plans[:RECORD_BATCH], self._plans[RECORD_BATCH:]
            try:
                recorded = await self._store.record_polls([plan for plan, _ in batch], self.owner)
            except Exception:
                if len(batch) == 1:
                    raise_in(batch[0][1])
                    continue
                # One plan that cannot be written fails its whole transaction:
                # record them one by one, so only that feed's poll fails.
                for plan, done in batch:
                    try:
                        (ok,) = await self._store.record_polls([plan], self.owner)
                    except Exception:
                        raise_in(done)
                    else:
                        settle(done, ok)
                continue
            for (plan, done), ok in zip(batch, recorded, strict=True):
                settle(done, ok)
                if ok and plan.feed is not None:
                    self._wake_at(plan.feed.next_poll)


def settle(done: asyncio.Future[bool], ok: bool) -> None:
    if not done.done():
        done.set_result(ok)


def raise_in(done: asyncio.Future[bool]) -> None:
    """Hand the exception being handled to the poll waiting on ``done``."""
    exc = sys.exc_info()[1]
    if not done.done() and exc is not None:
        done.set_exception(exc)


def _changed(result: FetchResult, body_hash: str | None) -> bool:
    """A 304, or a 200 whose body hashes as before, needs no parse."""
    return result.status != 304 and result.body_hash != body_hash


async def poll_due(
    poller: Poller, store: Store, *, at: float | None = None, limit: int = 10_000
) -> Sequence[PollReport]:
    """Claim every feed due by ``at`` (default: now) and poll them in this
    task, bounded by the fetcher (tests and benches)."""
    when = poller.clock() if at is None else at
    claims = await store.claim_due_feeds(poller.owner, when, limit, poller.lease)
    return await asyncio.gather(*(poller.poll(claim) for claim in claims))
