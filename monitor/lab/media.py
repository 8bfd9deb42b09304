"""The lab's external services (XEP-0215): what a simulated server announces for its media path.

``answer`` is the lab's reply to a ``<services/>`` query; ``rest_services``
builds the announcement Prosody 0.12's ``mod_turn_external`` makes
(``mod_external_services.lua`` and ``mod_turn_external.lua`` as shipped in
Debian's prosody 0.12.3: STUN and TURN over UDP, both over TCP with
``turn_external_tcp``, ``turns`` on ``turn_external_tls_port``, TURN REST
credentials with an ``expires`` timestamp); ``hostile_services`` is an
answer a hostile server could send: a huge list, bogus hosts and ports,
private addresses, overlong credentials.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import time
from datetime import UTC, datetime

__all__ = ["answer", "hostile_services", "rest_services"]

NS_CLIENT = "jabber:client"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
EXTDISCO = ("urn:xmpp:extdisco:2", "urn:xmpp:extdisco:1")


def _a(value: object) -> str:
    return html.escape(str(value), quote=True)


def answer(iq_id: str, to: str, ns: str, services: str | None) -> str:
    """The reply to a services query: the ``<service/>`` elements, or (None) an error
    as from a server without the external-services module."""
    if services is None:
        return (
            f"<iq xmlns='{NS_CLIENT}' type='error' id='{_a(iq_id)}' from='{_a(to)}'>"
            f"<error type='cancel'><service-unavailable xmlns='{NS_STANZAS}'/></error></iq>"
        )
    return (
        f"<iq xmlns='{NS_CLIENT}' type='result' id='{_a(iq_id)}' from='{_a(to)}'>"
        f"<services xmlns='{_a(ns)}'>{services}</services></iq>"
    )


def rest_services(
    host: str,
    port: int,
    secret: str,
    *,
    tcp: bool = True,
    tls_port: int | None = None,
    ttl: float = 86400,
) -> str:
    """What mod_turn_external announces for these settings, credentials included."""
    expires = int(time.time() + ttl)
    username = str(expires)
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    password = base64.b64encode(digest).decode()
    stamp = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    creds = f" username='{_a(username)}' password='{_a(password)}' expires='{stamp}' restricted='1'"
    items = [("stun", "udp", port, ""), ("turn", "udp", port, creds)]
    if tcp:
        items += [("stun", "tcp", port, ""), ("turn", "tcp", port, creds)]
    if tls_port is not None:
        items.append(("turns", "tcp", tls_port, creds))
    return "".join(
        f"<service type='{kind}' transport='{transport}' host='{_a(host)}' port='{p}'{extra}/>"
        for kind, transport, p, extra in items
    )


def hostile_services(count: int = 3000) -> str:
    """A huge answer (some 230 kB, under the client's frame limit) with every kind of bad
    entry, then ``count`` services that look fine but do not resolve."""
    bad = [
        "<service type='turn' transport='udp' host='10.1.2.3' port='3478' username='u' "
        "password='p'/>",
        "<service type='turn' transport='udp' host='169.254.169.254' port='80'/>",
        "<service type='stun' transport='udp' host='bad host!' port='3478'/>",
        "<service type='stun' transport='udp' host='a.example' port='99999'/>",
        "<service type='stun' transport='udp' host='a.example' port='-1'/>",
        "<service type='turn' transport='sctp' host='a.example' port='3478'/>",
        "<service type='ftp' transport='tcp' host='a.example' port='21'/>",
        "<service type='turns' transport='udp' host='a.example' port='5349'/>",
        "<service type='turn' transport='udp' host='a.example' port='3478' "
        f"username='{'u' * 5000}' password='p'/>",
        "<service type='stun' transport='udp' host='\u202egro.example' port='1'/>",
    ]
    filler = "<service type='stun' transport='udp' host='s{i}.stun.invalid' port='{port}'/>"
    rest = "".join(filler.format(i=i, port=1000 + i % 60000) for i in range(count))
    return "".join(bad) + rest
