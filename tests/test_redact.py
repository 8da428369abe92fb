"""Secrets never appear in logs (issue 9, item 7): the bot token, plain and
percent-encoded, and URL passwords, at every level, from every logger."""

from __future__ import annotations

import io
import logging

import pytest

from bot.cli import setup_logging
from bot.redact import Redactor

TOKEN = "987654:SECRETabc-DEF_123"


@pytest.fixture
def stderr_log(monkeypatch: pytest.MonkeyPatch):
    """Run the real setup_logging (debug) into a buffer; restore logging after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buffer = io.StringIO()
    monkeypatch.setattr("sys.stderr", buffer)
    setup_logging(verbose=True, secret=TOKEN)
    yield buffer
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_file_download_url_at_debug_is_redacted(stderr_log):
    # What python-telegram-bot logs when it downloads a file.
    url = "https://api.telegram.org/file/bot987654%3ASECRETabc-DEF_123/photos/file_1.jpg"
    logging.getLogger("telegram.request").debug("Downloading %s", url)
    logging.getLogger("httpx").debug('HTTP Request: GET %s "HTTP/1.1 200 OK"', url)
    logging.getLogger("telegram.ext.Updater").info("lowercase %s", url.replace("%3A", "%3a"))
    logging.getLogger("httpx").info(f"https://api.telegram.org/bot{TOKEN}/getMe")
    text = stderr_log.getvalue()
    assert "SECRET" not in text and "987654%3A" not in text.upper()
    assert text.count("https://api.telegram.org/file/bot<token>/photos/file_1.jpg") == 3
    assert "https://api.telegram.org/bot<token>/getMe" in text


def test_tracebacks_and_stacks_are_redacted(stderr_log):
    try:
        raise RuntimeError(f"Invalid server response for /bot{TOKEN}/getUpdates")
    except RuntimeError:
        logging.getLogger("telegram.ext.Application").exception("Error while polling")
    logging.getLogger("bot").warning("here %s", TOKEN, stack_info=True)
    text = stderr_log.getvalue()
    assert "SECRET" not in text
    assert "RuntimeError: Invalid server response for /bot<token>/getUpdates" in text


def test_database_password_is_redacted(stderr_log):
    logging.getLogger("bot.store").debug(
        "opening %s", "postgresql://feedbot:hunter2@db.internal:5432/feedbot"
    )
    text = stderr_log.getvalue()
    assert "hunter2" not in text
    assert "postgresql://feedbot:***@db.internal:5432/feedbot" in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"x {TOKEN} y", "x <token> y"),
        ("bot987654%3ASECRETabc-DEF_123/", "bot<token>/"),
        ("bot987654%253ASECRETabc-DEF_123/", "bot<token>/"),  # encoded twice
        ("https://u:p%40ss@h/x and https://h/y", "https://u:***@h/x and https://h/y"),
        ("no secrets: https://example.com/a:b@c", "no secrets: https://example.com/a:b@c"),
        ("987654 SECRET", "987654 SECRET"),
    ],
)
def test_redactor(text, expected):
    assert Redactor([TOKEN]).redact(text) == expected


def test_no_secret_configured_still_hides_url_passwords():
    assert Redactor([""]).redact("redis://:pw@host/0") == "redis://:***@host/0"
