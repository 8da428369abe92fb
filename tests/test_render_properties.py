"""Whatever a feed sends, every rendered message is one Telegram accepts."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.models import Entry, Media, Style
from bot.render import html_to_plain, render_entry, render_text_only, utf16_len
from testkit.telegram_html import check_message, parse_telegram_html

TAGS = [
    "p", "div", "span", "b", "strong", "i", "em", "u", "s", "del", "ins", "a", "code", "pre",
    "blockquote", "h1", "h3", "ul", "ol", "li", "br", "hr", "img", "video", "audio", "source",
    "script", "style", "iframe", "table", "tr", "td", "th", "figure", "figcaption", "sup",
    "small", "font", "noscript", "svg", "tg-spoiler", "tg-emoji", "kbd", "body", "html",
]  # fmt: skip
ATTRS = [
    ' href="https://example.com/a?b=1&amp;c=2"', ' href="/relative"', " href='x y'",
    ' href="javascript:alert(1)"', ' href="  data:text/html,<b>"', ' href="mailto:a@b.c"',
    ' href=""', ' src="/img.png"', ' src="https://t.co/1x1.gif" width="1" height="1"',
    ' poster="p.jpg"', ' alt="A &amp; <b>"', ' class="language-python"', ' class="tg-spoiler"',
    ' start="3"', ' style="display:none"', " expandable", ' onclick="x()"', " href=unquoted",
    ' href="http://例え.jp/パス"', ' href="tg://resolve?domain=x"',
    ' src="data:image/png;base64,AA"',
]  # fmt: skip
TEXTS = [
    "hello", " world ", "\n\n", "   ", "&amp;", "&lt;", "&gt;", "&quot;", "&nbsp;", "&#128512;",
    "&#x0;", "&bogus;", "&", "<", ">", '"', "'", "😀", "👨‍👩‍👧", "🇫🇷", "中文句子。", "עברית",
    "مرحبا", "\u202etxet", "\u200b", "\x00\x01\x1b", "\ud800", "Ä", "é\u0301", "…", "a. B",
    "<!-- comment -->", "<![CDATA[x]]>", "<?php ?>", "<!DOCTYPE html>", "&amp;amp;", "x" * 300,
    "长" * 700, "word " * 150,
]  # fmt: skip


def _tag_soup() -> st.SearchStrategy[str]:
    open_tag = st.builds(
        lambda t, attrs, close: f"<{t}{''.join(attrs)}{' /' if close else ''}>",
        st.sampled_from(TAGS),
        st.lists(st.sampled_from(ATTRS), max_size=2),
        st.booleans(),
    )
    end_tag = st.sampled_from(TAGS).map(lambda t: f"</{t}>")
    piece = st.one_of(open_tag, end_tag, st.sampled_from(TEXTS), st.text(max_size=20))
    return st.lists(piece, max_size=60).map("".join)


HTML = st.one_of(st.text(max_size=300), _tag_soup())
TITLE = st.one_of(st.text(max_size=80), st.sampled_from(TEXTS), st.just(""))
STYLE = st.builds(
    Style,
    summary=st.sampled_from(["none", "short", "full"]),
    media=st.booleans(),
    link_preview=st.booleans(),
    silent=st.booleans(),
    show_author=st.booleans(),
    show_feed=st.booleans(),
    show_tags=st.booleans(),
)
LINK = st.sampled_from(
    [None, "https://example.com/post/1", "/relative/post", "javascript:alert(1)", "", "ftp://x"]
)
MEDIA = st.lists(
    st.builds(
        Media,
        url=st.sampled_from(["https://e.com/a.jpg", "https://e.com/b.png", "/c.jpg", "x y.mp3"]),
        kind=st.sampled_from(["image", "video", "audio", "document"]),
        mime_type=st.sampled_from([None, "image/jpeg", "video/mp4", "audio/mpeg", "text/html"]),
        source=st.sampled_from(["enclosure", "media:content", "media:thumbnail"]),
    ),
    max_size=12,
)
CATEGORIES = st.lists(st.one_of(st.text(max_size=15), st.sampled_from(["C++ / Rust", "a b"])))

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _entry(html: str, title: str, link, media, categories, author) -> Entry:
    return Entry(
        id="x",
        title=title,
        link=link,
        html=html,
        base_url="https://example.com/blog/",
        author=author,
        categories=tuple(categories),
        media=tuple(media),
    )


def _check_all(messages, entry_link_expected: bool) -> None:
    assert messages
    for msg in messages:
        plain = check_message(msg.text, caption=bool(msg.media))
        assert 0 <= len(msg.media) <= 10
        if msg.media:
            kinds = {m.kind for m in msg.media}
            assert "audio" not in kinds or kinds == {"audio"}
        else:
            assert plain.strip()
    if entry_link_expected:
        assert any("https://example.com/post/1" in m.text for m in messages)


@SETTINGS
@given(HTML, TITLE, LINK, MEDIA, CATEGORIES, st.one_of(st.none(), st.text(max_size=30)), STYLE)
def test_render_entry_always_valid(html, title, link, media, categories, author, style):
    entry = _entry(html, title, link, media, categories, author)
    messages = render_entry(entry, "Feed & <Co>", style)
    _check_all(messages, link == "https://example.com/post/1")


@SETTINGS
@given(HTML, TITLE, LINK, MEDIA, CATEGORIES, STYLE)
def test_render_text_only_always_valid(html, title, link, media, categories, style):
    entry = _entry(html, title, link, media, categories, "Ann <ann@example.com>")
    msg = render_text_only(entry, "Feed", style)
    assert msg.media == ()
    _check_all([msg], link == "https://example.com/post/1")


@SETTINGS
@given(st.one_of(HTML, st.text(max_size=5000)))
def test_html_to_plain_fits_and_is_never_empty(text):
    out = html_to_plain(text)
    assert out.strip()
    assert utf16_len(out) <= 4096


@SETTINGS
@given(HTML, TITLE)
def test_html_to_plain_of_a_rendered_message_keeps_its_text(html, title):
    msg = render_text_only(_entry(html, title, None, (), (), None), "Feed")
    text, entities = parse_telegram_html(msg.text)
    out = html_to_plain(msg.text)
    # The same text, with link targets spelled out after their label.
    for url in {e["url"] for e in entities if e["type"] == "text_link"}:
        out = out.replace(f" ({url})", "")
    assert out.split() == text.split()


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=3000, max_size=6000), STYLE)
def test_long_text_is_cut_within_limits(body, style):
    entry = _entry(body, "Long", "https://example.com/post/1", (), (), None)
    for msg in render_entry(entry, "Feed", style):
        check_message(msg.text, caption=bool(msg.media))
