"""Entry → Telegram messages.

A message reads, top to bottom: the title (bold, linking to the entry), a
blank line, the body, a blank line, and a footer with the feed's name, the
author and the categories as hashtags. Everything is measured the way
Telegram measures it: UTF-16 units of the text after HTML parsing.
"""

from __future__ import annotations

import html as _html
import re
import unicodedata
from dataclasses import dataclass

from bot.models import Entry, Style

from .html import convert
from .media import MediaItem, choose_media, find_html_media, players
from .runs import Mark, Run, drop_prefix, first_line, fit, plain, serialize
from .text import (
    clean_text,
    clean_url,
    collapse,
    cut_index,
    has_visible,
    prefix_fitting,
    prefix_weighing,
    shorten,
    utf16_len,
)

__all__ = [
    "CAPTION_LIMIT",
    "MESSAGE_LIMIT",
    "MediaItem",
    "Message",
    "html_to_plain",
    "render_entry",
    "render_text_only",
    "utf16_len",
]

MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024
#: "short" summaries: about a paragraph. Measured in reading width, East
#: Asian wide characters counting double (about 250 Chinese characters).
SHORT_BODY = 500
#: Below this, a body is not worth showing (it would be a few words and "…").
_MIN_BODY = 40
_TITLE_MAX = 200
_NAME_MAX = 64
_TAG_MAX = 40
_TAGS_MAX = 8
_BLANK = Run("\n\n", brk=True)
#: Style is frozen, so one shared default is safe.
DEFAULT_STYLE = Style()


@dataclass(frozen=True, slots=True)
class Message:
    """One Telegram message to send (parse_mode HTML).

    With media, ``text`` is the caption (≤1024) of the single item or of the
    first item of a group, possibly "" (media only).
    """

    text: str
    media: tuple[MediaItem, ...] = ()
    link_preview: bool = False
    silent: bool = False


def render_entry(entry: Entry, feed_title: str, style: Style = DEFAULT_STYLE) -> list[Message]:
    """The messages for an entry: usually one; media then text when the text
    is too long for a caption. Never empty."""
    base = entry.base_url or entry.link
    media: tuple[MediaItem, ...] = ()
    if style.media:
        media = choose_media(entry, find_html_media(entry.html or "", base))
    if not media:
        return [render_text_only(entry, feed_title, style)]
    runs = convert(entry.html or "", base, frozenset(m.url for m in media))
    text = _compose(entry, feed_title, style, runs, MESSAGE_LIMIT, media)
    if utf16_len(plain(text)) <= CAPTION_LIMIT:
        return [Message(serialize(text), media, style.link_preview, style.silent)]
    # The media first, bare, then the whole text right under it; a preview
    # would only repeat the picture just sent.
    return [
        Message("", media, False, style.silent),
        Message(serialize(text), (), False, style.silent),
    ]


def render_text_only(entry: Entry, feed_title: str, style: Style = DEFAULT_STYLE) -> Message:
    """The entry as a text message with its link, no media: the fallback when
    Telegram refuses a media URL (the pictures become links)."""
    runs = convert(entry.html or "", entry.base_url or entry.link)
    text = _compose(entry, feed_title, style, runs, MESSAGE_LIMIT)
    return Message(serialize(text), (), style.link_preview, style.silent)


def _entry_link(entry: Entry) -> str | None:
    return clean_url(entry.link, entry.base_url)


def _compose(
    entry: Entry,
    feed_title: str,
    style: Style,
    runs: list[Run],
    limit: int,
    sent: tuple[MediaItem, ...] = (),
) -> list[Run]:
    link = _entry_link(entry)
    head = _title(entry, runs, link)
    runs = _without_title(runs, entry.title)
    foot = _footer(entry, feed_title, style)
    files = _player_links(entry, sent)
    if files:
        foot = [*files, Run("\n\n", brk=True), *foot] if foot else files
    fixed = utf16_len(plain(head)) + (utf16_len(plain(foot)) + 2 if foot else 0)
    body: list[Run] = []
    if style.summary != "none" and runs:
        budget = limit - fixed - 2
        if style.summary == "short":
            budget = min(budget, _short_budget(runs))
        if budget >= _MIN_BODY:
            body = fit(runs, budget, link)
    out = list(head)
    if body:
        out += [_BLANK, *body]
    if foot:
        out += [_BLANK, *foot]
    return out


def _same_words(a: str, b: str) -> bool:
    def words(s: str) -> str:
        return collapse(s).rstrip(".:。：").casefold()

    return bool(words(a)) and words(a) == words(b)


def _without_title(runs: list[Run], title: str) -> list[Run]:
    """The body without a first line that only repeats the title (commit
    messages, microblogs, pages opening with their own <h1>)."""
    if not title or not runs:
        return runs
    line = first_line(runs)
    if not _same_words(line, plain_title(title)):
        return runs
    return drop_prefix(runs, len(line))


def _short_budget(runs: list[Run]) -> int:
    """The "short" budget in UTF-16 units for this body: SHORT_BODY of reading
    width, so a short Chinese summary has about half as many characters."""
    text = plain(runs)
    end = prefix_weighing(text, SHORT_BODY)
    return utf16_len(text[:end]) if end < len(text) else SHORT_BODY


def _player_links(entry: Entry, sent: tuple[MediaItem, ...]) -> list[Run]:
    out: list[Run] = []
    for item in players(entry, sent):
        if out:
            out.append(Run("  "))
        label = "🔊 audio" if item.kind == "audio" else "▶ video"
        out.append(Run(label, (Mark("a", href=item.url),), label=True))
    return out


_HTML_ENTITY = re.compile(r"&(?:#\d+|#x[0-9a-f]+|[a-z]+\d*);", re.I)
_INLINE_TAG = re.compile(
    r"</?(?:a|b|i|u|s|em|strong|span|code|sup|sub|small|font|mark|abbr|q|cite|del|ins|br)"
    r"(?:\s[^<>]*)?/?>",
    re.I,
)


def plain_title(title: str) -> str:
    """A title as plain text. Titles should arrive plain, but feeds that mark
    theirs as HTML (or escape them twice) leave tags and entities behind."""
    if _INLINE_TAG.search(title) or _HTML_ENTITY.search(title):
        title = _html.unescape(_INLINE_TAG.sub("", title))
    return title


def _title(entry: Entry, runs: list[Run], link: str | None) -> list[Run]:
    title = shorten(plain_title(entry.title or ""), _TITLE_MAX)
    if not has_visible(title):
        # No title (microblogs, photo feeds): the first words say what it is.
        title = shorten(plain([r for r in runs if not r.label]), 60)
    if not has_visible(title) and link:
        title = "🔗 " + shorten(re.sub(r"^\w+://(www\.)?", "", link), 60)
    if not has_visible(title):
        title = "Untitled"
    marks = (Mark("b"), Mark("a", href=link)) if link else (Mark("b"),)
    return [Run(title, marks)]


def _footer(entry: Entry, feed_title: str, style: Style) -> list[Run]:
    names: list[str] = []
    feed = shorten(plain_title(feed_title or ""), _NAME_MAX) if style.show_feed else ""
    if has_visible(feed):
        names.append(feed)
    author = _author(entry.author) if style.show_author else ""
    if has_visible(author) and author.casefold() != feed.casefold():
        names.append(author)
    lines = [" · ".join(names)] if names else []
    tags = hashtags(entry.categories) if style.show_tags else []
    if tags:
        lines.append(" ".join(tags))
    return [Run("\n".join(lines))] if lines else []


def _author(author: str | None) -> str:
    author = collapse(plain_title(author or ""))
    # RSS <author> is "email (Name)"; the name is what people recognise.
    m = re.fullmatch(r"\S+@\S+\s*\((.+)\)", author)
    if m:
        author = m.group(1)
    elif re.fullmatch(r"\S+@\S+\.\S+", author):
        author = ""
    return shorten(author, _NAME_MAX)


#: "r/homelab", "/u/someone": the name is the tag.
_REDDIT = re.compile(r"^/?[ru]/(?=\w)")
#: Programming languages whose names are mostly punctuation: C++, C#, F#.
_LANGUAGE = re.compile(r"(?<![\w+#])([A-Za-z])(\+\+|#)(?![\w+#])")
_LANGUAGE_SUFFIX = {"++": "pp", "#": "Sharp"}


def _tag_char(ch: str) -> bool:
    return ch == "_" or unicodedata.category(ch)[0] in "LMN"


def hashtags(categories: tuple[str, ...] | list[str]) -> list[str]:
    """Categories as Telegram hashtags: letters, digits and "_" only.

    "C++ / Rust" gives #Cpp and #Rust; "Machine Learning" gives #Machine_Learning;
    Reddit's "r/homelab" gives #homelab; all-digit tags are dropped as Telegram
    does not link them.
    """
    tags: list[str] = []
    seen: set[str] = set()
    for category in categories:
        category = clean_text(category or "").strip()
        category = _REDDIT.sub("", category)
        category = _LANGUAGE.sub(lambda m: m.group(1) + _LANGUAGE_SUFFIX[m.group(2)], category)
        for piece in re.split(r"[/,;|>#]+", category):
            word = "".join(ch if _tag_char(ch) else "_" for ch in piece.strip())
            word = re.sub(r"_+", "_", word).strip("_")[:_TAG_MAX].rstrip("_")
            if not any(ch.isalpha() for ch in word) or word.casefold() in seen:
                continue
            seen.add(word.casefold())
            tags.append("#" + word)
            if len(tags) == _TAGS_MAX:
                return tags
    return tags


_A_TAG = re.compile(r"""<a\s[^<>]*?href\s*=\s*(["'])(.*?)\1[^<>]*>(.*?)</a\s*>""", re.S | re.I)
_ANY_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")


def html_to_plain(telegram_html: str) -> str:
    """The same message as plain text (no parse_mode), links spelled out.

    For when Telegram cannot parse the HTML after all, so it must not rely on
    the markup being well formed.
    """

    def spell_link(m: re.Match[str]) -> str:
        url = _html.unescape(m.group(2)).strip()
        inner = m.group(3)
        label = _html.unescape(_ANY_TAG.sub("", inner)).strip()
        if not url or url in label:
            return inner
        return f"{inner} ({url})" if label else url

    text = _A_TAG.sub(spell_link, telegram_html)
    text = _html.unescape(_ANY_TAG.sub("", text))
    text = clean_text(text).replace("\r", "")
    text = re.sub(r"\n[ \t]*\n(?:[ \t]*\n)+", "\n\n", text).strip()
    if utf16_len(text) > MESSAGE_LIMIT:
        text = text[: cut_index(text, prefix_fitting(text, MESSAGE_LIMIT - 1))].rstrip() + "…"
    return text if has_visible(text) else "…"
