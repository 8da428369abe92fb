"""Small text helpers shared by the renderer: lengths, cleaning, URLs, cut points."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

__all__ = [
    "clean_text",
    "clean_url",
    "cut_index",
    "has_visible",
    "prefix_fitting",
    "prefix_weighing",
    "shorten",
    "utf16_len",
]

#: Characters dropped from feed text: bidi embeddings/overrides/isolates can
#: flip the rest of a message (and Telegram strips some of them anyway),
#: zero-width spaces and BOMs are invisible noise. ZWJ/ZWNJ and LRM/RLM stay:
#: emoji sequences and Persian/Arabic text need them.
_DROP = dict.fromkeys(
    map(ord, "\u200b\u2060\ufeff\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u00ad"),
    None,
)
# Control characters (C0 except tab/newline, DEL, C1) and lone surrogates.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_SPACE_RUN = re.compile(r"[ \t\n\r\f\u2028\u2029]+")

#: Sentence ends: Latin punctuation needs a following space; CJK needs none.
_SENTENCE_END = re.compile(r"(?:[.!?…][\"'”’»)\]]*(?=\s)|[。！？][”’」』）]*)")
_SAFE_URL_CHARS = "/:@!$&()*+,;=~%-._?#[]"
_SCHEMES = frozenset({"http", "https", "ftp", "mailto", "tg"})
_HOST = re.compile(r"[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]")


def utf16_len(s: str) -> int:
    """Length in UTF-16 code units: how Telegram counts limits and offsets."""
    return len(s) + sum(1 for ch in s if ord(ch) > 0xFFFF)


def clean_text(s: str) -> str:
    """Drop control, bidi-override and zero-width characters; keep newlines/tabs."""
    return _CONTROL.sub("", s.translate(_DROP))


def collapse(s: str) -> str:
    """One line of text: whitespace runs (newlines included) become one space."""
    return _SPACE_RUN.sub(" ", clean_text(s)).strip()


def has_visible(s: str) -> bool:
    """True if some character would actually show (a letter, digit, sign…)."""
    return any(unicodedata.category(ch)[0] in "LNPS" for ch in s)


def clean_url(href: str | None, base: str | None = None) -> str | None:
    """An absolute, Telegram-safe URL for ``href``, or None if it is not a link.

    Relative URLs resolve against ``base``; only http(s), ftp, mailto and tg
    survive (no javascript:, data:, file:…). Spaces, quotes and non-ASCII are
    percent-encoded so the URL can go in an attribute and Telegram keeps it whole.
    """
    if not href:
        return None
    # Like browsers: trim, and ignore tabs, newlines and controls inside.
    href = re.sub(r"[\x00-\x1f\x7f]", "", href.strip(" \t\n\r\f\x00"))
    if not href:
        return None
    try:
        url = urljoin(base, href) if base else href
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            return None
        if scheme in ("mailto", "tg"):
            rest = quote(url.split(":", 1)[1], safe=_SAFE_URL_CHARS)
            return f"{scheme}:{rest}" if rest.strip("/") else None
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return None
    if not host:
        return None
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if ":" in host:
        host = f"[{host}]"
    if not _HOST.fullmatch(host) or not host.strip("."):
        return None
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit(
        (
            scheme,
            netloc,
            quote(parts.path, safe=_SAFE_URL_CHARS) or "/",
            quote(parts.query, safe=_SAFE_URL_CHARS),
            quote(parts.fragment, safe=_SAFE_URL_CHARS),
        )
    )


def prefix_fitting(s: str, budget: int) -> int:
    """The largest i such that s[:i] fits ``budget`` UTF-16 units."""
    used = 0
    for i, ch in enumerate(s):
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > budget:
            return i
    return len(s)


def prefix_weighing(s: str, budget: int) -> int:
    """The largest i such that s[:i] weighs at most ``budget``, East Asian wide
    and full-width characters (and emoji) counting double.

    A reading budget rather than a length: 250 Chinese characters say about
    as much as 500 Latin letters, and take as much room on a phone.
    """
    used = 0
    for i, ch in enumerate(s):
        used += 2 if ord(ch) > 0xFFFF or is_wide(ch) else 1
        if used > budget:
            return i
    return len(s)


def is_wide(ch: str) -> bool:
    """CJK and other scripts written without spaces: a line may break anywhere."""
    return unicodedata.east_asian_width(ch) in ("W", "F")


def _joins(s: str, i: int) -> bool:
    """True if cutting before s[i] would split a grapheme (emoji sequence, accent…)."""
    if i <= 0 or i >= len(s):
        return False
    ch, prev = s[i], s[i - 1]
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Mc", "Me"):
        return True
    if ch in "\u200d\u200c" or prev == "\u200d":
        return True
    if "\ufe00" <= ch <= "\ufe0f" or "\U0001f3fb" <= ch <= "\U0001f3ff":
        return True
    if "\U000e0020" <= ch <= "\U000e007f":  # emoji tag sequences (subdivision flags)
        return True
    if "\U0001f1e6" <= ch <= "\U0001f1ff" and "\U0001f1e6" <= prev <= "\U0001f1ff":
        # Regional indicators pair up into flags: cut only between pairs.
        run = 0
        j = i - 1
        while j >= 0 and "\U0001f1e6" <= s[j] <= "\U0001f1ff":
            run += 1
            j -= 1
        return run % 2 == 1
    return False


def cut_index(s: str, limit: int) -> int:
    """Where to cut ``s`` so that s[:result] has at most ``limit`` characters.

    Prefers the end of a sentence (or paragraph), then a space or a point
    between two CJK characters, then any point that does not split a grapheme.
    """
    if limit >= len(s):
        return len(s)
    if limit <= 0:
        return 0
    floor = limit // 2
    window = s[:limit]
    best = max(window.rfind("\n"), 0)
    for m in _SENTENCE_END.finditer(window):
        best = max(best, m.end())
    if best >= floor:
        return best
    word = 0
    for j in range(limit, floor, -1):
        if s[j].isspace() or s[j - 1].isspace() or (is_wide(s[j - 1]) and not _joins(s, j)):
            word = j
            break
    if word:
        return word
    j = limit
    while j > 0 and _joins(s, j):
        j -= 1
    return j


def shorten(s: str, max_chars: int) -> str:
    """``s`` on one line, cut to ``max_chars`` at a word boundary with "…"."""
    s = collapse(s)
    if len(s) <= max_chars:
        return s
    return s[: cut_index(s, max_chars - 1)].rstrip() + "…"
