"""XMPP framing: namespaces, errors and the parsing of one frame.

Every frame is hostile input: at most ``MAX_FRAME`` bytes, parsed with
defusedxml (no DTDs, no entities).
"""

from __future__ import annotations

import html
from typing import Final
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from monitor.model import Reason
from monitor.net import NetError

__all__ = [
    "MAX_FRAME",
    "condition",
    "error_text",
    "esc",
    "parse_frame",
    "q",
]

MAX_FRAME: Final = 256 * 1024

NS_FRAMING: Final = "urn:ietf:params:xml:ns:xmpp-framing"
NS_STREAMS: Final = "http://etherx.jabber.org/streams"
NS_SASL: Final = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND: Final = "urn:ietf:params:xml:ns:xmpp-bind"
NS_CLIENT: Final = "jabber:client"
NS_STANZAS: Final = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_PING: Final = "urn:xmpp:ping"
NS_FOCUS: Final = "http://jitsi.org/protocol/focus"
NS_HTTPBIND: Final = "http://jabber.org/protocol/httpbind"
NS_XBOSH: Final = "urn:xmpp:xbosh"
NS_STREAM_ERRORS: Final = "urn:ietf:params:xml:ns:xmpp-streams"
NS_MUC: Final = "http://jabber.org/protocol/muc"
NS_MUC_USER: Final = "http://jabber.org/protocol/muc#user"


def q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def _text_of(elem: Element | None, limit: int = 200) -> str:
    if elem is None:
        return ""
    text = " ".join("".join(elem.itertext()).split())
    return text[:limit]


def condition(error: Element | None, ns: str = NS_STANZAS) -> str:
    """The defined condition of an error element (e.g. ``not-allowed``)."""
    if error is None:
        return "unknown"
    for child in error:
        if child.tag.startswith(f"{{{ns}}}") and not child.tag.endswith("}text"):
            return child.tag.split("}", 1)[1][:64]
    return "unknown"


def error_text(error: Element | None, ns: str = NS_STANZAS) -> str:
    return _text_of(error.find(q(ns, "text"))) if error is not None else ""


def parse_frame(data: str | bytes) -> Element:
    """One frame (or BOSH body) as an element: no DTDs, no entities, bounded size."""
    if len(data) > MAX_FRAME:
        raise NetError(Reason.XML_ERROR, "frame too large")
    try:
        elem: Element = fromstring(data, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError, LookupError, RecursionError) as exc:
        # LookupError: an unknown encoding in the XML declaration.
        raise NetError(Reason.XML_ERROR, f"bad XML frame: {str(exc)[:120]}") from None
    if elem.tag == q(NS_STREAMS, "error"):
        cond = condition(elem, NS_STREAM_ERRORS)
        text = error_text(elem, NS_STREAM_ERRORS)
        raise NetError(Reason.STREAM_ERROR, f"stream error {cond} {text}".strip())
    return elem
