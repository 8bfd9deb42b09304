"""The media part of a ladder: STUN and TURN, found the way a participant's browser finds them.

- ``services``: the services of an XEP-0215 answer and of config.js, checked;
- ``extdisco``: the query after the XMPP login (the signalling stage's hook);
- ``client``: one STUN Binding or TURN Allocate over UDP, TCP or TLS (aioice);
- ``relay``: two allocations relaying a datagram to each other and back
  (``turn_relay``), whose results are ``relay_report``'s;
- ``probe``: the stage's probe: every service once, the ``stun``, ``turn``
  and ``turn_relay`` checks;
- ``result``: ``MediaReport`` (what a report holds of the family), ``MediaService``, ``MediaProbe``;
- ``family``: the family (rows, run, carried verdicts), ``metrics``, ``view``.
"""

from monitor.checks.media.extdisco import Discovery
from monitor.checks.media.probe import MediaOutcome, probe_media
from monitor.checks.media.services import is_google, parse_services, parse_stun_urls

__all__ = [
    "Discovery",
    "MediaOutcome",
    "is_google",
    "parse_services",
    "parse_stun_urls",
    "probe_media",
]
