"""feedparser made cheaper without changing one result.

feedparser joins the current xml:base with every element's own base on every
start tag (``urllib.parse.urljoin``, about 15% of a 47 KB feed's parse time
in the profile in bench/README.md), although the pair is the same for
nearly every element of a document. The join is a pure function of its two
strings, so a small cache of it gives the very same strings.
"""

from __future__ import annotations

from functools import lru_cache

import feedparser.mixin
import feedparser.urls

_join = feedparser.urls._urljoin


@lru_cache(maxsize=256)
def _cached_urljoin(base: str, uri: str) -> str:
    return _join(base, uri)


def _urljoin(base: object, uri: object) -> object:
    if isinstance(base, str) and isinstance(uri, str) and len(base) + len(uri) < 2048:
        return _cached_urljoin(base, uri)
    return _join(base, uri)


def install() -> None:
    """Idempotent."""
    feedparser.mixin._urljoin = _urljoin
