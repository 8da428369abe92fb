"""A subscription's settings as /set names them: the keys, their values, and
the one pure function that changes one of them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bot.config import format_duration, parse_duration
from bot.models import Style

_SWITCH = {"on": True, "off": False, "yes": True, "no": False, "true": True, "false": False}

#: /set keys → (Style field, allowed values; empty: a duration).
STYLE_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "summary": ("summary", ("none", "short", "full")),
    "media": ("media", ("on", "off")),
    "preview": ("link_preview", ("on", "off")),
    "silent": ("silent", ("on", "off")),
    "author": ("show_author", ("on", "off")),
    "feed": ("show_feed", ("on", "off")),
    "tags": ("show_tags", ("on", "off")),
    "interval": ("interval", ()),
}


def describe(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "default"
    if isinstance(value, float):
        return format_duration(value)
    return str(value)


def apply_setting(style: Style, key: str, value: str, *, min_interval: float = 0.0) -> Style:
    """The style with one /set key changed; ValueError names what was wrong.
    ``min_interval`` is the operator's floor for a subscription's interval."""
    key = key.lower()
    value = value.lower()
    if key not in STYLE_KEYS:
        raise ValueError(f"Unknown setting {key!r}. Settings: {', '.join(STYLE_KEYS)}.")
    field, allowed = STYLE_KEYS[key]
    if field == "interval":
        if value == "default":
            return replace(style, interval=None)
        try:
            seconds = parse_duration(value)
        except ValueError:
            raise ValueError(f"{key} takes a duration like 30m or 2h, or default.") from None
        if seconds < min_interval:
            raise ValueError(f"{key} can be no shorter than {format_duration(min_interval)}.")
        return replace(style, interval=seconds)
    if field == "summary":
        if value not in allowed:
            raise ValueError(f"{key} takes one of: {', '.join(allowed)}.")
        return replace(style, summary=value)  # type: ignore[arg-type]
    if value not in _SWITCH:
        raise ValueError(f"{key} takes on or off.")
    changes: dict[str, Any] = {field: _SWITCH[value]}
    return replace(style, **changes)
