"""Hostile feeds through parse → render: nothing escapes but ParseError, and
every message is one Telegram accepts, carrying no markup the feed injected."""

from __future__ import annotations

import contextlib
import os
import re
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.parse import ParseError, parse_feed
from bot.render import render_entry, render_text_only
from testkit.telegram_html import check_message, parse_telegram_html

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SETTINGS = settings(
    max_examples=int(os.environ.get("FEEDBOT_FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

HOSTILE = st.sampled_from(
    [
        '</a><a href="tg://resolve?domain=evil">click</a>',
        '"><a href="javascript:alert(1)">x</a>',
        "javascript:alert(1)",
        "&lt;b&gt;bold?&lt;/b&gt;",
        "&amp;lt;a href=&amp;quot;tg://x&amp;quot;&amp;gt;",
        "&#xD800;",
        "&#x110000;",
        "&#99999999999;",
        "&#0;",
        "&nosuch;",
        "\u202etxet desrever\u202c",
        "\u2066iso\u2069",
        "zero\u200bwidth\ufeff",
        "<![CDATA[</title><script>x</script>]]>",
        "]]>",
        "<!ENTITY x 'y'>",
        "&",
        "<",
        "\x00\x01\x1b",
        "tg://user?id=1",
        "𝕳𝖊𝖑𝖑𝖔 👨‍👩‍👧",
        "",
    ]
)
TEXT = st.one_of(HOSTILE, st.text(max_size=40), st.lists(HOSTILE, max_size=4).map("".join))
LINK = st.one_of(
    HOSTILE,
    st.sampled_from(
        [
            "https://example.com/post/1",
            "/relative/path?utm_source=x",
            "javascript:alert(1)",
            "data:text/html,<b>x</b>",
            "tg://resolve?domain=evil",
            'https://example.com/a"onmouseover="x',
            "http://[::1",
            "https://例え.jp/パス",
        ]
    ),
)
TAGS = st.sampled_from(["p", "a", "b", "div", "img", "table", "td", "pre", "code", "ul", "li"])


@st.composite
def body_html(draw: st.DrawFn) -> str:
    """Random tag soup, unbalanced on purpose, with hostile text inside."""
    parts = []
    for _ in range(draw(st.integers(0, 12))):
        tag = draw(TAGS)
        kind = draw(st.integers(0, 3))
        if kind == 0:
            attr = f" href={quoteattr(draw(LINK))}" if tag == "a" else ""
            attr += f" src={quoteattr(draw(LINK))}" if tag == "img" else ""
            parts.append(f"<{tag}{attr}>")
        elif kind == 1:
            parts.append(f"</{tag}>")
        else:
            parts.append(draw(TEXT))
    return "".join(parts)


def _field(value: str, raw: bool) -> str:
    # Raw: the hostile string as markup (the document may break: fine);
    # escaped: as text, the way a well-behaved feed would carry it.
    return value if raw else escape(value)


@st.composite
def feeds(draw: st.DrawFn) -> bytes:
    raw = draw(st.booleans())
    atom = draw(st.booleans())
    items = []
    for _ in range(draw(st.integers(1, 3))):
        title, link, author = draw(TEXT), draw(LINK), draw(TEXT)
        cats = draw(st.lists(TEXT, max_size=3))
        body = draw(body_html())
        if atom:
            items.append(
                f'<entry><title type="html">{_field(title, raw)}</title>'
                f"<link href={quoteattr(link)}/><id>{escape(link)}</id>"
                f"<author><name>{_field(author, raw)}</name></author>"
                + "".join(f"<category term={quoteattr(c)}/>" for c in cats)
                + f'<content type="html">{escape(body)}</content></entry>'
            )
        else:
            items.append(
                f"<item><title>{_field(title, raw)}</title><link>{_field(link, raw)}</link>"
                f"<author>{_field(author, raw)}</author>"
                + "".join(f"<category>{_field(c, raw)}</category>" for c in cats)
                + f"<description>{escape(body)}</description></item>"
            )
    feed_title = _field(draw(TEXT), raw)
    if atom:
        doc = (
            '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>{feed_title}</title>{''.join(items)}</feed>"
        )
    else:
        doc = (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{feed_title}</title>{''.join(items)}</channel></rss>"
        )
    return doc.encode("utf-8", "surrogatepass")


_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200b\ufeff]")


def _check(messages_text: list[tuple[str, bool]], body: str) -> None:
    for text, caption in messages_text:
        plain = check_message(text, caption=caption)
        assert not _BIDI.search(plain)
        _, entities = parse_telegram_html(text)
        for href in (e["url"] for e in entities if e["type"] == "text_link"):
            # A tg: link only where the entry's own HTML has one (the renderer
            # keeps those); never one made from a title, author or category.
            allowed = ("http://", "https://", "mailto:", "ftp://") + (
                ("tg:",) if "tg:" in body else ()
            )
            assert href.startswith(allowed), href


@SETTINGS
@given(feeds())
def test_hostile_feeds_parse_and_render_safely(body):
    try:
        feed = parse_feed(body, url="https://example.com/feed.xml", now=NOW)
    except ParseError:
        return
    for entry in feed.entries:
        messages = render_entry(entry, feed.title)
        _check([(m.text, bool(m.media)) for m in messages], entry.html)
        _check([(render_text_only(entry, feed.title).text, False)], entry.html)


@SETTINGS
@given(st.binary(max_size=300), st.sampled_from([b"", b"<rss><channel><item>", b"<feed>"]))
def test_random_bytes_raise_nothing_but_parse_error(noise, prefix):
    with contextlib.suppress(ParseError):
        parse_feed(prefix + noise, url="https://example.com/feed.xml", now=NOW)
