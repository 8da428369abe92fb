"""The fast path: feedparser-rs (Rust) read into the same mappings feedparser gives.

feedparser-rs parses a 47 KB feed in about a tenth of feedparser's time. Its
answers differ from feedparser's in small ways; where they matter to feedbot
this module turns them into feedparser's (RSS title types, Atom ids resolved
against the base, no inherited Atom authors, XML line ends), and :func:`read`
answers None, "use feedparser", for every document it is not sure of: not
well-formed, not RSS 2.0 or Atom 1.0, at one of feedparser-rs's limits, or
using what the adapter does not map (xml:base, XHTML content, iTunes and
media:group elements, dc:date, text feedparser rewrites). The caller only
sends UTF-8 that declares no other charset. tests/test_parse_differential.py
and the parse suites (through tests/conftest.py) hold both paths to the same
ParsedFeed on every document they parse.
"""

from __future__ import annotations

import re
from typing import Any
from xml.parsers import expat

from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urljoin

feedparser_rs: Any
try:  # optional: without it, feedparser reads everything
    import feedparser_rs
except ImportError:  # pragma: no cover - an install without the wheel
    feedparser_rs = None

#: Versions whose mapping the differential test covers.
_VERSIONS = frozenset({"rss20", "atom10"})
#: What the adapter does not map the way feedparser does: documents using
#: these go to feedparser whole.
_UNSURE = re.compile(
    rb"<rdf:RDF|<rss[^>]*version=[\"']0\.9|"
    rb"xml:base|<!DOCTYPE|<!ENTITY|type=[\"']xhtml|application/xhtml\+xml|<xhtml:|"
    rb"mode=[\"']base64|<dc:date|<media:group|<itunes:|<\w+:title|<(?!atom:link)\w+:link"
)
_LIMITS: Any = feedparser_rs.ParserLimits() if feedparser_rs is not None else None


def _at_a_limit(fe: Any) -> bool:
    return (
        len(fe.enclosures or []) >= _LIMITS.max_enclosures
        or len(fe.tags or []) >= _LIMITS.max_tags
        or len(fe.content or []) >= _LIMITS.max_content_blocks
    )


def _well_formed(body: bytes) -> bool:
    """What feedparser's strict parser would accept (namespace-aware expat,
    as feedparser runs it): a document it rejects goes to its loose parser,
    whose reading feedparser-rs does not imitate. 0.2 ms for 47 KB."""
    parser = expat.ParserCreate(namespace_separator=" ")
    try:
        parser.Parse(body, True)
    except expat.ExpatError:
        return False
    return True


def available() -> bool:
    return feedparser_rs is not None


def _detail(value: Any, *, guess: bool = False) -> dict[str, Any] | None:
    """A text construct as feedparser gives it. ``guess``: an RSS title,
    which feedparser takes for text/plain unless it looks like HTML
    (feedparser-rs says text/html for every RSS title)."""
    if value is None:
        return None
    text = value.value or ""
    kind = value.type or "text/plain"
    if guess:
        kind = "text/html" if _FeedParserMixin.looks_like_html(text) else "text/plain"
    return {"type": kind, "value": text, "base": ""}


def _mapping(obj: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: obj.get(k) for k in keys}


def _media_urls_plain(fe: Any) -> bool:
    """feedparser-rs leaves ``&amp;`` undecoded in some media attributes
    (media:thumbnail in GitHub's Atom): such an entry goes to feedparser."""
    urls = [e.get("href") or e.get("url") for e in fe.enclosures or []]
    urls += [m.get("url") for m in fe.media_content or []]
    urls += [t.get("url") for t in fe.media_thumbnail or []]
    return not any(isinstance(u, str) and "&" in u for u in urls)


_ODD_URL = re.compile(r"[<>\"'\s]|&#?\w+;")
_ODD_TEXT = re.compile(r"&#?\w+;|<")


_C1 = re.compile("[\x80-\x9f]")


def _feedparser_keeps(text: Any) -> bool:
    """False when feedparser would rewrite ``text``: it maps C1 controls to
    their windows-1252 characters, and re-reads text that is all Latin-1 and
    valid UTF-8 as UTF-8 (repairing "Ã©" into "é"). feedparser-rs does neither."""
    if not isinstance(text, str) or text.isascii():
        return True
    if _C1.search(text):
        return False
    try:
        return text.encode("iso-8859-1").decode("utf-8") == text
    except (UnicodeEncodeError, UnicodeDecodeError):
        return True


def _texts(fe: Any) -> list[Any]:
    out = [fe.title, fe.link, fe.id, fe.author]
    out += [t.term for t in fe.tags or []] + [t.label for t in fe.tags or []]
    out += [c.value for c in fe.content or []]
    if fe.summary_detail is not None:
        out.append(fe.summary_detail.value)
    if fe.author_detail is not None:
        out.append(fe.author_detail.name)
    return out


def _ordinary(fe: Any) -> bool:
    """No markup-like text and no URL with characters URLs do not have:
    feedparser escapes or decodes such text its own way (differently for
    links, titles and authors), so it alone reads such an entry."""
    for url in (fe.link, fe.id):
        if isinstance(url, str) and _ODD_URL.search(url):
            return False
    texts = (
        [fe.title, fe.author] + [t.term for t in fe.tags or []] + [t.label for t in fe.tags or []]
    )
    if any(isinstance(t, str) and _ODD_TEXT.search(t) for t in texts):
        return False
    return all(_feedparser_keeps(t) for t in _texts(fe))


#: What urlsplit calls a scheme, at the start of a URL (cheaper than urlsplit).
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_FIRST_TITLE = re.compile(rb"<title\b[^>]*>(.*?)</title>", re.S | re.I)
_MARKUP_IN_TEXT = re.compile(rb"&lt;|&#0*60;|&#x0*3c;|<", re.I)


def _markup_in_first_title(body: bytes) -> bool:
    """The feed's title (the document's first <title>) holds markup, escaped
    or not: feedparser keeps it as text in places (an Atom type="text" title)
    where feedparser-rs strips it, so feedparser reads such a document."""
    match = _FIRST_TITLE.search(body)
    if match is None:
        return False
    text = match.group(1).replace(b"<![CDATA[", b"").replace(b"]]>", b"")
    return bool(_MARKUP_IN_TEXT.search(text))


def _guid_undecided(fe: Any) -> bool:
    """feedparser resolves a relative RSS guid against the base unless it is
    isPermaLink="false"; feedparser-rs reports ``guidislink`` False whenever
    the item has a <link>, whatever the attribute said, so for a relative
    guid beside a link the fast path cannot know: feedparser reads it."""
    guid = fe.id
    return bool(
        isinstance(guid, str)
        and guid
        and fe.link
        and not fe.get("guidislink")
        and not _SCHEME.match(guid)
    )


def _entry(fe: Any, rss: bool, base: str, own_author: bool) -> dict[str, Any]:
    guid = fe.id
    if isinstance(guid, str) and (not rss or fe.get("guidislink")):
        # feedparser resolves an id that may be a URI against the document's
        # base (Reddit's "t3_157kyrd"); an RSS guid only when it is a permalink.
        guid = _urljoin(base, guid)
    out: dict[str, Any] = {
        "title": fe.title,
        "title_detail": _detail(fe.title_detail, guess=rss),
        "link": fe.link,
        "id": guid,
        "author": fe.author if own_author else None,
        "author_detail": (
            {"name": fe.author_detail.name} if fe.author_detail and own_author else None
        ),
        "published_parsed": fe.published_parsed,
        "published": fe.published,
        "tags": [{"term": t.term, "label": t.label} for t in fe.tags or []],
        "content": [_detail(c) for c in fe.content or []],
        "summary_detail": _detail(fe.summary_detail),
        "enclosures": [_mapping(e, ("href", "url", "type", "length")) for e in fe.enclosures],
        "media_content": [
            _mapping(m, ("url", "type", "medium", "filesize", "fileSize"))
            for m in fe.media_content or []
        ],
        "media_thumbnail": [{"url": t.get("url")} for t in fe.media_thumbnail or []],
    }
    if not rss or fe.get("updated") != fe.get("published"):
        # feedparser has no "updated" for an RSS item without one; feedparser-rs
        # copies pubDate there.
        out["updated_parsed"] = fe.updated_parsed
        out["updated"] = fe.updated
    return out


def _own_authors(body: bytes, rss: bool, n: int) -> list[bool] | None:
    """For each entry: does it name its own author? feedparser-rs gives an
    Atom entry the feed's author; feedparser does not. None: cannot tell."""
    if rss:
        return [True] * n
    parts = body.split(b"<entry")[1:]
    if len(parts) != n:
        return None
    return [b"<author" in part for part in parts]


def read(body: bytes, base: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """(feed, entries) as feedparser-like dicts, or None: let feedparser read it.

    ``body`` is UTF-8 (the caller checked). ``base`` is what feedparser is
    given as the Content-Location.
    """
    answer, _ = read_or_why(body, base)
    return answer


def read_or_why(
    body: bytes, base: str
) -> tuple[tuple[dict[str, Any], list[dict[str, Any]]] | None, str]:
    """:func:`read`, and why not when it answers None (for bench/parse.py)."""
    if feedparser_rs is None:
        return None, "feedparser-rs is not installed"
    if not body.startswith(b"<"):
        # Also: feedparser-rs fetches a ``source`` that looks like a URL.
        return None, "does not start with <"
    if unsure := _UNSURE.search(body):
        return None, f"uses {unsure.group(0).decode('utf-8', 'replace')!r}"
    if not _well_formed(body):
        return None, "not well-formed (feedparser's loose parser reads it)"
    # XML's end-of-line handling, which expat does and feedparser-rs does not
    # (CDATA included; a &#13; reference stays a CR for both).
    body = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    try:
        result = feedparser_rs.parse(body, sanitize_html=False, resolve_relative_uris=False)
    except Exception:
        return None, "feedparser-rs raised"
    except BaseException as exc:  # a Rust panic arrives as pyo3's PanicException
        if type(exc).__name__ == "PanicException":
            return None, "feedparser-rs panicked"
        raise
    if result.bozo or result.version not in _VERSIONS or not result.entries:
        return None, f"version {result.version or '?'}, {len(result.entries)} entries"
    if len(result.entries) >= _LIMITS.max_entries or any(_at_a_limit(fe) for fe in result.entries):
        return None, "at one of feedparser-rs's limits (it drops the rest silently)"
    rss = result.version == "rss20"
    own = _own_authors(body, rss, len(result.entries))
    if own is None:
        return None, "entries not countable"
    if not all(_media_urls_plain(fe) for fe in result.entries):
        return None, "a media URL with & (left escaped by feedparser-rs)"
    if not all(_ordinary(fe) for fe in result.entries):
        return None, "text feedparser rewrites (markup, entities, cp1252, mojibake)"
    if rss and any(_guid_undecided(fe) for fe in result.entries):
        return None, "a relative guid beside a link (isPermaLink decides, and is not exposed)"
    feed = result.feed
    if not _feedparser_keeps(feed.title) or _markup_in_first_title(body):
        return None, "a feed title feedparser rewrites"
    meta = {
        "title": feed.title,
        "title_detail": _detail(feed.title_detail, guess=rss),
        "link": feed.link,
        "ttl": feed.get("ttl"),
        "sy_updateperiod": feed.get("sy_updateperiod"),
        "sy_updatefrequency": feed.get("sy_updatefrequency"),
    }
    entries = [_entry(fe, rss, base, mine) for fe, mine in zip(result.entries, own, strict=True)]
    return (meta, entries), ""
