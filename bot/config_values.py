"""Parsing the configuration's values: durations, ids, hosts, URLs, tokens.

Each ``as_*`` function takes what TOML gave and returns the value, or raises
ValueError with the words that follow the key's name in the one-line error
(bot/config.py adds the file and the key).
"""

from __future__ import annotations

import ipaddress
import math
import re
from fractions import Fraction
from typing import Any

from bot.urls import ascii_host

# -- durations ---------------------------------------------------------------
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_NUMBER = r"\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?"
_PART = re.compile(rf"\s*({_NUMBER})\s*([dhms])\s*")
_EXPECTED = 'expected a duration like "90s", "10m", "2h" or a number of seconds'


def parse_duration(value: str | int | float) -> float:
    """Seconds in ``value``: a number of seconds (``90``, ``"1.5"``) or a
    string of decreasing units among d, h, m, s (``"90s"``, ``"10m"``,
    ``"2h"``, ``"1d"``, ``"1h30m"``). ValueError unless finite and > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{_EXPECTED}, got {value!r}")
    seconds = _parse_duration_string(value) if isinstance(value, str) else float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"expected a positive duration, got {value!r}")
    return seconds


def _parse_duration_string(text: str) -> float:
    try:
        return float(text)  # "90", " 1.5 ", also "inf" and "nan", refused by the caller
    except ValueError:
        pass
    total, pos, last_unit = Fraction(0), 0, None
    while pos < len(text):
        m = _PART.match(text, pos)
        if m is None or (last_unit is not None and _UNITS[m[2]] >= _UNITS[last_unit]):
            raise ValueError(f"{_EXPECTED}, got {text!r}")
        total += Fraction(m[1]) * _UNITS[m[2]]
        pos, last_unit = m.end(), m[2]
    if last_unit is None:
        raise ValueError(f"{_EXPECTED}, got {text!r}")
    return float(total)


def format_duration(seconds: float) -> str:
    """The shortest string ``parse_duration`` reads back as ``seconds``:
    600 → "10m", 5400 → "1h30m", 0.5 → "0.5s"."""
    if not float(seconds).is_integer() or seconds <= 0:
        return f"{seconds!r}s"
    rest, parts = int(seconds), []
    for unit, size in _UNITS.items():
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)


# -- values ------------------------------------------------------------------
_TOKEN = re.compile(r"\d+:[A-Za-z0-9_-]+")


def as_str(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def as_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def as_user_ids(value: Any) -> frozenset[int]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
    ):
        raise ValueError(f"expected a list of Telegram user ids like [1001, 1002], got {value!r}")
    return frozenset(value)


def as_hosts(value: Any) -> tuple[str, ...]:
    expected = f'expected a list of host names like ["feeds.internal"], got {value!r}'
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(expected)
    hosts: list[str] = []
    for raw in value:
        host = raw.strip().strip("[]").rstrip(".").lower()
        try:
            host = ipaddress.ip_address(host).compressed
        except ValueError:
            try:
                host = ascii_host(host).lower()
            except ValueError:
                raise ValueError(expected) from None
            if not host or any(c in host for c in "/:@ ?#"):
                raise ValueError(expected) from None
        hosts.append(host)
    return tuple(dict.fromkeys(hosts))


def as_url(value: Any) -> str:
    if not isinstance(value, str) or not re.match(r"https?://[^/\s]+", value):
        raise ValueError(
            f'expected an http(s) URL like "https://api.telegram.org/bot", got {value!r}'
        )
    return value


def as_count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a whole number, 0 or more (0: no limit), got {value!r}")
    return value


def as_database_url(value: Any) -> str:
    # Never echo the value: it may hold the database password.
    if not isinstance(value, str) or not re.fullmatch(r"postgres(?:ql)?://\S+", value.strip()):
        raise ValueError('expected a PostgreSQL URL like "postgresql://user@host:5432/db"')
    return value.strip()


def as_token(value: Any) -> str:
    # Never echo the value: it is a secret.
    if not isinstance(value, str) or not _TOKEN.fullmatch(value.strip()):
        raise ValueError('expected a bot token like "123456:ABC-DEF1234" (from @BotFather)')
    return value.strip()


def as_listen(value: Any) -> tuple[str, int]:
    m = (
        re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})", value)
        if isinstance(value, str)
        else None
    )
    if m is None or int(m[2]) > 65535:
        raise ValueError(f'expected an address like "127.0.0.1:9464", got {value!r}')
    return m[1].strip("[]"), int(m[2])


def as_webhook_url(value: Any) -> str:
    # Telegram itself only posts to https (ports 443, 80, 88, 8443); http is
    # accepted for a local Bot API server and for tests.
    if not isinstance(value, str) or not re.match(r"https?://[^/\s]+", value):
        raise ValueError(
            "expected the public https URL Telegram posts to, like "
            f'"https://bot.example.com/telegram", got {value!r}'
        )
    return value


def as_webhook_secret(value: Any) -> str:
    # Telegram's rule for secret_token. Never echo the value: it is a secret.
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", value):
        raise ValueError("expected 1-256 characters among A-Z, a-z, 0-9, _ and -")
    return value
