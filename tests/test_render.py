"""Unit tests of the renderer: conversion, truncation, escaping, media, style."""

from __future__ import annotations

import dataclasses

import pytest

from bot.models import Entry, Media, Style
from bot.render import (
    MediaItem,
    Message,
    html_to_plain,
    render_entry,
    render_text_only,
    utf16_len,
)
from bot.render import hashtags as make_hashtags
from bot.render.html import convert
from bot.render.runs import Mark, Run, fit, plain, serialize
from bot.render.text import clean_url, cut_index
from testkit.telegram_html import check_message, parse_telegram_html

LINK = "https://example.com/post/1"


def entry(html: str = "", title: str = "Title", **kw) -> Entry:
    kw.setdefault("link", LINK)
    return Entry(id="1", title=title, html=html, **kw)


def body_of(html: str, base: str | None = "https://example.com/dir/page.html") -> str:
    """The Telegram HTML a feed body converts to."""
    return serialize(convert(html, base))


def text_of(html: str) -> str:
    return plain(convert(html, "https://example.com/"))


def only(messages: list[Message]) -> Message:
    assert len(messages) == 1
    return messages[0]


def links(telegram_html: str) -> list[str]:
    _, entities = parse_telegram_html(telegram_html)
    return [e["url"] for e in entities if e["type"] == "text_link"]


# --- public API shape -----------------------------------------------------


def test_public_dataclasses_are_frozen_with_slots():
    msg = Message("x")
    assert (msg.media, msg.link_preview, msg.silent) == ((), False, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        msg.text = "y"  # type: ignore[misc]
    assert not hasattr(msg, "__dict__")
    item = MediaItem("photo", "https://e.com/a.jpg")
    assert not hasattr(item, "__dict__")


def test_utf16_len():
    assert utf16_len("a中😀") == 4


# --- HTML conversion -------------------------------------------------------


def test_keeps_inline_formatting():
    out = body_of("<b>b</b> <strong>s</strong> <i>i</i> <em>e</em> <u>u</u> <s>s</s> <del>d</del>")
    assert out == "<b>b</b> <b>s</b> <i>i</i> <i>e</i> <u>u</u> <s>s</s> <s>d</s>"


def test_headings_become_bold_lines_and_paragraphs_blank_lines():
    assert body_of("<h1>Head</h1><p>One</p><p>Two</p>") == "<b>Head</b>\n\nOne\n\nTwo"


def test_lists_get_bullets_and_numbers():
    out = text_of('<ul><li>a</li><li>b<ol start="3"><li>c</li><li>d</li></ol></li></ul>')
    assert out == "• a\n• b\n  3. c\n  4. d"


def test_unclosed_list_items_and_paragraphs():
    assert text_of("<ul><li>a<li>b</ul><p>x<p>y") == "• a\n• b\n\nx\n\ny"


def test_br_runs_give_at_most_one_blank_line():
    assert text_of("a<br>b<br/><br />c<br><br><br><br>d") == "a\nb\n\nc\n\nd"
    assert text_of("<p>a<br><br></p><p><br>b</p>") == "a\n\nb"


def test_whitespace_collapsed_except_in_pre():
    assert text_of("<p>  a \n\t b  </p>") == "a b"
    assert body_of("<pre>\n  x  =  1\n\n  y</pre>") == "<pre>  x  =  1\n\n  y</pre>"


def test_carriage_returns_are_line_ends():
    assert text_of("one\rtwo\r\nthree") == "one\ntwo\nthree"
    assert body_of("<pre>a\rb</pre>") == "<pre>a\nb</pre>"
    assert text_of("<p>a\rb</p>") == "a b"


def test_pre_code_language_kept():
    out = body_of('<pre><code class="language-python">print(1)\n</code></pre>')
    assert out == '<pre><code class="language-python">print(1)</code></pre>'
    check_message(out)


def test_dropped_elements_and_comments():
    html = (
        "a<script>alert(1)</script><style>p{}</style><iframe src='x'>f</iframe>"
        "<noscript>n</noscript><!-- c --><svg><text>s</text></svg>b"
    )
    assert text_of(html) == "ab"


def test_hidden_content_dropped():
    html = 'a<div hidden>h</div><span style="display: none">n</span><p style="color:red">b</p>'
    assert text_of(html) == "a\n\nb"


def test_entities_decoded_and_reescaped():
    assert body_of("&lt;b&gt; &amp;amp; &eacute; &#128512; &quot;") == '&lt;b&gt; &amp;amp; é 😀 "'


def test_unknown_tags_keep_their_text():
    assert body_of('<font color="red"><span>x</span><sup>2</sup></font>') == "x2"


def test_no_invalid_nesting_out_of_nested_input():
    html = (
        '<a href="/a"><a href="/b">x</a></a><code><b>y</b></code>'
        '<blockquote><blockquote>q</blockquote></blockquote><a href="/c"><code>z</code></a>'
        "<pre><b>p</b><code>c</code></pre><b><b>bb</b></b>"
    )
    out = body_of(html)
    check_message(out)
    assert "<b><b>" not in out


def test_links_made_absolute():
    out = body_of(
        '<a href="../x.html">x</a> <a href="//cdn.example.org/y">y</a> <a href="#f">f</a>'
    )
    assert links(out) == [
        "https://example.com/x.html",
        "https://cdn.example.org/y",
        "https://example.com/dir/page.html#f",
    ]


def test_relative_links_resolve_against_entry_link_without_base():
    msg = render_text_only(entry('<a href="next.html">next</a>', base_url=None), "F")
    assert "https://example.com/post/next.html" in links(msg.text)


@pytest.mark.parametrize(
    "href",
    [
        "javascript:alert(1)",
        " JavaScript:alert(1)",
        "java\nscript:alert(1)",
        "vbscript:x",
        "data:text/html,<script>",
        "file:///etc/passwd",
        "",
    ],
)
def test_unsafe_hrefs_dropped_text_kept(href):
    out = body_of(f'<a href="{href}">click</a>')
    assert out == "click"


def test_url_cleaning():
    assert clean_url("https://e.com/a b\"c'd<e>") == "https://e.com/a%20b%22c%27d%3Ce%3E"
    assert clean_url("https://例え.jp/パス") == "https://xn--r8jz45g.jp/%E3%83%91%E3%82%B9"
    assert clean_url("https://user:pw@e.com/") == "https://e.com/"
    assert clean_url("http://") is None
    assert clean_url("http://[::1") is None
    assert clean_url("/x") is None
    assert clean_url("/x", "https://e.com/a/") == "https://e.com/x"


def test_images_become_links_unless_sent_as_media():
    html = '<p>a<img src="/i.png" alt="Chart"></p><p><a href="/big.png"><img src="/s.png"></a></p>'
    out = serialize(convert(html, "https://e.com/"))
    # The picture's link on a line of its own, not glued to the words (issue 8).
    assert out == (
        'a\n<a href="https://e.com/i.png">🖼 Chart</a>\n\n<a href="https://e.com/big.png">🖼</a>'
    )
    skipped = serialize(convert(html, "https://e.com/", frozenset({"https://e.com/i.png"})))
    assert "i.png" not in skipped


def test_tracking_pixels_and_icons_dropped():
    html = (
        'x<img src="https://feeds.feedburner.com/~r/a/~4/b" height="1" width="1">'
        '<img src="https://pixel.wp.com/g.gif"><img src="/icon.png" width="16">'
        '<img src="https://s.w.org/images/core/emoji/14/72x72/1f600.png" alt="😀" '
        'class="wp-smiley">'
    )
    assert text_of(html) == "x😀"


def test_video_becomes_a_link():
    out = body_of('<video poster="p.jpg" src="v.mp4">Your browser…</video>')
    assert out == '<a href="https://example.com/dir/v.mp4">▶ video</a>'
    out = body_of('<video><source src="w.mp4"><source src="w.webm"></video>')
    assert out == '<a href="https://example.com/dir/w.mp4">▶ video</a>'


def test_aggregator_footer_after_trailing_hr_dropped():
    article = "<p>" + "Real article text. " * 20 + "</p>"
    footer = '<hr><div>More feeds: <a href="https://feedx.net">https://feedx.net</a></div>'
    assert "feedx" not in body_of(article + footer)
    # A rule inside an article is not a footer.
    assert "Part two" in body_of(article + "<hr><p>Part two. " + "More text. " * 40 + "</p>")


def test_plain_text_bodies_keep_line_breaks():
    assert (
        text_of("line one\nline two\n\n\n\npara &amp; more") == "line one\nline two\n\npara & more"
    )


def test_table_cells_separated():
    assert text_of("<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>") == (
        "a | b\n1 | 2"
    )


def test_code_gutters_dropped():
    html = '<table><tr><td class="gutter"><pre>1\n2</pre></td><td><pre>x\ny</pre></td></tr></table>'
    assert text_of(html) == "x\ny"


def test_space_before_link_stays_outside_it():
    assert body_of('by<a href="/u"> Ann</a>') == 'by <a href="https://example.com/u">Ann</a>'


# --- truncation -------------------------------------------------------------


def _fit(text_runs: list[Run], budget: int) -> tuple[str, str]:
    out = serialize(fit(text_runs, budget, LINK))
    plain_text, _ = parse_telegram_html(out)
    return out, plain_text


def test_fit_leaves_short_text_alone():
    runs = [Run("short")]
    assert fit(runs, 100, LINK) == runs


def test_truncation_ends_with_ellipsis_and_link():
    runs = convert("<p>" + "One sentence here. " * 50 + "</p>")
    out, text = _fit(runs, 200)
    assert utf16_len(text) <= 200
    assert out.endswith(f'. … <a href="{LINK}">more</a>')
    assert text.endswith("here. … more")


def test_truncation_prefers_word_boundary():
    runs = convert("<p>" + "alpha beta gamma delta " * 40 + "</p>")
    _, text = _fit(runs, 101)
    words = text.removesuffix("… more").split()
    assert set(words) <= {"alpha", "beta", "gamma", "delta"}


def test_truncation_never_inside_a_tag_and_closes_everything():
    link = '<a href="https://e.com/l">'
    runs = convert("<p><b>bold <i>italic " + link + "link text " * 100 + "</a></i></b></p>")
    out, text = _fit(runs, 150)
    assert utf16_len(text) <= 150
    assert out.startswith("<b>bold <i>italic <a href=")
    assert "</a></i></b>…" in out


def test_truncation_never_inside_an_entity():
    runs = convert("<p>" + "a&amp;b &lt;c&gt; " * 200 + "</p>")
    for budget in range(40, 80):
        out, text = _fit(runs, budget)
        assert utf16_len(text) <= budget
        assert "&amp;" in out and "&a…" not in out


def test_cjk_breaks_after_sentence_marks():
    text = "这是第一句话。这是第二句话！这是第三句话？" * 30
    runs = convert(text)
    _, out = _fit(runs, 100)
    assert utf16_len(out) <= 100
    assert out.removesuffix(" more").removesuffix("…")[-1] in "。！？"


def test_cjk_without_punctuation_breaks_anywhere():
    runs = convert("长" * 1000)
    _, out = _fit(runs, 100)
    assert out == "长" * 93 + "… more"


def test_cut_never_splits_surrogate_pairs_or_emoji_sequences():
    family = "👨\u200d👩\u200d👧"
    for s in ("😀" * 500, family * 200, "🇫🇷" * 300, "é" * 10 + "e\u0301" * 300):
        runs = convert(s)
        for budget in range(30, 45):
            out, text = _fit(runs, budget)
            check_message(out)
            kept = text.removesuffix("… more").rstrip()
            assert s.startswith(kept)
            if s.startswith(family):
                assert kept.endswith("👧")
            if s.startswith("🇫🇷"):
                assert len(kept) % 2 == 0
            assert not kept.endswith("e")


def test_cut_index_prefers_sentences_then_words():
    assert cut_index("One two. Three four five", 14) == 8
    assert cut_index("One. Two three four", 12) == 9  # a sentence too early: a word
    s = "abcdefghijkl mnop qrstuvwxyz"
    assert s[: cut_index(s, 20)].rstrip() == "abcdefghijkl mnop"


def test_long_message_fits_telegram_limits():
    html = (
        "<p>" + "Lorem ipsum dolor sit amet, <b>consectetur</b> adipiscing elit. " * 2000 + "</p>"
    )
    e = entry(html, media=(Media("https://e.com/a.jpg", "image", "image/jpeg"),))
    media_msg, text_msg = render_entry(e, "Feed", Style(summary="full"))
    assert media_msg.media and media_msg.text == ""
    plain_text = check_message(text_msg.text)
    assert 3900 < utf16_len(plain_text) <= 4096
    assert text_msg.text.rstrip().endswith("Feed")
    assert f'… <a href="{LINK}">more</a>' in text_msg.text


def test_emoji_heavy_message_counts_utf16():
    e = entry("😀" * 5000)
    msg = only(render_entry(e, "Feed", Style(summary="full")))
    assert utf16_len(check_message(msg.text)) <= 4096


# --- titles, escaping, odd characters -------------------------------------------


def test_title_escaped_never_markup():
    title = '<script>alert("x")</script> & <a href="javascript:1">y</a> "q" \'s\''
    msg = render_text_only(entry(title=title), "Feed")
    check_message(msg.text)
    assert links(msg.text) == [LINK]
    assert "<script>" not in msg.text


def test_double_escaped_title_is_decoded_once():
    msg = render_text_only(entry(title="Attack &amp;amp; Defense"), "Feed &amp; Co")
    text = check_message(msg.text)
    assert text.startswith("Attack &amp; Defense")
    msg = render_text_only(entry(title="Fish &amp; <b>Chips</b>"), "Feed")
    assert check_message(msg.text).startswith("Fish & Chips")


def test_rtl_zero_width_and_control_characters():
    title = "שלום \u202eevil\u202c مرحبا\u200b\x00\x07\x1b[31m 👨\u200d👩\u200d👧"
    msg = render_text_only(entry(title=title, html="<p>x\u2066y\u2069\x01z</p>"), "Feed")
    text = check_message(msg.text)
    assert "שלום evil مرحبا[31m 👨\u200d👩\u200d👧" in text
    for ch in "\u202e\u202c\u200b\x00\x07\x1b\u2066\x01":
        assert ch not in text
    assert "xyz" in text


def test_empty_title_falls_back_to_summary_words():
    msg = render_text_only(
        entry("<p>Just landed in Tokyo, what a flight! More later.</p>", ""), "F"
    )
    assert check_message(msg.text).startswith("Just landed in Tokyo, what a flight! More later.")
    msg = render_text_only(entry("<p>" + "word " * 50 + "</p>", "\u200b \u200e"), "F")
    first_line = check_message(msg.text).split("\n")[0]
    assert first_line.startswith("word word") and first_line.endswith("…")
    assert len(first_line) <= 60


def test_title_without_text_or_link():
    msg = render_text_only(entry("", "", link=None), "F")
    assert check_message(msg.text).startswith("Untitled")


def test_very_long_title_is_shortened():
    msg = render_text_only(entry(title="word " * 200), "F")
    assert check_message(msg.text).split("\n")[0].endswith("…")


# --- footer -------------------------------------------------------------------


def test_footer_feed_author_and_hashtags():
    e = entry("<p>x</p>", author="Ann Lee", categories=("C++ / Rust", "Machine Learning"))
    text = check_message(only(render_entry(e, "My Feed")).text)
    assert text.endswith("My Feed · Ann Lee\n#Cpp #Rust #Machine_Learning")


@pytest.mark.parametrize(
    ("categories", "expected"),
    [
        (["C++ / Rust"], ["#Cpp", "#Rust"]),
        (["C#", "F#, Go", "Notepad++"], ["#CSharp", "#FSharp", "#Go", "#Notepad"]),
        (["r/homelab", "/u/someone", "news/world"], ["#homelab", "#someone", "#news", "#world"]),
        (["Machine Learning"], ["#Machine_Learning"]),
        (["node.js", "Node.JS"], ["#node_js"]),
        (["2024", "#already", " spaced  out "], ["#already", "#spaced_out"]),
        (["中文 标签", "हिन्दी"], ["#中文_标签", "#हिन्दी"]),
        (["&", "", "!!!", "a&b"], ["#a_b"]),
        ([f"t{i}" for i in range(20)], [f"#t{i}" for i in range(8)]),
    ],
)
def test_hashtags(categories, expected):
    assert make_hashtags(categories) == expected


def test_author_email_forms():
    e = entry("x", author="noreply@blogger.com (Jane)")
    assert "Feed · Jane" in check_message(only(render_entry(e, "Feed")).text)
    e = entry("x", author="jane@example.com")
    assert check_message(only(render_entry(e, "Feed")).text).endswith("\n\nFeed")


def test_style_switches():
    e = entry("<p>Body text here.</p>", author="Ann", categories=("tag",))
    full = check_message(only(render_entry(e, "Feed")).text)
    assert full == "Title\n\nBody text here.\n\nFeed · Ann\n#tag"
    none = only(render_entry(e, "Feed", Style(summary="none")))
    assert check_message(none.text) == "Title\n\nFeed · Ann\n#tag"
    bare = Style(show_author=False, show_feed=False, show_tags=False)
    assert check_message(only(render_entry(e, "Feed", bare)).text) == "Title\n\nBody text here."
    flags = only(render_entry(e, "Feed", Style(silent=True, link_preview=True)))
    assert flags.silent and flags.link_preview


def test_short_summary_is_about_a_paragraph():
    e = entry("<p>" + "A sentence of words. " * 100 + "</p>")
    text = check_message(only(render_entry(e, "F", Style(summary="short"))).text)
    assert 400 < utf16_len(text) < 600


def test_short_summary_weighs_wide_characters_double():
    # 500 of reading width: about 250 Chinese characters, not 500.
    sentence = "克里姆林宫星期二说它对会谈取得突破不抱乐观态度。"  # 24 characters
    e = entry("<p>" + sentence * 60 + "</p>")
    body = check_message(only(render_entry(e, "F", Style(summary="short"))).text).split("\n\n")[1]
    assert 200 < len(body) < 260
    assert body.endswith("。… more")
    # Mixed text weighs each character by its width.
    mixed = entry("<p>" + ("Word 中文。" * 200) + "</p>")
    body = check_message(only(render_entry(mixed, "F")).text).split("\n\n")[1]
    assert 300 < len(body) < 400
    # A short text stays whole, and "full" is measured in UTF-16 units as before.
    whole = entry("<p>" + sentence * 10 + "</p>")
    assert sentence * 10 in check_message(only(render_entry(whole, "F")).text)
    full = check_message(only(render_entry(e, "F", Style(summary="full"))).text)
    assert sentence * 60 in full


def test_body_repeating_the_title_is_not_shown_twice():
    commit = only(render_entry(entry("Parse podcast categories", "Parse podcast categories"), "F"))
    assert check_message(commit.text) == "Parse podcast categories\n\nF"
    opening = entry("<h1>Title.</h1><p>The article.</p>")
    assert check_message(only(render_entry(opening, "F")).text) == "Title\n\nThe article.\n\nF"
    # A title that only starts the first line is part of the text.
    kept = entry("<p>Title of a sentence that goes on.</p>")
    assert "Title of a sentence" in check_message(only(render_entry(kept, "F")).text)


def test_leading_publication_stamp_dropped():
    for stamp in (
        "<div><i>Wed, 12 Jan 2022 01:43:14 GMT</i></div>",
        "<p>12 January 2022 01:43 +0800</p>",
        "2022-01-12T01:43:14Z<br>",
        "<p>2022-01-12 01:43</p>",
    ):
        assert text_of(stamp + "<p>The news.</p>") == "The news.", stamp
    # A date alone may be an event's; a stamp later in the text is the author's.
    assert text_of("<p>Saturday, 5 March 2022</p><p>Concert.</p>").startswith("Saturday")
    assert "01:43" in text_of("<p>News.</p><p>Wed, 12 Jan 2022 01:43:14 GMT</p>")
    assert text_of("<p>Wed, 12 Jan 2022 01:43:14 GMT</p>") == "Wed, 12 Jan 2022 01:43:14 GMT"


# --- media ----------------------------------------------------------------------


def test_enclosure_image_is_the_photo_with_caption():
    e = entry("<p>hi</p>", media=(Media("https://e.com/a.jpg", "image", "image/jpeg"),))
    msg = only(render_entry(e, "F"))
    assert msg.media == (MediaItem("photo", "https://e.com/a.jpg"),)
    check_message(msg.text, caption=True)


def test_first_html_image_or_video_poster_is_the_photo():
    e = entry('<p>x<img src="/1x1.gif" width="1"><img src="/pic.jpg"><img src="/b.jpg"></p>')
    msg = only(render_entry(e, "F"))
    assert msg.media == (MediaItem("photo", "https://example.com/pic.jpg"),)
    assert "pic.jpg" not in msg.text and "b.jpg" in msg.text
    e = entry('<video poster="/poster.jpg" src="/v.mp4"></video><p>x</p>')
    msg = only(render_entry(e, "F"))
    assert msg.media == (MediaItem("photo", "https://example.com/poster.jpg"),)
    assert "https://example.com/v.mp4" in links(msg.text)


def test_lazy_loaded_image_source():
    e = entry('<img src="data:image/gif;base64,R0l" data-src="/real.jpg">')
    assert only(render_entry(e, "F")).media == (MediaItem("photo", "https://example.com/real.jpg"),)


def test_thumbnail_only_when_nothing_better():
    thumb = Media("https://e.com/t.jpg", "image", source="media:thumbnail")
    assert only(render_entry(entry("x", media=(thumb,)), "F")).media[0].url == "https://e.com/t.jpg"
    e = entry('<img src="https://e.com/big.jpg">', media=(thumb,))
    assert only(render_entry(e, "F")).media == (MediaItem("photo", "https://e.com/big.jpg"),)


def test_unsendable_media_skipped():
    e = entry(
        "x",
        media=(
            Media("https://youtube.com/v/x", "video", "application/x-shockwave-flash"),
            Media("https://e.com/logo.svg", "image", "image/svg+xml"),
            Media("https://e.com/huge.jpg", "image", "image/jpeg", 50_000_000),
            Media("https://avatars.githubusercontent.com/u/1?s=30", "image"),
            Media("https://e.com/page.html", "document", "text/html"),
        ),
    )
    assert only(render_entry(e, "F")).media == ()


def test_video_enclosure_is_a_video():
    e = entry("x", media=(Media("https://e.com/v.mp4", "video", "video/mp4"),))
    assert only(render_entry(e, "F")).media == (MediaItem("video", "https://e.com/v.mp4"),)


def test_podcast_sends_its_audio_alone():
    e = entry(
        "<p>Episode notes</p>",
        media=(
            Media("https://e.com/cover.jpg", "image", "image/jpeg"),
            Media("https://e.com/ep.mp3", "audio", "audio/mpeg", 10_000_000),
            Media("https://e.com/ep.m4a", "audio", "audio/mp4", 10_000_000),
        ),
    )
    assert only(render_entry(e, "F")).media == (MediaItem("audio", "https://e.com/ep.mp3"),)


def test_audio_too_big_for_telegram_becomes_a_link():
    e = entry("<p>Notes</p>", media=(Media("https://e.com/ep.mp3", "audio", "audio/mpeg", 9e7),))
    msg = only(render_entry(e, "F"))
    assert msg.media == ()
    assert "https://e.com/ep.mp3" in links(msg.text)
    assert "🔊 audio" in check_message(msg.text)


def test_pdf_document():
    e = entry("x", media=(Media("https://e.com/paper.pdf", "document", "application/pdf"),))
    assert only(render_entry(e, "F")).media == (MediaItem("document", "https://e.com/paper.pdf"),)


def test_many_images_make_one_group_of_at_most_ten():
    imgs = tuple(Media(f"https://e.com/{i}.jpg", "image", "image/jpeg") for i in range(14))
    imgs += (Media("https://e.com/3.jpg", "image", "image/jpeg"),)  # duplicate
    msg = only(render_entry(entry("<p>Gallery</p>", media=imgs), "F"))
    assert [m.url for m in msg.media] == [f"https://e.com/{i}.jpg" for i in range(10)]
    check_message(msg.text, caption=True)


def test_media_off_gives_text_with_links():
    e = entry('<p>x <img src="/a.jpg"></p>', media=(Media("https://e.com/b.jpg", "image"),))
    msg = only(render_entry(e, "F", Style(media=False)))
    assert msg.media == ()
    assert "https://example.com/a.jpg" in links(msg.text)


def test_caption_when_it_fits_else_media_then_text():
    pic = (Media("https://e.com/a.jpg", "image", "image/jpeg"),)
    short = only(render_entry(entry("<p>" + "Words here. " * 50 + "</p>", media=pic), "F"))
    assert short.media and utf16_len(check_message(short.text, caption=True)) <= 1024
    long_html = "<p>" + "Words here. " * 300 + "</p>"
    first, second = render_entry(entry(long_html, media=pic), "F", Style(summary="full"))
    assert first.media == (MediaItem("photo", "https://e.com/a.jpg"),) and first.text == ""
    assert second.media == () and not second.link_preview
    assert utf16_len(check_message(second.text)) > 1024


def test_image_only_entry():
    e = entry('<img src="/photo.jpg">', title="", link="https://example.com/p/1")
    msg = only(render_entry(e, "Photos"))
    assert msg.media == (MediaItem("photo", "https://example.com/photo.jpg"),)
    assert check_message(msg.text, caption=True) == "🔗 example.com/p/1\n\nPhotos"


def test_text_only_fallback_has_link_and_no_media():
    e = entry('<p>x</p><img src="/a.jpg">', media=(Media("https://e.com/b.jpg", "image"),))
    msg = render_text_only(e, "F", Style(silent=True))
    assert msg.media == () and msg.silent
    assert LINK in links(msg.text)
    assert "https://example.com/a.jpg" in links(msg.text)


# --- plain-text fallback -------------------------------------------------------------


def test_html_to_plain():
    html = '<b><a href="https://e.com/x">Title</a></b>\n\nA &amp; B &lt;c&gt; <i>it</i>'
    assert html_to_plain(html) == "Title (https://e.com/x)\n\nA & B <c> it"
    assert html_to_plain('<a href="https://e.com">https://e.com</a>') == "https://e.com"
    assert html_to_plain("a < b <b>c") == "a < b c"
    assert html_to_plain("") == "…"
    long = html_to_plain("<b>" + "word " * 2000 + "</b>")
    assert utf16_len(long) <= 4096 and long.endswith("word…")


def test_html_to_plain_of_rendered_message():
    e = entry("<p>Body &amp; more</p>", categories=("x",))
    msg = only(render_entry(e, "Feed"))
    assert html_to_plain(msg.text) == f"Title ({LINK})\n\nBody & more\n\nFeed\n#x"


def test_runs_serialise_with_marks():
    b, a = Mark("b"), Mark("a", href="https://e.com/?a=1&b=2")
    out = serialize([Run("x", (b,)), Run("y", (b, a)), Run("<z>", ())])
    assert out == '<b>x<a href="https://e.com/?a=1&amp;b=2">y</a></b>&lt;z&gt;'
    check_message(out)


def test_absurd_nesting_is_flattened_not_a_recursion_error():
    # 50,000 levels: the converter keeps the text and ignores structure past
    # its depth cap, in linear time.
    html = "<div><b><i>" * 50_000 + "deep text" + "</i></b></div>" * 50_000 + "<p>after</p>"
    out = plain(convert(html, "https://e.com/"))
    assert "deep text" in out and "after" in out
