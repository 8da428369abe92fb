"""bot.parse over the real-world corpus and over hand-made edge cases."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bot.parse import ParseError, clean_text, media_kind, parse_feed
from testkit.harness import shared_dir

SHARED = shared_dir()
CORPUS = SHARED / "corpus" if SHARED else Path("corpus-missing")
EXAMPLES = SHARED / "examples" if SHARED else Path("examples-missing")
# Without the shared folder the corpus cases are skipped (empty parameter
# lists); the hand-made cases below still run.
FILES = (
    [
        *sorted(p for p in CORPUS.iterdir() if p.suffix in (".xml", ".json")),
        EXAMPLES / "voa-chinese.rss.xml",
    ]
    if SHARED
    else []
)
XML_FILES = [p for p in FILES if p.suffix == ".xml"]
NOW = datetime(2026, 11, 26, tzinfo=UTC)


def load(name: str, *, content_type: str | None = None, url: str | None = None):
    if SHARED is None:
        pytest.skip("the shared feed corpus is not here")
    path = EXAMPLES / name if name.startswith("voa") else CORPUS / name
    return parse_feed(
        path.read_bytes(),
        url=url or f"https://feeds.example.org/{name}",
        content_type=content_type,
        now=NOW,
    )


def is_http_url(url: str | None) -> bool:
    if not url:
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


# ----------------------------------------------------------------- whole corpus


def test_corpus_is_all_there():
    assert len(FILES) == 29


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_corpus_file_parses_to_usable_entries(path):
    parsed = parse_feed(path.read_bytes(), url=f"https://feeds.example.org/{path.name}", now=NOW)
    assert parsed.title and parsed.title == parsed.title.strip()
    assert parsed.entries, "no entries"
    assert parsed.link is None or is_http_url(parsed.link)
    ids = [e.id for e in parsed.entries]
    assert len(set(ids)) == len(ids), "ids not unique"
    for entry in parsed.entries:
        assert entry.title or entry.link
        assert entry.id and entry.id == entry.id.strip()
        assert entry.link is None or is_http_url(entry.link)
        assert entry.link is None or "utm_" not in entry.link
        assert is_http_url(entry.base_url)
        # Titles are one line of plain text: no tags, no entities, no mojibake.
        assert "\n" not in entry.title and entry.title == entry.title.strip()
        assert not re.search(r"&(amp|lt|gt|quot|#\d+);", entry.title), entry.title
        assert not re.search(r"</?[a-z]+[ >]", entry.title), entry.title
        assert "Ã" not in entry.title and "\ufffd" not in entry.title
        for when in (entry.published, entry.updated):
            assert when is None or (
                when.tzinfo is not None and when.utcoffset().total_seconds() == 0
            )
        for media in entry.media:
            assert is_http_url(media.url)
            assert media.kind in ("image", "video", "audio", "document")
        assert len({m.url for m in entry.media}) == len(entry.media)


@pytest.mark.parametrize("path", XML_FILES, ids=lambda p: p.name)
def test_wrong_server_charset_does_not_garble(path):
    """Servers often add a default charset; the document's own wins."""
    right = parse_feed(path.read_bytes(), url="https://x.example/f", now=NOW)
    wrong = parse_feed(
        path.read_bytes(),
        url="https://x.example/f",
        content_type="text/xml; charset=iso-8859-1",
        now=NOW,
    )
    assert [e.title for e in wrong.entries] == [e.title for e in right.entries]


# ----------------------------------------------------------------- charsets


@pytest.mark.parametrize(
    ("name", "word"),
    [
        ("golem-de-iso8859-1.rss.xml", "wünschen"),
        ("russian-windows1251.rss.xml", "Цитата"),
        ("greek-iso8859-7.rss.xml", "Πορτραίτα καραντίνας"),
        ("french-noguid-latin1.rss.xml", "très complexe"),
        ("rss091-noid-nolink.xml", "Público"),
        ("hindi.rss.xml", "कोरोना वायरस"),
        ("bbc-urdu-rtl.rss.xml", "امریکی"),
        ("typlog-cn-podcast.rss.xml", "程序员"),
        ("coolshell-cn.rss.xml", "编程范式"),
        ("voa-chinese.rss.xml", "俄罗斯和美国"),
        ("osm-pl-unclosed-cdata.rss.xml", "będzie"),
    ],
)
@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "application/rss+xml",
        "application/xml; charset=utf-8",
        "text/html; charset=iso-8859-1",
    ],
)
def test_charset_decoding(name, word, content_type):
    parsed = load(name, content_type=content_type)
    text = " ".join(e.title + " " + e.html for e in parsed.entries)
    assert word in text


def test_greek_title_exact():
    (entry,) = load("greek-iso8859-7.rss.xml").entries
    assert entry.title == "«Πορτραίτα καραντίνας» για έμπνευση από τη συλλογή Φέλιου"
    assert entry.published == datetime(2020, 4, 24, 20, 3, tzinfo=UTC)
    assert entry.media[0].kind == "image" and entry.media[0].length == 118225


def test_russian_titles_and_dates():
    entries = load("russian-windows1251.rss.xml").entries
    assert len(entries) == 50
    assert entries[0].title == "Цитата #17703"
    assert entries[0].published == datetime(2018, 3, 21, 7, 27, 32, tzinfo=UTC)
    assert "есть у кого жаба программер" in entries[0].html


def test_utf16_declared_but_utf8():
    (entry,) = load("utf16-declared-utf8.xml").entries
    assert entry.title == "UTF-16 Entry 1"
    assert entry.link == "https://example.com/entry1"


def test_real_utf16_document():
    doc = (
        '<?xml version="1.0" encoding="utf-16"?><rss version="2.0"><channel><title>Ω</title>'
        "<item><title>Früh</title><link>https://e.example/1</link></item></channel></rss>"
    )
    parsed = parse_feed(doc.encode("utf-16"), url="https://e.example/f", now=NOW)
    assert parsed.title == "Ω"
    assert parsed.entries[0].title == "Früh"


# ----------------------------------------------------------------- titles


def test_mozilla_double_escaped_titles_read_right():
    parsed = load("mozilla-title-entities.atom.xml")
    assert parsed.title == "Attack & Defense"
    titles = [e.title for e in parsed.entries]
    assert "Firefox Security & Privacy Newsletter 2025 Q4" in titles
    assert "Firefox Security & Privacy newsletter 2025 Q2" in titles
    assert not any("&amp;" in t for t in titles)
    first = parsed.entries[0]
    # content is longer than the summary; its xml:base is the post itself
    assert first.html.startswith("<p>The Firefox bug bounty program")
    assert (
        first.base_url
        == "https://attackanddefense.dev/2026/03/13/bug-bounty-program-updates-2026.html"
    )
    assert first.author == "Frederik Braun, Christoph Kerschbaumer"


def test_json_feed_title_entities():
    parsed = load("elastic.json")
    assert parsed.title == "Blog – InfluxData"
    assert (
        parsed.entries[0].title == "InfluxDB vs. Graphite for Time Series Data & Metrics Benchmark"
    )


@pytest.mark.parametrize(
    ("value", "is_html", "expected"),
    [
        ("Fish &amp; Chips", False, "Fish & Chips"),
        ("Fish &amp;amp; Chips", False, "Fish & Chips"),
        ("AT&T and Q&A", False, "AT&T and Q&A"),
        ("<b>Bold</b>   move\n now", True, "Bold move now"),
        ("a &lt;div&gt; tag", True, "a <div> tag"),
        ("x &copy y", False, "x &copy y"),
        ("tab\tand\x07bell", False, "tab andbell"),
        ("", False, ""),
        (None, True, ""),
    ],
)
def test_clean_text(value, is_html, expected):
    assert clean_text(value, is_html=is_html) == expected


def test_html_title_tags_stripped():
    doc = """<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>
    <entry><id>1</id><title type="html">&lt;em&gt;Big&lt;/em&gt; news &amp;amp; more</title>
    <link href="https://e.example/1"/></entry>
    <entry><id>2</id><title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">X<b>Y</b></div></title></entry>
    </feed>"""
    entries = parse_feed(doc.encode(), url="https://e.example/f", now=NOW).entries
    assert entries[0].title == "Big news & more"
    assert entries[1].title == "XY"


# ----------------------------------------------------------------- links and bases


RELATIVE_RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Rel</title><link>/</link>
<item><title>One</title><link>/posts/1?utm_source=rss&amp;id=7</link>
<description>&lt;img src="pic.png"&gt;</description>
<enclosure url="media/a.mp3" type="audio/mpeg" length="0"/></item>
<item><title>Two</title><link>posts/2</link></item>
<item><title>Three</title><link>javascript:alert(1)</link></item>
</channel></rss>"""


def test_relative_links_made_absolute_against_feed_url():
    parsed = parse_feed(RELATIVE_RSS, url="https://blog.example/feeds/rss.xml", now=NOW)
    one, two, three = parsed.entries
    assert parsed.link == "https://blog.example/"
    assert one.link == "https://blog.example/posts/1?id=7"
    assert two.link == "https://blog.example/feeds/posts/2"
    assert three.link is None
    assert one.base_url == "https://blog.example/feeds/rss.xml"
    assert one.html == '<img src="pic.png">'  # not resolved: the renderer does it
    assert one.media[0].url == "https://blog.example/feeds/media/a.mp3"
    assert one.media[0].length is None  # length="0" means unknown


def test_content_location_is_the_base():
    parsed = parse_feed(
        RELATIVE_RSS,
        url="https://blog.example/feeds/rss.xml",
        content_location="/other/index.xml",
        now=NOW,
    )
    assert parsed.entries[1].link == "https://blog.example/other/posts/2"


def test_atom_xml_base():
    doc = b"""<?xml version="1.0"?>
    <feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://cdn.example/blog/">
    <title>B</title>
    <entry><id>tag:x,2024:1</id><title>P</title><link href="2024/p.html"/>
    <content type="html" xml:base="https://cdn.example/blog/2024/"
      >&lt;img src="p.png"&gt; text</content>
    </entry></feed>"""
    (entry,) = parse_feed(doc, url="https://www.example/atom.xml", now=NOW).entries
    assert entry.link == "https://cdn.example/blog/2024/p.html"
    assert entry.base_url == "https://cdn.example/blog/2024/"
    assert entry.id == "tag:x,2024:1"


def test_hindi_whitespace_around_cdata_links():
    (entry,) = load("hindi.rss.xml").entries
    assert entry.link.startswith("https://hindi.news18.com/news/world/who-experts")
    assert entry.id == entry.link
    # "Friday, January 29, 2021 04:42 PM" is not a format feedparser knows
    assert entry.published == datetime(2021, 1, 29, 16, 42, tzinfo=UTC)


def test_npr_utm_parameters_dropped():
    parsed = load("npr-world-utm.json")
    assert parsed.link == "https://www.npr.org/sections/world/"
    first = parsed.entries[0]
    assert first.link == (
        "https://www.npr.org/2024/08/26/1198913145/eggs-and-bananas-life-after-a-russian-prison"
    )
    assert first.id == "1198913145"


# ----------------------------------------------------------------- special feeds


def test_french_feed_without_guids():
    entries = load("french-noguid-latin1.rss.xml").entries
    assert len(entries) == 9  # the empty <item> (no title, link or text) is dropped
    assert all(e.id == e.link for e in entries)
    assert entries[1].title == "Masters en Psycho : une simplificationet#8230; très complexe"


def test_rss091_without_id_or_link():
    parsed = load("rss091-noid-nolink.xml")
    (entry,) = parsed.entries
    assert entry.link is None
    assert entry.id.startswith("h:") and len(entry.id) == 34
    assert entry.title.startswith("Oferta de Empleo Público")
    assert "Desc" in entry.html and "<A HREF=" in entry.html
    assert parsed.title == "Servicio de Personal - Ingreso - Diputación de valencia"
    # stable across parses
    assert load("rss091-noid-nolink.xml").entries[0].id == entry.id


def test_malformed_namespaced_still_yields_entries():
    parsed = load("malformed-namespaced.rss.xml")
    assert parsed.title == "Test Feed with Namespaced RSS"
    assert [e.title for e in parsed.entries] == ["Test Entry 1", "Test Entry 2"]
    assert parsed.entries[1].link == "https://example.com/entry2"
    assert parsed.entries[1].published == datetime(2024, 1, 2, 12, tzinfo=UTC)


def test_unclosed_cdata_still_yields_entries():
    entries = load("osm-pl-unclosed-cdata.rss.xml").entries
    assert len(entries) == 8
    assert entries[0].title == "Cyfrowy Kanon Krajoznawczy Polski będzie opracowywany przez OSMP!"
    assert entries[0].id == "https://openstreetmap.org.pl/?p=2645"


def test_whitespace_before_xml_declaration():
    parsed = load("typlog-cn-podcast.rss.xml")
    assert parsed.title == "捕蛇者说"
    assert len(parsed.entries) == 6
    first = parsed.entries[0]
    assert first.title == "Ep 07. Lisp 程序员眼中的 Python?"
    (audio,) = first.media
    assert (audio.kind, audio.mime_type, audio.length) == ("audio", "audio/mpeg", 78203199)


def test_youtube_media_group():
    parsed = load("youtube-mediagroup.atom.xml")
    assert len(parsed.entries) == 15
    first = parsed.entries[0]
    assert first.link == "https://www.youtube.com/watch?v=W_S7iKZZdHw"
    assert first.id == "yt:video:W_S7iKZZdHw"
    assert first.html.startswith("As the holiday period begins to unwind")
    assert [(m.kind, m.source) for m in first.media] == [("image", "media:thumbnail")]
    assert first.media[0].url == "https://i4.ytimg.com/vi/W_S7iKZZdHw/hqdefault.jpg"
    assert first.published == datetime(2025, 1, 1, 16, 7, 24, tzinfo=UTC)


def test_youtube_channel_plain_description_escaped():
    parsed = load("youtube-channel.atom.xml")
    assert parsed.title == "PBS Space Time"
    assert parsed.link is None  # the feed's only id is "yt:channel:…"
    (entry,) = parsed.entries
    assert "&amp;ab_channel=PBSTerra" in entry.html  # plain text, escaped into HTML
    assert entry.author == "PBS Space Time"


def test_plain_text_description_keeps_line_breaks():
    doc = """<rss version="2.0"><channel><title>T</title><item><title>x</title>
    <link>https://e.example/1</link>
    <media:group xmlns:media="http://search.yahoo.com/mrss/">
    <media:description>Line one &amp; two


    See https://e.example/?a=1&amp;b=2</media:description></media:group></item></channel></rss>"""
    (entry,) = parse_feed(doc.encode(), url="https://e.example/", now=NOW).entries
    assert entry.html == "Line one &amp; two<br>\n<br>\nSee https://e.example/?a=1&amp;b=2"


def test_podcast_enclosures():
    (night,) = load("nightvale-podcast.rss.xml").entries
    assert night.media[0].kind == "audio" and night.media[0].length == 38749539
    assert len(night.media) == 1  # media:content repeats the enclosure
    (rogan,) = load("itunes-podcast.rss.xml").entries
    assert rogan.media[0].mime_type == "audio/mpeg"
    assert rogan.categories[:2] == ("podcast", "joe")


def test_bbc_thumbnails_and_ttl():
    parsed = load("bbc-urdu-rtl.rss.xml")
    assert parsed.ttl == 15 * 60
    assert all(e.media and e.media[0].kind == "image" for e in parsed.entries)


def test_sy_update_period():
    assert load("coolshell-cn.rss.xml").ttl == 3600
    assert load("distrowatch.rdf.xml").ttl == 3600
    assert load("heise-rdf.xml").ttl is None


def test_rdf_feeds():
    heise = load("heise-rdf.xml")
    assert len(heise.entries) == 60
    assert heise.entries[1].title == "Mega-Deal: IBM übernimmt Red Hat"
    distro = load("distrowatch.rdf.xml")
    assert distro.entries[0].updated == datetime(2024, 8, 19, 0, 3, 40, tzinfo=UTC)
    assert distro.entries[0].published is None


def test_github_atom_and_reddit_tags():
    github = load("github-commits.atom.xml")
    assert github.entries[0].id.startswith("tag:github.com,2008:Grit::Commit/")
    assert github.entries[0].author == "fguillot"
    reddit = load("reddit.atom.xml")
    assert reddit.entries[0].categories == ("r/homelab",)
    assert "<table" in "".join(e.html for e in reddit.entries)


def test_content_beats_shorter_summary():
    coolshell = load("coolshell-cn.rss.xml")
    assert len(coolshell.entries[0].html) > 30_000  # content:encoded, not the excerpt
    assert coolshell.entries[0].author == "陈皓"


def test_same_blog_rss_and_atom_agree():
    rss = load("large-blog.rss.xml")
    atom = load("large-blog.atom.xml")
    assert [e.title for e in rss.entries] == [e.title for e in atom.entries]
    assert [e.link for e in rss.entries] == [e.link for e in atom.entries]
    assert [e.published for e in rss.entries] == [e.published for e in atom.entries]


def test_voa_example():
    parsed = load("voa-chinese.rss.xml")
    (entry,) = parsed.entries
    assert entry.title == "俄罗斯和美国就乌克兰和安全问题再次争吵"
    assert entry.link == "https://www.voachinese.com/a/us-Russia-talks-20220111/6393207.html"
    assert entry.html.startswith("<video poster=")
    assert entry.published == datetime(2022, 1, 12, 1, 43, 14, tzinfo=UTC)


# ----------------------------------------------------------------- JSON Feed


def test_json_feeds_from_corpus():
    elastic = load("elastic.json")
    assert len(elastic.entries) == 3
    first = elastic.entries[0]
    assert first.published == datetime(2019, 5, 31, 19, 17, 58, tzinfo=UTC)
    assert first.author == "Chris Churilo, Fake Author 1"  # 1.1 "authors" wins over "author"
    assert first.categories == ("InfluxDB", "Community", "Elasticsearch", "Time Series Database")
    assert first.id == first.link  # no id: the url
    npr = load("npr-world-utm.json")
    assert len(npr.entries) == 23
    kinds = {m.kind for m in npr.entries[0].media}
    assert kinds == {"audio", "image"}
    v2ex = load("v2ex-cn.json")
    (entry,) = v2ex.entries
    assert entry.title == "什么插件可以做到 JSON 格式化/压缩/还原/转 2JZ 的？"
    assert entry.author == "DEVN"
    assert v2ex.link == "https://www.v2ex.com/go/jsonfeed"


def _json(doc: dict) -> bytes:
    return json.dumps(doc).encode()


def test_json_feed_fields():
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "J",
        "items": [
            {
                "id": 42,
                "external_url": "/elsewhere",
                "title": "T",
                "content_text": "a <b> & c\nnext",
                "summary": "short",
                "date_published": "2024-05-01T10:00:00+02:00",
                "date_modified": "2024-05-02T10:00:00Z",
                "tags": ["x", "X", "y"],
                "image": "/img.png",
                "banner_image": "https://e.example/banner.jpg",
                "attachments": [
                    {"url": "https://e.example/a.mp4", "mime_type": "video/mp4", "size_in_bytes": 9}
                ],
                "author": {"name": "Solo"},
            },
            {"id": "  ", "url": "https://e.example/2", "content_html": "<p>hi</p>"},
            "not an item",
            {},
        ],
    }
    parsed = parse_feed(_json(doc), url="https://e.example/feed.json", now=NOW)
    assert parsed.title == "J" and parsed.link is None
    first, second = parsed.entries
    assert first.id == "42"
    assert first.link == "https://e.example/elsewhere"
    assert first.html == "a &lt;b&gt; &amp; c<br>\nnext"
    assert first.published == datetime(2024, 5, 1, 8, tzinfo=UTC)
    assert first.updated == datetime(2024, 5, 2, 10, tzinfo=UTC)
    assert first.categories == ("x", "y")
    assert first.author == "Solo"
    assert [(m.kind, m.url) for m in first.media] == [
        ("video", "https://e.example/a.mp4"),
        ("image", "https://e.example/img.png"),
        ("image", "https://e.example/banner.jpg"),
    ]
    assert first.media[0].length == 9
    assert second.id == "https://e.example/2"  # blank id → the url
    assert second.html == "<p>hi</p>"
    assert second.title == ""


@pytest.mark.parametrize(
    "content_type", [None, "application/feed+json", "application/json", "text/plain"]
)
def test_json_feed_detection(content_type):
    body = b"\xef\xbb\xbf\n  " + _json(
        {
            "version": "https://jsonfeed.org/version/1",
            "title": "J",
            "items": [{"id": "1", "title": "a"}],
        }
    )
    parsed = parse_feed(body, url="https://e.example/f", content_type=content_type, now=NOW)
    assert [e.title for e in parsed.entries] == ["a"]


def test_json_not_a_feed():
    with pytest.raises(ParseError, match="not a JSON Feed"):
        parse_feed(b'{"hello": "world"}', url="https://e.example/f", now=NOW)
    with pytest.raises(ParseError, match="not valid JSON"):
        parse_feed(b'{"items": [', url="https://e.example/f", now=NOW)


def test_xml_served_as_json_is_still_parsed():
    parsed = parse_feed(
        RELATIVE_RSS, url="https://e.example/f", content_type="application/json", now=NOW
    )
    assert parsed.title == "Rel"


# ----------------------------------------------------------------- errors


def test_html_page_with_feed_links_is_not_a_feed():
    """The page is refused in one sentence; the feeds it names are
    bot/discover.py's to find (tests/test_discover.py)."""
    page = b"""<!DOCTYPE html>
    <html><head><title>Blog</title>
    <link rel="alternate" type="application/rss+xml" title="RSS" href="/feed.xml">
    </head><body><p>Hi</p></body></html>"""
    with pytest.raises(ParseError) as info:
        parse_feed(page, url="https://blog.example/posts/", content_type="text/html", now=NOW)
    assert str(info.value) == "This is an HTML page, not a feed."


def test_html_page_without_feed_links():
    with pytest.raises(ParseError) as info:
        parse_feed(
            b"<!doctype html><html><body>Hello</body></html>", url="https://e.example/", now=NOW
        )
    assert str(info.value) == "This is an HTML page, not a feed."


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty"),
        (b"   \n ", "empty"),
        (b"<rss><channel><title>broken</titl", "not valid XML"),
        (b"<rss><channel><title>x</title><item><title>a</ti", "not valid XML"),
        (b"<?xml version='1.0'?><foo><bar/></foo>", "not an RSS, Atom or JSON feed"),
        (b"just some text", "not"),
        # feedparser opens a *file* when handed bytes naming one: never let it
        (b"/etc/passwd", "not"),
    ],
)
def test_not_a_feed(body, message):
    with pytest.raises(ParseError, match=message) as info:
        parse_feed(body, url="https://e.example/f", now=NOW)
    assert isinstance(info.value, ValueError)
    assert "root:" not in str(info.value)


def test_empty_but_valid_feed():
    doc = b'<?xml version="1.0"?><rss version="2.0"><channel><title>Quiet</title><link>https://q.example/</link><ttl>60</ttl></channel></rss>'
    parsed = parse_feed(doc, url="https://q.example/rss", now=NOW)
    assert parsed.entries == ()
    assert (parsed.title, parsed.link, parsed.ttl) == ("Quiet", "https://q.example/", 3600)


def test_untitled_feed_falls_back_to_host():
    doc = b'<rss version="2.0"><channel><item><title>x</title></item></channel></rss>'
    assert parse_feed(doc, url="https://www.news.example/rss", now=NOW).title == "news.example"


# ----------------------------------------------------------------- dates, media, categories


def test_far_future_dates_are_ignored():
    doc = b"""<rss version="2.0"><channel><title>T</title>
    <item><title>a</title><link>https://e.example/a</link>
      <pubDate>Fri, 01 Jan 2100 00:00:00 GMT</pubDate></item>
    <item><title>b</title><link>https://e.example/b</link>
      <pubDate>Thu, 26 Nov 2026 20:00:00 GMT</pubDate></item>
    </channel></rss>"""
    a, b = parse_feed(doc, url="https://e.example/", now=NOW).entries
    assert a.published is None
    assert b.published == datetime(2026, 11, 26, 20, tzinfo=UTC)  # tomorrow-ish is fine


def test_media_kinds_and_categories():
    doc = b"""<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel><title>T</title>
    <item><title>a</title><link>https://e.example/a</link>
    <category>News</category><category>news</category><category> World </category>
    <enclosure url="https://e.example/x.JPG" type="" length="12"/>
    <enclosure url="https://e.example/doc.pdf" type="application/pdf" length="x"/>
    <media:content url="https://e.example/v" medium="video"/>
    <media:content url="https://e.example/x.JPG"/>
    <media:thumbnail url="https://e.example/t"/>
    </item></channel></rss>"""
    (entry,) = parse_feed(doc, url="https://e.example/", now=NOW).entries
    assert entry.categories == ("News", "World")
    assert [(m.kind, m.source, m.length) for m in entry.media] == [
        ("image", "enclosure", 12),
        ("document", "enclosure", None),
        ("video", "media:content", None),
        ("image", "media:thumbnail", None),
    ]


@pytest.mark.parametrize(
    ("url", "mime", "medium", "kind"),
    [
        ("https://e/x.mp3", None, None, "audio"),
        ("https://e/x", "audio/mpeg", None, "audio"),
        ("https://e/x.png?w=1", None, None, "image"),
        ("https://e/x.webm", None, None, "video"),
        ("https://e/x", "application/octet-stream", None, "document"),
        ("https://e/x.mp3", "image/jpeg", None, "image"),
        ("https://e/x", None, "image", "image"),
        ("https://e/dir.mp3/file", None, None, "document"),
    ],
)
def test_media_kind(url, mime, medium, kind):
    assert media_kind(url, mime, medium) == kind


def test_utf8_body_declared_latin1_is_read_as_utf8():
    doc = (
        '<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel><title>T</title>'
        "<item><title>Grüße aus Köln</title><link>https://e.example/1</link></item>"
        "</channel></rss>"
    ).encode()
    (entry,) = parse_feed(doc, url="https://e.example/", now=NOW).entries
    assert entry.title == "Grüße aus Köln"


def test_http_charset_used_when_the_document_declares_none():
    doc = (
        '<rss version="2.0"><channel><title>T</title><item><title>Цитата</title>'
        "<link>https://e.example/1</link></item></channel></rss>"
    ).encode("koi8-r")
    parsed = parse_feed(
        doc, url="https://e.example/", content_type="application/rss+xml; charset=koi8-r", now=NOW
    )
    assert parsed.entries[0].title == "Цитата"


@pytest.mark.parametrize(
    ("author", "expected"),
    [
        ("ann@garden.example (Ann Gardener)", "Ann Gardener"),
        ("Ann Gardener <ann@garden.example>", "Ann Gardener"),
        ("Bob", "Bob"),
        ("bob@example.com", "bob@example.com"),  # the renderer decides not to show bare emails
    ],
)
def test_author_forms(author, expected):
    body = (
        '<rss version="2.0"><channel><title>t</title><item><title>x</title>'
        f"<link>https://a.example/x</link><author>{author.replace('<', '&lt;')}</author>"
        "</item></channel></rss>"
    ).encode()
    (entry,) = parse_feed(body, url="https://a.example/feed").entries
    assert entry.author == expected


def test_feedparser_uses_the_buffering_expat_driver(monkeypatch):
    import xml.sax

    from bot.parse import expat

    created = []
    real = expat.create_parser
    monkeypatch.setattr(expat, "create_parser", lambda *a, **k: created.append(1) or real(*a, **k))
    parse_feed(
        b'<rss version="2.0"><channel><title>t</title><item><title>a &amp; b</title>'
        b"<description>x &lt;b&gt;y&lt;/b&gt; z</description></item></channel></rss>",
        url="https://a.example/feed",
    )
    assert created, "feedparser did not pick bot.parse.expat"
    assert isinstance(xml.sax.make_parser(["bot.parse.expat"]), expat.BufferedExpatParser)


def test_well_known_tracking_parameters_leave_the_links_shown_and_keep_the_rest():
    doc = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>H</title><item>'
        b"<title>A</title><link>https://www.heise.de/news/x.html?wt_mc=rss.red.ho.ho.atom"
        b"&amp;seite=2&amp;utm_source=feed&amp;fbclid=abc</link><guid>g1</guid></item>"
        b"</channel></rss>"
    )
    (entry,) = parse_feed(doc, url="https://www.heise.de/rss", now=NOW).entries
    assert entry.link == "https://www.heise.de/news/x.html?seite=2"
