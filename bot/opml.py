"""OPML, the feed readers' exchange format: subscriptions out and in (pure)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

import defusedxml.ElementTree as SafeET  # type: ignore[import-untyped]
from defusedxml import DefusedXmlException

from bot.parse.guard import EntitiesRefused, screen_dtd

#: Larger files are refused before parsing.
MAX_OPML_BYTES = 1_000_000


class OPMLError(ValueError):
    """str() is one sentence for the user."""


@dataclass(frozen=True, slots=True)
class Outline:
    url: str
    title: str = ""


def build_opml(outlines: Iterable[Outline], title: str, now: datetime | None = None) -> bytes:
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    ET.SubElement(head, "dateCreated").text = format_datetime(now or datetime.now(UTC))
    body = ET.SubElement(root, "body")
    for outline in outlines:
        ET.SubElement(
            body,
            "outline",
            type="rss",
            text=outline.title or outline.url,
            title=outline.title or outline.url,
            xmlUrl=outline.url,
        )
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def parse_opml(data: bytes) -> list[Outline]:
    """Every feed outline (nested folders included), in document order, once each."""
    if len(data) > MAX_OPML_BYTES:
        raise OPMLError("The file is larger than 1 MB; that is not an OPML subscription list.")
    # The feeds' entity rule first (before any parser runs), then a parser
    # that refuses entities and external references on its own as well.
    try:
        root = SafeET.fromstring(screen_dtd(data))
    except (EntitiesRefused, DefusedXmlException):
        raise OPMLError(
            "The file declares XML entities, which feedbot does not read "
            "(they can make a small file take gigabytes)."
        ) from None
    except ET.ParseError as exc:
        raise OPMLError(f"The file is not valid OPML (XML error: {exc}).") from None
    if root.tag.lower() != "opml":
        raise OPMLError("The file is XML but not OPML.")
    seen: dict[str, Outline] = {}
    for element in root.iter():
        if element.tag.lower() != "outline":
            continue
        attrs = {key.lower(): value for key, value in element.attrib.items()}
        url = (attrs.get("xmlurl") or "").strip()
        if url and url not in seen:
            seen[url] = Outline(url, (attrs.get("title") or attrs.get("text") or "").strip())
    return list(seen.values())
