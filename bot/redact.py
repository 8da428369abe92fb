"""Secrets never reach a log: one logging filter for every record.

python-telegram-bot and httpx put the bot token in URLs they log (at debug
even in file-download URLs, percent-encoded: ``bot987654%3ASECRET``), and a
store URL may carry a database password. :class:`RedactingFilter`, attached to
the handlers, rewrites each record before any formatter sees it: the message
with its arguments, the traceback and the stack, at every level.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import quote

__all__ = ["TOKEN_MARK", "RedactingFilter", "Redactor", "install"]

TOKEN_MARK = "<token>"
PASSWORD_MARK = "***"

#: scheme://user:PASSWORD@ — the password of any URL (store URLs, feeds with
#: credentials).
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s/:@]*:)(?P<password>[^\s/@]+)@", re.I
)


def _forms(secret: str) -> set[str]:
    """The ways a secret shows up in URLs and messages."""
    encoded = quote(secret, safe="")
    forms = {secret, encoded, quote(encoded, safe=""), quote(secret, safe=":")}
    # Percent-encoding may use lowercase hex digits.
    forms |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), f) for f in set(forms)}
    return {f for f in forms if f}


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if secret:
                forms |= _forms(secret)
        # Longest first, so an encoded form is not half-replaced by a shorter one.
        ordered = sorted(forms, key=len, reverse=True)
        self._secrets = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def redact(self, text: str) -> str:
        if self._secrets is not None:
            text = self._secrets.sub(TOKEN_MARK, text)
        if "://" in text:
            text = _URL_PASSWORD.sub(rf"\g<head>{PASSWORD_MARK}@", text)
        return text


class RedactingFilter(logging.Filter):
    """Redacts every record that passes; never drops one."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        redact = self._redactor.redact
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what there is, redacted
            message = f"{record.msg} {record.args}"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install(handlers: Iterable[logging.Handler], secrets: Iterable[str]) -> RedactingFilter:
    """Attach one filter for ``secrets`` to ``handlers`` (a handler filter
    sees records from every logger, python-telegram-bot's and httpx's too;
    a logger filter would miss its children's)."""
    redacting = RedactingFilter(Redactor(secrets))
    for handler in handlers:
        handler.addFilter(redacting)
    return redacting
