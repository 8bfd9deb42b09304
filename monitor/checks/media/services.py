"""The media services of a server: parsed from its XEP-0215 answer and its config.js.

Both are untrusted. A service is kept only with a type of ``stun``, ``turn``
or ``turns``, a transport of ``udp`` or ``tcp`` (``turns`` is TLS over
TCP), a port from 1 to 65535 and a host that is an IP address or a DNS
name; at most ``max_services`` are kept, the rest refused with why.
Whether a service's address may be private is decided when it is resolved
(``check_address``, the one address policy of ``monitor.net.addresses``),
since a name can point anywhere.

An answer looks like this (Prosody 0.12's ``mod_external_services`` as
configured by ``mod_turn_external``; REST credentials: the username is
``expiry[:user]``, the password base64(HMAC-SHA1(secret, username))):

    <services xmlns="urn:xmpp:extdisco:2">
      <service type="stun" transport="udp" host="turn.example" port="3478"/>
      <service type="turn" transport="udp" host="turn.example" port="3478"
               username="1700000000" password="..." expires="2023-11-14T22:13:20Z"
               restricted="1"/>
      <service type="turns" transport="tcp" host="turn.example" port="5349" .../>
    </services>
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final
from urllib.parse import unquote
from xml.etree.ElementTree import Element

from monitor import escape
from monitor.checks.media.result import MediaService
from monitor.net.addresses import check_address

__all__ = [
    "NS_EXTDISCO_1",
    "NS_EXTDISCO_2",
    "Announced",
    "Credentials",
    "check_address",
    "is_google",
    "parse_services",
    "parse_stun_urls",
]

NS_EXTDISCO_2: Final = "urn:xmpp:extdisco:2"
NS_EXTDISCO_1: Final = "urn:xmpp:extdisco:1"
# Most <service/> elements read from one answer (the rest are counted, not read).
MAX_ELEMENTS: Final = 64
# Most refusals kept (with why), the rest counted.
MAX_REFUSED: Final = 16
# Longest username or password kept (REST usernames are ~20 characters).
MAX_CREDENTIAL: Final = 512
_HOST: Final = re.compile(
    r"(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?",
    re.IGNORECASE,
)
_GOOGLE: Final = re.compile(r"stun[0-9]*\.l\.google\.com", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a TURN service was announced with; never logged nor exported."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Announced:
    """The services to probe, their credentials (by service), and what was refused."""

    services: tuple[MediaService, ...] = ()
    credentials: dict[MediaService, Credentials] = field(default_factory=dict)
    refused: tuple[str, ...] = ()


def is_google(host: str) -> bool:
    """One of Google's public STUN servers (stun.l.google.com, stun1..4.l.google.com)."""
    return bool(_GOOGLE.fullmatch(host))


def _host(value: str) -> str | None:
    value = value.strip().lower().removeprefix("[").removesuffix("]")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    return value.rstrip(".") if _HOST.fullmatch(value.rstrip(".")) else None


def _port(value: str | None, default: int | None) -> int | None:
    if value is None or value == "":
        return default
    if not value.isascii() or not value.isdigit() or len(value) > 5:
        return None
    port = int(value)
    return port if 1 <= port <= 65535 else None


def _expires(value: str | None) -> float | None:
    if not value:
        return None
    try:
        stamp = datetime.fromisoformat(value[:64].replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp.timestamp() if stamp.tzinfo is not None else None


def parse_services(answer: Element, max_services: int) -> Announced:
    """The services of a ``<services/>`` element, in the server's order, deduplicated."""
    kept: list[MediaService] = []
    credentials: dict[MediaService, Credentials] = {}
    refused: list[str] = []
    elements = [e for e in answer if e.tag.endswith("}service")]
    if len(elements) > MAX_ELEMENTS:
        refused.append(f"{len(elements) - MAX_ELEMENTS} services past the first {MAX_ELEMENTS}")
    for elem in elements[:MAX_ELEMENTS]:
        kind = (elem.get("type") or "").lower()
        transport = (elem.get("transport") or ("tcp" if kind == "turns" else "udp")).lower()
        raw_host = elem.get("host") or ""
        shown = escape.plain(f"{kind}:{raw_host}:{elem.get('port') or ''}", 120)
        if kind not in ("stun", "turn", "turns"):
            refused.append(f"{shown}: not a STUN or TURN service")
            continue
        if transport not in ("udp", "tcp") or (kind == "turns" and transport != "tcp"):
            refused.append(f"{shown}: transport {escape.plain(transport, 20)} is not udp or tcp")
            continue
        host = _host(raw_host)
        port = _port(elem.get("port"), 5349 if kind == "turns" else 3478)
        if host is None or port is None:
            refused.append(f"{shown}: not a valid host and port")
            continue
        username, password = elem.get("username"), elem.get("password")
        has_credentials = bool(username) and password is not None
        if has_credentials and (
            len(username or "") > MAX_CREDENTIAL or len(password or "") > MAX_CREDENTIAL
        ):
            refused.append(f"{shown}: credentials too long")
            continue
        service = MediaService(
            type=kind,
            host=host,
            port=port,
            transport=transport,
            source="extdisco",
            credentials=has_credentials,
            expires=_expires(elem.get("expires")) if has_credentials else None,
            google=is_google(host),
        )
        if any(_same(service, k) for k in kept):
            continue
        if len(kept) >= max_services:
            refused.append(f"{shown}: more than {max_services} services")
            continue
        kept.append(service)
        if has_credentials:
            credentials[service] = Credentials(username or "", password or "")
    if len(refused) > MAX_REFUSED:
        refused[MAX_REFUSED - 1 :] = [f"and {len(refused) - MAX_REFUSED + 1} more refused"]
    return Announced(tuple(kept), credentials, tuple(refused))


def _same(a: MediaService, b: MediaService) -> bool:
    return (a.type, a.host, a.port, a.transport) == (b.type, b.host, b.port, b.transport)


def parse_stun_urls(urls: tuple[str, ...]) -> tuple[tuple[MediaService, ...], tuple[str, ...]]:
    """STUN services from config.js's ``p2p.stunServers`` URLs (RFC 7064 ``stun:host[:port]``)."""
    kept: list[MediaService] = []
    refused: list[str] = []
    for url in urls:
        scheme, _, rest = url.partition(":")
        shown = escape.plain(url, 120)
        if scheme.lower() not in ("stun", "stuns") or not rest or rest.startswith("//"):
            refused.append(f"{shown}: not a stun: URL")
            continue
        if scheme.lower() == "stuns":
            refused.append(f"{shown}: stuns (STUN over TLS) is not probed")
            continue
        rest = unquote(rest.partition("?")[0])
        if rest.startswith("["):
            raw_host, _, after = rest[1:].partition("]")
            raw_port = after.removeprefix(":") or None
        else:
            raw_host, _, port_text = rest.partition(":")
            raw_port = port_text or None
        host, port = _host(raw_host), _port(raw_port, 3478)
        if host is None or port is None:
            refused.append(f"{shown}: not a valid host and port")
            continue
        service = MediaService("stun", host, port, "udp", "config.js", google=is_google(host))
        if not any(_same(service, k) for k in kept):
            kept.append(service)
    return tuple(kept), tuple(refused)
