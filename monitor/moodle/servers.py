"""Moodle's Jitsi servers as plain values: each ``jitsi_servers`` row becomes a
``MoodleServer`` or a ``RowProblem``, never both, and a bad row never stops
the good ones.

The row shapes follow mod_jitsi (SergioComeron/moodle-mod_jitsi at
3e040231d89c8b732d33a5d7140d0099eba29d49, ``db/install.xml`` l.86-122,
``classes/local/session.php`` ``build_token``, ``classes/local/server.php``
``check_gcp_status``):

- type 0: no token. ``public`` for a known public instance, else ``self_hosted``;
- type 1 (self-hosted) and 3 (GCP): HS256 with ``appid`` and ``secret``;
  mod_jitsi hands out no token at all when either is empty, so neither do we;
- type 2: 8x8 JaaS, RS256 with ``eightbyeightappid``, ``eightbyeightapikeyid``
  and ``privatekey``;
- type 3 whose ``provisioningstatus`` is neither empty nor ``ready`` is "not
  provisioned" (mod_jitsi itself refuses to open its sessions), not down.

A domain is what the page loads (``https://<domain>/external_api.js``): a port
or a path is kept and probed as such. Whitespace, control characters, markup,
a scheme, credentials, a query or a fragment make the row a problem.

Secrets (``secret``, ``privatekey``) live only in ``SharedSecret`` and
``JaasKey``, whose reprs hide them; problems never quote them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import urlsplit

__all__ = [
    "MAX_KEY_CHARS",
    "MAX_ROWS",
    "PUBLIC_DOMAINS",
    "JaasKey",
    "MoodleServer",
    "RawRow",
    "RowProblem",
    "SharedSecret",
    "servers_from_rows",
    "slug",
]

# Known public instances: type 0 rows pointing there are watched as `public`.
PUBLIC_DOMAINS: Final = frozenset({"meet.jit.si", "8x8.vc"})
# A PEM RSA 8192 key is about 6.5 KB; anything past this is refused per row, and
# the reader never fetches it (the length is checked in SQL).
MAX_KEY_CHARS: Final = 16 * 1024
# mod_jitsi's char columns are 255 long; longer values come from a hand-made table.
MAX_FIELD_CHARS: Final = 255
# A site lists a handful of servers; past this, the rest are reported, not loaded.
MAX_ROWS: Final = 500
# A server name in the monitor (monitor.config.values.NAME) is at most 64 characters.
_NAME_MAX: Final = 64

RowReason = Literal[
    "empty_domain",
    "bad_domain",
    "unknown_type",
    "duplicate_domain",
    "key_too_large",
    "field_too_long",
    "incomplete_credentials",
    "too_many_rows",
    "active_server",
]

# What a browser would refuse or read differently in a host[:port][/path].
_FORBIDDEN = frozenset("<>\"'`{}|\\^@?#")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


@dataclass(frozen=True, slots=True)
class SharedSecret:
    """HS256 credentials of a type 1 or 3 row: ``iss`` is the app id."""

    app_id: str
    secret: str

    def __repr__(self) -> str:
        return f"SharedSecret(app_id={self.app_id!r}, secret=<hidden>)"


@dataclass(frozen=True, slots=True)
class JaasKey:
    """RS256 credentials of a type 2 row (8x8 JaaS)."""

    app_id: str  # eightbyeightappid: the token's sub, the room's prefix
    api_key_id: str  # eightbyeightapikeyid: the token header's kid
    private_key: str  # PEM

    def __repr__(self) -> str:
        return (
            f"JaasKey(app_id={self.app_id!r}, api_key_id={self.api_key_id!r}, private_key=<hidden>)"
        )


Credentials = SharedSecret | JaasKey


@dataclass(frozen=True, slots=True)
class MoodleServer:
    """One row of ``jitsi_servers``, ready to be watched."""

    id: int
    name: str  # as typed in Moodle (escape it wherever it is shown)
    slug: str  # the monitor's server name: <slug of name>-<id>
    type: int
    domain: str
    url: str
    kind: Literal["public", "self_hosted", "jaas"]
    credentials: Credentials | None
    # Type 3 only: its provisioningstatus while it is not ready; None otherwise.
    not_provisioned: str | None = None

    @property
    def labels(self) -> tuple[tuple[str, str], ...]:
        return (("moodle_server_id", str(self.id)),)


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A row that was not loaded (or a note on the site as a whole, with ``id`` None)."""

    id: int | None
    reason: RowReason
    detail: str  # never holds a secret; escape it for its medium when shown


@dataclass(frozen=True, slots=True)
class RawRow:
    """A row as the reader fetched it; ``privatekey`` is None when it was too large to fetch."""

    id: int
    name: str
    type: int
    domain: str
    appid: str = ""
    secret: str = ""
    eightbyeightappid: str = ""
    eightbyeightapikeyid: str = ""
    privatekey: str | None = None
    privatekey_chars: int = 0
    provisioningstatus: str = ""

    def __repr__(self) -> str:
        return (
            f"RawRow(id={self.id}, name={self.name!r}, type={self.type}, domain={self.domain!r}, "
            f"appid={self.appid!r}, secret=<hidden>, privatekey=<hidden>)"
        )


def slug(name: str, row_id: int) -> str:
    """``<slug of name>-<id>``: ASCII letters, digits and dashes, at most 64 characters."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-") or "server"
    suffix = f"-{row_id}"
    return text[: _NAME_MAX - len(suffix)].rstrip("-") + suffix


def _domain_problem(domain: str) -> str | None:
    """Why the domain cannot be what a browser loads; None when it can."""
    if len(domain) > MAX_FIELD_CHARS:
        return f"the domain is longer than {MAX_FIELD_CHARS} characters"
    for char in domain:
        if char.isspace():
            return "the domain holds a space"
        if unicodedata.category(char)[0] == "C":
            return "the domain holds a control character"
        if char in _FORBIDDEN:
            return f"the domain holds {char!r}, which a host name cannot"
    if "://" in domain:
        return "the domain holds a scheme; mod_jitsi adds https:// itself"
    host = domain.split("/", 1)[0]
    try:
        parts = urlsplit(f"https://{host}/")
        port = parts.port
    except ValueError:
        return "the domain's port is not a number from 1 to 65535"
    if port == 0:
        return "the domain's port is not a number from 1 to 65535"
    name = parts.hostname or ""
    if host.startswith("["):
        return None if name else "the domain's address is not valid"
    try:
        ascii_host = name.encode("idna").decode()
    except UnicodeError:
        return "the domain is not a valid host name"
    labels = ascii_host.rstrip(".").split(".")
    if not name or not all(_LABEL.fullmatch(label) for label in labels):
        return "the domain is not a valid host name"
    return None


def _url(template: str, domain: str) -> str:
    return template.replace("{domain}", domain)


def _shown(value: str, limit: int = 80) -> str:
    """A value of the row for a problem's detail: printable, short (escape it again to show it)."""
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in value[:limit])
    return text + ("…" if len(value) > limit else "")


def servers_from_rows(
    rows: Iterable[RawRow], *, url_template: str = "https://{domain}/", active_id: int | None = None
) -> tuple[tuple[MoodleServer, ...], tuple[RowProblem, ...]]:
    """The servers the rows make, and what is wrong with the others.

    Of rows sharing a domain the active one is kept, else the lowest id; the
    others are problems naming it.
    """
    ordered = sorted(rows, key=lambda r: r.id)
    servers: list[MoodleServer] = []
    problems: list[RowProblem] = []
    candidates: list[MoodleServer] = []
    for row in ordered:
        made = _server(row, url_template)
        if isinstance(made, RowProblem):
            problems.append(made)
        else:
            candidates.append(made)
    by_domain: dict[str, list[MoodleServer]] = {}
    for server in candidates:
        by_domain.setdefault(server.domain.casefold().rstrip("."), []).append(server)
    for server in candidates:
        same = by_domain[server.domain.casefold().rstrip(".")]
        keep = next((s for s in same if s.id == active_id), same[0])
        if server is keep:
            servers.append(server)
        else:
            problems.append(
                RowProblem(
                    server.id,
                    "duplicate_domain",
                    f"row {server.id} has the same domain {_shown(server.domain)!r} "
                    f"as row {keep.id}, which is watched instead",
                )
            )
    if active_id is not None and not any(s.id == active_id for s in servers):
        bad = any(p.id == active_id for p in problems)
        problems.append(
            RowProblem(
                None,
                "active_server",
                f"mod_jitsi/server is {active_id}, "
                + ("a row that is not loaded (see its problem)" if bad else "which no row has"),
            )
        )
    problems.sort(key=lambda p: (p.id is None, p.id or 0))
    return tuple(servers), tuple(problems)


def _server(row: RawRow, url_template: str) -> MoodleServer | RowProblem:
    domain = row.domain
    if not domain.strip():
        return RowProblem(row.id, "empty_domain", f"row {row.id} has no domain")
    why = _domain_problem(domain)
    if why is not None:
        return RowProblem(row.id, "bad_domain", f"row {row.id}: {why} ({_shown(domain)!r})")
    for label, value in (
        ("appid", row.appid),
        ("secret", row.secret),
        ("eightbyeightappid", row.eightbyeightappid),
        ("eightbyeightapikeyid", row.eightbyeightapikeyid),
    ):
        if len(value) > MAX_FIELD_CHARS:
            # The reader fetches one character more than mod_jitsi's columns hold:
            # a longer value comes from a hand-made table and is not used cut.
            return RowProblem(
                row.id,
                "field_too_long",
                f"row {row.id}: {label} is longer than {MAX_FIELD_CHARS} characters",
            )
    kind: Literal["public", "self_hosted", "jaas"]
    credentials: Credentials | None = None
    not_provisioned: str | None = None
    if row.type == 0:
        host = urlsplit(f"https://{domain}").netloc.casefold().rstrip(".")
        kind = "public" if host in PUBLIC_DOMAINS and "/" not in domain else "self_hosted"
    elif row.type in (1, 3):
        kind = "self_hosted"
        # mod_jitsi returns no token when appid or secret is empty (PHP's `!= null`).
        if row.appid and row.secret:
            credentials = SharedSecret(row.appid, row.secret)
        status = row.provisioningstatus.strip()
        if row.type == 3 and status not in ("", "ready"):
            not_provisioned = _shown(status, 50)
    elif row.type == 2:
        kind = "jaas"
        if row.privatekey is None and row.privatekey_chars > MAX_KEY_CHARS:
            return RowProblem(
                row.id,
                "key_too_large",
                f"row {row.id}: the private key is {row.privatekey_chars} characters, "
                f"more than {MAX_KEY_CHARS}; it was not read",
            )
        missing = [
            label
            for label, value in (
                ("eightbyeightappid", row.eightbyeightappid),
                ("eightbyeightapikeyid", row.eightbyeightapikeyid),
                ("privatekey", row.privatekey or ""),
            )
            if not value.strip()
        ]
        if missing:
            return RowProblem(
                row.id,
                "incomplete_credentials",
                f"row {row.id} is 8x8 JaaS (type 2) without {', '.join(missing)}: "
                "mod_jitsi's tokens for it cannot be valid",
            )
        credentials = JaasKey(row.eightbyeightappid, row.eightbyeightapikeyid, row.privatekey or "")
    else:
        return RowProblem(
            row.id,
            "unknown_type",
            f"row {row.id} has type {row.type}; mod_jitsi knows 0 (no token), "
            "1 (self-hosted), 2 (8x8 JaaS) and 3 (GCP)",
        )
    return MoodleServer(
        id=row.id,
        name=row.name,
        slug=slug(row.name, row.id),
        type=row.type,
        domain=domain,
        url=_url(url_template, domain),
        kind=kind,
        credentials=credentials,
        not_provisioned=not_provisioned,
    )
