"""A strict, independent model of how Telegram's Bot API parses ``parse_mode=HTML``.

It follows TDLib's ``parse_html`` (tag and attribute syntax, error messages and
byte offsets) and the Bot API's documented rules, and is deliberately *stricter*
than Telegram where Telegram silently tolerates or rewrites something a renderer
should never produce:

* a bare ``&`` that is not one of ``&lt; &gt; &amp; &quot;`` or a numeric
  entity (with its ``;``) is an error (Telegram shows it literally);
* a bare ``>`` in text is an error (the docs say it must be escaped);
* attributes other than the documented ones (``a href``, ``span class``,
  ``code class``, ``tg-emoji emoji-id``, ``blockquote expandable``) are errors
  (Telegram ignores them);
* ``<a>`` needs a non-empty ``href`` with an http(s)/tg/ton/mailto/ftp/tel URL,
  without spaces or control characters (Telegram drops bad links silently);
* nesting follows the Bot API's entity rules: nothing inside ``code``; inside
  ``pre`` only one ``code`` wrapping all of it; no link, code, pre, custom emoji
  or blockquote inside ``a``; no blockquote inside blockquote; ``language-``
  classes only on a ``code`` directly inside ``pre``;
* length is counted on the parsed text before Telegram trims it.

Nothing here imports the bot: it is the oracle the renderer is tested against.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "TelegramHTMLError",
    "check_message",
    "parse_telegram_html",
    "utf16_len",
]

MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024

_PREFIX = "Bad Request: can't parse entities: "

_ALLOWED_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "tg-emoji",
        "code",
        "pre",
        "blockquote",
    }
)
_ALLOWED_ATTRS = {
    "a": {"href"},
    "span": {"class"},
    "code": {"class"},
    "tg-emoji": {"emoji-id"},
    "blockquote": {"expandable"},
}
_ENTITY_TYPE = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "tg-emoji": "custom_emoji",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_URL_SCHEMES = ("http", "https", "tg", "ton", "mailto", "ftp", "tel")
# TDLib's is_space: these end a tag name or an attribute name.
_SPACES = " \t\r\n\0\v"
# What Telegram trims or removes before deciding a message is empty.
_INVISIBLE = (
    "\u200b\u200c\u200d\u200e\u200f\u2060\ufeff\u3164\u115f\u1160\u2800"
    "\u202a\u202b\u202c\u202d\u202e\u2028\u2029"
)
_NAME_TOKEN = re.compile(r"[A-Za-z0-9.\-]+")


class TelegramHTMLError(ValueError):
    """What Telegram answers with a 400 Bad Request."""


def utf16_len(s: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's limits and offsets."""
    return len(s) + sum(1 for ch in s if ord(ch) > 0xFFFF)


def _fail(message: str, text: str, pos: int) -> TelegramHTMLError:
    offset = len(text[:pos].encode("utf-8", "surrogatepass"))
    return TelegramHTMLError(f"{_PREFIX}{message} at byte offset {offset}")


def _decode_entity(text: str, i: int) -> tuple[str, int] | None:
    """Decode the entity at text[i] == '&'; return (char, next index) or None."""
    end = text.find(";", i + 1, i + 12)
    if end == -1:
        return None
    body = text[i + 1 : end]
    if body in _NAMED_ENTITIES:
        return _NAMED_ENTITIES[body], end + 1
    if body.startswith(("#x", "#X")) and re.fullmatch(r"[0-9A-Fa-f]{1,8}", body[2:]):
        code = int(body[2:], 16)
    elif body.startswith("#") and re.fullmatch(r"[0-9]{1,9}", body[1:]):
        code = int(body[1:])
    else:
        return None
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), end + 1


def _valid_url(url: str) -> bool:
    if not url or any(ch in url for ch in " <>\"'") or any(ord(ch) < 0x20 for ch in url):
        return False
    m = re.match(r"([A-Za-z][A-Za-z0-9+.\-]*):(.*)", url, re.S)
    if not m:
        return False
    scheme, rest = m.group(1).lower(), m.group(2)
    if scheme not in _URL_SCHEMES:
        return False
    if scheme in ("http", "https", "ftp"):
        host = re.match(r"//([^/?#]+)", rest)
        return bool(host and host.group(1).strip("@:."))
    return bool(rest)


class _Open:
    __slots__ = ("attrs", "children", "name", "offset")

    def __init__(self, name: str, attrs: dict[str, str], offset: int):
        self.name = name
        self.attrs = attrs
        self.offset = offset  # UTF-16 offset of the entity in the plain text
        # What a <pre> directly holds so far: "" nothing, "text", "code".
        self.children = ""


def _parse_attrs(text: str, i: int, tag: str, start: int) -> tuple[dict[str, str], int]:
    """Parse attributes from text[i]; return them and the index of the closing '>'."""
    attrs: dict[str, str] = {}
    n = len(text)
    while True:
        while i < n and text[i] in _SPACES:
            i += 1
        if i >= n:
            raise _fail("Unclosed start tag", text, start)
        if text[i] == ">":
            return attrs, i
        name_start = i
        while i < n and text[i] not in _SPACES and text[i] not in "=>":
            i += 1
        name = text[name_start:i].lower()
        if not name:
            raise _fail(f'Empty attribute name in the tag "{tag}"', text, start)
        while i < n and text[i] in _SPACES:
            i += 1
        if i >= n:
            raise _fail("Unclosed start tag", text, start)
        value = ""
        if text[i] == "=":
            i += 1
            while i < n and text[i] in _SPACES:
                i += 1
            if i >= n:
                raise _fail("Unclosed start tag", text, start)
            quote = text[i]
            if quote in "\"'":
                i += 1
                chars: list[str] = []
                while i < n and text[i] != quote:
                    if text[i] == "&":
                        decoded = _decode_entity(text, i)
                        if decoded is None:
                            raise _fail("Unsupported HTML entity in attribute value", text, i)
                        chars.append(decoded[0])
                        i = decoded[1]
                        continue
                    if text[i] == "<":
                        raise _fail("Unescaped '<' in attribute value", text, i)
                    chars.append(text[i])
                    i += 1
                if i >= n:
                    raise _fail("Unclosed start tag", text, start)
                i += 1
                value = "".join(chars)
                if i < n and text[i] not in _SPACES and text[i] != ">":
                    raise _fail("Missing space after attribute value", text, i)
            else:
                m = _NAME_TOKEN.match(text, i)
                if not m:
                    raise _fail("Unexpected end of name token", text, i)
                value = m.group(0)
                i = m.end()
                if i < n and text[i] not in _SPACES and text[i] != ">":
                    raise _fail("Unexpected end of name token", text, i)
        if name not in _ALLOWED_ATTRS.get(tag, set()):
            raise _fail(f'Unsupported attribute "{name}" in the tag "{tag}"', text, start)
        if name in attrs:
            raise _fail(f'Duplicate attribute "{name}" in the tag "{tag}"', text, start)
        attrs[name] = value


def _check_nesting(stack: list[_Open], tag: str, attrs: dict[str, str], text: str, pos: int):
    names = [o.name for o in stack]
    parent = names[-1] if names else None
    if "code" in names:
        raise _fail(f'Tag "{tag}" can\'t be nested inside "code"', text, pos)
    if "pre" in names and not (tag == "code" and parent == "pre"):
        raise _fail(f'Tag "{tag}" can\'t be nested inside "pre"', text, pos)
    if "a" in names and tag in ("a", "code", "pre", "tg-emoji", "blockquote"):
        raise _fail(f'Tag "{tag}" can\'t be nested inside "a"', text, pos)
    if "tg-emoji" in names:
        raise _fail(f'Tag "{tag}" can\'t be nested inside "tg-emoji"', text, pos)
    if tag == "blockquote" and "blockquote" in names:
        raise _fail('Tag "blockquote" can\'t be nested inside "blockquote"', text, pos)
    if tag == "code" and "class" in attrs:
        lang = attrs["class"]
        if not lang.startswith("language-") or len(lang) == len("language-"):
            raise _fail('Tag "code" supports only class "language-…"', text, pos)
        if parent != "pre":
            raise _fail("Programming language can be specified only inside <pre>", text, pos)
    if tag == "span" and attrs.get("class") != "tg-spoiler":
        raise _fail('Tag "span" must have class "tg-spoiler"', text, pos)
    if tag == "a" and not _valid_url(attrs.get("href", "")):
        raise _fail("Tag \"a\" must have a valid URL in attribute 'href'", text, pos)
    if tag == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
        raise _fail('Tag "tg-emoji" must have a numeric "emoji-id"', text, pos)
    if tag == "blockquote" and attrs.get("expandable", ""):
        raise _fail('Attribute "expandable" of "blockquote" takes no value', text, pos)


def _entity(opened: _Open, length: int) -> dict:
    kind = _ENTITY_TYPE[opened.name]
    ent: dict = {"type": kind, "offset": opened.offset, "length": length}
    if kind == "text_link":
        ent["url"] = opened.attrs["href"]
    elif kind == "custom_emoji":
        ent["custom_emoji_id"] = opened.attrs["emoji-id"]
    elif kind == "code" and "class" in opened.attrs:
        ent["language"] = opened.attrs["class"][len("language-") :]
    elif kind == "blockquote" and "expandable" in opened.attrs:
        ent["type"] = "expandable_blockquote"
    return ent


def parse_telegram_html(text: str) -> tuple[str, list[dict]]:
    """Parse like Telegram: return (plain text, entities) or raise TelegramHTMLError.

    Entity offsets and lengths are in UTF-16 code units, ordered by offset.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise TelegramHTMLError("Bad Request: strings must be encoded in UTF-8") from exc
    out: list[str] = []
    u16 = 0  # UTF-16 length of out so far
    stack: list[_Open] = []
    entities: list[dict] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "&":
            decoded = _decode_entity(text, i)
            if decoded is None:
                raise _fail("Unsupported HTML entity starting with '&'", text, i)
            ch, i = decoded
        elif ch == ">":
            raise _fail("Unescaped '>' in text", text, i)
        elif ch == "<":
            start = i
            if i + 1 < n and text[i + 1] == "/":
                if not stack:
                    raise _fail("Unexpected end tag", text, start)
                j = i + 2
                while j < n and text[j] not in _SPACES and text[j] != ">":
                    j += 1
                end_name = text[i + 2 : j].lower()
                while j < n and text[j] in _SPACES:
                    j += 1
                if j >= n or text[j] != ">":
                    raise _fail("Unclosed end tag", text, start)
                opened = stack[-1]
                if end_name != opened.name:
                    raise _fail(
                        f'Unmatched end tag, expected "</{opened.name}>", found "</{end_name}>"',
                        text,
                        start,
                    )
                stack.pop()
                if u16 > opened.offset:
                    entities.append(_entity(opened, u16 - opened.offset))
                i = j + 1
                continue
            else:
                j = i + 1
                while j < n and text[j] not in _SPACES and text[j] != ">":
                    j += 1
                if j >= n:
                    raise _fail("Unclosed start tag", text, start)
                tag = text[i + 1 : j].lower()
                if tag not in _ALLOWED_TAGS:
                    raise _fail(f'Unsupported start tag "{tag}"', text, start)
                attrs, j = _parse_attrs(text, j, tag, start)
                _check_nesting(stack, tag, attrs, text, start)
                if stack and stack[-1].name == "pre":
                    if stack[-1].children:
                        raise _fail('Tag "pre" must contain only one "code"', text, start)
                    stack[-1].children = "code"
                stack.append(_Open(tag, attrs, u16))
                i = j + 1
                continue
        else:
            i += 1
        if stack and stack[-1].name == "pre":
            if stack[-1].children == "code":
                raise _fail('Tag "pre" must contain only one "code"', text, i - 1)
            stack[-1].children = "text"
        out.append(ch)
        u16 += utf16_len(ch)
    if stack:
        raise TelegramHTMLError(
            f'{_PREFIX}Can\'t find end tag corresponding to start tag "{stack[-1].name}"'
        )
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _visible(plain: str) -> str:
    """The text after Telegram's cleaning: control characters dropped, trimmed."""
    kept = "".join(
        ch
        for ch in plain
        if ch in "\n\t" or (unicodedata.category(ch) not in ("Cc", "Cs") and ch not in _INVISIBLE)
    )
    return kept.strip()


def check_message(text: str, *, caption: bool = False) -> str:
    """Validate a message text (or a caption) as sendMessage/sendPhoto would.

    Returns the plain text. A caption may be empty (a media message without
    one, which Telegram accepts); a message text may not.
    """
    plain, _ = parse_telegram_html(text)
    if not caption and not _visible(plain):
        raise TelegramHTMLError("Bad Request: message text is empty")
    limit = CAPTION_LIMIT if caption else MESSAGE_LIMIT
    if utf16_len(plain) > limit:
        what = "message caption" if caption else "message"
        raise TelegramHTMLError(f"Bad Request: {what} is too long")
    return plain
