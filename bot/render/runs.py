"""Runs: plain text with its stack of Telegram formatting, the renderer's model.

Feed markup is flattened into runs (see html.py). Runs are easy to measure
(Telegram counts the plain text), to cut anywhere, and to serialise back into
markup that is always well nested and closed, however broken the input was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape

from .text import cut_index, is_wide, prefix_fitting, utf16_len


@dataclass(frozen=True, slots=True, eq=False)
class Mark:
    """One Telegram element. Identity matters: two adjacent <b> stay two."""

    tag: str  # b i u s a code pre blockquote
    href: str | None = None  # for a
    lang: str | None = None  # for pre


@dataclass(frozen=True, slots=True)
class Run:
    text: str
    marks: tuple[Mark, ...] = ()
    #: A line break the converter inserted (collapsible), not text.
    brk: bool = False
    #: A stand-in the renderer wrote ("🖼 image"), not the author's words.
    label: bool = False


def plain(runs: list[Run]) -> str:
    return "".join(r.text for r in runs)


def _open(m: Mark) -> str:
    if m.tag == "a":
        return f'<a href="{escape(m.href or "")}">'
    if m.tag == "pre" and m.lang:
        return f'<pre><code class="language-{m.lang}">'
    return f"<{m.tag}>"


def _close(m: Mark) -> str:
    if m.tag == "pre" and m.lang:
        return "</code></pre>"
    return f"</{m.tag}>"


def serialize(runs: list[Run]) -> str:
    """Telegram HTML for runs: text escaped, elements opened and closed in order."""
    out: list[str] = []
    current: tuple[Mark, ...] = ()
    for run in runs:
        if not run.text:
            continue
        keep = 0
        while keep < len(current) and keep < len(run.marks) and current[keep] is run.marks[keep]:
            keep += 1
        out.extend(_close(m) for m in reversed(current[keep:]))
        out.extend(_open(m) for m in run.marks[keep:])
        out.append(escape(run.text, quote=False))
        current = run.marks
    out.extend(_close(m) for m in reversed(current))
    return "".join(out)


# How many line breaks an element asks for before and after itself:
# 2 = a paragraph (one blank line), 1 = a new line.


def tidy(runs: list[Run]) -> list[Run]:
    """Merge break runs (at most one blank line) and trim breaks at both ends."""
    out: list[Run] = []
    for run in runs:
        if not run.text:
            continue
        if run.brk and out and out[-1].brk:
            n = min(len(out[-1].text) + len(run.text), 2)
            out[-1] = Run("\n" * n, out[-1].marks, brk=True)
            continue
        out.append(run)
    while out and (out[0].brk or not out[0].text.strip()):
        out.pop(0)
    while out and (out[-1].brk or not out[-1].text.strip()):
        out.pop()
    if out:
        last = out[-1]
        out[-1] = Run(last.text.rstrip(), last.marks, label=last.label)
    return out


def first_line(runs: list[Run]) -> str:
    text = plain(runs)
    end = text.find("\n")
    return text if end < 0 else text[:end]


def drop_prefix(runs: list[Run], end: int) -> list[Run]:
    """Runs without the first ``end`` characters of their text (and the line
    breaks that then lead)."""
    out: list[Run] = []
    used = 0
    for run in runs:
        if used >= end:
            out.append(run)
        elif used + len(run.text) > end:
            rest = run.text[end - used :].lstrip("\n")
            out.append(Run(rest, run.marks, run.brk, run.label))
        used += len(run.text)
    return tidy(out)


_CLOSED_LINE = re.compile(r"[.!?…。！？:：;；)）\]”\"'»]\s*$")
_BARE_LINE = re.compile(r"\s*(?:[•|]|\d+\.)?\s*")


def truncate(runs: list[Run], limit: int) -> list[Run]:
    """The first ``limit`` characters of runs' plain text, cut at a good boundary."""
    text = plain(runs)
    cut = cut_index(text, limit)
    end = len(text[:cut].rstrip())
    line = text.rfind("\n", 0, end) + 1
    if line > limit // 2 and (
        _BARE_LINE.fullmatch(text, line, end)
        or (end - line < 60 and not _CLOSED_LINE.search(text, line, end))
    ):
        # Do not end on a bullet with nothing after it, or on a heading
        # whose section was cut away.
        cut = line
    out: list[Run] = []
    used = 0
    for run in runs:
        if used >= cut:
            break
        take = run.text[: cut - used]
        out.append(Run(take, run.marks, run.brk, run.label))
        used += len(take)
    return tidy(out)


def fit(runs: list[Run], budget: int, link: str | None) -> list[Run]:
    """Runs fitting ``budget`` UTF-16 units; when cut, they end in "…" and a link."""
    if utf16_len(plain(runs)) <= budget:
        return runs
    more = [Run(" "), Run("more", (Mark("a", href=link),))] if link else []
    room = budget - 2 - utf16_len(plain(more))  # 2: " …"
    if room <= 0:
        return []
    kept = truncate(runs, prefix_fitting(plain(runs), room))
    if not kept:
        return []
    last = plain(kept)[-1]
    # "word…" and "句子。…" read well; "sentence.…" does not.
    ellipsis = "…" if last.isalnum() or is_wide(last) else " …"
    return [*kept, Run(ellipsis), *more]
