"""Real-shaped entries rendered exactly as reviewed.

The expected messages live in tests/golden/. After a deliberate change to
the renderer, regenerate them with ``FEEDBOT_UPDATE_GOLDEN=1 pytest
tests/test_render_golden.py`` and read the diff as a Telegram user would.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from bot.models import Entry, Media, Style
from bot.render import Message, render_entry, render_text_only
from testkit.telegram_html import check_message

GOLDEN = Path(__file__).parent / "golden"


def _voa() -> Entry:
    # A copy of the shared example (a VOA Chinese item as feedx.net republished it).
    raw = (GOLDEN / "voa-item.txt").read_text(encoding="utf-8")
    head, body = raw.split("------", 1)
    m = re.search(r"\[(.*)\]\((.*)\)", head)
    assert m
    return Entry(
        id="voa-6393207",
        title=m.group(1),
        link=m.group(2),
        html=body.strip(),
        base_url="https://www.voachinese.com/",
        categories=("美国", "国际"),
    )


def _voa_photo() -> Entry:
    # The same item with a photo first, as feedx.net often gives it; rendered
    # as text (Telegram refused the photo), the picture's link gets its own line.
    entry = _voa()
    photo = '<img src="https://gdb.voanews.com/01000000-0aff-0242-e5a7-08d9d4f4a8d3_w800.jpg">'
    return Entry(
        id=entry.id,
        title=entry.title,
        link=entry.link,
        html=photo + entry.html,
        base_url=entry.base_url,
        categories=entry.categories,
    )


def _atom_xhtml() -> Entry:
    html = (
        '<div xmlns="http://www.w3.org/1999/xhtml">'
        "<h2>Release notes</h2>"
        '<p>Version 2.0 is out. Read <a href="../docs/upgrade.html">the upgrade guide</a> '
        'first, or jump to <a href="#changes">the changes</a>.</p>'
        '<p><img src="img/screenshot.png" alt="The new editor" width="800" height="450"/></p>'
        "<ul><li>Faster <code>sync</code></li><li>A <em>new</em> editor<ul>"
        "<li>with themes</li></ul></li></ul>"
        "<ol><li>Back up</li><li>Upgrade</li></ol>"
        '<pre><code class="language-sh">$ tool --version\n2.0.0\n</code></pre>'
        "<blockquote><p>Best release yet.</p><p>— a user</p></blockquote>"
        '<p>Questions? Write to <a href="mailto:help@example.org">help@example.org</a>.'
        '<img src="https://stats.example.org/pixel.gif" width="1" height="1"/></p>'
        "</div>"
    )
    return Entry(
        id="tag:example.org,2024:release-2",
        title="Example 2.0 released",
        link="https://example.org/blog/2024/release-2.html",
        html=html,
        base_url="https://example.org/blog/2024/",
        author="Jane Doe",
        categories=("release", "C++ / Rust"),
    )


def _podcast(length: int) -> Entry:
    return Entry(
        id="prx_126_c6d43512",
        title="221 - The Glow Cloud, Explained",
        link="https://beta.prx.org/stories/441886",
        html=(
            "<p>The University of What It Is takes a special interest in a certain glowing "
            "cloud.</p><p>Weather: “Blackeyeblue“ by "
            '<a href="https://shotgunmarmalade.bandcamp.com/">Shotgun Marmalade</a></p>'
            '<p><a href="http://welcometonightvale.com/transcripts">'
            "Read episode transcripts</a></p>"
        ),
        author="Night Vale Presents",
        media=(
            Media(
                "https://www.podtrac.com/pts/redirect.mp3/dovetail.prxu.org/126/nv221.mp3",
                "audio",
                "audio/mpeg",
                length,
            ),
            Media("https://f.prxu.org/126/images/nv-cover.jpg", "image", "image/jpeg"),
        ),
    )


def _youtube() -> Entry:
    return Entry(
        id="yt:video:W_S7iKZZdHw",
        title="Digital Foundry Games of 2024: The Oliver Mackenzie Collection!",
        link="https://www.youtube.com/watch?v=W_S7iKZZdHw",
        html=(
            "As the holiday period begins to unwind, we continue to look back on an excellent "
            "2024, with Oliver Mackenzie presenting his top five games of the prior year.\n\n"
            "Check out our store: https://store.digitalfoundry.net\n"
            "Subscribe for more Digital Foundry: http://bit.ly/DFSubscribe\n\n"
            "00:00 Introduction\n00:24 #5: Final Fantasy 7 Rebirth\n02:42 #4: Parking Garage "
            "Rally Circuit\n16:27 Looking Ahead to 2025"
        ),
        author="Digital Foundry",
        media=(
            Media(
                "https://www.youtube.com/v/W_S7iKZZdHw?version=3",
                "video",
                "application/x-shockwave-flash",
                source="media:content",
            ),
            Media(
                "https://i4.ytimg.com/vi/W_S7iKZZdHw/hqdefault.jpg",
                "image",
                source="media:thumbnail",
            ),
        ),
    )


def _image_only() -> Entry:
    return Entry(
        id="photo-1",
        title="",
        link="https://photos.example.net/p/8841",
        html='<p><a href="/p/8841"><img src="/media/8841-large.jpg"></a></p>',
        base_url="https://photos.example.net/",
    )


def _gallery() -> Entry:
    return Entry(
        id="gallery-1",
        title="Ten photos from the launch",
        link="https://news.example.com/launch-gallery",
        html="<p>The launch, in pictures.</p>",
        media=tuple(
            Media(f"https://cdn.example.com/launch/{i}.jpg", "image", "image/jpeg", 200_000)
            for i in range(12)
        ),
    )


def _long_article() -> Entry:
    paragraphs = []
    for i in range(1, 131):
        paragraphs.append(
            f"<h3>Part {i}</h3><p>This is paragraph {i} of a long article about "
            f"<b>feeds</b> &amp; <i>bots</i>. It has several sentences. Some of them are "
            f'longer and carry <a href="/notes/{i}">a link to note {i}</a>, others do not. '
            "The point is to be long enough that the renderer must cut it, at a sentence "
            "boundary, and close every element it opened on the way.</p>"
            f"<ul><li>first point of part {i}</li><li>second point</li></ul>"
        )
    html = "".join(paragraphs)
    assert len(html.encode()) > 50_000
    return Entry(
        id="long-1",
        title="A very long article",
        link="https://blog.example.com/long",
        html=html,
        base_url="https://blog.example.com/",
        author="Alex",
        categories=("long reads",),
    )


CASES = {
    "voa-short": (_voa, "美国之音中文网", Style()),
    "voa-full": (_voa, "美国之音中文网", Style(summary="full")),
    "atom-xhtml": (_atom_xhtml, "Example Blog", Style(summary="full")),
    "podcast": (lambda: _podcast(15_000_000), "Welcome to Night Vale", Style()),
    "podcast-too-big": (lambda: _podcast(118_001_817), "Welcome to Night Vale", Style()),
    "youtube": (_youtube, "Digital Foundry", Style()),
    "image-only": (_image_only, "Photo stream", Style()),
    "gallery": (_gallery, "Example News", Style(show_feed=False)),
    "long-article": (_long_article, "Example Blog", Style(summary="full")),
    "long-article-short": (_long_article, "Example Blog", Style()),
    "voa-text-only": (_voa, "美国之音中文网", None),
    "voa-photo-text-only": (_voa_photo, "美国之音中文网", None),
}


def _dump(messages: list[Message]) -> str:
    parts = []
    for n, msg in enumerate(messages, 1):
        flags = [f"link_preview={msg.link_preview}", f"silent={msg.silent}"]
        lines = [f"=== message {n} ({', '.join(flags)})"]
        lines += [f"media: {m.kind} {m.url}" for m in msg.media]
        lines += ["---", msg.text]
        parts.append("\n".join(lines))
    return "\n".join(parts) + "\n"


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name):
    make, feed_title, style = CASES[name]
    entry = make()
    if style is None:
        messages = [render_text_only(entry, feed_title)]
    else:
        messages = render_entry(entry, feed_title, style)
    for msg in messages:
        check_message(msg.text, caption=bool(msg.media))
    got = _dump(messages)
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("FEEDBOT_UPDATE_GOLDEN") or not path.exists():
        path.parent.mkdir(exist_ok=True)
        path.write_text(got, encoding="utf-8")
    assert got == path.read_text(encoding="utf-8")
