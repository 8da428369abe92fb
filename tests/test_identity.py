"""bot.identity: entry ids, dedupe keys and the choice of new entries."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.identity import body_hash, dedupe_keys, entry_id, new_entries, newest, newest_first
from bot.models import Entry

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def make(
    guid: str | None,
    title: str = "",
    link: str | None = None,
    published: datetime | None = None,
    html: str = "",
    updated: datetime | None = None,
) -> Entry:
    return Entry(
        id=entry_id(guid=guid, link=link, title=title, published=published, html=html),
        title=title,
        link=link,
        html=html,
        published=published,
        updated=updated,
    )


# ------------------------------------------------------------------ entry_id


def test_entry_id_prefers_guid_then_link_then_hash():
    assert entry_id(guid=" g1 ", link="https://e/1", title="t", published=None, html="") == "g1"
    assert entry_id(guid="  \n", link=" https://e/1 ", title="t", published=None, html="") == (
        "https://e/1"
    )
    assert entry_id(guid=None, link="", title="t", published=None, html="").startswith("h:")


def test_hashed_id_depends_on_title_and_date_else_html():
    a = entry_id(guid=None, link=None, title="t", published=T0, html="x")
    assert a == entry_id(guid=None, link=None, title="t", published=T0, html="other html")
    assert a != entry_id(guid=None, link=None, title="u", published=T0, html="x")
    assert a != entry_id(guid=None, link=None, title="t", published=T0 + timedelta(1), html="x")
    assert len(a) == 2 + 32
    b = entry_id(guid=None, link=None, title="t", published=None, html="x")
    assert b != entry_id(guid=None, link=None, title="t", published=None, html="y")
    expected = "h:" + hashlib.sha256(f"t\n{T0.isoformat()}".encode()).hexdigest()[:32]
    assert a == expected


def test_body_hash():
    assert body_hash(b"abc") == hashlib.sha256(b"abc").hexdigest()


# ------------------------------------------------------------------ dedupe_keys


def test_dedupe_keys():
    assert dedupe_keys(make("g", title="T", link="https://e/1")) == (
        "g",
        dedupe_keys(make("other", title="T", link="https://e/1"))[1],
    )
    assert dedupe_keys(make("g", title="T")) == ("g",)
    assert dedupe_keys(make("g", link="https://e/1")) == ("g",)
    assert dedupe_keys(make(None, title="T", link="https://e/1"))[0] == "https://e/1"


def test_link_title_key_ignores_cosmetic_differences():
    key = dedupe_keys(make("a", title="Big  News", link="http://www.example.com/p/1/"))[1]
    for link, title in [
        ("https://example.com/p/1", "big news"),
        ("https://EXAMPLE.com:443/p/1#comments", "Big News"),
        ("https://example.com/p/1?utm_source=rss&utm_medium=feed", " Big\nNews "),
        ("https://example.com/p/1?wt_mc=rss.red.ho.atom&fbclid=x", "Big News"),
        ("https://example.com/p/1?gclid=1&mc_cid=2&mc_eid=3", "Big News"),
    ]:
        assert dedupe_keys(make("b", title=title, link=link))[1] == key
    assert dedupe_keys(make("b", title="Big News", link="https://example.com/p/2"))[1] != key
    assert dedupe_keys(make("b", title="Other", link="https://example.com/p/1"))[1] != key
    assert dedupe_keys(make("b", title="Big News", link="https://example.com/p/1?id=2"))[1] != key


def test_tracking_parameters_go_but_other_parameters_stay_in_the_key():
    def key(link: str) -> str:
        return dedupe_keys(make("x", title="T", link=link))[1]

    assert key("https://e.com/a?id=2&wt_mc=x") == key("https://e.com/a?id=2")
    assert key("https://e.com/a?fbclid=1&id=2") == key("https://e.com/a?id=2")
    assert key("https://e.com/a?id=2&page=1") != key("https://e.com/a?page=1&id=2")
    assert key("https://e.com/a?id=2") != key("https://e.com/a?id=3")


# ------------------------------------------------------------------ new_entries


def test_new_entries_filters_seen_and_returns_oldest_first():
    a = make("a", "A", "https://e/a", T0 + timedelta(hours=3))
    b = make("b", "B", "https://e/b", T0 + timedelta(hours=2))
    c = make("c", "C", "https://e/c", T0 + timedelta(hours=1))
    assert new_entries([a, b, c], set()) == [c, b, a]
    assert new_entries([a, b, c], {"b"}) == [c, a]
    assert new_entries([a, b, c], set(dedupe_keys(a)) | set(dedupe_keys(c))) == [b]


def test_feed_listing_dates_out_of_order():
    a = make("a", "A", published=T0 + timedelta(hours=1))
    b = make("b", "B", published=T0 + timedelta(hours=5))
    c = make("c", "C", published=T0)
    assert new_entries([a, b, c], set()) == [c, a, b]


def test_missing_dates_mean_reverse_document_order():
    a = make("a", "A", published=T0 + timedelta(hours=1))
    b = make("b", "B")
    c = make("c", "C", published=T0 + timedelta(hours=9))
    assert new_entries([a, b, c], set()) == [c, b, a]


def test_updated_stands_in_for_published_and_ties_keep_document_order():
    a = make("a", "A", updated=T0)
    b = make("b", "B", updated=T0)
    c = make("c", "C", published=T0 - timedelta(1))
    # same date: later in the document counts as older
    assert new_entries([a, b, c], set()) == [c, b, a]


def test_item_listed_twice_counts_once():
    a = make("a", "A", "https://e/a", T0)
    again = replace(a, html="changed")
    b = make("b", "B", "https://e/b", T0 + timedelta(1))
    assert new_entries([b, a, again], set()) == [a, b]
    # same link and title under another guid, in the same document
    twin = make("a2", "A", "https://e/a", T0 + timedelta(2))
    assert new_entries([twin, a], set()) == [twin]


def test_edited_in_place_is_not_new():
    a = make("g", "Title", "https://e/a", T0, html="v1")
    seen = set(dedupe_keys(a))
    edited = make("g", "Title (updated)", "https://e/a2", T0 + timedelta(days=3), html="v2")
    assert new_entries([edited], seen) == []


def test_guid_change_with_same_link_and_title_is_not_new():
    a = make("https://e/?p=1", "Hello", "http://e/hello", T0)
    seen = set(dedupe_keys(a))
    moved = make("https://e/hello/", "Hello", "https://e/hello/", T0 + timedelta(1))
    assert new_entries([moved], seen) == []
    retitled = make("https://e/hello/", "Hello again", "https://e/hello/", T0)
    assert new_entries([retitled], seen) == [retitled]


def test_entry_without_guid_or_link_is_also_known_by_title_and_text():
    a = make(None, "Notice", published=T0, html="<p>Closed  today</p>")
    assert a.id.startswith("h:")
    keys = dedupe_keys(a)
    assert len(keys) == 2 and keys[1].startswith("tb:")
    # The feed stamps it with a new date on every render: still the same entry.
    restamped = make(None, "Notice", published=T0 + timedelta(days=1), html="<p>Closed today</p>")
    assert restamped.id != a.id
    assert new_entries([restamped], set(keys)) == []
    other = make(None, "Notice", published=T0, html="<p>Open today</p>")
    assert dedupe_keys(other)[1] != keys[1]
    # Entries with a GUID or a link do not get that key.
    assert dedupe_keys(make("g", "Notice", html="x")) == ("g",)
    assert len(dedupe_keys(make(None, "Notice", "https://e/1"))) == 2
    assert dedupe_keys(make(None, "Notice", "https://e/1"))[1].startswith("lt:")


def test_newest():
    assert newest([]) is None
    a = make("a", published=T0)
    b = make("b", published=T0 + timedelta(1))
    c = make("c", published=T0 + timedelta(1))
    assert newest([a, b, c]) is b
    assert newest([a, make("x")]) is a  # not every entry dated: first in document
    assert newest([make("p", updated=T0), make("q", updated=T0 + timedelta(2))]).id == "q"


def test_newest_first():
    a = make("a", published=T0)
    b = make("b", published=T0 + timedelta(1))
    c = make("c", published=T0 + timedelta(1))
    assert newest_first([a, b, c]) == [b, c, a]
    undated = [a, make("x"), b]
    assert newest_first(undated) == undated
    assert newest_first([]) == []
    assert newest_first([a, b, c])[0] is newest([a, b, c])


# ------------------------------------------------------------------ properties

DATES = [None] + [T0 + timedelta(hours=h) for h in (0, 1, 2, 5, 48)]
TITLES = ["", "Alpha", "Beta", "Gamma"]
LINKS = [None, "https://e.example/1", "http://www.e.example/1/", "https://e.example/2"]


@st.composite
def stories(draw):
    """A universe of stories, each with a stable guid."""
    n = draw(st.integers(1, 8))
    return [
        {
            "guid": f"guid-{i}",
            "title": draw(st.sampled_from(TITLES)),
            "link": draw(st.sampled_from(LINKS)),
        }
        for i in range(n)
    ]


@st.composite
def histories(draw, *, guid_changes: bool = False):
    """A universe and a sequence of fetched documents. Each document lists
    some stories (any order, possibly twice), each appearance possibly edited
    in place: new text, new date (republished), and with ``guid_changes`` a
    new guid with link and title kept."""
    universe = draw(stories())
    docs = []
    for _ in range(draw(st.integers(1, 6))):
        doc = []
        for idx in draw(st.lists(st.integers(0, len(universe) - 1), max_size=10)):
            story = universe[idx]
            guid = story["guid"]
            if guid_changes and draw(st.booleans()):
                guid = f"{guid}-v{draw(st.integers(0, 3))}"
            entry = make(
                guid,
                title=story["title"],
                link=story["link"],
                published=draw(st.sampled_from(DATES)),
                html=draw(st.sampled_from(["", "v1", "v2"])),
            )
            doc.append((idx, entry))
        docs.append(doc)
    return universe, docs


def run(docs):
    """Poll the documents in turn; returns [(doc number, story index)] yielded."""
    seen: set[str] = set()
    yielded = []
    for n, doc in enumerate(docs):
        entries = [e for _, e in doc]
        story_of = {id(e): idx for idx, e in doc}
        fresh = new_entries(entries, seen)
        for entry in fresh:
            assert not set(dedupe_keys(entry)) & seen
            assert any(entry is e for e in entries)
            yielded.append((n, story_of[id(entry)]))
            seen.update(dedupe_keys(entry))
        # Nothing is dropped silently: every listed entry is now known by a key.
        for entry in entries:
            assert set(dedupe_keys(entry)) & seen
    return yielded


@settings(max_examples=300, deadline=None)
@given(histories())
def test_property_no_story_is_yielded_twice(history):
    universe, docs = history
    yielded = run(docs)
    stories_yielded = [idx for _, idx in yielded]
    assert len(stories_yielded) == len(set(stories_yielded))
    # and a story whose link+title no other story shares is yielded the first
    # time it shows up
    first_seen = {}
    for n, doc in enumerate(docs):
        for idx, _ in doc:
            first_seen.setdefault(idx, n)
    yielded_at = {idx: n for n, idx in yielded}
    for idx, n in first_seen.items():
        key = lt_key(universe[idx])
        if key is None or [lt_key(o) for o in universe].count(key) == 1:
            assert yielded_at.get(idx) == n


def lt_key(story):
    keys = dedupe_keys(make("x", story["title"], story["link"]))
    return keys[1] if len(keys) == 2 else None


@settings(max_examples=300, deadline=None)
@given(histories(guid_changes=True))
def test_property_guid_changes_keeping_link_and_title_are_not_resent(history):
    universe, docs = history
    yielded = run(docs)
    counts: dict[int, int] = {}
    for _, idx in yielded:
        counts[idx] = counts.get(idx, 0) + 1
    for idx, count in counts.items():
        if universe[idx]["link"] and universe[idx]["title"]:
            assert count == 1


@settings(max_examples=300, deadline=None)
@given(histories())
def test_property_oldest_first(history):
    _, docs = history
    for doc in docs:
        entries = [e for _, e in doc]
        fresh = new_entries(entries, set())
        dates = [e.published or e.updated for e in fresh]
        if all(d is not None for d in dates):
            assert dates == sorted(dates)
        else:
            positions = [next(i for i, e in enumerate(entries) if e is f) for f in fresh]
            assert positions == sorted(positions, reverse=True)
        assert len({id(e) for e in fresh}) == len(fresh)


@settings(max_examples=200, deadline=None)
@given(histories(), st.randoms())
def test_property_reordering_and_republishing_yields_nothing_new(history, rnd):
    _, docs = history
    entries = [e for doc in docs for _, e in doc]
    seen: set[str] = set()
    for entry in new_entries(entries, seen):
        seen.update(dedupe_keys(entry))
    shuffled = [replace(e, published=T0 + timedelta(days=30), html="new text") for e in entries]
    rnd.shuffle(shuffled)
    assert new_entries(shuffled, seen) == []
    assert new_entries(shuffled[: len(shuffled) // 2], seen) == []
