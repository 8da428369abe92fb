"""The bot's configuration: one TOML file (see config.example.toml).

Where it comes from: ``load_config(path)``, else the file named by the
environment variable FEEDBOT_CONFIG, else ``config.toml`` in the working
directory. FEEDBOT_TOKEN overrides ``telegram.token``, so the secret can stay
out of the file; with FEEDBOT_TOKEN set, the default file may be absent
altogether (everything else then has its default). FEEDBOT_STORE_URL
overrides ``store.url`` likewise (a database password is a secret too).

Every mistake is a :class:`ConfigError` whose message is one line naming the
file and the key, e.g. ``config.toml: poll.timeout: expected a duration like
"90s", "10m", "2h" or a number of seconds, got 'soon'``.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.config_values import (
    as_bool,
    as_count,
    as_database_url,
    as_hosts,
    as_listen,
    as_str,
    as_token,
    as_url,
    as_user_ids,
    as_webhook_secret,
    as_webhook_url,
    format_duration,
    parse_duration,
)

__all__ = [
    "Config",
    "ConfigError",
    "LimitsConfig",
    "MetricsConfig",
    "PollConfig",
    "StoreConfig",
    "TelegramConfig",
    "format_duration",  # from bot.config_values, where the value parsers live
    "load_config",
    "parse_duration",
]

DEFAULT_PATH = "config.toml"
ENV_CONFIG = "FEEDBOT_CONFIG"
ENV_TOKEN = "FEEDBOT_TOKEN"
ENV_STORE_URL = "FEEDBOT_STORE_URL"


class ConfigError(Exception):
    """A configuration problem; ``str(e)`` is one line naming the key."""


@dataclass(frozen=True)
class TelegramConfig:
    token: str
    api_base_url: str
    #: User ids with full rights.
    admins: frozenset[int]
    #: False: only admins and allowed_users may use the bot.
    public: bool
    allowed_users: frozenset[int]
    #: Webhook mode when set: Telegram POSTs updates to this URL (see bot/updates.py).
    webhook_url: str | None = None
    #: Where the sender listens for those POSTs (host, port).
    webhook_listen: tuple[str, int] = ("0.0.0.0", 8443)
    #: Every POST must carry it in X-Telegram-Bot-Api-Secret-Token.
    webhook_secret: str | None = None


@dataclass(frozen=True)
class StoreConfig:
    #: The embedded store's file (used when ``url`` is not set).
    path: str
    #: A PostgreSQL URL (postgresql://user@host:5432/db); FEEDBOT_STORE_URL overrides it.
    url: str | None = None


@dataclass(frozen=True)
class PollConfig:
    """Durations in seconds."""

    interval: float
    min_interval: float
    timeout: float
    #: True lets feeds on loopback or private networks be fetched.
    allow_private_addresses: bool
    #: Adaptive intervals, TTLs and max-age never stretch a poll past this.
    max_interval: float = 3600.0
    #: Quiet feeds are polled less often (up to max_interval).
    adaptive: bool = True
    #: Hosts (names as the HTTP client writes them, or IP literals) exempt
    #: from the private-address rule, e.g. ("feeds.internal",).
    allow_hosts: tuple[str, ...] = ()
    #: How long a claimed feed stays this process's (None: derived from
    #: timeout); a process that dies has its feeds polled again after it.
    lease: float | None = None


@dataclass(frozen=True)
class LimitsConfig:
    """Fair use on a public bot; admins are exempt."""

    #: The most subscriptions one chat may have (0: no limit).
    subscriptions_per_chat: int = 100
    #: Commands one user may send per minute before being asked to slow down (0: no limit).
    commands_per_minute: int = 20


@dataclass(frozen=True)
class MetricsConfig:
    #: (host, port) serving /metrics and /healthz; None: off. Port 0 picks a free one.
    listen: tuple[str, int] | None = None


@dataclass(frozen=True)
class Config:
    telegram: TelegramConfig
    store: StoreConfig
    poll: PollConfig
    limits: LimitsConfig = LimitsConfig()
    metrics: MetricsConfig = MetricsConfig()


#: section → key → (parse, default as it would be written in the file); a
#: default of None means the key is off when absent.
_SCHEMA: dict[str, dict[str, tuple[Callable[[Any], Any], Any]]] = {
    "telegram": {
        "token": (as_token, None),
        "api_base_url": (as_url, "https://api.telegram.org/bot"),
        "admins": (as_user_ids, []),
        "public": (as_bool, True),
        "allowed_users": (as_user_ids, []),
        "webhook_url": (as_webhook_url, None),
        "webhook_listen": (as_listen, "0.0.0.0:8443"),
        "webhook_secret": (as_webhook_secret, None),
    },
    "store": {
        "path": (as_str, "data/feedbot.sqlite"),
        "url": (as_database_url, None),
    },
    "poll": {
        "interval": (parse_duration, "10m"),
        "min_interval": (parse_duration, "1m"),
        "timeout": (parse_duration, "20s"),
        "allow_private_addresses": (as_bool, False),
        "allow_hosts": (as_hosts, []),
        "max_interval": (parse_duration, "1h"),
        "adaptive": (as_bool, True),
        "lease": (parse_duration, None),
    },
    "limits": {
        "subscriptions_per_chat": (as_count, 100),
        "commands_per_minute": (as_count, 20),
    },
    "metrics": {
        "listen": (as_listen, None),
    },
}


def _unknown(where: str, prefix: str, name: str, known: Iterable[str]) -> ConfigError:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.7)
    hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
    return ConfigError(f"{where}: unknown key {prefix}{name}{hint}")


def _read(path: str, explicit: bool, env_token: str | None, require_token: bool) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        if explicit or (require_token and env_token is None):
            hint = "" if explicit else f" (copy config.example.toml, or set {ENV_TOKEN})"
            raise ConfigError(f"{path}: file not found{hint}") from None
        return {}
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: invalid TOML: not UTF-8 text") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None


def load_config(
    path: str | None = None,
    env: Mapping[str, str] = os.environ,
    *,
    require_token: bool = True,
) -> Config:
    """Read and check the configuration (see the module docstring).

    ``require_token=False`` is for commands that never talk to Telegram: the
    token may then be missing (it is ``""``), but a malformed one is still an
    error.
    """
    explicit = path is not None or bool(env.get(ENV_CONFIG))
    where = path if path is not None else env.get(ENV_CONFIG) or DEFAULT_PATH
    env_token = env.get(ENV_TOKEN) or None
    data = _read(where, explicit, env_token, require_token)

    values: dict[str, dict[str, Any]] = {}
    for section, table in data.items():
        if section not in _SCHEMA:
            raise _unknown(where, "", section, _SCHEMA)
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: {section}: expected a [{section}] table, got {table!r}")
        for key in table:
            if key not in _SCHEMA[section]:
                raise _unknown(where, f"{section}.", key, _SCHEMA[section])

    for section, keys in _SCHEMA.items():
        given = data.get(section, {})
        values[section] = {}
        for key, (parse, default) in keys.items():
            name, raw = f"{where}: {section}.{key}", given.get(key, default)
            if section == "store" and key == "url":
                if env.get(ENV_STORE_URL):
                    name, raw = ENV_STORE_URL, env[ENV_STORE_URL]
                if raw is None:
                    values[section][key] = None
                    continue
            if section == "telegram" and key == "token":
                if env_token is not None:
                    name, raw = ENV_TOKEN, env_token
                if raw is None:
                    if require_token:
                        raise ConfigError(f"{name}: missing: set it here or in {ENV_TOKEN}")
                    values[section][key] = ""
                    continue
            if raw is None:
                values[section][key] = None
                continue
            try:
                values[section][key] = parse(raw)
            except ValueError as e:
                raise ConfigError(f"{name}: {e}") from None

    if {"path", "url"} <= data.get("store", {}).keys():
        raise ConfigError(
            f"{where}: store.url: give either store.path (the embedded file) "
            "or store.url (PostgreSQL), not both"
        )

    poll = values["poll"]
    if poll["interval"] < poll["min_interval"]:
        interval = format_duration(poll["interval"])
        if "interval" not in data.get("poll", {}):
            interval += ", the default,"
        raise ConfigError(
            f"{where}: poll.interval: {interval} is shorter than poll.min_interval "
            f"({format_duration(poll['min_interval'])})"
        )

    if poll["max_interval"] < poll["interval"] and "max_interval" not in data.get("poll", {}):
        poll["max_interval"] = poll["interval"]  # the default ceiling never undercuts interval
    if poll["max_interval"] < poll["interval"]:
        raise ConfigError(
            f"{where}: poll.max_interval: {format_duration(poll['max_interval'])} is shorter "
            f"than poll.interval ({format_duration(poll['interval'])})"
        )

    if poll["lease"] is not None and poll["lease"] <= poll["timeout"]:
        # A lease that ends before the fetch can would let another process
        # poll the same feed meanwhile.
        raise ConfigError(
            f"{where}: poll.lease: {format_duration(poll['lease'])} is not longer than "
            f"poll.timeout ({format_duration(poll['timeout'])})"
        )

    telegram = values["telegram"]
    if telegram["webhook_url"] is not None and telegram["webhook_secret"] is None:
        raise ConfigError(
            f"{where}: telegram.webhook_secret: missing: required when telegram.webhook_url "
            "is set (1-256 characters among A-Z, a-z, 0-9, _ and -)"
        )

    return Config(
        telegram=TelegramConfig(**values["telegram"]),
        store=StoreConfig(**values["store"]),
        poll=PollConfig(**values["poll"]),
        limits=LimitsConfig(**values["limits"]),
        metrics=MetricsConfig(**values["metrics"]),
    )
