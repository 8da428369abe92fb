"""The `feedbot` command: `feedbot run`, `feedbot check URL` and `feedbot migrate`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from bot.config import Config, ConfigError, load_config
from bot.fetch import Fetcher, FetchError, InvalidURL, normalize_url
from bot.identity import newest_first
from bot.models import Style
from bot.parse import ParseError, parse_feed
from bot.render import (
    CAPTION_LIMIT,
    MESSAGE_LIMIT,
    Message,
    html_to_plain,
    render_entry,
    utf16_len,
)
from bot.subscriptions import apply_setting

#: Third-party loggers that talk at INFO about every request.
NOISY_LOGGERS = ("httpx", "httpcore", "telegram", "apscheduler", "aiolimiter")


class RedactingFormatter(logging.Formatter):
    """Never write the bot token to a log: python-telegram-bot puts it in some
    error messages, and httpx in the URLs it logs."""

    def __init__(self, fmt: str, secret: str) -> None:
        super().__init__(fmt)
        self._secret = secret

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.replace(self._secret, "<token>") if self._secret else text


def setup_logging(verbose: bool, secret: str = "") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secret)
    )
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    if not verbose:
        for name in NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="feedbot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the bot until SIGINT/SIGTERM")
    run.add_argument("--config", help="config file (default: $FEEDBOT_CONFIG or config.toml)")
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    check = sub.add_parser("check", help="print the messages the bot would send for a feed")
    check.add_argument("url", help="feed URL (or a local file)")
    check.add_argument("--config", help="config file (optional)")
    check.add_argument("--limit", type=int, default=3, help="newest N entries (default 3)")
    check.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="preview a subscription setting, as /set would (e.g. summary=full, media=off)",
    )
    migrate = sub.add_parser("migrate", help="create or upgrade the PostgreSQL schema, then exit")
    migrate.add_argument("--config", help="config file (default: $FEEDBOT_CONFIG or config.toml)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            config = load_config(args.config)
            setup_logging(args.verbose, secret=config.telegram.token)
            from telegram.error import InvalidToken

            from bot.app import run  # imports python-telegram-bot only when running

            try:
                run(config)
            except InvalidToken:
                print(
                    "feedbot: Telegram refused the bot token (telegram.token or FEEDBOT_TOKEN).",
                    file=sys.stderr,
                )
                return 1
            return 0
        if args.command == "migrate":
            return asyncio.run(migrate(load_config(args.config, require_token=False)))
        config = load_config(args.config, require_token=False)
        style = Style()
        for setting in args.set:
            key, _, value = setting.partition("=")
            style = apply_setting(style, key, value)
        return asyncio.run(check(args.url, args.limit, config.poll.timeout, style))
    except (ConfigError, ValueError) as exc:
        print(f"feedbot: {exc}", file=sys.stderr)
        return 2


async def migrate(config: Config) -> int:
    """Apply the PostgreSQL migrations (``open`` applies them too) and say
    which schema version the database is at."""
    from bot.store import StoreError
    from bot.store.postgres import PostgresStore

    if not config.store.url:
        print(
            "feedbot: migrate is for PostgreSQL: set store.url or FEEDBOT_STORE_URL "
            "(the embedded file upgrades itself when opened)",
            file=sys.stderr,
        )
        return 2
    store = PostgresStore(config.store.url)
    try:
        await store.open()  # applies every missing migration, under a lock
        version = await store.migrate_to()
    except StoreError as exc:
        print(f"feedbot: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()
    print(f"schema version {version}")
    return 0


async def check(target: str, limit: int, timeout: float, style: Style) -> int:
    if limit < 1:
        print("feedbot: --limit must be at least 1", file=sys.stderr)
        return 2
    try:
        body, url, content_type, location = await _read(target, timeout)
        parsed = parse_feed(body, url=url, content_type=content_type, content_location=location)
    except (FetchError, ParseError, InvalidURL, OSError) as exc:
        print(f"feedbot: {target}: {exc}", file=sys.stderr)
        return 1
    count = len(parsed.entries)
    print(f"# {parsed.title} ({url}): {count} {'entry' if count == 1 else 'entries'}")
    for entry in newest_first(parsed.entries)[:limit]:
        messages = render_entry(entry, parsed.title, style)
        for number, message in enumerate(messages, 1):
            print()
            print(f"--- {entry.title or entry.id} [{number}/{len(messages)}] {_describe(message)}")
            for item in message.media:
                print(f"    {item.kind}: {item.url}")
            print(message.text)
    return 0


async def _read(target: str, timeout: float) -> tuple[bytes, str, str | None, str | None]:
    path = Path(target.removeprefix("file://"))
    if not target.startswith(("http://", "https://")) and path.is_file():
        return path.read_bytes(), path.resolve().as_uri(), None, None
    # The operator runs check on their own machine: local feeds are fine here.
    fetcher = Fetcher(timeout=timeout, allow_private=True)
    try:
        result = await fetcher.fetch(normalize_url(target))
    finally:
        await fetcher.aclose()
    return result.body, result.url, result.content_type, result.content_location


def _describe(message: Message) -> str:
    """The Bot API method and how much of its limit the text uses."""
    length = utf16_len(html_to_plain(message.text)) if message.text else 0
    if not message.media:
        return f"sendMessage (text {length}/{MESSAGE_LIMIT})"
    if len(message.media) > 1:
        method = f"sendMediaGroup of {len(message.media)}"
    else:
        method = "send" + message.media[0].kind.capitalize()
    return f"{method} (caption {length}/{CAPTION_LIMIT})"
