"""Media URLs handed to a self-hosted Bot API server follow the fetcher's address rule."""

from __future__ import annotations

import pytest

from bot.address_guard import AddressPolicy
from bot.media_guard import MediaGuard, self_hosted
from bot.render import Message
from bot.render.media import MediaItem

ANSWERS = {
    "public.example": ["93.184.216.34"],
    "internal.example": ["10.0.0.7"],
    "mixed.example": ["93.184.216.34", "127.0.0.1"],
    "faß.example": ["127.0.0.1"],
}


class Resolver:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        for name, addresses in ANSWERS.items():
            if host == name or host == name.encode("idna").decode():
                return addresses
        if host == "xn--fa-hia.example":
            return ANSWERS["faß.example"]
        raise OSError("no such name")


def test_self_hosted_is_anything_but_telegrams_own_server() -> None:
    assert not self_hosted("https://api.telegram.org/bot")
    assert not self_hosted("https://API.Telegram.org./bot")
    assert self_hosted("http://127.0.0.1:8081/bot")
    assert self_hosted("https://telegram-api.internal/bot")


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("https://public.example/a.jpg", True),
        ("http://93.184.216.34/a.jpg", True),
        ("http://10.1.2.3/a.jpg", False),
        ("http://169.254.169.254/latest/meta-data", False),
        ("http://[::1]/a.jpg", False),
        ("http://[fd00:ec2::254]/a.jpg", False),
        ("http://2130706433/a.jpg", False),  # 127.0.0.1 as a number
        ("http://0x7f.1/a.jpg", False),
        ("http://localhost/a.jpg", False),
        ("http://internal.example/a.jpg", False),
        ("http://mixed.example/a.jpg", False),  # one private answer is enough
        ("http://faß.example/a.jpg", False),
        ("http://nowhere.example/a.jpg", False),  # does not resolve
        ("file:///etc/passwd", False),
        ("ftp://public.example/a.jpg", False),
    ],
)
async def test_which_media_urls_are_public(url: str, public: bool) -> None:
    guard = MediaGuard(AddressPolicy(), Resolver())
    assert await guard.is_public(url) is public


async def test_allow_private_and_allow_hosts_lift_the_rule_as_for_feeds() -> None:
    assert await MediaGuard(AddressPolicy(allow_private=True), Resolver()).is_public(
        "http://10.1.2.3/a.jpg"
    )
    guard = MediaGuard(AddressPolicy.build(False, ["internal.example"]), Resolver())
    assert await guard.is_public("http://internal.example/a.jpg")
    assert not await guard.is_public("http://10.1.2.3/a.jpg")


async def test_a_name_is_resolved_once_per_cache_period() -> None:
    now = [0.0]
    resolver = Resolver()
    guard = MediaGuard(AddressPolicy(), resolver, clock=lambda: now[0])
    for _ in range(3):
        assert await guard.is_public("https://public.example/a.jpg")
    assert resolver.asked == ["public.example"]
    now[0] += 301
    assert await guard.is_public("https://public.example/b.jpg")
    assert resolver.asked == ["public.example"] * 2


async def test_messages_with_one_private_item_are_refused_whole() -> None:
    guard = MediaGuard(AddressPolicy(), Resolver())
    good = MediaItem("photo", "https://public.example/a.jpg")
    bad = MediaItem("photo", "http://10.0.0.1/b.jpg")
    assert await guard([Message("x", (good,)), "plain notice"])
    assert not await guard([Message("x", (good, bad))])
    assert await guard([Message("no media")])
