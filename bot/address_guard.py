"""Connect only to addresses that were checked: the fetcher's DNS resolver.

aiohttp's connector asks its resolver for the addresses of a host and connects
to what it is given. :class:`GuardedResolver` resolves the name once, checks
every address it got, and hands over only checked addresses, so there is no
second look-up for a DNS server to answer differently (DNS rebinding), and the
name checked is the very name the connector resolves (yarl's IDNA 2008
encoding: no ``faß`` → ``fass`` mismatch). IP literals do not reach a
resolver: :meth:`AddressPolicy.check_url_host` checks them before the request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult

from bot.urls import ascii_host, is_numeric_host, is_public_address

__all__ = ["AddressPolicy", "GuardedResolver", "RefusedAddress", "Resolve", "system_resolve"]

#: host, port → the IP addresses to connect to (raises OSError on failure).
Resolve = Callable[[str, int], Awaitable[list[str]]]


class RefusedAddress(OSError):
    """The host is, or resolves to, an address the bot must not fetch.
    ``str(e)`` is one user-facing sentence. An OSError so that aiohttp passes
    it through its connector as the cause of the connection error."""


async def system_resolve(host: str, port: int) -> list[str]:
    """getaddrinfo, once; addresses in the order the system gave them."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def _host_key(host: str) -> str:
    host = host.strip().strip("[]").rstrip(".").lower()
    try:
        return ipaddress.ip_address(host.split("%")[0]).compressed
    except ValueError:
        pass
    try:
        return ascii_host(host).lower()
    except ValueError:
        return host


@dataclass(frozen=True)
class AddressPolicy:
    """Which hosts may be fetched. By default only public addresses;
    ``allow_private`` lifts the rule, ``allow_hosts`` lifts it for those
    names (or literal addresses) only."""

    allow_private: bool = False
    allow_hosts: frozenset[str] = frozenset()

    @classmethod
    def build(cls, allow_private: bool, allow_hosts: Iterable[str]) -> AddressPolicy:
        return cls(allow_private, frozenset(_host_key(h) for h in allow_hosts if h.strip()))

    def exempt(self, host: str) -> bool:
        return self.allow_private or _host_key(host) in self.allow_hosts

    def check_url_host(self, host: str) -> None:
        """Before any connection: refuse a literal address that is not public,
        a number posing as an address, and ``localhost``. Raises RefusedAddress."""
        host = host.strip("[]").rstrip(".")
        if self.exempt(host):
            return
        if is_numeric_host(host):
            raise RefusedAddress(f"Refusing to fetch {host}: an address written as a number.")
        try:
            ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            if host.lower() == "localhost" or host.lower().endswith(".localhost"):
                raise RefusedAddress(
                    f"Refusing to fetch a private network address ({host})."
                ) from None
            return
        if not is_public_address(host):
            raise RefusedAddress(f"Refusing to fetch a private network address ({host}).")

    def check_addresses(self, host: str, addresses: list[str]) -> list[str]:
        """The addresses to connect to; raises RefusedAddress when any of them
        is not public (one bad answer makes the whole name suspect)."""
        if self.exempt(host):
            return addresses
        for address in addresses:
            if not is_public_address(address):
                raise RefusedAddress(
                    f"Refusing to fetch a private network address ({host} is {address})."
                )
        return addresses


class GuardedResolver(AbstractResolver):
    """aiohttp resolver: one look-up, every address checked, only checked
    addresses returned."""

    def __init__(self, policy: AddressPolicy, resolve: Resolve = system_resolve) -> None:
        self._policy = policy
        self._resolve = resolve

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await self._resolve(host, port)
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "no addresses")
        checked = self._policy.check_addresses(host, addresses)
        return [_result(host, address, port) for address in checked]

    async def close(self) -> None:
        return None


def _result(host: str, address: str, port: int) -> ResolveResult:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    result: dict[str, Any] = {
        "hostname": host,
        "host": address,
        "port": port,
        "family": family,
        "proto": socket.IPPROTO_TCP,
        "flags": socket.AI_NUMERICHOST,
    }
    return result  # type: ignore[return-value]
