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
PER_HOST = 2
#: ... and how many more may wait for one; past that the host is "busy".
QUEUE_PER_HOST = 10


class HostBusy(Exception):
    """Too many fetches of one host are running or waiting already."""


class HostSlots:
    def __init__(self, per_host: int = PER_HOST, queue: int = QUEUE_PER_HOST) -> None:
        self._per_host = per_host
        self._queue = queue
        #: host → (semaphore, holders and waiters): dropped when nobody uses it.
        self._hosts: dict[str, tuple[asyncio.Semaphore, int]] = {}

    @asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[None]:
        try:
            host = (urlsplit(url).hostname or "").lower()
        except ValueError:
            host = ""
        semaphore, users = self._hosts.get(host, (asyncio.Semaphore(self._per_host), 0))
        if users >= self._per_host + self._queue:
            raise HostBusy(host)
        self._hosts[host] = (semaphore, users + 1)
        try:
            async with semaphore:
                yield
        finally:
            semaphore, users = self._hosts[host]
            if users <= 1:
                del self._hosts[host]
            else:
                self._hosts[host] = (semaphore, users - 1)

    def busy_hosts(self) -> int:
        return len(self._hosts)
