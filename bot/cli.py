"""The `feedbot` command: `feedbot run`, `feedbot check URL` and `feedbot migrate`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from bot.config import Config, ConfigError, load_config
from bot.discover import CANDIDATE_PATHS, Discovery, discover_from_page
from bot.fetch import Fetcher, FetchError, InvalidURL, normalize_url
from bot.identity import newest_first
from bot.models import ParsedFeed, Style
from bot.parse import ParseError, parse_feed, parse_response
from bot.redact import install
from bot.render import (
    CAPTION_LIMIT,
    MESSAGE_LIMIT,
    Message,
    html_to_plain,
    render_entry,
    utf16_len,
)
from bot.settings import apply_setting

#: Third-party loggers that talk at INFO about every request.
NOISY_LOGGERS = ("httpx", "httpcore", "telegram", "apscheduler", "aiolimiter")


def setup_logging(verbose: bool, secret: str = "") -> None:
    """Log to stderr with every secret redacted (bot/redact.py)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    install([handler], [secret])
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True
    )
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
    except BrokenPipeError:
        # `feedbot check URL | head -1`: the reader has what it wanted. Point
        # stdout at /dev/null so that the flush at exit does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
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
        parsed, url, note = await _read(target, timeout)
    except (FetchError, ParseError, InvalidURL, OSError) as exc:
        print(f"feedbot: {target}: {exc}", file=sys.stderr)
        return 1
    count = len(parsed.entries)
    if note:
        print(f"# {note}")
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


async def _read(target: str, timeout: float) -> tuple[ParsedFeed, str, str]:
    """The feed ``target`` names, its URL, and a note saying which feed was
    used when ``target`` was a web page that led to one."""
    path = Path(target.removeprefix("file://"))
    if not target.startswith(("http://", "https://")) and path.is_file():
        url = path.resolve().as_uri()
        return parse_feed(path.read_bytes(), url=url), url, ""
    # The operator runs check on their own machine: local feeds are fine here.
    fetcher = Fetcher(timeout=timeout, allow_private=True)
    try:
        page = await fetcher.fetch(normalize_url(target))
        try:
            return parse_response(page), page.url, ""
        except ParseError as exc:
            found = await discover_from_page(fetcher, page)
            if found.found is None:
                raise ParseError(_not_found(exc, found)) from None
    finally:
        await fetcher.aclose()
    feed = found.found
    return feed.parsed, feed.result.url, _found_note(found)


def _found_note(found: Discovery) -> str:
    assert found.found is not None
    feed = found.found
    if feed.how == "guessed":
        return f"{found.page_url} is a web page that names no feed; using {feed.url}"
    others = len(found.declared) - 1
    also = f" (it names {others} more; the first that works is used)" if others else ""
    return f"{found.page_url} is a web page; using the feed it names: {feed.url}{also}"


def _not_found(exc: ParseError, found: Discovery) -> str:
    if not found.is_html:
        return str(exc)
    if found.declared:
        names = ", ".join(link.url for link in found.declared)
        return f"This is a web page; none of the feeds it names works: {names}."
    paths = ", ".join(f"/{path}" for path in CANDIDATE_PATHS)
    return f"This is a web page that names no feed, and none is at the usual paths ({paths})."


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
