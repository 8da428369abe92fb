"""The config contract: defaults, environment overrides, and one clear line
naming the key for every mistake."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import (
    Config,
    ConfigError,
    MetricsConfig,
    PollConfig,
    StoreConfig,
    TelegramConfig,
    format_duration,
    load_config,
    parse_duration,
)

REPO = Path(__file__).resolve().parent.parent
TOKEN = "123456:ABC-def_789"

DEFAULTS = Config(
    telegram=TelegramConfig(
        token=TOKEN,
        api_base_url="https://api.telegram.org/bot",
        admins=frozenset(),
        public=True,
        allowed_users=frozenset(),
    ),
    store=StoreConfig(path="data/feedbot.sqlite"),
    poll=PollConfig(interval=600.0, min_interval=60.0, timeout=20.0, allow_private_addresses=False),
)


@pytest.fixture
def write(tmp_path: Path):
    def write(text: str, name: str = "config.toml") -> str:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write


def error(path: str | None, env: dict[str, str] | None = None, **kw: bool) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, env or {}, **kw)
    message = str(info.value)
    assert "\n" not in message
    return message


# -- sources and defaults ----------------------------------------------------
def test_example_config_loads() -> None:
    config = load_config(str(REPO / "config.example.toml"), {})
    assert config.telegram.token == "123:ABC"
    assert config.telegram.admins == frozenset()  # a copied example grants nobody rights
    assert config.poll == DEFAULTS.poll
    assert config.store == DEFAULTS.store


def test_defaults_fill_what_the_file_leaves_out(write) -> None:
    assert load_config(write(f'[telegram]\ntoken = "{TOKEN}"\n'), {}) == DEFAULTS


def test_empty_file_with_token_in_env(write) -> None:
    assert load_config(write(""), {"FEEDBOT_TOKEN": TOKEN}) == DEFAULTS


def test_full_file(write) -> None:
    path = write(
        f"""
        [telegram]
        token = "{TOKEN}"
        api_base_url = "http://localhost:8081/bot"
        admins = [1001, 1002]
        public = false
        allowed_users = [7]

        [store]
        path = "/var/lib/feedbot/db.sqlite"

        [poll]
        interval = "1h30m"
        min_interval = 1
        timeout = 2.5
        allow_private_addresses = true
        allow_hosts = ["Feeds.Internal.", "faß.example", "[::1]", "10.0.0.5"]
        """
    )
    assert load_config(path, {}) == Config(
        TelegramConfig(TOKEN, "http://localhost:8081/bot", frozenset({1001, 1002}), False,
                       frozenset({7})),
        StoreConfig("/var/lib/feedbot/db.sqlite"),
        PollConfig(5400.0, 1.0, 2.5, True, max_interval=5400.0,
                   allow_hosts=("feeds.internal", "xn--fa-hia.example", "::1", "10.0.0.5")),
    )  # fmt: skip


def test_allow_hosts_defaults_to_none(write) -> None:
    assert load_config(write(f'[telegram]\ntoken = "{TOKEN}"\n'), {}).poll.allow_hosts == ()


def test_env_token_overrides_the_file(write) -> None:
    path = write('[telegram]\ntoken = "1:file"\n')
    assert load_config(path, {"FEEDBOT_TOKEN": "2:env\n"}).telegram.token == "2:env"
    assert load_config(path, {"FEEDBOT_TOKEN": ""}).telegram.token == "1:file"


def test_path_from_env_then_default(write, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    named = write('[telegram]\ntoken = "1:named"\n', "named.toml")
    write('[telegram]\ntoken = "1:default"\n')
    monkeypatch.chdir(tmp_path)
    assert load_config(None, {"FEEDBOT_CONFIG": named}).telegram.token == "1:named"
    assert load_config(None, {}).telegram.token == "1:default"
    # An explicit path wins over FEEDBOT_CONFIG.
    assert load_config("config.toml", {"FEEDBOT_CONFIG": named}).telegram.token == "1:default"


def test_missing_default_file(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    # Fine with the token in the environment: everything else is a default.
    assert load_config(None, {"FEEDBOT_TOKEN": TOKEN}) == DEFAULTS
    assert error(None, {}) == (
        "config.toml: file not found (copy config.example.toml, or set FEEDBOT_TOKEN)"
    )
    # Commands that need no token need no file either.
    assert load_config(None, {}, require_token=False).telegram.token == ""


def test_missing_named_file_is_an_error(tmp_path) -> None:
    missing = str(tmp_path / "nope.toml")
    env = {"FEEDBOT_TOKEN": TOKEN}
    assert error(missing, env) == f"{missing}: file not found"
    assert error(None, {**env, "FEEDBOT_CONFIG": missing}) == f"{missing}: file not found"
    assert error(missing, env, require_token=False) == f"{missing}: file not found"


def test_token_required_unless_asked_not_to(write) -> None:
    path = write("[poll]\n")
    assert error(path) == f"{path}: telegram.token: missing: set it here or in FEEDBOT_TOKEN"
    assert load_config(path, {}, require_token=False).telegram.token == ""


# -- bad files ---------------------------------------------------------------
def test_invalid_toml(write) -> None:
    path = write("[telegram\ntoken = 1\n")
    assert error(path).startswith(f"{path}: invalid TOML: ")
    path = write("x")
    Path(path).write_bytes(b'[store]\npath = "\xff"\n')
    assert error(path) == f"{path}: invalid TOML: not UTF-8 text"


def test_unreadable_file(tmp_path) -> None:
    assert error(str(tmp_path)).startswith(f"{tmp_path}: cannot read: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[telegram]\ntokn = "1:a"', "unknown key telegram.tokn (did you mean telegram.token?)"),
        ("[telegramm]\n", "unknown key telegramm (did you mean telegram?)"),
        ("[database]\n", "unknown key database"),
        ("[poll]\ninterval = 60\n[poll.extra]\n", "unknown key poll.extra"),
        ("store = 'x'\n", "store: expected a [store] table, got 'x'"),
        ("[poll]\nintervall = '5m'", "unknown key poll.intervall (did you mean poll.interval?)"),
    ],
)
def test_unknown_keys(write, text: str, message: str) -> None:
    path = write(text)
    assert error(path, {"FEEDBOT_TOKEN": TOKEN}) == f"{path}: {message}"


DURATION = 'expected a duration like "90s", "10m", "2h" or a number of seconds'


@pytest.mark.parametrize(
    ("section", "line", "message"),
    [
        ("telegram", 'public = "false"', "telegram.public: expected true or false, got 'false'"),
        ("telegram", "public = 1", "telegram.public: expected true or false, got 1"),
        (
            "telegram",
            'admins = ["1001"]',
            "telegram.admins: expected a list of Telegram user ids like [1001, 1002], got ['1001']",
        ),
        (
            "telegram",
            "admins = 1001",
            "telegram.admins: expected a list of Telegram user ids like [1001, 1002], got 1001",
        ),
        (
            "telegram",
            "allowed_users = [true]",
            "telegram.allowed_users: expected a list of Telegram user ids like [1001, 1002], "
            "got [True]",
        ),
        (
            "telegram",
            "allowed_users = [-5]",
            "telegram.allowed_users: expected a list of Telegram user ids like [1001, 1002], "
            "got [-5]",
        ),
        (
            "telegram",
            'api_base_url = "api.telegram.org"',
            'telegram.api_base_url: expected an http(s) URL like "https://api.telegram.org/bot", '
            "got 'api.telegram.org'",
        ),
        ("store", "path = 5", "store.path: expected a non-empty string, got 5"),
        ("store", 'path = ""', "store.path: expected a non-empty string, got ''"),
        ("poll", 'interval = "soon"', f"poll.interval: {DURATION}, got 'soon'"),
        ("poll", "interval = 0", "poll.interval: expected a positive duration, got 0"),
        ("poll", 'timeout = "-1s"', f"poll.timeout: {DURATION}, got '-1s'"),
        ("poll", "timeout = true", f"poll.timeout: {DURATION}, got True"),
        ("poll", "min_interval = nan", "poll.min_interval: expected a positive duration, got nan"),
        ("poll", "min_interval = [60]", f"poll.min_interval: {DURATION}, got [60]"),
        (
            "poll",
            "allow_private_addresses = 'yes'",
            "poll.allow_private_addresses: expected true or false, got 'yes'",
        ),
        (
            "poll",
            'allow_hosts = "feeds.internal"',
            'poll.allow_hosts: expected a list of host names like ["feeds.internal"], '
            "got 'feeds.internal'",
        ),
        (
            "poll",
            'allow_hosts = ["http://feeds.internal/"]',
            'poll.allow_hosts: expected a list of host names like ["feeds.internal"], '
            "got ['http://feeds.internal/']",
        ),
        (
            "poll",
            'interval = "30s"\nmin_interval = "1m"',
            "poll.interval: 30s is shorter than poll.min_interval (1m)",
        ),
        (
            "poll",
            'min_interval = "15m"',
            "poll.interval: 10m, the default, is shorter than poll.min_interval (15m)",
        ),
    ],
)
def test_bad_values_name_the_key(write, section: str, line: str, message: str) -> None:
    path = write(f"[{section}]\n{line}\n")
    assert error(path, {"FEEDBOT_TOKEN": TOKEN}) == f"{path}: {message}"


@pytest.mark.parametrize("token", ["", "abc", "123", "123:", ":abc", "12 3:abc", "1:a b", 123])
def test_bad_token_names_the_key_and_hides_the_value(write, token: object) -> None:
    value = f'"{token}"' if isinstance(token, str) else str(token)
    path = write(f"[telegram]\ntoken = {value}\n")
    message = error(path)
    assert message == (
        f'{path}: telegram.token: expected a bot token like "123456:ABC-DEF1234" (from @BotFather)'
    )
    # The exact message above never contains the (secret) value.
    # Even where the token is not needed, a malformed one is a mistake.
    assert error(path, require_token=False) == message


def test_bad_env_token_names_the_variable(write) -> None:
    path = write("")
    assert error(path, {"FEEDBOT_TOKEN": "secret"}) == (
        'FEEDBOT_TOKEN: expected a bot token like "123456:ABC-DEF1234" (from @BotFather)'
    )


# -- durations ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("10m", 600),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("1d2h3m4s", 93784),
        ("1.5m", 90),
        (".5s", 0.5),
        ("90", 90),
        (" 2.5 ", 2.5),
        (45, 45),
        (0.25, 0.25),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert isinstance(parse_duration(text), float)


@pytest.mark.parametrize(
    "bad",
    ["", "soon", "s", "10 minutes", "10M", "30m1h", "1h1h", "-5", "0s", "0", 0, -1, True,
     "inf", math.inf, math.nan, None, [10]],
)  # fmt: skip
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)  # type: ignore[arg-type]


positive = st.floats(min_value=0, exclude_min=True, allow_nan=False, allow_infinity=False)


@given(positive)
def test_numbers_are_seconds(x: float) -> None:
    assert parse_duration(x) == x
    assert parse_duration(repr(x)) == x
    assert parse_duration(f"{x!r}s") == x


@given(st.integers(min_value=1, max_value=10**12))
def test_integers_are_seconds(n: int) -> None:
    assert parse_duration(n) == n
    assert parse_duration(str(n)) == n


@given(positive | st.integers(min_value=1, max_value=10**15).map(float))
def test_format_duration_round_trips(x: float) -> None:
    assert parse_duration(format_duration(x)) == x


@given(st.tuples(*[st.integers(0, 1000)] * 4).filter(any))
def test_units_add_up(parts: tuple[int, int, int, int]) -> None:
    d, h, m, s = parts
    text = "".join(f"{n}{u}" for n, u in zip(parts, "dhms", strict=True) if n)
    assert parse_duration(text) == d * 86400 + h * 3600 + m * 60 + s


def test_format_duration_reads_well() -> None:
    assert [format_duration(x) for x in (600, 5400, 90, 86400, 86401, 0.5)] == [
        "10m",
        "1h30m",
        "1m30s",
        "1d",
        "1d1s",
        "0.5s",
    ]


# -- [metrics] and webhook mode ----------------------------------------------
def test_metrics_and_webhook_are_off_by_default(write) -> None:
    config = load_config(write(f'[telegram]\ntoken = "{TOKEN}"\n'), {})
    assert config.metrics == MetricsConfig(listen=None)
    assert config.telegram.webhook_url is None
    assert config.telegram.webhook_secret is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("[::1]:9464", ("::1", 9464)),
        ("metrics.internal:80", ("metrics.internal", 80)),
    ],
)
def test_metrics_listen(write, text: str, expected: tuple[str, int]) -> None:
    config = load_config(
        write(f'[telegram]\ntoken = "{TOKEN}"\n[metrics]\nlisten = "{text}"\n'), {}
    )
    assert config.metrics.listen == expected


@pytest.mark.parametrize("bad", ['"9464"', '"localhost"', '"127.0.0.1:99999"', "9464", '""'])
def test_metrics_listen_errors_name_the_key(write, bad: str) -> None:
    path = write(f'[telegram]\ntoken = "{TOKEN}"\n[metrics]\nlisten = {bad}\n')
    message = error(path)
    assert message.startswith(f"{path}: metrics.listen: expected an address like")


def test_webhook_mode(write) -> None:
    path = write(
        f'[telegram]\ntoken = "{TOKEN}"\nwebhook_url = "https://bot.example.com/tg"\n'
        'webhook_secret = "s3cret_-X"\nwebhook_listen = "127.0.0.1:8088"\n'
    )
    telegram = load_config(path, {}).telegram
    assert telegram.webhook_url == "https://bot.example.com/tg"
    assert telegram.webhook_secret == "s3cret_-X"
    assert telegram.webhook_listen == ("127.0.0.1", 8088)


def test_webhook_listen_default(write) -> None:
    path = write(
        f'[telegram]\ntoken = "{TOKEN}"\nwebhook_url = "https://bot.example.com/tg"\n'
        'webhook_secret = "abc"\n'
    )
    assert load_config(path, {}).telegram.webhook_listen == ("0.0.0.0", 8443)


def test_webhook_url_without_secret_names_the_secret(write) -> None:
    path = write(f'[telegram]\ntoken = "{TOKEN}"\nwebhook_url = "https://bot.example.com/tg"\n')
    message = error(path)
    assert message.startswith(f"{path}: telegram.webhook_secret: missing: required when")


@pytest.mark.parametrize("secret", ['"has space"', '"ü"', '""', f'"{"x" * 257}"', "1234567"])
def test_webhook_secret_is_checked_and_never_echoed(write, secret: str) -> None:
    path = write(
        f'[telegram]\ntoken = "{TOKEN}"\nwebhook_url = "https://bot.example.com/tg"\n'
        f"webhook_secret = {secret}\n"
    )
    message = error(path)
    assert message.startswith(f"{path}: telegram.webhook_secret: expected 1-256 characters")
    if secret != '""':
        assert secret.strip('"') not in message.removeprefix(path)


def test_webhook_url_must_be_a_url(write) -> None:
    path = write(
        f'[telegram]\ntoken = "{TOKEN}"\nwebhook_url = "bot.example.com"\nwebhook_secret = "a"\n'
    )
    assert error(path).startswith(f"{path}: telegram.webhook_url: expected the public https URL")


# -- store: the embedded file or PostgreSQL -----------------------------------
PG_URL = "postgresql://feedbot@db.example:5432/feedbot"


def test_store_url_from_the_file(write) -> None:
    path = write(f'[store]\nurl = "{PG_URL}"\n')
    store = load_config(path, {"FEEDBOT_TOKEN": TOKEN}).store
    assert store == StoreConfig(path=DEFAULTS.store.path, url=PG_URL)


def test_store_url_from_the_environment_overrides_the_file(write) -> None:
    env = {"FEEDBOT_TOKEN": TOKEN, "FEEDBOT_STORE_URL": "postgres://other@h/db"}
    assert load_config(write(f'[store]\nurl = "{PG_URL}"\n'), env).store.url == (
        "postgres://other@h/db"
    )
    # With path in the file: the environment picks PostgreSQL, no conflict.
    assert load_config(write('[store]\npath = "x.sqlite"\n'), env).store == StoreConfig(
        "x.sqlite", "postgres://other@h/db"
    )
    # An empty variable is as good as absent.
    assert load_config(write(""), {**env, "FEEDBOT_STORE_URL": ""}).store.url is None


def test_store_path_and_url_together_is_an_error(write) -> None:
    path = write(f'[store]\npath = "x.sqlite"\nurl = "{PG_URL}"\n')
    message = error(path, {"FEEDBOT_TOKEN": TOKEN})
    assert message.startswith(f"{path}: store.url: ")
    assert "store.path" in message and "\n" not in message


@pytest.mark.parametrize("value", ["mysql://u:hunter2@h/db", "hunter2", "", "5"])
def test_bad_store_url_names_the_key_and_hides_the_value(write, value: str) -> None:
    path = write(f'[store]\nurl = "{value}"\n')
    message = error(path, {"FEEDBOT_TOKEN": TOKEN})
    assert message == (
        f'{path}: store.url: expected a PostgreSQL URL like "postgresql://user@host:5432/db"'
    )
    env_message = error(write(""), {"FEEDBOT_TOKEN": TOKEN, "FEEDBOT_STORE_URL": "x:hunter2"})
    assert env_message.startswith("FEEDBOT_STORE_URL: ") and "hunter2" not in env_message


def test_max_interval_and_adaptive(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        '[telegram]\ntoken = "1:A"\n[poll]\ninterval = "5s"\nmin_interval = "1s"\n'
        'max_interval = "30s"\nadaptive = false\n'
    )
    poll = load_config(str(path), env={}).poll
    assert (poll.max_interval, poll.adaptive) == (30.0, False)
    path.write_text('[telegram]\ntoken = "1:A"\n[poll]\ninterval = "2h"\n')
    assert load_config(str(path), env={}).poll.max_interval == 7200.0  # the default never undercuts
    path.write_text('[telegram]\ntoken = "1:A"\n[poll]\ninterval = "2h"\nmax_interval = "1h"\n')
    with pytest.raises(ConfigError, match=r"poll\.max_interval: 1h is shorter than poll\.interval"):
        load_config(str(path), env={})


def test_limits(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[telegram]\ntoken = "1:A"\n[limits]\nsubscriptions_per_chat = 0\n')
    limits = load_config(str(path), env={}).limits
    assert (limits.subscriptions_per_chat, limits.commands_per_minute) == (0, 20)
    path.write_text('[telegram]\ntoken = "1:A"\n[limits]\ncommands_per_minute = -1\n')
    with pytest.raises(ConfigError, match=r"limits\.commands_per_minute: expected a whole number"):
        load_config(str(path), env={})


def test_poll_lease(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[telegram]\ntoken = "1:A"\n[poll]\ntimeout = "2s"\nlease = "5s"\n')
    assert load_config(str(path), env={}).poll.lease == 5.0
    path.write_text('[telegram]\ntoken = "1:A"\n')
    assert load_config(str(path), env={}).poll.lease is None  # derived from timeout
    path.write_text('[telegram]\ntoken = "1:A"\n[poll]\ntimeout = "5s"\nlease = "5s"\n')
    with pytest.raises(ConfigError, match=r"poll\.lease: 5s is not longer than poll\.timeout"):
        load_config(str(path), env={})
