"""OPML out and in: the format other feed readers exchange subscriptions in."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.opml import MAX_OPML_BYTES, OPMLError, Outline, build_opml, parse_opml

NESTED = b"""<?xml version="1.0"?>
<opml version="1.0"><head><title>Reader export</title></head><body>
  <outline text="Tech">
    <outline text="LWN" title="LWN.net" type="rss" xmlUrl="https://lwn.net/headlines/rss"/>
    <outline text="Go blog" type="rss" xmlURL="https://go.dev/blog/feed.atom"/>
  </outline>
  <outline text="A folder with no feeds"/>
  <outline text="LWN again" type="rss" xmlUrl="https://lwn.net/headlines/rss"/>
</body></opml>"""


def test_reads_nested_folders_once_each_in_order():
    assert parse_opml(NESTED) == [
        Outline("https://lwn.net/headlines/rss", "LWN.net"),
        Outline("https://go.dev/blog/feed.atom", "Go blog"),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<opml><body><outline", "not valid OPML"),
        (b"<rss version='2.0'><channel/></rss>", "not OPML"),
        (b"<opml>" + b" " * MAX_OPML_BYTES + b"</opml>", "larger than 1 MB"),
    ],
)
def test_bad_files_say_what_is_wrong(data, message):
    with pytest.raises(OPMLError, match=message):
        parse_opml(data)


urls = st.builds(
    lambda host, path: f"https://{host}.example/{path}",
    st.from_regex(r"[a-z]{1,10}", fullmatch=True),
    st.text(alphabet="abc/?=&%._-", max_size=20),
)
titles = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=30).map(
    str.strip
)


@given(st.lists(st.tuples(urls, titles), max_size=20, unique_by=lambda pair: pair[0]))
def test_export_then_import_round_trips(pairs):
    outlines = [Outline(url, title) for url, title in pairs]
    back = parse_opml(build_opml(outlines, "feedbot & friends <test>"))
    assert [o.url for o in back] == [o.url for o in outlines]
    assert [o.title for o in back] == [o.title or o.url for o in outlines]
