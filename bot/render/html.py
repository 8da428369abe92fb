"""Feed HTML → runs (see runs.py): what Telegram can show, kept; the rest
dropped or turned into text; and an aggregator's footer or a leading date line
taken off."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

from .media import img_src, is_emoji, is_small, is_tracker
from .runs import Mark, Run, drop_prefix, plain, tidy
from .text import clean_text, clean_url, collapse

__all__ = ["convert"]


_BLOCK = {
    "p": 2,
    "h1": 2,
    "h2": 2,
    "h3": 2,
    "h4": 2,
    "h5": 2,
    "h6": 2,
    "blockquote": 2,
    "pre": 2,
    "table": 2,
    "ul": 1,
    "ol": 1,
    "dl": 1,
    "figure": 2,
    "hr": 2,
    "div": 1,
    "section": 1,
    "article": 1,
    "header": 1,
    "footer": 1,
    "aside": 1,
    "nav": 1,
    "main": 1,
    "address": 1,
    "details": 1,
    "summary": 1,
    "figcaption": 1,
    "li": 1,
    "dt": 1,
    "dd": 1,
    "tr": 1,
    "caption": 1,
    "center": 1,
    "form": 1,
    "fieldset": 1,
}
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
#: Block starts that close an open <p>.
_ENDS_P = _HEADINGS | {"p", "div", "ul", "ol", "table", "pre", "blockquote"}
_INLINE = {
    "b": "b",
    "strong": "b",
    "i": "i",
    "em": "i",
    "cite": "i",
    "dfn": "i",
    "var": "i",
    "u": "u",
    "ins": "u",
    "s": "s",
    "strike": "s",
    "del": "s",
    "code": "code",
    "kbd": "code",
    "samp": "code",
    "tt": "code",
}
#: Elements whose content never shows as text.
_SKIP = frozenset(
    {
        "script",
        "style",
        "iframe",
        "noscript",
        "template",
        "svg",
        "math",
        "head",
        "title",
        "object",
        "embed",
        "select",
        "textarea",
        "button",
        "video",
        "audio",
        "canvas",
        "map",
        "frameset",
        "noembed",
        "noframes",
    }
)
_VOID = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "keygen",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    }
)
#: Line-number columns next to code (highlight.js, Pygments, Hexo tables).
_GUTTER = re.compile(r"\b(?:gutter|linenos?|line-numbers?|lineno)\b", re.I)
#: Deeper than this, start tags are ignored: real content never nests so deep,
#: and it keeps the converter linear on hostile input.
_MAX_DEPTH = 64
_PLAYERS = {"video": "▶ video", "audio": "🔊 audio"}
_WS = re.compile(r"[ \t\n\r\f]+")


@dataclass(slots=True)
class _Open:
    """An element of the source document that is still open."""

    tag: str
    mark: Mark | None = None
    skip: bool = False
    counter: int | None = None  # next number, for <ol>
    cells: int = 0  # cells seen, for <tr>
    linked: bool = False  # a <video>/<audio> whose link is already out


def _hidden(a: dict[str, str | None]) -> bool:
    """Content the page never shows (hidden, display:none) or line-number gutters."""
    if "hidden" in a or _GUTTER.search(a.get("class") or ""):
        return True
    style = (a.get("style") or "").replace(" ", "").lower()
    return "display:none" in style or "visibility:hidden" in style


class _Converter(HTMLParser):
    def __init__(self, base: str | None, skip_urls: frozenset[str], plain_text: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.base = base
        self.skip_urls = skip_urls
        self.plain_text = plain_text
        self.runs: list[Run] = []
        self.stack: list[_Open] = []
        self.skipping = 0
        self.want_break = 0
        self.want_space = False
        self.last_marks: tuple[Mark, ...] = ()
        self._marks: tuple[Mark, ...] | None = ()  # cache of marks(); None when stale
        self.pre_depth = 0
        #: Run counts at each <hr>, to drop a trailing aggregator footer.
        self.rules: list[int] = []

    # -- state helpers -------------------------------------------------

    def marks(self) -> tuple[Mark, ...]:
        if self._marks is None:
            self._marks = tuple(o.mark for o in self.stack if o.mark is not None)
        return self._marks

    def _tags(self) -> set[str]:
        return {m.tag for m in self.marks()}

    def _in_pre(self) -> bool:
        return self.pre_depth > 0

    def brk(self, n: int) -> None:
        self.want_break = max(self.want_break, n)

    def _outer(self, marks: tuple[Mark, ...]) -> tuple[Mark, ...]:
        """The marks shared by the last text and ``marks``."""
        shared = 0
        last = self.last_marks
        while shared < len(marks) and shared < len(last) and marks[shared] is last[shared]:
            shared += 1
        return marks[:shared]

    def _flush_break(self) -> None:
        if self.want_break and self.runs:
            # The break belongs outside any element opened or closed around it,
            # so a quote or code block does not start or end with blank lines.
            self.runs.append(Run("\n" * self.want_break, self._outer(self.marks()), brk=True))
            self.want_space = False
        self.want_break = 0

    def emit(
        self, text: str, marks: tuple[Mark, ...] | None = None, *, label: bool = False
    ) -> None:
        """Append text verbatim (already cleaned), after any pending break or space."""
        if not text:
            return
        marks = self.marks() if marks is None else marks
        self._flush_break()
        if self.want_space and self.runs and not self.runs[-1].text.endswith((" ", "\n")):
            # Like the break: "by<a> name</a>" links "name", not " name".
            outer = self._outer(marks)
            if len(outer) == len(marks):
                text = " " + text
            else:
                self.runs.append(Run(" ", outer))
        self.want_space = False
        self.runs.append(Run(text, marks, label=label))
        self.last_marks = marks

    # -- HTMLParser callbacks -------------------------------------------

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        data = clean_text(data.replace("\r\n", "\n").replace("\r", "\n"))
        if self._in_pre():
            if not self.runs or self.runs[-1].brk or self.want_break:
                data = data.removeprefix("\n")
            self.emit(data)
            return
        if self.plain_text:
            # A feed that sends plain text means its line breaks.
            for i, line in enumerate(data.split("\n")):
                if i:
                    self.want_break = min(self.want_break + 1, 2)
                self._inline_text(line)
            return
        self._inline_text(data)

    def _inline_text(self, data: str) -> None:
        if not data:
            return
        lead = data[0] in " \t\n\r\f"
        trail = data[-1] in " \t\n\r\f"
        text = _WS.sub(" ", data).strip(" ")
        if lead:
            self.want_space = True
        if text:
            self.emit(text)
            self.want_space = trail

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in _VOID:
            if not self.skipping:
                self._void(tag, a)
            elif tag == "source" and self.skipping == 1 and self.stack[-1].tag in _PLAYERS:
                self._player_link(self.stack[-1], a.get("src"))
            return
        if len(self.stack) >= _MAX_DEPTH:
            return  # absurd nesting: keep the text, ignore the structure
        self._implied_end(tag)
        el = _Open(tag)
        self.stack.append(el)
        if tag == "pre":
            self.pre_depth += 1
        self._marks = None
        if tag in _SKIP or _hidden(a):
            el.skip = True
            self.skipping += 1
            if tag in _PLAYERS and self.skipping == 1:
                self._player_link(el, a.get("src"))
            return
        if self.skipping:
            return
        if tag in _BLOCK:
            self.brk(self._block_gap(tag, self.stack[:-1]))
        el.mark = self._mark_for(tag, a)
        if el.mark is not None:
            self._marks = None
        if tag in ("ul", "ol"):
            start = a.get("start") or ""
            el.counter = int(start) if tag == "ol" and start.strip().isdigit() else 1
            if tag == "ul":
                el.counter = None
        elif tag == "li":
            self._bullet()
        elif tag in ("td", "th"):
            row = next((o for o in reversed(self.stack) if o.tag == "tr"), None)
            if row is not None:
                if row.cells:
                    self.emit(" | ")
                    self.want_space = False
                row.cells += 1

    def _mark_for(self, tag: str, a: dict[str, str | None]) -> Mark | None:
        """The Telegram element for a source element, if it may go here.

        Telegram allows nothing inside code/pre, no link in a link, no code
        or blockquote in a link, and no blockquote in a blockquote.
        """
        tags = self._tags()
        in_code = bool(tags & {"code", "pre"})
        if tag in _HEADINGS:
            return Mark("b") if not in_code and "b" not in tags else None
        if tag == "code" and self._code_in_pre(a):
            return None
        if tag in _INLINE:
            kind = _INLINE[tag]
            ok = not in_code and kind not in tags and not (kind == "code" and "a" in tags)
            return Mark(kind) if ok else None
        if tag == "a" and not in_code and "a" not in tags:
            href = clean_url(a.get("href"), self.base)
            return Mark("a", href=href) if href else None
        if tag == "pre" and not in_code and "a" not in tags:
            return Mark("pre")
        if tag == "blockquote" and not (tags & {"a", "code", "pre", "blockquote"}):
            return Mark("blockquote")
        return None

    def _code_in_pre(self, a: dict[str, str | None]) -> bool:
        """<pre><code class="language-x"> names the pre's language (before any text)."""
        if len(self.stack) < 2 or self.stack[-2].tag != "pre":
            return False
        pre = self.stack[-2]
        if pre.mark is None or pre.mark.lang or pre.mark in self.last_marks:
            return False
        m = re.search(r"(?:^|\s)(?:language|lang)-([A-Za-z0-9_+#.-]{1,32})", a.get("class") or "")
        if m:
            pre.mark = Mark("pre", lang=m.group(1))
            self._marks = None
        return True

    @staticmethod
    def _block_gap(tag: str, parents: list[_Open]) -> int:
        """A list is a paragraph of its own, unless it is nested in another."""
        if tag in ("ul", "ol", "dl") and not any(o.tag in ("ul", "ol") for o in parents):
            return 2
        return _BLOCK[tag]

    def _bullet(self) -> None:
        lists = [o for o in self.stack if o.tag in ("ul", "ol")]
        self.brk(1)
        if not lists:
            self.emit("• ")
            return
        indent = "  " * (len(lists) - 1)
        parent = lists[-1]
        if parent.counter is not None:
            self.emit(f"{indent}{parent.counter}. ")
            parent.counter += 1
        else:
            self.emit(f"{indent}• ")

    def _player_link(self, el: _Open, src: str | None) -> None:
        """A <video>/<audio> becomes a link to its file, on its own line."""
        url = clean_url(src, self.base)
        if el.linked or not url or url in self.skip_urls:
            return
        if self._tags() & {"a", "code", "pre"}:
            return
        el.linked = True
        self.brk(1)
        outer = tuple(o.mark for o in self.stack[:-1] if o.mark is not None)
        self.emit(_PLAYERS[el.tag], (*outer, Mark("a", href=url)), label=True)
        self.brk(1)

    def _void(self, tag: str, a: dict[str, str | None]) -> None:
        if tag == "br":
            if self._in_pre():
                self.emit("\n")
            else:
                self.want_break = min(self.want_break + 1, 2)
        elif tag == "hr":
            self.brk(2)
            self.rules.append(len(self.runs))
        elif tag == "img":
            self._image(a)
        elif tag == "wbr":
            pass

    def _image(self, a: dict[str, str | None]) -> None:
        raw = img_src(a)
        src = clean_url(raw, self.base)
        if not src or is_tracker(src, a):
            return
        if is_small(src, a) and not is_emoji(src, a):
            return
        alt = collapse(a.get("alt") or "")
        if is_emoji(src, a):
            self.emit(alt[:8])
            return
        tags = self._tags()
        if src in self.skip_urls or tags & {"code", "pre"}:
            return
        if "a" in tags:
            # The image is the content of a link: show something to click.
            self.emit(alt[:60] or "🖼", label=not alt)
            return
        # A line of its own, as a picture would be: glued to the text it
        # reads as part of the first sentence ("🖼 image总是有很多…").
        self.brk(1)
        self.emit("🖼 " + (alt[:60] or "image"), (*self.marks(), Mark("a", href=src)), label=True)
        self.brk(1)

    def _implied_end(self, tag: str) -> None:
        """HTML closes an open <p> or <li> when the next one starts."""
        if tag == "li":
            for i in range(len(self.stack) - 1, -1, -1):
                if self.stack[i].tag in ("ul", "ol"):
                    break
                if self.stack[i].tag == "li":
                    self._pop_to(i)
                    break
        elif tag in _ENDS_P and self.stack and self.stack[-1].tag == "p":
            self._pop_to(len(self.stack) - 1)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i].tag == tag:
                self._pop_to(i)
                return
        if tag == "p" and not self.skipping:
            self.brk(2)  # a stray </p> still ends a paragraph (browsers agree)
        elif tag == "br" and not self.skipping:
            self._void("br", {})

    def _pop_to(self, i: int) -> None:
        while len(self.stack) > i:
            el = self.stack.pop()
            self._marks = None
            if el.tag == "pre":
                self.pre_depth -= 1
            if el.skip:
                self.skipping -= 1
            elif not self.skipping:
                if el.tag == "pre":
                    self._trim_pre()
                if el.tag in _HEADINGS:
                    self.brk(1)
                elif el.tag in _BLOCK:
                    self.brk(self._block_gap(el.tag, self.stack))

    def _trim_pre(self) -> None:
        """A <pre>'s last newline is not a line of its own."""
        if self.runs and not self.runs[-1].brk:
            last = self.runs[-1]
            self.runs[-1] = Run(last.text.rstrip("\n"), last.marks)

    def close(self) -> None:
        super().close()
        self._pop_to(0)


def _drop_footer(runs: list[Run], rules: list[int]) -> list[Run]:
    """Drop what follows the last <hr> when it is a short footer under a real text.

    Aggregators and blog engines append "more feeds at …" or share links there;
    they should not take the reader's (or the caption's) space.
    """
    if not rules:
        return runs
    cut = rules[-1]
    tail = collapse(plain(runs[cut:]))
    head = collapse(plain(runs[:cut]))
    if len(tail) <= 300 and len(head) >= 2 * len(tail) and len(head) >= 100:
        return runs[:cut]
    return runs


_MONTHS = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?"
_ZONE = r"(?:\s*(?:Z|GMT|UTC|[A-Z]{3,4}|[+-]\d\d:?\d\d))?"
#: A machine-written publication stamp with a time of day ("Wed, 12 Jan 2022
#: 01:43:14 GMT", "2022-01-12T01:43:14Z"): dates alone may be an event's.
_TIMESTAMP = re.compile(
    r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,?\s+)?\d{1,2}\s+" + _MONTHS + r"\s+\d{4}"
    r"\s+\d{1,2}:\d\d(?::\d\d)?"
    + _ZONE
    + r"|\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?"
    + _ZONE,
    re.I,
)


def _drop_timestamp(runs: list[Run]) -> list[Run]:
    """Drop a first line that is only the entry's publication stamp.

    Aggregators put one at the top of the body; the message already arrives
    when the entry is new, and a "Wed, 12 Jan 2022 01:43:14 GMT" reads as
    noise (in a Chinese message, doubly so).
    """
    text = plain(runs)
    end = text.find("\n")
    if end < 0 or not _TIMESTAMP.fullmatch(text[:end].strip()):
        return runs
    return drop_prefix(runs, end)


_TAG_LIKE = re.compile(r"<[A-Za-z!/?]")


def convert(
    html: str, base: str | None = None, skip_urls: frozenset[str] = frozenset()
) -> list[Run]:
    """Runs for a feed entry's HTML (or plain text); images in ``skip_urls`` omitted."""
    if not html:
        return []
    parser = _Converter(base, skip_urls, plain_text=not _TAG_LIKE.search(html))
    parser.feed(html)
    parser.close()
    return _drop_timestamp(tidy(_drop_footer(parser.runs, parser.rules)))
