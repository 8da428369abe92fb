"""Bounded work per host, for the fetches users cause (/subscribe, imports).

A public bot's users may point it at a server that stalls: each such fetch
holds a slot until its deadline. A few slots per host keep one slow host
from taking every slot, so everyone else's /subscribe goes on at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

#: Fetches at once to any one host ...
PER_HOST = 4
#: ... and how long one may wait for its turn; past that the host is "busy".
#: A fast host turns its slots over in milliseconds (a crowd subscribing to
#: one popular feed is served at once); a stalling one holds them up to the
#: fetch deadline, and the crowd behind it is told so instead of waiting.
MAX_WAIT = 10.0


class HostBusy(Exception):
    """A fetch of this host waited MAX_WAIT for a slot: its fetches are stalling."""


class HostSlots:
    def __init__(self, per_host: int = PER_HOST, max_wait: float = MAX_WAIT) -> None:
        self._per_host = per_host
        self._max_wait = max_wait
        #: host → (semaphore, holders and waiters): dropped when nobody uses it.
        self._hosts: dict[str, tuple[asyncio.Semaphore, int]] = {}

    @asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[None]:
        try:
            host = (urlsplit(url).hostname or "").lower()
        except ValueError:
            host = ""
        semaphore, users = self._hosts.get(host, (asyncio.Semaphore(self._per_host), 0))
        self._hosts[host] = (semaphore, users + 1)
        try:
            try:
                await asyncio.wait_for(semaphore.acquire(), self._max_wait)
            except TimeoutError:
                raise HostBusy(host) from None
            try:
                yield
            finally:
                semaphore.release()
        finally:
            semaphore, users = self._hosts[host]
            if users <= 1:
                del self._hosts[host]
            else:
                self._hosts[host] = (semaphore, users - 1)

    def busy_hosts(self) -> int:
        return len(self._hosts)
