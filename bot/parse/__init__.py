"""Bytes → :class:`~bot.models.ParsedFeed`. Pure: no I/O, no clock but ``now``.

Well-formed UTF-8 RSS 2.0 and Atom go through feedparser-rs when
bot/parse/fast.py is sure it reads them as feedparser would (a tenth of the
CPU); everything else, and whatever it is unsure of, through feedparser.

RSS 0.9x/1.0/2.0 and Atom go through feedparser (with ``sanitize_html=False``
and ``resolve_relative_uris=False``: the renderer sanitises and resolves the
HTML once, against ``Entry.base_url``). JSON Feed 1.0/1.1 is read here, since
feedparser 6.0 does not know it.

What this module fixes on the way:

* charset: the body's own XML declaration wins over the HTTP charset (servers
  add default charsets that are often wrong), and a body that is valid UTF-8 is
  read as UTF-8 whatever either says;
* whitespace before ``<?xml`` (which makes the strict parser give up);
* undeclared namespace prefixes and a mangled XML declaration (a retry after
  a repair, only when the first pass found no entries);
* titles: HTML tags and entities removed (``&amp;amp;`` reads ``&``),
  whitespace collapsed;
* links: made absolute, ``utm_*`` tracking parameters dropped, non-http(s)
  links ignored;
* plain-text bodies escaped into HTML (line breaks kept as ``<br>``);
* dates: aware UTC datetimes; dates more than two days in the future ignored.

What it refuses or bounds, so that a hostile feed costs little (bot/parse/guard.py):

* DTD entity declarations (billion laughs, quadratic blow-up, XXE) are refused
  before any parser runs; external DTDs are never fetched;
* numeric character references to no character become U+FFFD;
* at most ``max_entries`` entries per document (the newest), titles and
  bodies cut to :data:`~bot.parse.common.TITLE_MAX` and
  :data:`~bot.parse.common.BODY_MAX` characters;
* any other exception a parser raises becomes a :class:`ParseError`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import urljoin

from bot.fetch import FetchResult
from bot.models import ParsedFeed
from bot.parse.common import ParseError, clean_text, media_kind, newest
from bot.parse.jsonfeed import is_json_feed, parse_json_feed
from bot.parse.xml import parse_xml_feed

__all__ = [
    "ParseError",
    "clean_text",
    "media_kind",
    "parse_feed",
    "parse_response",
]

log = logging.getLogger(__name__)

#: Entries taken from one document: a feed that suddenly lists 10,000 new
#: entries must not queue 10,000 messages.
MAX_ENTRIES = 100


def parse_feed(
    body: bytes,
    *,
    url: str,
    content_type: str | None = None,
    content_location: str | None = None,
    now: datetime | None = None,
    max_entries: int = MAX_ENTRIES,
) -> ParsedFeed:
    """Parse a fetched document.

    ``url`` is the URL the body came from (after redirects); relative links
    resolve against ``content_location`` (itself relative to ``url``) when
    given, else ``url``. ``now`` (default: the clock) bounds plausible dates.
    At most ``max_entries`` entries are kept: the newest. Raises
    :class:`ParseError` when the body is not a feed, and for anything else a
    parser raises on a hostile document (logged), so a caller always has an answer.
    """
    try:
        parsed = _parse(body, url, content_type, content_location, now)
    except ParseError:
        raise
    except Exception as exc:  # a parser's bug must not end a poll or a /subscribe
        log.warning("parser failed on %s: %r", url, exc)
        raise ParseError("The feed could not be read.") from exc
    if len(parsed.entries) > max_entries:
        parsed = replace(parsed, entries=newest(parsed.entries, max_entries))
    return parsed


def _parse(
    body: bytes,
    url: str,
    content_type: str | None,
    content_location: str | None,
    now: datetime | None,
) -> ParsedFeed:
    if now is None:
        now = datetime.fromtimestamp(time.time(), UTC)
    base = urljoin(url, content_location.strip()) if content_location else url
    if not body or not body.strip(b" \t\r\n\x00\xef\xbb\xbf\xfe\xff"):
        raise ParseError("The server sent an empty document.")
    if is_json_feed(body, content_type):
        head = body.lstrip(b"\xef\xbb\xbf \t\r\n")
        if not head.startswith(b"<"):
            return parse_json_feed(body, base, now)
    return parse_xml_feed(body, base, content_type, now)


def parse_response(result: FetchResult, *, max_entries: int = MAX_ENTRIES) -> ParsedFeed:
    """Parse what the fetcher brought, with the response's URL, Content-Type
    and Content-Location (charset and relative links depend on them).
    Raises only :class:`ParseError`."""
    return parse_feed(
        result.body,
        url=result.url,
        content_type=result.content_type,
        content_location=result.content_location,
        max_entries=max_entries,
    )
