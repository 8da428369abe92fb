"""Assembly: build the python-telegram-bot Application with feedbot's parts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time

from telegram import Update
from telegram.error import InvalidToken, TelegramError
from telegram.ext import Application, ContextTypes

from bot import commands
from bot.commands.background import cancel_background
from bot.config import Config
from bot.deliver import Deliverer
from bot.fetch import Fetcher
from bot.limiter import Limiter
from bot.media_guard import MediaGuard, self_hosted
from bot.metrics import metrics
from bot.operations import Operations, Sending, serving
from bot.poller import Poller
from bot.services import SERVICES_KEY, Services, services_of
from bot.store import open_store
from bot.subscriptions import Subscriptions

log = logging.getLogger(__name__)

#: Fetches at once for polls, and for /subscribe and imports beside them.
POLL_CONCURRENCY = 8
SUBSCRIBE_CONCURRENCY = 8

#: The updates feedbot handles; anything else Telegram need not send.
ALLOWED_UPDATES = [
    Update.MESSAGE,
    Update.CHANNEL_POST,
    Update.MY_CHAT_MEMBER,
    Update.CALLBACK_QUERY,
]


class FeedbotApplication(Application):
    """python-telegram-bot's Application, stopping feedbot's own work first.

    PTB stops its JobQueue inside ``stop()``, before any post_stop hook, and
    the JobQueue cancels (and logs as errors) the jobs still running. So the
    poller starts no new polls and lets those in flight end, and the
    deliverer finishes the sends on the wire, before PTB's stop begins.
    """

    async def stop(self) -> None:
        services = services_of(self.bot_data)
        await cancel_background(self.bot_data)
        await services.poller.stop()
        await services.deliverer.stop()
        await super().stop()


def file_base_url(api_base_url: str) -> str:
    """Telegram serves files under /file/bot<token>/ beside /bot<token>/."""
    if api_base_url.endswith("/bot"):
        return api_base_url[: -len("/bot")] + "/file/bot"
    return api_base_url


def build_application(config: Config) -> Application:
    # PTB 22 warns on every RetryAfter unless opted in to timedelta values,
    # which deliver.py reads either way; opt in to the coming behaviour.
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    application = (
        Application.builder()
        .application_class(FeedbotApplication)
        .token(config.telegram.token)
        .base_url(config.telegram.api_base_url)
        .base_file_url(file_base_url(config.telegram.api_base_url))
        # Every call to Telegram (replies, deliveries, notices, menus) goes
        # through one limiter: 30/s overall, about 1/s per chat, 20/min per
        # group; replies before deliveries; 429s waited out (bot/limiter.py).
        .rate_limiter(Limiter())
        # Subscribing fetches a feed: one slow server must not hold up other chats.
        .concurrent_updates(16)
        .post_init(_start)
        .post_shutdown(_shutdown)
        .build()
    )
    store = open_store(config.store)
    fetcher = _fetcher(config)
    # A Bot API server of the operator's own fetches media from inside their
    # network: only media on public addresses is handed to it.
    guard = MediaGuard(fetcher.policy, fetcher.resolve)
    deliverer = Deliverer(
        store,
        application.bot,
        media_allowed=guard if self_hosted(config.telegram.api_base_url) else None,
    )
    assert application.job_queue is not None, "install python-telegram-bot[job-queue]"
    poller = Poller(
        store,
        fetcher,
        config.poll,
        on_new_entries=deliverer.wake,
        concurrency=fetcher.concurrency,
    )
    # Counted for /metrics and for /stats' "polls in the last hour".
    poller.reports = lambda report: metrics.poll_recorded(report.result.name.lower())  # type: ignore[arg-type]
    subscriptions = Subscriptions(
        store,
        # Fetches users cause have slots of their own: a crowd subscribing to
        # a stalling server never takes the poller's (bot/slots.py bounds
        # each host within these).
        _fetcher(config, concurrency=SUBSCRIBE_CONCURRENCY),
        clock=time.time,
        first_poll_after=config.poll.interval,
        min_interval=config.poll.min_interval,
    )

    async def start_sending() -> None:
        deliverer.start()

    # Only the process that holds the sender role receives updates and sends
    # (bot/roles.py); every process polls.
    operations = Operations(
        application,
        config,
        store,
        Sending(start_sending, deliverer.stop),
        allowed_updates=ALLOWED_UPDATES,
        owner=poller.owner,
    )
    application.bot_data[SERVICES_KEY] = Services(
        config, store, fetcher, deliverer, poller, subscriptions, operations
    )
    commands.register(application)
    application.add_error_handler(_log_error)
    return application


async def _start(application: Application) -> None:
    services = services_of(application.bot_data)
    await services.store.open()
    await application.bot.set_my_commands(commands.MENU)
    assert application.job_queue is not None
    services.poller.start(application.job_queue)
    stats = await services.store.stats()
    log.info(
        "feedbot started as @%s: %d feeds, %d deliveries pending",
        application.bot.username,
        stats.feeds,
        stats.outbox.depth,
    )


async def _shutdown(application: Application) -> None:
    await _close(services_of(application.bot_data))
    log.info("feedbot stopped")


def _fetcher(config: Config, concurrency: int = POLL_CONCURRENCY) -> Fetcher:
    return Fetcher(
        timeout=config.poll.timeout,
        allow_private=config.poll.allow_private_addresses,
        allow_hosts=config.poll.allow_hosts,
        concurrency=concurrency,
    )


async def _close(services: Services) -> None:
    await services.fetcher.aclose()
    await services.subscriptions.fetcher.aclose()
    await services.store.close()


async def _log_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    log.error("error while handling %s", _describe(update), exc_info=context.error)


def _describe(update: object) -> str:
    if isinstance(update, Update) and update.effective_message is not None:
        message = update.effective_message
        return f"message {message.text or message.caption!r} in chat {message.chat_id}"
    return repr(update)


#: Seconds between attempts to reach Telegram at start-up.
STARTUP_RETRY = 5.0


def _not_found(exc: InvalidToken) -> bool:
    """PTB raises InvalidToken for 401 and 404 alike (see telegram/request/
    _baserequest.py); only 401 means Telegram refused the token. A 404 is a
    URL that is not the Bot API (one missing "/bot"), or a token of the wrong
    form: the cause's message, "Not Found …", is the only way to tell."""
    cause = exc.__cause__ if isinstance(exc.__cause__, TelegramError) else exc
    return "not found" in cause.message.lower() or "(404)" in cause.message


async def wait_for_telegram(
    application: Application,
    base_url: str,
    stop: asyncio.Event,
    retry: float = STARTUP_RETRY,
) -> bool:
    """Initialize the application (getMe), retrying until Telegram answers.

    PTB's own bootstrap retries say nothing below debug level, so an operator
    would see a bot that does nothing: each new problem is logged once, in
    one line, saying that we keep trying. False if stopped while waiting;
    InvalidToken when Telegram refuses the token (no retry can help).
    """
    reported = ""
    while True:
        try:
            await application.initialize()
        except InvalidToken as exc:
            if not _not_found(exc):
                raise
            problem = (
                f"{base_url} answers 404 Not Found: telegram.api_base_url must be the Bot API "
                "(it ends in /bot, as in https://api.telegram.org/bot) and the token as "
                "@BotFather gave it"
            )
        except TelegramError as exc:  # NetworkError, TimedOut, a 5xx …
            problem = f"cannot reach Telegram at {base_url}: {exc.message}"
        else:
            if reported:
                log.warning("reached Telegram at %s", base_url)
            return True
        if problem != reported:
            log.error("%s; retrying every %gs", problem, retry)
            reported = problem
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), retry)
            return False


def run(config: Config) -> None:
    """Run until SIGINT or SIGTERM, then stop everything cleanly."""
    application = build_application(config)
    services = services_of(application.bot_data)

    async def main() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        # Keep trying to reach Telegram at start-up (the network may come up
        # after us), saying why; a token Telegram refuses ends the start at
        # once (InvalidToken).
        try:
            reached = await wait_for_telegram(application, config.telegram.api_base_url, stopping)
        except BaseException:
            await _close(services)
            raise
        if not reached:
            await _shutdown(application)
            return
        async with serving(application, services.operations):
            await stopping.wait()

    asyncio.run(main())
