"""What a hostile document may not do to the parser: DTD entities and bad
character references, dealt with before any parser sees them.

* Entity declarations. expat stops a billion-laughs document (its
  amplification limit), but feedparser then retries with its loose parser,
  which expands every internal entity without a limit: a 40 KB feed with one
  10 KB entity referenced 10,000 times cost 537 MB. External entities (XXE)
  and parameter entities have no business in a feed either. A document that
  declares any entity other than a one-character alias (``<!ENTITY nbsp
  "&#160;">``, which real feeds do carry and which cannot amplify) is refused.
  The check runs on the raw bytes before parsing, and again inside feedparser
  on the text it decoded (so an exotic declared encoding cannot hide a
  declaration from the byte check).
* The DOCTYPE's external identifier (``SYSTEM "file:///…"``, a DTD on the
  network) is dropped: no parser here fetches it, and none should start to.
* Numeric character references to no character (``&#xD800;``, ``&#x110000;``,
  ``&#99999999999;``) crash feedparser (UnicodeEncodeError, ValueError,
  OverflowError); they become U+FFFD, as HTML5 reads them.
"""

from __future__ import annotations

import re
from typing import Any

import feedparser.api

from bot.parse.common import ParseError

#: The part of a document before its root element: where a DTD lives. Every
#: parser here (feedparser's replace_doctype included) looks no further.
_ROOT_START = re.compile(rb"<[A-Za-z_]")
_DOCTYPE = re.compile(rb"<!DOCTYPE\b", re.I)
_ENTITY_DECL = re.compile(rb"<!ENTITY\b([^>]*)>?", re.I)
#: A declaration that cannot amplify: one character reference, or a short
#: literal without references.
_HARMLESS_ENTITY = re.compile(
    rb"""\s+[A-Za-z_][\w.-]*\s+(?:"(?:&\#[0-9]{1,7};|&\#x[0-9a-fA-F]{1,6};|[^"&%]{0,8})"|"""
    rb"""'(?:&\#[0-9]{1,7};|&\#x[0-9a-fA-F]{1,6};|[^'&%]{0,8})')\s*$"""
)
#: <!DOCTYPE name SYSTEM "uri"> / PUBLIC "id" "uri", up to an internal subset or the end.
_EXTERNAL_ID = re.compile(
    rb"""(<!DOCTYPE\s+[^\s\[>]+)\s+(?:SYSTEM\s+(?:"[^"]*"|'[^']*')|"""
    rb"""PUBLIC\s+(?:"[^"]*"|'[^']*')(?:\s+(?:"[^"]*"|'[^']*'))?)""",
    re.I,
)

ENTITY_REFUSAL = (
    "The feed declares XML entities, which feedbot does not read (they can make a small "
    "document take gigabytes)."
)


class EntitiesRefused(ParseError):
    """The document declares entities that could amplify or reach outside."""

    def __init__(self) -> None:
        super().__init__(ENTITY_REFUSAL)


def _prolog(body: bytes) -> bytes:
    """The bytes before the root element, NULs dropped so that a UTF-16 or
    UTF-32 document's ASCII markup reads as ASCII."""
    if b"\x00" in body[:4]:
        body = body.replace(b"\x00", b"")
    start = _ROOT_START.search(body)
    return body[: start.start()] if start else body


def check_prolog(head: bytes) -> None:
    """Raise :class:`EntitiesRefused` when ``head`` declares a dangerous entity."""
    for decl in _ENTITY_DECL.finditer(head):
        if not _HARMLESS_ENTITY.match(decl.group(1)):
            raise EntitiesRefused


def screen_dtd(body: bytes) -> bytes:
    """``body`` with its DTD made harmless, or :class:`EntitiesRefused`.

    Most documents carry no DOCTYPE and come back as they are, after one
    regular-expression search of their prolog."""
    head = _prolog(body)
    if not _DOCTYPE.search(head) and b"<!ENTITY" not in head.upper():
        return body
    check_prolog(head)
    if b"\x00" in body[:4]:
        return body  # UTF-16/32: the check above is enough, feedparser strips the rest
    cut = len(head)
    return _EXTERNAL_ID.sub(rb"\1", body[:cut], count=1) + body[cut:]


# ------------------------------------------------------ character references

_NUMERIC_REF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")


def _valid_code_point(n: int) -> bool:
    return 0 < n <= 0x10FFFF and not 0xD800 <= n <= 0xDFFF


def _fix_ref(match: re.Match[bytes]) -> bytes:
    hexa, dec = match.groups()
    digits = hexa if hexa is not None else dec
    if len(digits.lstrip(b"0")) > 8:  # no code point needs more (and int() stays cheap)
        return b"&#xFFFD;"
    n = int(digits, 16) if hexa is not None else int(digits)
    return match.group(0) if _valid_code_point(n) else b"&#xFFFD;"


def neutralise_char_refs(body: bytes) -> bytes:
    """Numeric character references to no character replaced by U+FFFD.

    On bytes, before decoding: ``&#`` is ASCII in every encoding feedparser
    reads except UTF-16/32, which are decoded first by the caller."""
    if b"&#" not in body:
        return body
    return _NUMERIC_REF.sub(_fix_ref, body)


# ------------------------------------------------- inside feedparser itself

_original_replace_doctype = feedparser.api.replace_doctype


def _guarded_replace_doctype(data: bytes) -> Any:
    """feedparser's own DTD handling, on the text it decoded, after our check
    (its loose parser would expand what it keeps)."""
    check_prolog(_prolog(data))
    version, data, entities = _original_replace_doctype(data)
    return version, neutralise_char_refs(data), entities


def install() -> None:
    """Put the check into feedparser (idempotent)."""
    feedparser.api.replace_doctype = _guarded_replace_doctype
