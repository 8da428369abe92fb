"""Assembly: build the python-telegram-bot Application with feedbot's parts."""

from __future__ import annotations

import logging
import os
import time

from telegram import Update
from telegram.ext import Application, ContextTypes

from bot import commands
from bot.config import Config
from bot.deliver import Deliverer
from bot.fetch import Fetcher
from bot.limiter import Limiter
from bot.poller import Poller
from bot.services import SERVICES_KEY, Services, services_of
from bot.store import open_store
from bot.subscriptions import Scheduling, Subscriptions

log = logging.getLogger(__name__)

#: The updates feedbot handles; anything else Telegram need not send.
ALLOWED_UPDATES = [Update.MESSAGE, Update.CHANNEL_POST, Update.MY_CHAT_MEMBER]


class _PollerScheduling(Scheduling):
    def __init__(self, poller: Poller) -> None:
        self._poller = poller

    def feed_added(self, url: str) -> None:
        self._poller.schedule_new(url)

    def feed_removed(self, url: str) -> None:
        self._poller.unschedule(url)


class FeedbotApplication(Application):
    """python-telegram-bot's Application, stopping feedbot's own work first.

    PTB stops its JobQueue inside ``stop()``, before any post_stop hook, and
    the JobQueue cancels (and logs as errors) the jobs still running. So the
    poller starts no new polls and lets those in flight end, and the
    deliverer finishes the sends on the wire, before PTB's stop begins.
    """

    async def stop(self) -> None:
        services = services_of(self.bot_data)
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
    # With max_retries=0 the limiter logs every 429 as an ERROR with a
    # traceback; deliver.py handles 429s and logs one line for each.
    logging.getLogger("telegram.ext.AIORateLimiter").setLevel(logging.CRITICAL)
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
    store = open_store(config.store.path)
    fetcher = Fetcher(
        timeout=config.poll.timeout, allow_private=config.poll.allow_private_addresses
    )
    deliverer = Deliverer(store, application.bot)
    assert application.job_queue is not None, "install python-telegram-bot[job-queue]"
    poller = Poller(store, fetcher, deliverer, config.poll, application.job_queue, deliverer.notify)
    subscriptions = Subscriptions(
        store,
        fetcher,
        _PollerScheduling(poller),
        clock=time.time,
        first_poll_after=config.poll.interval,
    )
    application.bot_data[SERVICES_KEY] = Services(
        config, store, fetcher, deliverer, poller, subscriptions
    )
    commands.register(application)
    application.add_error_handler(_log_error)
    return application


async def _start(application: Application) -> None:
    services = services_of(application.bot_data)
    await application.bot.set_my_commands(commands.MENU)
    services.poller.start()
    services.deliverer.start()
    log.info(
        "feedbot started as @%s: %d feeds, %d deliveries pending",
        application.bot.username,
        len(services.store.feeds()),
        len(services.store.pending()),
    )


async def _shutdown(application: Application) -> None:
    services = services_of(application.bot_data)
    await services.fetcher.aclose()
    services.store.close()
    log.info("feedbot stopped")


async def _log_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    log.error("error while handling %s", _describe(update), exc_info=context.error)


def _describe(update: object) -> str:
    if isinstance(update, Update) and update.effective_message is not None:
        message = update.effective_message
        return f"message {message.text or message.caption!r} in chat {message.chat_id}"
    return repr(update)


def run(config: Config) -> None:
    """Run until SIGINT or SIGTERM; python-telegram-bot stops everything cleanly."""
    application = build_application(config)
    # Keep trying to reach Telegram at start-up (the network may come up after
    # us); a token Telegram refuses still ends the start at once (InvalidToken).
    application.run_polling(allowed_updates=ALLOWED_UPDATES, close_loop=False, bootstrap_retries=-1)
