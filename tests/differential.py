"""Both XML paths on one document: feedparser-rs (bot/parse/fast.py) and feedparser.

:func:`checked_parse_xml_feed` stands in for ``parse_xml_feed`` in the parse
suites (see conftest.py): every document those tests parse is read both ways
and the two ParsedFeeds (or ParseError sentences) must be equal.
"""

from __future__ import annotations

from datetime import datetime

import bot.parse.xml as parse_xml
from bot.models import ParsedFeed
from bot.parse import ParseError

_original = parse_xml.parse_xml_feed


class Disagreement(BaseException):
    """Not an Exception: parse_feed turns those into ParseError."""


def both_ways(
    body: bytes, base: str, content_type: str | None, now: datetime
) -> tuple[ParsedFeed | ParseError, ParsedFeed | ParseError]:
    """(feedparser's answer, the fast path's answer)."""
    answers: list[ParsedFeed | ParseError] = []
    saved = parse_xml.FAST_PATH
    try:
        for fast in (False, True):
            parse_xml.FAST_PATH = fast
            try:
                answers.append(_original(body, base, content_type, now))
            except ParseError as exc:
                answers.append(exc)
    finally:
        parse_xml.FAST_PATH = saved
    return answers[0], answers[1]


def checked_parse_xml_feed(
    body: bytes, base: str, content_type: str | None, now: datetime
) -> ParsedFeed:
    reference, fast = both_ways(body, base, content_type, now)
    if isinstance(reference, ParseError):
        if not (isinstance(fast, ParseError) and str(fast) == str(reference)):
            raise Disagreement(reference, fast)
        raise reference
    if fast != reference:
        raise Disagreement("feedparser-rs and feedparser disagree", reference, fast)
    return reference
