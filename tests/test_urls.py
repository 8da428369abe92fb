"""bot.urls: normalize_url, the address rules, tracking parameters."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.urls import (
    TRACKING_PARAMETERS,
    InvalidURL,
    ascii_host,
    is_numeric_host,
    is_public_address,
    is_tracking_parameter,
    normalize_url,
    strip_tracking,
)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.0.1", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("169.254.169.254", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b:1::a00:1", False),  # local-use NAT64 of 10.0.0.1
        ("fec0::1", False),  # deprecated site-local
        ("fd00:ec2::254", False),  # AWS metadata over IPv6
        ("::ffff:169.254.169.254", False),
        ("::7f00:1", False),  # IPv4-compatible 127.0.0.1
        ("2002:a9fe:a9fe::", False),  # 6to4 of 169.254.169.254
        ("100.127.255.254", False),  # CGNAT, top end
        ("198.18.0.1", False),  # benchmarking
        ("240.0.0.1", False),  # reserved
        ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8
        ("not an ip", False),
    ],
)
def test_is_public_address(address, public):
    assert is_public_address(address) is public


# ------------------------------------------------------------------ normalize_url


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.com/feed", "https://example.com/feed"),
        ("  https://Example.COM/Feed.xml  ", "https://example.com/Feed.xml"),
        ("HTTP://example.com", "http://example.com/"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("https://example.com:8443/a?x=1#frag", "https://example.com:8443/a?x=1"),
        ("example.com:8080/rss", "https://example.com:8080/rss"),
        ("feed://example.com/rss", "http://example.com/rss"),
        ("feed:https://example.com/rss", "https://example.com/rss"),
        ("//example.com/rss", "https://example.com/rss"),
        ("https://bücher.example/feed", "https://xn--bcher-kva.example/feed"),
        ("https://example.com/a b/ü", "https://example.com/a%20b/%C3%BC"),
        ("https://example.com/a%20b", "https://example.com/a%20b"),
        ("http://127.0.0.1:8000/feed", "http://127.0.0.1:8000/feed"),
        ("http://[::1]:8000/feed", "http://[::1]:8000/feed"),
        ("http://localhost:8000/feed", "http://localhost:8000/feed"),
        ("<https://example.com/feed>", "https://example.com/feed"),
        ("https://example.com./feed", "https://example.com/feed"),
    ],
)
def test_normalize_url(text, expected):
    assert normalize_url(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Please send a feed URL"),
        ("   ", "Please send a feed URL"),
        ("ftp://example.com/feed", "not ftp:"),
        ("file:///etc/passwd", "not file:"),
        ("javascript:alert(1)", "not javascript:"),
        ("mailto:someone@example.com", "not mailto:"),
        ("https://", "no host name"),
        ("hello world", "not a"),
        ("justaword", "is not a URL"),
        ("https://exa mple.com/", "not a"),
        ("https://example.com:99999/", "not a valid URL"),
        ("http://-bad-.example/", "not a valid host name"),
    ],
)
def test_normalize_url_rejects(text, message):
    with pytest.raises(InvalidURL, match=message) as info:
        normalize_url(text)
    assert isinstance(info.value, ValueError)
    assert str(info.value).endswith(".")


@pytest.mark.parametrize(
    ("host", "numeric"),
    [
        ("2130706433", True),
        ("0x7f.1", True),
        ("017700000001", True),
        ("0x7f000001", True),
        ("127.1", True),
        ("0177.0.0.1", True),
        ("127.0.0.1", False),  # canonical: checked as an address instead
        ("8.8.8.8", False),
        ("example.com", False),
        ("1.example", False),
        ("1.2.3.4.5", False),
    ],
)
def test_is_numeric_host(host, numeric):
    assert is_numeric_host(host) is numeric


@pytest.mark.parametrize(
    "host", ["faß.example", "FAß.Example", "bücher.example", "xn--fa-hia.example", "☃.example"]
)
def test_ascii_host_is_what_the_http_client_connects_to(host):
    import yarl

    assert yarl.URL(f"http://{host}/").raw_host == ascii_host(host).lower()


def test_ascii_host_is_idna_2008():
    assert ascii_host("faß.example") == "xn--fa-hia.example"
    assert normalize_url("http://faß.example/x") == "http://xn--fa-hia.example/x"


# ------------------------------------------------------------------ tracking


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://e.com/a?utm_source=x&utm_medium=y", "https://e.com/a"),
        ("https://e.com/a?id=3&utm_campaign=z&page=2", "https://e.com/a?id=3&page=2"),
        ("https://e.com/a?fbclid=1&gclid=2&b=%20&dclid=3&msclkid=4", "https://e.com/a?b=%20"),
        (
            "https://www.heise.de/news/x.html?wt_mc=rss.red.ho.ho.atom.beitrag",
            "https://www.heise.de/news/x.html",
        ),
        ("https://e.com/a?UTM_Source=x&q=1#top", "https://e.com/a?q=1#top"),
        (
            "https://e.com/a?mc_cid=1&mc_eid=2&yclid=3&igshid=4&_hsenc=5&_hsmi=6&wt_zmc=7",
            "https://e.com/a",
        ),
        ("https://e.com/a?utm=1&xutm_source=2", "https://e.com/a?utm=1&xutm_source=2"),
        ("https://e.com/a?b=2&a=1", "https://e.com/a?b=2&a=1"),
        ("https://e.com/a", "https://e.com/a"),
        ("not a url at all", "not a url at all"),
    ],
)
def test_strip_tracking(url, expected):
    assert strip_tracking(url) == expected


_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
_values = st.text(alphabet="abcXYZ0123456789-._~%", max_size=8)
_tracking = st.one_of(
    st.sampled_from(sorted(TRACKING_PARAMETERS)), _names.map(lambda n: "utm_" + n)
)


@given(
    params=st.lists(st.tuples(st.one_of(_names, _tracking), _values, st.booleans()), max_size=8),
    fragment=st.sampled_from(["", "#x"]),
)
def test_strip_tracking_properties(params, fragment):
    query = "&".join(f"{k}={v}" if with_value else k for k, v, with_value in params)
    url = "https://example.com/p" + (f"?{query}" if query else "") + fragment
    stripped = strip_tracking(url)
    # Idempotent.
    assert strip_tracking(stripped) == stripped
    # Every other parameter stays, byte for byte and in order; tracking ones go.
    kept = [f"{k}={v}" if w else k for k, v, w in params if not is_tracking_parameter(k)]
    assert urlsplit(stripped).query == "&".join(kept)
    assert not any(is_tracking_parameter(k) for k, _ in parse_qsl(urlsplit(stripped).query))
    # Scheme, host, path and fragment untouched.
    assert stripped.startswith("https://example.com/p")
    assert stripped.endswith(fragment)
    if not any(is_tracking_parameter(k) for k, _, _ in params):
        assert stripped == url
