"""What the bot says, by message code: the one place its words live.

Services and the store speak in codes and parameters (``Notice``, error
codes); the command layer and the deliverer turn them into words here. The
catalogue is English for now; gettext catalogues per language replace the
dictionary below without changing a caller (issue 10).
"""

from __future__ import annotations

from collections.abc import Mapping

#: code → text with ``{name}`` placeholders (Telegram HTML unless noted).
CATALOGUE: dict[str, str] = {
    # Notices about a feed, sent from the outbox as plain text.
    "feed.gone": (
        "The feed {title} ({url}) is gone: the server says it was removed (410). "
        "I stopped checking it; /unsubscribe it when you like."
    ),
    "feed.failing": (
        "The feed {title} ({url}) has been failing for a day: {error} "
        "I keep trying, less often; nothing is lost when it comes back."
    ),
    "feed.back": ("The feed {title} ({url}) works again; what it published meanwhile follows."),
}


def say(code: str, params: Mapping[str, str] | None = None, **more: str) -> str:
    """The words for ``code`` with its parameters filled in."""
    return CATALOGUE[code].format_map({**(params or {}), **more})
