"""The signalling part of a ladder: XMPP over WebSocket (RFC 7395) or BOSH, as a Jitsi client.

- ``framing``: namespaces, errors, and the parsing of one (hostile) frame;
- ``transport``: where signalling may go, and the WebSocket transport;
- ``bosh``: the BOSH transport, the fallback where WebSockets do not pass;
- ``session``: the steps (login, ping, focus, join, leave) and ``probe_xmpp``.
"""

from monitor.checks.signalling.xmpp.framing import MAX_FRAME
from monitor.checks.signalling.xmpp.session import (
    XmppResult,
    XmppSettings,
    probe_xmpp,
    signalling_checks,
    skipped_checks,
)
from monitor.checks.signalling.xmpp.transport import RedirectRefused, no_redirects

__all__ = [
    "MAX_FRAME",
    "RedirectRefused",
    "XmppResult",
    "XmppSettings",
    "no_redirects",
    "probe_xmpp",
    "signalling_checks",
    "skipped_checks",
]
