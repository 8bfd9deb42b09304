"""The one boundary where network failures become a (reason, detail) pair.

Every failure on the server's side (or the network's) is raised as one
class, ``NetError``, carrying a reason from the closed ``Reason`` set and a
detail fit to show: escaped through ``monitor.escape`` and bounded, never an
exception's text that may hold a URL with a token in it.
"""

from __future__ import annotations

import ssl
from typing import Final

from monitor import escape
from monitor.model import Reason

__all__ = ["NetError", "connect_failure", "dns_failure", "tls_failure"]


class NetError(Exception):
    """A step failed for a reason on the server's side (or the network's)."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def dns_failure(host: str, message: str) -> NetError:
    """A name that did not resolve; ``message`` is the resolver's own words."""
    return NetError(Reason.DNS_ERROR, f"cannot resolve {host}: {escape.plain(message, 200)}")


def connect_failure(host: str, port: int, errors: list[tuple[str, OSError]]) -> NetError:
    """No address of ``host`` took the connection: refused when every one refused."""
    refused = all(isinstance(exc, ConnectionRefusedError) for _, exc in errors)
    words = "; ".join(
        f"{addr}: connection refused"
        if isinstance(exc, ConnectionRefusedError)
        else f"{addr}: {escape.plain(exc.strerror or exc, 200)}"
        for addr, exc in errors
    )
    reason = Reason.CONNECT_REFUSED if refused else Reason.CONNECT_ERROR
    return NetError(reason, f"cannot connect to {host}:{port} ({words})")


# OpenSSL's words for "no TLS version in common".
_VERSION_WORDS: Final = ("PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL", "WRONG_VERSION_NUMBER")


def tls_failure(exc: BaseException) -> tuple[Reason, str]:
    """The reason of a failed TLS handshake and a detail that is never empty.

    A name that does not match (a host name, or an IP address in the URL) is
    ``tls_hostname_mismatch``; a server that only speaks TLS 1.0 or 1.1 is
    said to, whether it alerts or just drops the connection.
    """
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = getattr(exc, "verify_code", 0)
        message = escape.plain(getattr(exc, "verify_message", "") or str(exc), 200)
        if code == 10:  # X509_V_ERR_CERT_HAS_EXPIRED
            return Reason.TLS_EXPIRED, f"certificate has expired ({message})"
        # 62 X509_V_ERR_HOSTNAME_MISMATCH, 64 X509_V_ERR_IP_ADDRESS_MISMATCH
        if code in (62, 64) or "mismatch" in message.lower():
            return Reason.TLS_HOSTNAME_MISMATCH, f"certificate does not match the host ({message})"
        if code == 9:  # X509_V_ERR_CERT_NOT_YET_VALID
            return Reason.TLS_EXPIRED, f"certificate is not valid yet ({message})"
        return Reason.TLS_UNTRUSTED, f"certificate is not trusted ({message})"
    words = escape.plain(getattr(exc, "reason", None) or str(exc) or "", 200).strip()
    if any(w in words.upper() for w in _VERSION_WORDS):
        return Reason.TLS_ERROR, (
            f"TLS handshake failed: {words} (no TLS version in common: "
            "the monitor, like browsers, needs TLS 1.2 or newer)"
        )
    if isinstance(exc, ConnectionError | EOFError | ssl.SSLEOFError):
        closed = words or type(exc).__name__
        return Reason.TLS_ERROR, (
            f"TLS handshake failed: the server closed the connection ({closed}); it may offer "
            "only TLS 1.0 or 1.1, and the monitor, like browsers, needs TLS 1.2 or newer"
        )
    return Reason.TLS_ERROR, f"TLS handshake failed: {words or type(exc).__name__}"
