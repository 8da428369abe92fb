"""The running bot's parts, as the command handlers reach them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from telegram.ext import ContextTypes

from bot.config import Config
from bot.deliver import Deliverer
from bot.fetch import Fetcher
from bot.operations import Operations
from bot.poller import Poller
from bot.store import Store
from bot.subscriptions import Subscriptions

SERVICES_KEY = "feedbot"


@dataclass(slots=True)
class Services:
    config: Config
    store: Store
    fetcher: Fetcher
    deliverer: Deliverer
    poller: Poller
    subscriptions: Subscriptions
    #: The sender role, receiving updates, /metrics and /healthz.
    operations: Operations


def services_of(bot_data: Mapping[str, object]) -> Services:
    """The parts app.build_application put in the Application's bot_data."""
    services = bot_data[SERVICES_KEY]
    assert isinstance(services, Services)
    return services


def get_services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    return services_of(context.bot_data)
