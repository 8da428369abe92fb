"""Bytes → :class:`~bot.models.ParsedFeed`. Pure: no I/O, no clock but ``now``.

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
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import urljoin

from bot.fetch import FetchResult
from bot.models import ParsedFeed
from bot.parse.common import ParseError, clean_text, media_kind
from bot.parse.jsonfeed import is_json_feed, parse_json_feed
from bot.parse.xml import feed_links_in_html, parse_xml_feed

__all__ = [
    "ParseError",
    "clean_text",
    "feed_links_in_html",
    "media_kind",
    "parse_feed",
    "parse_response",
]


def parse_feed(
    body: bytes,
    *,
    url: str,
    content_type: str | None = None,
    content_location: str | None = None,
    now: datetime | None = None,
) -> ParsedFeed:
    """Parse a fetched document.

    ``url`` is the URL the body came from (after redirects); relative links
    resolve against ``content_location`` (itself relative to ``url``) when
    given, else ``url``. ``now`` (default: the clock) bounds plausible dates.
    Raises :class:`ParseError` when the body is not a feed.
    """
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


def parse_response(result: FetchResult) -> ParsedFeed:
    """Parse what the fetcher brought, with the response's URL, Content-Type
    and Content-Location (charset and relative links depend on them)."""
    return parse_feed(
        result.body,
        url=result.url,
        content_type=result.content_type,
        content_location=result.content_location,
    )
