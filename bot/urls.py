"""URLs: what a user typed made canonical, which addresses may be fetched, and
links without tracking parameters.

One module for every URL rule, so the fetcher, the subscription service and
dedupe agree. Host names are IDNA-encoded the way the HTTP client (yarl, used
by aiohttp) encodes them: IDNA 2008 with UTS 46 mapping, so ``faß.example`` is
``xn--fa-hia.example`` everywhere and never ``fass.example``.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

import idna

__all__ = [
    "InvalidURL",
    "ascii_host",
    "is_numeric_host",
    "is_public_address",
    "normalize_url",
    "strip_tracking",
]


class InvalidURL(ValueError):
    """What the user typed is not an http(s) URL. ``str(e)`` is one sentence."""


# ----------------------------------------------------------------- normalize_url

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_HOST_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


def ascii_host(host: str) -> str:
    """``host`` as the HTTP client puts it on the wire: yarl's rule (IDNA 2008
    with UTS 46 mapping, IDNA 2003 only for names IDNA 2008 refuses). The
    fetcher does not rely on this for safety (its resolver checks the name
    yarl made), but stored URLs then name the host the client connects to."""
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except UnicodeError:
        try:
            return host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise InvalidURL(f"“{host}” is not a valid host name.") from exc


def normalize_url(text: str) -> str:
    """User input → canonical http(s) URL.

    ``example.com/feed`` (no scheme) becomes ``https://example.com/feed``:
    most sites serve HTTPS, and a plain-HTTP site can be given with
    ``http://``. ``feed:`` / ``feed://`` URLs are accepted. Scheme and host are
    lowercased, the host IDNA-encoded, a default port and the fragment
    dropped, an empty path made ``/``, spaces and non-ASCII in path and query
    percent-encoded. Raises :class:`InvalidURL` otherwise.
    """
    raw = (text or "").strip().strip("<>").strip()
    if not raw:
        raise InvalidURL("Please send a feed URL, like https://example.com/feed.xml.")
    if any(ch in raw for ch in "\r\n\t"):
        raise InvalidURL("That is not a URL: it contains line breaks or tabs.")

    low = raw.lower()
    if low.startswith("feed://"):
        raw = "http://" + raw[7:]
    elif low.startswith("feed:"):
        raw = raw[5:]
    if raw.startswith("//"):
        raw = "https:" + raw

    match = _SCHEME.match(raw)
    if match and raw[match.end() : match.end() + 2] == "//":
        scheme = match.group(1).lower()
    elif match and not re.match(r"^\d", raw[match.end() :]) and "." not in match.group(1):
        # "javascript:…", "mailto:…", "data:…" (but not "example.com:8080/…").
        scheme = match.group(1).lower()
    else:
        scheme = ""
        raw = "https://" + raw
    if scheme and scheme not in ("http", "https"):
        raise InvalidURL(f"Only http and https feeds can be followed, not {scheme}: addresses.")

    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise InvalidURL("That is not a valid URL (check the host and port).") from exc
    scheme = parts.scheme.lower()
    hostname = parts.hostname
    if not hostname:
        raise InvalidURL("That URL has no host name.")
    if " " in parts.netloc:
        raise InvalidURL("That is not a URL: the host name contains spaces.")

    host = hostname.rstrip(".")
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        ip = None
    if ip is not None:
        host = f"[{ip.compressed}]" if ip.version == 6 else ip.compressed
    else:
        host = ascii_host(host).lower()
        labels = host.split(".")
        if not all(_HOST_LABEL.match(label) for label in labels):
            raise InvalidURL(f"“{hostname}” is not a valid host name.")
        if len(labels) < 2 and host != "localhost":
            raise InvalidURL(
                f"“{text.strip()}” is not a URL: a feed URL looks like https://example.com/feed."
            )

    netloc = host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{host}:{port}"
    if parts.username is not None:
        userinfo = parts.username + (f":{parts.password}" if parts.password is not None else "")
        netloc = f"{userinfo}@{netloc}"
    path = quote(parts.path, safe=_PATH_SAFE) or "/"
    query = quote(parts.query, safe=_QUERY_SAFE)
    return urlunsplit((scheme, netloc, path, query, ""))


# ------------------------------------------------------------------- addresses

#: Not caught by ``ipaddress``'s flags (or worth naming): deprecated IPv6
#: site-local, the cloud metadata services, local-use NAT64 (RFC 8215).
_REFUSED_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("fec0::/10", "100.64.0.0/10", "169.254.0.0/16", "fd00:ec2::/32", "64:ff9b:1::/48")
)
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if int(ip) >> 32 == 0 and int(ip) > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(ip))
    return None


def is_public_address(address: str) -> bool:
    """Whether connecting to ``address`` (an IP literal) reaches the public
    internet, not this host, the LAN or something special.

    Refused: loopback, private, link-local (169.254.169.254 included),
    CGNAT 100.64/10, multicast, unspecified, reserved, site-local fec0::/10,
    fd00:ec2::254, and the IPv4-mapped, IPv4-compatible, 6to4, Teredo and
    NAT64 forms of any refused IPv4 address.
    """
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            return is_public_address(str(inner))
        if ip.is_site_local:
            return False
    if any(ip in net for net in _REFUSED_NETWORKS if net.version == ip.version):
        return False
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


_NUMBER_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.I)


def is_numeric_host(host: str) -> bool:
    """Whether ``host`` is an IPv4 address written the old ``inet_aton`` way
    (``2130706433``, ``0x7f.1``, ``017700000001``, ``127.1``) rather than as
    a canonical dotted quad: resolvers turn these into addresses, and they
    exist to slip past checks, so they are refused outright."""
    host = host.rstrip(".")
    labels = host.split(".")
    if not host or len(labels) > 4 or not all(_NUMBER_LABEL.match(x) for x in labels):
        return False
    try:
        return str(ipaddress.IPv4Address(host)) != host
    except ValueError:
        return True


# -------------------------------------------------------------------- tracking

#: Parameters that only say where a click came from (lowercase).
TRACKING_PARAMETERS = frozenset(
    {
        *("fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid"),
        *("mc_cid", "mc_eid", "igshid", "_hsenc", "_hsmi", "__hstc", "__hssc", "__hsfp"),
        *("hsctatracking", "wt_mc", "wt_zmc", "wt.mc_id", "mkt_tok", "ttclid", "twclid"),
        *("li_fat_id", "oly_anon_id", "oly_enc_id", "vero_id", "vero_conv", "_openstat"),
        *("rb_clickid", "s_cid", "srsltid", "ncid", "cmpid", "sc_cid", "at_medium"),
        "at_campaign",
    }
)
#: Prefixes of tracking parameter names (lowercase).
TRACKING_PREFIXES = ("utm_",)


def is_tracking_parameter(name: str) -> bool:
    key = unquote_plus(name).strip().lower()
    return key in TRACKING_PARAMETERS or key.startswith(TRACKING_PREFIXES)


def strip_tracking(url: str) -> str:
    """``url`` without its well-known tracking parameters (``utm_*``,
    ``fbclid``, ``gclid``, Heise's ``wt_mc``, …). Every other parameter stays,
    byte for byte and in its order; a URL without tracking parameters comes
    back unchanged."""
    if "?" not in url:
        return url  # most links: no query, nothing to parse
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.query:
        return url
    pairs = parts.query.split("&")
    kept = [p for p in pairs if not is_tracking_parameter(p.split("=", 1)[0])]
    if len(kept) == len(pairs):
        return url
    return urlunsplit(parts._replace(query="&".join(kept)))
