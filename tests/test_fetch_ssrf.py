"""The address rule (issue 9, server-side request forgery): a feed URL or a
redirect never makes the bot connect to a private address, whatever the URL
says and whatever DNS answers, unless the operator allowed it.

The tests play DNS with ``Fetcher(resolve=…)`` and watch every connection
attempt with ``socket_factory``: a public address is recorded and refused at
once (no traffic leaves the machine), 127.0.0.1 is really connected, so a
leak would reach the loopback feed server and show in its request count.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from bot.address_guard import AddressPolicy, GuardedResolver, RefusedAddress
from bot.fetch import Fetcher, FetchError
from testkit.feed_server import FeedServer

PUBLIC = "93.184.215.14"


class Net:
    """A DNS the test controls and a record of every connection attempt."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        #: host → successive answers (the last one repeats).
        self.answers = answers
        self.asked: list[str] = []
        self.connected: list[str] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        queue = self.answers[host]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def socket_factory(self, addr_info: tuple) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        self.connected.append(sockaddr[0])
        if sockaddr[0] != "127.0.0.1":
            raise ConnectionRefusedError("the test lets nothing leave the machine")
        return socket.socket(family, type_, proto)

    def fetcher(self, **kwargs: object) -> Fetcher:
        return Fetcher(
            timeout=3.0,
            resolve=self.resolve,
            socket_factory=self.socket_factory,
            **kwargs,  # type: ignore[arg-type]
        )


@pytest.fixture
async def server():
    async with FeedServer() as srv:
        srv.set_feed("/internal.xml", "<rss>secret</rss>")
        yield srv


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/feed",
        "http://app.localhost/feed",
        "http://[::1]/feed",
        "http://[::ffff:127.0.0.1]/feed",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://10.0.0.1/feed",
        "http://192.168.1.1/feed",
        "http://100.64.0.1/feed",
        "http://0.0.0.0/feed",
        "http://[fe80::1]/feed",
        "http://[fec0::1]/feed",
        "http://224.0.0.1/feed",
        "http://[64:ff9b::7f00:1]/feed",
        "http://[2002:7f00:1::]/feed",
    ],
)
async def test_private_literal_addresses_refused_before_connecting(url):
    net = Net({})
    async with net.fetcher() as fetcher:
        with pytest.raises(FetchError, match=r"^Refusing to fetch a private network address"):
            await fetcher.fetch(url)
    assert net.asked == [] and net.connected == []


@pytest.mark.parametrize(
    "url", ["http://2130706433/", "http://0x7f.1/", "http://017700000001/", "http://127.1/"]
)
async def test_hosts_written_as_numbers_refused(url):
    net = Net({h: [["127.0.0.1"]] for h in ("2130706433", "0x7f.1", "017700000001", "127.1")})
    async with net.fetcher() as fetcher:
        with pytest.raises(FetchError, match=r"^Refusing to fetch .*written as a number\.$"):
            await fetcher.fetch(url)
    assert net.asked == [] and net.connected == []


async def test_name_resolving_to_private_address_refused(server):
    net = Net({"intranet.example": [["10.0.0.7"]], "loop.example": [["127.0.0.1"]]})
    async with net.fetcher() as fetcher:
        with pytest.raises(FetchError) as info:
            await fetcher.fetch("http://intranet.example/feed")
        assert str(info.value) == (
            "Refusing to fetch a private network address (intranet.example is 10.0.0.7)."
        )
        with pytest.raises(FetchError, match=r"loop\.example is 127\.0\.0\.1"):
            await fetcher.fetch(f"http://loop.example:{server.port}/internal.xml")
    assert net.connected == []
    assert server.count("/internal.xml") == 0


async def test_one_private_answer_among_public_ones_refuses_the_name():
    net = Net({"mixed.example": [[PUBLIC, "127.0.0.1"]]})
    async with net.fetcher() as fetcher:
        with pytest.raises(FetchError, match=r"mixed\.example is 127\.0\.0\.1"):
            await fetcher.fetch("http://mixed.example/feed")
    assert net.connected == []


async def test_dns_rebinding_never_reaches_loopback(server):
    # First answer public, every later one 127.0.0.1: a check that looks the
    # name up apart from the connection would pass, then connect to 127.0.0.1.
    net = Net({"rebind.example": [[PUBLIC], ["127.0.0.1"]]})
    url = f"http://rebind.example:{server.port}/internal.xml"
    async with net.fetcher() as fetcher:
        with pytest.raises(FetchError, match="connection refused"):
            await fetcher.fetch(url)
        assert net.asked == ["rebind.example"]  # one look-up, no second one to connect
        assert net.connected == [PUBLIC]
        fetcher._client().connector.clear_dns_cache()  # type: ignore[union-attr]
        with pytest.raises(FetchError, match=r"rebind\.example is 127\.0\.0\.1"):
            await fetcher.fetch(url)
    assert net.connected == [PUBLIC]
    assert server.count("/internal.xml") == 0


async def test_redirect_to_non_ascii_host_is_checked_under_the_name_connected(server):
    # Issue 9, item 1: the check saw "fass" (old IDNA), the client connected
    # to "xn--fa-hia" (IDNA 2008). Here "fass" is public, the real name is not.
    server.redirect("/start.xml", f"http://faß.example:{server.port}/internal.xml", status=302)
    net = Net(
        {
            "start.example": [["127.0.0.1"]],
            "fass.example": [[PUBLIC]],
            "xn--fa-hia.example": [["127.0.0.1"]],
        }
    )
    async with net.fetcher(allow_hosts=["start.example"]) as fetcher:
        with pytest.raises(FetchError, match=r"xn--fa-hia\.example is 127\.0\.0\.1"):
            await fetcher.fetch(f"http://start.example:{server.port}/start.xml")
    assert net.asked == ["start.example", "xn--fa-hia.example"]
    assert server.count("/start.xml") == 1 and server.count("/internal.xml") == 0


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/internal.xml",
        "http://localhost:{port}/internal.xml",
        "http://other.internal:{port}/internal.xml",
        "http://2130706433:{port}/internal.xml",
    ],
)
async def test_allow_hosts_lifts_the_rule_for_those_hosts_only(server, target):
    server.set_feed("/ok.xml", "<rss/>")
    server.redirect("/hop.xml", target.format(port=server.port), status=302)
    net = Net({"feeds.internal": [["127.0.0.1"]], "other.internal": [["127.0.0.1"]]})
    async with net.fetcher(allow_hosts=["Feeds.Internal."]) as fetcher:
        result = await fetcher.fetch(f"http://feeds.internal:{server.port}/ok.xml")
        assert result.status == 200
        with pytest.raises(FetchError, match=r"^Refusing to fetch"):
            await fetcher.fetch(f"http://feeds.internal:{server.port}/hop.xml")
    assert server.count("/internal.xml") == 0


async def test_allow_private_lifts_the_rule(server):
    net = Net({"intranet.example": [["127.0.0.1"]]})
    async with net.fetcher(allow_private=True) as fetcher:
        result = await fetcher.fetch(f"http://intranet.example:{server.port}/internal.xml")
    assert result.body == b"<rss>secret</rss>"
    assert net.connected == ["127.0.0.1"]


async def test_redirect_from_public_to_private_refused(server):
    # The first hop is "public" (allowed by name here, as the test has no
    # public server); the second goes through the same checks.
    server.redirect("/feed.xml", "http://10.1.2.3/admin", status=301)
    net = Net({"public.example": [["127.0.0.1"]]})
    async with net.fetcher(allow_hosts=["public.example"]) as fetcher:
        with pytest.raises(FetchError, match=r"private network address \(10\.1\.2\.3\)"):
            await fetcher.fetch(f"http://public.example:{server.port}/feed.xml")
    assert net.connected == ["127.0.0.1"]


# ------------------------------------------------------------------ the resolver itself


def _resolver(answer: list[str], **policy: object) -> Callable:
    async def resolve(host: str, port: int) -> list[str]:
        return answer

    return GuardedResolver(AddressPolicy.build(**policy), resolve).resolve  # type: ignore[arg-type]


async def test_resolver_hands_over_exactly_the_checked_addresses():
    resolve = _resolver([PUBLIC, "2606:4700:4700::1111"], allow_private=False, allow_hosts=())
    results = await resolve("news.example", 443)
    assert [(r["hostname"], r["host"], r["port"]) for r in results] == [
        ("news.example", PUBLIC, 443),
        ("news.example", "2606:4700:4700::1111", 443),
    ]
    assert [r["family"] for r in results] == [socket.AF_INET, socket.AF_INET6]


async def test_resolver_refuses_private_answers():
    resolve = _resolver(["192.168.0.10"], allow_private=False, allow_hosts=())
    with pytest.raises(RefusedAddress):
        await resolve("news.example", 80)
