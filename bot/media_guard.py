"""Media URLs handed to a self-hosted Bot API server (issue 9).

Telegram's own servers (api.telegram.org) fetch an entry's media URLs from
the internet: those are Telegram's to fetch. A Bot API server the operator
runs (``telegram.api_base_url`` elsewhere) fetches them from inside the
operator's network, so a feed could point it at 10.0.0.1 or at the cloud
metadata address. There, media whose URL is not public by the fetcher's own
rule (bot/address_guard.py: literal addresses, numbers posing as addresses,
localhost, and every address a name resolves to) is not handed over: the
entry is sent as text instead.

What remains: the server resolves the name again itself, so a DNS server
that answers differently the second time is not caught here; only
downloading the media and uploading it would close that.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from bot.address_guard import AddressPolicy, RefusedAddress, Resolve
from bot.outgoing import Outgoing
from bot.render import Message
from bot.urls import ascii_host

log = logging.getLogger(__name__)

#: The Bot API servers Telegram runs: media URLs are fetched from outside.
TELEGRAM_API_HOSTS = frozenset({"api.telegram.org"})
#: How long a name's verdict is kept (a send must not cost a look-up each time).
CACHE_SECONDS = 300.0
#: A look-up slower than this counts as not public (and is retried later).
RESOLVE_TIMEOUT = 5.0
_CACHE_SIZE = 4096


def self_hosted(api_base_url: str) -> bool:
    """Whether ``telegram.api_base_url`` names a Bot API server other than Telegram's."""
    host = (urlsplit(api_base_url).hostname or "").rstrip(".").lower()
    return host not in TELEGRAM_API_HOSTS


def media_urls(messages: Sequence[Outgoing]) -> list[str]:
    return [item.url for m in messages if isinstance(m, Message) for item in m.media]


class MediaGuard:
    """Whether a media URL may be handed to the Bot API server: the
    fetcher's address policy and resolver, and a small cache of verdicts."""

    def __init__(
        self,
        policy: AddressPolicy,
        resolve: Resolve,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policy = policy
        self._resolve = resolve
        self._clock = clock
        #: host → (verdict, until)
        self._cache: dict[str, tuple[bool, float]] = {}

    async def __call__(self, messages: Sequence[Outgoing]) -> bool:
        """True when every media URL of ``messages`` is public."""
        for url in media_urls(messages):
            if not await self.is_public(url):
                log.warning("media %s is not on a public address; not handed to the server", url)
                return False
        return True

    async def is_public(self, url: str) -> bool:
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not host:
            return False
        try:
            self._policy.check_url_host(host)
        except RefusedAddress:
            return False
        if self._policy.exempt(host) or _is_literal(host):
            return True  # a literal address was checked just above
        cached = self._cache.get(host)
        now = self._clock()
        if cached is not None and cached[1] > now:
            return cached[0]
        verdict = await self._check_name(host, port)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[host] = (verdict, now + CACHE_SECONDS)
        return verdict

    async def _check_name(self, host: str, port: int) -> bool:
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT):
                addresses = await self._resolve(ascii_host(host), port)
            self._policy.check_addresses(host, addresses)
        except (OSError, ValueError, TimeoutError):  # RefusedAddress is an OSError
            return False
        return bool(addresses)


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return True
