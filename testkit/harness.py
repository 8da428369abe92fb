"""Run the real bot in-process against the fake Telegram API and a local feed server."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from telegram.ext import Application

from bot.app import build_application
from bot.config import Config, load_config
from bot.operations import serving
from bot.poller import PollReport, poll_due
from bot.services import Services, services_of
from bot.store import Store, open_store
from testkit.fake_telegram import FakeTelegram

TOKEN = "123456:TEST"


def shared_dir() -> Path | None:
    """The workplace's shared/ folder (feed corpus, examples): beside the
    checkout in CI, /work/shared on a developer's machine."""
    for candidate in (Path(__file__).resolve().parents[2] / "shared", Path("/work/shared")):
        if (candidate / "corpus").is_dir():
            return candidate
    return None


#: The PostgreSQL database configs get when the caller names no store: set
#: by tests/conftest.py's ``e2e_store`` fixture, so that one end-to-end test
#: runs on either backend unchanged. None: the embedded file.
_default_store_url: str | None = None


def use_store_url(url: str | None) -> None:
    """Configs written from now on use the database at ``url`` (None: the file)."""
    global _default_store_url
    _default_store_url = url


def write_config(
    directory: Path,
    telegram: FakeTelegram,
    *,
    interval: str = "1s",
    extra_telegram: str = "",
    timeout: str = "5s",
    extra: str = "",
    store_url: str | None = None,
) -> Path:
    """A config file as a user would write it, pointing at the fakes; its
    store is ``store_url``, else the one :func:`use_store_url` chose, else
    a file in ``directory``."""
    path = directory / "config.toml"
    url = store_url or _default_store_url
    store = f'url = "{url}"' if url else f'path = "{directory / "data" / "feedbot.sqlite"}"'
    path.write_text(
        f"""
[telegram]
token = "{TOKEN}"
api_base_url = "{telegram.base_url}"
admins = [4242]
{extra_telegram}

[store]
{store}

[poll]
interval = "{interval}"
min_interval = "1s"
timeout = "{timeout}"
allow_private_addresses = true
{extra}
""",
        encoding="utf-8",
    )
    return path


def free_port() -> int:
    """A loopback port nobody listens on now, for a config that must name
    one before the bot starts (a webhook URL); port 0 serves otherwise."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_test_config(directory: Path, telegram: FakeTelegram, **kwargs: str) -> Config:
    return load_config(str(write_config(directory, telegram, **kwargs)), env={})


@asynccontextmanager
async def running_bot(config: Config) -> AsyncIterator[Application]:  # type: ignore[type-arg]
    """The bot as ``feedbot run`` runs it (bot/app.py), without its signal
    handling: the sender role takes up getUpdates (short polls here)."""
    app = build_application(config)
    operations = services_of(app.bot_data).operations
    operations.receiver.polling_timeout = 1
    async with serving(app, operations):
        yield app


async def start_bot(config: Path, name: str = "bot") -> asyncio.subprocess.Process:
    """`python -m bot run --config FILE` as a user runs it, its output in
    ``NAME.log`` beside the config (a pipe nobody reads while the bot runs
    would fill up and stall it on its next log line); several processes on
    one config get a name each."""
    log = (config.parent / f"{name}.log").open("ab")
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            "--config",
            str(config),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(os.environ),
        )
    finally:
        log.close()


@asynccontextmanager
async def config_store(config: Path) -> AsyncIterator[Store]:
    """The store a config file names, opened (whichever backend): for a test
    that reads or seeds what a bot stopped now (or not yet started) keeps."""
    store = open_store(load_config(str(config), env={}).store)
    async with store:
        yield store


def bot_log(config: Path, tail: int = 5000, name: str = "bot") -> str:
    return (config.parent / f"{name}.log").read_text(encoding="utf-8", errors="replace")[-tail:]


def services(app: Application) -> Services:  # type: ignore[type-arg]
    return services_of(app.bot_data)


async def eventually(
    predicate: Callable[[], object], timeout: float = 10.0, message: str = "condition"
) -> None:
    """Wait until ``predicate()`` is true; it may return an awaitable (a store query)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(0.05)


async def poll_now(app: Application) -> dict[str, PollReport]:  # type: ignore[type-arg]
    """Poll every feed of the running bot now, whatever its schedule, and
    return each poll's report by URL (feeds the bot is polling at that moment
    are not in it)."""
    parts = services(app)
    reports = await poll_due(parts.poller, parts.store, at=time.time() + 365 * 86400)
    return {report.url: report for report in reports}


async def subscription_count(store: Store, chat_id: int) -> int:
    return len(await store.chat_subscriptions(chat_id))


async def chat_active(store: Store, chat_id: int) -> bool:
    chat = await store.get_chat(chat_id)
    return chat is not None and chat.active


async def kill(bot: asyncio.subprocess.Process) -> None:
    bot.kill()  # SIGKILL: no clean shutdown
    await bot.wait()
    # Let the fake finish any request that reached it before the kill.
    await asyncio.sleep(0.2)


async def terminate(bot: asyncio.subprocess.Process, config: Path) -> None:
    """SIGTERM, as a service manager stops it: a clean exit."""
    bot.send_signal(signal.SIGTERM)
    await asyncio.wait_for(bot.wait(), 20)
    assert bot.returncode == 0, bot_log(config)


def titles(telegram: FakeTelegram, chat_id: int) -> Counter[str]:
    """How many times each entry reached the chat (an entry's first line is its title)."""
    return Counter(m.plain.splitlines()[0] for m in telegram.sent(chat_id) if m.plain)
