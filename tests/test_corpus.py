"""Every entry of every real-world feed in the shared corpus comes out as messages
Telegram accepts, with the entry's title and link, whatever the style.

The corpus lives beside the checkout (``../shared``, else ``/work/shared``);
without it these tests are skipped.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from bot.models import Entry, ParsedFeed, Style
from bot.parse import parse_feed
from bot.render import Message, html_to_plain, render_entry, render_text_only, utf16_len
from testkit.harness import shared_dir
from testkit.telegram_html import check_message, parse_telegram_html

SHARED = shared_dir()
if SHARED is None:
    pytest.skip(
        "the shared feed corpus (../shared/corpus beside the checkout, or /work/shared/corpus) "
        "is not here",
        allow_module_level=True,
    )

FILES = sorted(p for p in (SHARED / "corpus").iterdir() if p.is_file() and p.name != "README.md")
VOA = SHARED / "examples" / "voa-chinese.rss.xml"
if VOA.is_file():
    FILES.append(VOA)

STYLES = [
    pytest.param(
        Style(summary=summary, media=media), id=f"{summary}-media-{'on' if media else 'off'}"
    )
    for summary in ("short", "none", "full")
    for media in (True, False)
]
assert STYLES[0].values[0] == Style(), "the first style is the default"

_PARSED: dict[Path, ParsedFeed] = {}


def _parsed(path: Path) -> ParsedFeed:
    if path not in _PARSED:
        # A plausible place for the file to have come from: relative links
        # resolve against it, as they would against the real feed's URL.
        _PARSED[path] = parse_feed(path.read_bytes(), url=f"https://feeds.example.org/{path.name}")
    return _PARSED[path]


def _words(s: str) -> str:
    """Text as a reader compares it: invisible characters gone, spaces collapsed."""
    kept = "".join(ch for ch in s if unicodedata.category(ch) not in ("Cc", "Cf") or ch in "\n\t")
    return " ".join(kept.split())


def _same_url(a: str, b: str) -> bool:
    """Equal up to what clean_url normalises: case of scheme and host, IDNA,
    percent-encoding, an empty path."""

    def key(url: str) -> tuple[str, ...]:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").encode("idna").decode("ascii").lower()
        return (
            parts.scheme.lower(),
            host,
            str(parts.port or ""),
            unquote(parts.path) or "/",
            unquote(parts.query),
            unquote(parts.fragment),
        )

    return key(a) == key(b)


def _assert_title_and_link(message: Message, entry: Entry, where: str) -> None:
    text, entities = parse_telegram_html(message.text)
    title = _words(entry.title)
    if title:
        first_line = _words(text.split("\n", 1)[0])
        if first_line.endswith("…") and not title.endswith("…"):
            # A very long title, shortened at a word.
            assert title.startswith(first_line[:-1].rstrip()), (where, title, first_line)
            assert len(first_line) >= 100, (where, first_line)
        else:
            assert title in _words(text), (where, title, text[:200])
    if entry.link:
        hrefs = [e["url"] for e in entities if e["type"] == "text_link"]
        assert any(_same_url(href, entry.link) for href in hrefs), (where, entry.link, hrefs)


def _assert_plain(message: Message, entry: Entry, where: str) -> None:
    """The plain-text fallback of a message: sendable without parse_mode, with
    the title and the link spelled out."""
    out = html_to_plain(message.text)
    assert _words(out), where
    assert utf16_len(out) <= 4096, where
    if entry.title and utf16_len(message.text) < 3000:
        assert _words(entry.title)[:60] in _words(out), (where, out[:200])
    if entry.link:
        _, entities = parse_telegram_html(message.text)
        href = next(e["url"] for e in entities if e["type"] == "text_link")
        assert href in out, (where, href, out[:300])


def _assert_media(message: Message, where: str) -> None:
    assert 1 <= len(message.media) <= 10, where
    kinds = {item.kind for item in message.media}
    if len(message.media) > 1:
        assert kinds <= {"photo", "video"}, (where, kinds)
    for item in message.media:
        assert re.match(r"https?://[^\s/]+/", item.url), (where, item.url)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_file_parses_into_entries(path: Path):
    parsed = _parsed(path)
    assert parsed.entries, f"{path.name}: no entries"


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_entry_renders_with_title_and_link(path: Path, style: Style):
    parsed = _parsed(path)
    for index, entry in enumerate(parsed.entries):
        where = f"{path.name} entry {index} ({entry.title[:40]!r})"
        messages = render_entry(entry, parsed.title, style)
        assert 1 <= len(messages) <= 2, where
        for message in messages:
            check_message(message.text, caption=bool(message.media))
            if message.media:
                assert style.media, where
                _assert_media(message, where)
        # The text: the caption of the only message, or the message after the media.
        with_text = next((m for m in messages if m.text), None)
        assert with_text is not None, where
        assert with_text is messages[0] or not messages[0].text, where
        _assert_title_and_link(with_text, entry, where)
        _assert_plain(with_text, entry, where)

        # What the deliverer sends when Telegram refuses the media.
        fallback = render_text_only(entry, parsed.title, style)
        assert fallback.media == (), where
        check_message(fallback.text)
        _assert_title_and_link(fallback, entry, where + " as text")
        _assert_plain(fallback, entry, where + " as text")
