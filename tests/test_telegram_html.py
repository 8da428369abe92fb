"""The Telegram HTML oracle accepts what Telegram accepts and rejects the rest."""

from __future__ import annotations

import pytest

from testkit.telegram_html import TelegramHTMLError, check_message, parse_telegram_html, utf16_len


def test_utf16_len_counts_astral_characters_twice():
    assert utf16_len("") == 0
    assert utf16_len("abc") == 3
    assert utf16_len("中文") == 2
    assert utf16_len("😀") == 2
    assert utf16_len("a😀b") == 4


@pytest.mark.parametrize(
    "html",
    [
        "plain text",
        "<b>bold</b> <strong>strong</strong> <i>i</i> <em>em</em>",
        "<u>u</u> <ins>ins</ins> <s>s</s> <strike>strike</strike> <del>del</del>",
        '<span class="tg-spoiler">spoiler</span> <tg-spoiler>spoiler</tg-spoiler>',
        '<a href="https://example.com/?a=1&amp;b=2">link</a>',
        "<a href='http://example.com'>single quotes</a>",
        '<a href="tg://user?id=123">mention</a>',
        '<a href="mailto:me@example.com">mail</a>',
        '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>',
        "<code>inline</code>",
        "<pre>block</pre>",
        '<pre><code class="language-python">print(1)</code></pre>',
        "<pre><code>plain pre code</code></pre>",
        "<blockquote>quote</blockquote>",
        "<blockquote expandable>long quote</blockquote>",
        "<b>bold <i>italic <u>underline <s>strike</s></u></i></b>",
        '<b><a href="https://e.com">bold link</a></b>',
        '<a href="https://e.com"><b>link</b> with <i>style</i></a>',
        "<b><code>code in bold</code></b>",
        "<blockquote><b>x</b> <pre>code</pre></blockquote>",
        "&lt;tag&gt; &amp; &quot;quoted&quot;",
        "&#60; &#x3C; &#128512; &#x1F600;",
        "<B>upper case tags</B>",
        "<b >spaces</b >",
        "<b></b>text after an empty tag",
        "line\nbreaks\n\nkept",
        "😀 emoji and עברית and 中文",
    ],
)
def test_accepts_valid_html(html):
    check_message(html)


def test_parse_returns_plain_text_and_utf16_entities():
    plain, entities = parse_telegram_html('😀 <b>bo<i>ld</i></b> <a href="https://e.com">x</a>')
    assert plain == "😀 bold x"
    assert {"type": "bold", "offset": 3, "length": 4} in entities
    assert {"type": "italic", "offset": 5, "length": 2} in entities
    assert {"type": "text_link", "offset": 8, "length": 1, "url": "https://e.com"} in entities


def test_parse_decodes_entities_and_reports_language():
    plain, entities = parse_telegram_html(
        '&lt;&#38;&gt;<pre><code class="language-go">x</code></pre>'
    )
    assert plain == "<&>x"
    assert {"type": "code", "offset": 3, "length": 1, "language": "go"} in entities


def test_expandable_blockquote_type():
    _, entities = parse_telegram_html("<blockquote expandable>q</blockquote>")
    assert entities == [{"type": "expandable_blockquote", "offset": 0, "length": 1}]


@pytest.mark.parametrize(
    ("html", "fragment"),
    [
        # unsupported tags
        ("a<br>b", 'Unsupported start tag "br"'),
        ("a<br/>b", 'Unsupported start tag "br/"'),
        ("<p>x</p>", 'Unsupported start tag "p"'),
        ("<div>x</div>", 'Unsupported start tag "div"'),
        ('<img src="x.png">', 'Unsupported start tag "img"'),
        ("<h1>x</h1>", 'Unsupported start tag "h1"'),
        ("<span>x</span>", 'must have class "tg-spoiler"'),
        ('<span class="other">x</span>', 'must have class "tg-spoiler"'),
        # structure
        ("<b>x", "Can't find end tag"),
        ("x</b>", "Unexpected end tag"),
        ("<b><i>x</b></i>", "Unmatched end tag"),
        ("<b>x</i>", "Unmatched end tag"),
        ("<b x", "Unclosed start tag"),
        ("<b>x</b", "Unclosed end tag"),
        # bare characters and entities
        ("a < b", 'Unsupported start tag ""'),
        ("a > b", "Unescaped '>'"),
        ("fish & chips", "Unsupported HTML entity"),
        ("&nbsp;", "Unsupported HTML entity"),
        ("&apos;", "Unsupported HTML entity"),
        ("&amp", "Unsupported HTML entity"),
        ("&#0;", "Unsupported HTML entity"),
        ("&#xD800;", "Unsupported HTML entity"),
        ("&#x110000;", "Unsupported HTML entity"),
        # nesting
        ("<code><b>x</b></code>", 'nested inside "code"'),
        ("<pre><b>x</b></pre>", 'nested inside "pre"'),
        ("<pre><code>a</code><code>b</code></pre>", 'only one "code"'),
        ("<pre>text<code>b</code></pre>", 'only one "code"'),
        ("<pre><code>b</code>text</pre>", 'only one "code"'),
        ('<a href="https://a.b"><a href="https://c.d">x</a></a>', 'nested inside "a"'),
        ('<a href="https://a.b"><code>x</code></a>', 'nested inside "a"'),
        ("<blockquote><blockquote>x</blockquote></blockquote>", 'nested inside "blockquote"'),
        ('<code class="language-py">x</code>', "only inside <pre>"),
        ('<pre><code class="lang-py">x</code></pre>', 'class "language-'),
        # attributes and links
        ('<b class="x">y</b>', 'Unsupported attribute "class"'),
        ('<a href="https://e.com" target="_blank">x</a>', 'Unsupported attribute "target"'),
        ("<a>x</a>", "valid URL"),
        ('<a href="">x</a>', "valid URL"),
        ('<a href="javascript:alert(1)">x</a>', "valid URL"),
        ('<a href="data:text/html,x">x</a>', "valid URL"),
        ('<a href="/relative/path">x</a>', "valid URL"),
        ('<a href="http://">x</a>', "valid URL"),
        ('<a href="https://e.com/a b">x</a>', "valid URL"),
        ('<a href="https://e.com/?a=1&b=2">x</a>', "Unsupported HTML entity"),
        ('<a href="https://e.com"x>y</a>', "Missing space"),
        ('<a href="https://e.com>y</a>', "Unescaped '<'"),
        ('<a href="https://e.com', "Unclosed start tag"),
        ("<a href=https://e.com>y</a>", "name token"),
        ('<tg-emoji emoji-id="abc">x</tg-emoji>', "emoji-id"),
        ('<blockquote expandable="yes">x</blockquote>', "takes no value"),
        ('<a href="https://e.com" href="https://f.com">x</a>', "Duplicate attribute"),
    ],
)
def test_rejects_invalid_html(html, fragment):
    with pytest.raises(TelegramHTMLError) as info:
        check_message(html)
    assert fragment in str(info.value)
    assert str(info.value).startswith("Bad Request: can't parse entities: ")


def test_error_reports_byte_offset():
    with pytest.raises(TelegramHTMLError, match="at byte offset 7"):
        parse_telegram_html("中文 <div>")  # 6 bytes of CJK + a space


def test_unclosed_tag_names_the_tag():
    with pytest.raises(TelegramHTMLError, match='start tag "i"'):
        parse_telegram_html("<b>x</b><i>y")


def test_lone_surrogate_is_not_utf8():
    with pytest.raises(TelegramHTMLError, match="UTF-8"):
        check_message("a\ud83db")


@pytest.mark.parametrize("html", ["", "   ", "\n\n", "<b> </b>", "\u200b", "&#32;", "\x01\x02"])
def test_empty_message_rejected(html):
    with pytest.raises(TelegramHTMLError, match="message text is empty"):
        check_message(html)


def test_empty_caption_allowed():
    assert check_message("", caption=True) == ""


def test_length_limits_count_parsed_utf16():
    check_message("a" * 4096)
    check_message("<b>" + "a" * 4096 + "</b>")  # tags do not count
    check_message("&amp;" * 4096)  # an entity counts as one character
    with pytest.raises(TelegramHTMLError, match="message is too long"):
        check_message("a" * 4097)
    check_message("😀" * 2048)
    with pytest.raises(TelegramHTMLError, match="message is too long"):
        check_message("😀" * 2048 + "a")


def test_caption_limit():
    check_message("a" * 1024, caption=True)
    with pytest.raises(TelegramHTMLError, match="message caption is too long"):
        check_message("a" * 1025, caption=True)
    with pytest.raises(TelegramHTMLError, match="caption is too long"):
        check_message("😀" * 513, caption=True)
