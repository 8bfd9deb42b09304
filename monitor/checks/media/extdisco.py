"""Asking the XMPP server for its external services (XEP-0215), as lib-jitsi-meet does.

After the login, lib-jitsi-meet (modules/xmpp/strophe.jingle.js,
``getStunAndTurnCredentials``) sends
``<iq type="get" to="DOMAIN"><services xmlns="urn:xmpp:extdisco:2"/></iq>``
and, when that fails, the same with ``urn:xmpp:extdisco:1``. ``Discovery``
is the hook the signalling stage calls with its logged-in session; it
never fails the signalling check: whatever happens is kept for the media
stage.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final
from xml.etree.ElementTree import Element

from monitor import escape
from monitor.checks.media.services import (
    NS_EXTDISCO_1,
    NS_EXTDISCO_2,
    Announced,
    parse_services,
)
from monitor.checks.signalling.xmpp.framing import NS_CLIENT, condition, q
from monitor.net import NetError

__all__ = ["Discovery", "Query"]

# Longest wait for the answers (both namespaces together): the signalling ladder goes on after it.
ANSWER_TIMEOUT: Final = 3.0

# Sends an iq (type, to, payload, id prefix) and returns the answer.
Query = Callable[[str, str | None, str, str], Awaitable[Element]]


@dataclass(eq=False)  # compared and hashed as itself: it rides in frozen XmppSettings
class Discovery:
    """The extdisco query of one ladder and what it found (``done`` once asked)."""

    max_services: int
    # The ladder's deadline (loop time): the query takes at most a third of what is left.
    deadline: float
    done: bool = False
    announced: Announced | None = None
    # Why nothing was found (no answer, an error), when that is what happened.
    error: str | None = None
    namespace: str | None = None

    async def __call__(self, query: Query, domain: str) -> None:
        """Ask ``domain`` for its services over the logged-in session ``query`` sends on.

        Once per ladder: the token matrix's sessions (made from the same
        settings) do not ask again.
        """
        if self.done:
            return
        self.done = True
        errors = []
        loop = asyncio.get_running_loop()
        wait = min(ANSWER_TIMEOUT, max(0.0, self.deadline - loop.time()) / 3)
        ns = NS_EXTDISCO_2
        try:
            # One bound for both queries: a slow refusal of :2 leaves :1 only the rest.
            async with asyncio.timeout(wait):
                for ns in (NS_EXTDISCO_2, NS_EXTDISCO_1):
                    answer = await query("get", domain, f'<services xmlns="{ns}"/>', "extdisco")
                    if answer.get("type") == "result":
                        services = answer.find(q(ns, "services"))
                        if services is None:
                            self.error = f"the {ns} answer has no <services/>"
                            return
                        self.namespace = ns
                        self.announced = parse_services(services, self.max_services)
                        return
                    error = condition(answer.find(q(NS_CLIENT, "error")))
                    errors.append(f"{ns}: {escape.plain(error)}")
        except TimeoutError:
            refused = f" (after {'; '.join(errors)})" if errors else ""
            self.error = f"no answer to the {ns} query {wait:.1f} s into discovery{refused}"
            return
        except NetError as exc:
            self.error = f"the {ns} query ended the stream: {exc.detail}"
            return
        self.error = "the server refused the query (" + "; ".join(errors) + ")"
