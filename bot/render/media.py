"""Choosing what an entry sends as Telegram media.

Telegram fetches media URLs itself and refuses what it cannot take (SVG,
Flash embeds, files over its URL limits), so we only offer what it usually
accepts; when it still refuses, the deliverer falls back to a text message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Literal
from urllib.parse import urlsplit

from bot.models import Entry, Media

from .text import clean_url

__all__ = [
    "HtmlMedia",
    "MediaItem",
    "choose_media",
    "find_html_media",
    "img_src",
    "is_emoji",
    "is_small",
    "is_tracker",
    "players",
]

MAX_GROUP = 10
#: Telegram's limits for files sent by URL (photos 5 MB, anything else 20 MB).
_PHOTO_MAX = 5 * 1024 * 1024
_FILE_MAX = 20 * 1024 * 1024

_TRACKER = re.compile(
    r"feeds\.feedburner\.com/~r/|/~ff/|/~r/|pixel\.wp\.com|stats\.wordpress\.com"
    r"|doubleclick\.net|google-analytics\.com|googletagmanager|/pixel(?:\.\w+)?(?:[/?]|$)"
    r"|[/_.=-]1x1[/_.&?-]|spacer\.gif|blank\.gif|/beacon|/tracking?/|feedsportal\.com"
    r"|/open\.gif|/o\.gif|/t\.gif|mf\.gif|counter\.|/stats?\?",
    re.I,
)
_EMOJI = re.compile(r"/emoji/|/smilies/|s\.w\.org/images/core/emoji", re.I)
_IMAGE_EXT = re.compile(r"\.(?:jpe?g|png|gif|webp|bmp)$", re.I)
_VIDEO_EXT = re.compile(r"\.(?:mp4|m4v|mov)$", re.I)
_AUDIO_EXT = re.compile(r"\.(?:mp3|m4a|ogg|oga|opus|aac|wav|flac)$", re.I)
_DOC_EXT = re.compile(r"\.(?:pdf|zip)$", re.I)


@dataclass(frozen=True, slots=True)
class MediaItem:
    kind: Literal["photo", "video", "audio", "document"]
    url: str


@dataclass(frozen=True, slots=True)
class HtmlMedia:
    """Media found in the entry's HTML."""

    #: The first <img src> or <video poster>, trackers and emoji skipped.
    first_image: str | None = None


def _px(value: str | None) -> int | None:
    m = re.match(r"\s*(\d+)", value or "")
    return int(m.group(1)) if m else None


def is_tracker(src: str, attrs: dict[str, str | None]) -> bool:
    """A tracking pixel or spacer: tiny, or served from a known counter."""
    width, height = _px(attrs.get("width")), _px(attrs.get("height"))
    if (width is not None and width <= 2) or (height is not None and height <= 2):
        return True
    style = (attrs.get("style") or "").replace(" ", "").lower()
    if re.search(r"(?:^|;)(?:width|height):[0-2]px|display:none|visibility:hidden", style):
        return True
    return bool(_TRACKER.search(src))


_SMALL_URL = re.compile(
    r"gravatar\.com/avatar|/avatars?[/.]|[?&](?:s|size|w|width|h|height)=(?:[1-9]|[1-9]\d)(?:&|$)",
    re.I,
)


def is_small(src: str, attrs: dict[str, str | None] | None = None) -> bool:
    """An icon or avatar (under 50 px, or served as one): decoration, not a picture."""
    attrs = attrs or {}
    width, height = _px(attrs.get("width")), _px(attrs.get("height"))
    if (width is not None and width < 50) or (height is not None and height < 50):
        return True
    return bool(_SMALL_URL.search(src))


def is_emoji(src: str, attrs: dict[str, str | None]) -> bool:
    """An inline emoji/smiley image (WordPress and co.): its alt text is the emoji."""
    cls = (attrs.get("class") or "").lower()
    return "emoji" in cls or "smiley" in cls or bool(_EMOJI.search(src))


def img_src(attrs: dict[str, str | None]) -> str | None:
    """An <img>'s real source: lazy-loading pages put it in data-* attributes."""
    for key in ("src", "data-src", "data-original", "data-lazy-src"):
        value = (attrs.get(key) or "").strip()
        if value and not value.lower().startswith("data:"):
            return value
    return None


def _path(url: str) -> str:
    try:
        return urlsplit(url).path
    except ValueError:
        return ""


def usable_image(url: str) -> bool:
    path = _path(url).lower()
    return not path.endswith((".svg", ".svgz", ".ico", ".tif", ".tiff", ".avif"))


class _Finder(HTMLParser):
    def __init__(self, base: str | None) -> None:
        super().__init__(convert_charrefs=True)
        self.base = base
        self.first_image: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.first_image is not None or tag not in ("img", "video"):
            return
        a = dict(attrs)
        raw = img_src(a) if tag == "img" else a.get("poster")
        src = clean_url(raw, self.base)
        if (
            src
            and src.startswith("http")
            and usable_image(src)
            and not is_tracker(src, a)
            and not is_emoji(src, a)
            and not is_small(src, a)
        ):
            self.first_image = src


def find_html_media(html: str, base: str | None) -> HtmlMedia:
    if "<" not in html:
        return HtmlMedia()
    finder = _Finder(base)
    finder.feed(html)
    finder.close()
    return HtmlMedia(finder.first_image)


def _too_big(m: Media, limit: int) -> bool:
    return m.length is not None and m.length > limit


def _kind_of(m: Media, *, sized: bool = True) -> str | None:
    """What Telegram can do with a feed-declared media item, if anything.

    With ``sized=False``, files too big to send by URL still count.
    """
    if not sized:
        m = Media(m.url, m.kind, m.mime_type, None, m.source)
    mime = (m.mime_type or "").lower()
    path = _path(m.url)
    if m.kind == "image" or mime.startswith("image/"):
        if mime in ("image/svg+xml", "image/x-icon", "image/tiff") or not usable_image(m.url):
            return None
        if is_small(m.url):
            return None
        return None if _too_big(m, _PHOTO_MAX) else "photo"
    if m.kind == "video" or mime.startswith("video/"):
        # sendVideo by URL plays MP4 only; Flash/YouTube embeds are pages, not files.
        if mime in ("video/mp4", "video/quicktime") or _VIDEO_EXT.search(path):
            return None if _too_big(m, _FILE_MAX) else "video"
        return None
    if m.kind == "audio" or mime.startswith("audio/"):
        if mime in ("audio/mpeg", "audio/mp3", "audio/mp4", "audio/x-m4a", "audio/ogg"):
            return None if _too_big(m, _FILE_MAX) else "audio"
        return None if _too_big(m, _FILE_MAX) or not _AUDIO_EXT.search(path) else "audio"
    # sendDocument by URL only works for PDF and ZIP.
    if mime in ("application/pdf", "application/zip") or _DOC_EXT.search(path):
        return None if _too_big(m, _FILE_MAX) else "document"
    return None


def choose_media(entry: Entry, found: HtmlMedia) -> tuple[MediaItem, ...]:
    """The media to send for an entry, in order; () for a plain text message.

    A podcast sends its (first) audio; otherwise the feed's declared photos
    and videos, else the first picture of the content, else a thumbnail, go
    together (up to 10); a PDF/ZIP goes alone when there is nothing else.
    """
    base = entry.base_url or entry.link
    declared: list[MediaItem] = []
    thumbs: list[MediaItem] = []
    audio: list[MediaItem] = []
    docs: list[MediaItem] = []
    for m in entry.media:
        url = clean_url(m.url, base)
        kind = _kind_of(m)
        if not url or not url.startswith("http") or kind is None:
            continue
        item = MediaItem(kind, url)  # type: ignore[arg-type]
        if kind == "audio":
            audio.append(item)
        elif kind == "document":
            docs.append(item)
        elif m.source == "media:thumbnail":
            thumbs.append(item)
        else:
            declared.append(item)
    if audio:
        return (audio[0],)
    visual = declared
    if not any(item.kind == "photo" for item in visual):
        # A thumbnail and the content's first picture are usually the same
        # image at two sizes: take one, the content's, as it tends to be larger.
        if found.first_image:
            visual = [MediaItem("photo", found.first_image), *visual]
        elif thumbs:
            visual = [thumbs[0], *visual]
    unique: dict[str, MediaItem] = {}
    for item in visual:
        unique.setdefault(item.url, item)
    if unique:
        return tuple(unique.values())[:MAX_GROUP]
    return (docs[0],) if docs else ()


def players(entry: Entry, sent: tuple[MediaItem, ...]) -> list[MediaItem]:
    """Audio and video files of the entry not sent as media: they become links,
    so a podcast too big for Telegram can still be played."""
    base = entry.base_url or entry.link
    sent_urls = {m.url for m in sent}
    out: dict[str, MediaItem] = {}
    for m in entry.media:
        kind = _kind_of(m, sized=False)
        url = clean_url(m.url, base)
        if kind in ("audio", "video") and url and url.startswith("http") and url not in sent_urls:
            out.setdefault(url, MediaItem(kind, url))  # type: ignore[arg-type]
    return list(out.values())[:3]
