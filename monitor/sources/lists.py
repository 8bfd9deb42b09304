"""Lists of Jitsi instances as people publish them, read into servers.

Two shapes are known:

- **Markdown**, as the Jitsi handbook's community page had it until 2024:
  ``##`` headings for regions, ``###`` for countries, a table per country
  with columns for the URL, "Non-Google STUN/TURN" (✅), "On Amazon, Google,
  Cloudflare or Microsoft" (❌) and the hoster, bullet lists of URLs (the
  official servers, "special cases (limited access)"). Cells hold tabs and
  spaces, links, marks (📞 dial-in, ⏺️ recording), or nothing at all; rows
  miss cells. Bullets that are links to other pages are not servers.
- **Plain lists**: one URL or host name a line, ``#`` comments, blank lines.

What a list says is untrusted: an entry that is not an http(s) URL or a
host name is skipped (and counted), label values are cleaned and cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from monitor.sources.names import clean_text, derive_name, entry_url, unique_names

__all__ = ["Filters", "Instance", "ParsedList", "parse_list", "servers_of"]

# Most entries one list may give, and the most skipped lines kept for the report.
MAX_INSTANCES = 10_000
_MAX_SKIPPED = 50

_HEADING = re.compile(r"(#{1,6})\s+(.*?)\s*#*\s*")
_SEPARATOR = re.compile(r"\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?")
_BULLET = re.compile(r"(?:[*+-]|\d{1,3}[.)])\s+(.*)")
_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]*)[^)]*\)")
_TAG = re.compile(r"<[^>]*>")
# Marks and decoration before an entry: emoji, arrows, other symbols beyond
# ASCII, spaces (ASCII punctuation stays: ".example.org" is no host).
_LEADING_MARKS = re.compile(r"^(?:\s|[^\x00-\x7f\w])+")
CHECK_MARK, CROSS_MARK, PHONE_MARK, RECORD_MARK = "✅", "❌", "📞", "⏺"


@dataclass
class Instance:
    """One server a list names, with what the list says about it."""

    url: str
    line: int
    labels: dict[str, str] = field(default_factory=dict)
    limited: bool = False  # a "special case": an account is needed to open rooms


@dataclass
class ParsedList:
    instances: list[Instance] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # line, why
    skipped_count: int = 0
    duplicates: int = 0
    format: str = "list"

    def skip(self, line: int, why: str) -> None:
        self.skipped_count += 1
        if len(self.skipped) < _MAX_SKIPPED:
            self.skipped.append((line, why))


def _text(cell: str) -> str:
    """A cell's text: links become their text, HTML tags go."""
    return _TAG.sub("", _LINK.sub(lambda m: m.group(1), cell)).strip()


def _cells(row: str) -> list[str]:
    row = row.strip()
    row = row.removeprefix("|")
    if row.endswith("|") and not row.endswith("\\|"):
        row = row[:-1]
    return [cell.strip() for cell in row.split("|")]


def _roles(header: list[str]) -> dict[str, int]:
    """Which column holds what, from the header's words."""
    roles: dict[str, int] = {}
    for index, cell in enumerate(header):
        words = _text(cell).lower()
        if "non-google" in words or "stun" in words:
            role = "non_google_stun"
        elif any(w in words for w in ("amazon", "cloudflare", "microsoft", "cloud")):
            role = "cloud"
        elif "hoster" in words or "provider" in words or "hosted by" in words:
            role = "hoster"
        elif words in ("url", "server", "instance", "host", "domain") or "url" in words:
            role = "url"
        else:
            continue
        roles.setdefault(role, index)
    return roles


def _entry(text: str) -> str | None:
    """The URL or host name an entry starts with, after marks; None for a link or prose."""
    body = _LEADING_MARKS.sub("", text.strip())
    if not body or body.startswith("["):
        return None
    token = body.split()[0].rstrip(",;")
    if "." not in token and "://" not in token and not token.startswith("localhost"):
        return None
    return token


class _Markdown:
    """Walks a Markdown page line by line, keeping the headings it is under."""

    def __init__(self, out: ParsedList) -> None:
        self.out = out
        self.region: str | None = None
        self.country: str | None = None
        self.official = False
        self.limited = False
        self.roles: dict[str, int] | None = None
        self.pending_header: list[str] | None = None

    def heading(self, level: int, text: str) -> None:
        text = clean_text(_text(text), 64)
        self.roles = self.pending_header = None
        if level <= 2:
            self.official = "official" in text.lower()
            self.region = None if self.official else text
            self.country = None
            self.limited = False
        elif level == 3:
            self.country = None if self.official else text
            self.limited = False
        else:
            self.limited = "limited" in text.lower() or "special" in text.lower()

    def labels(self) -> dict[str, str]:
        labels: dict[str, str] = {}
        if self.official:
            labels["official"] = "true"
        if self.region:
            labels["region"] = self.region
        if self.country:
            labels["country"] = self.country
        return labels

    def row(self, number: int, line: str) -> None:
        cells = _cells(line)
        if _SEPARATOR.fullmatch(line.strip()):
            if self.pending_header is not None:
                self.roles = _roles(self.pending_header)
            self.pending_header = None
            return
        if self.roles is None:
            self.pending_header = cells  # a header, if a separator follows
            return
        where = self.roles.get("url", 0)
        if where >= len(cells):
            self.out.skip(number, "the row has no URL cell")
            return
        cell = cells[where]
        link = _LINK.search(cell)
        entry = _entry(_text(cell)) or (link.group(2) if link else None)
        if not entry:
            self.out.skip(number, "the URL cell is empty")
            return
        labels = self.labels()
        stun = self.roles.get("non_google_stun")
        if stun is not None and stun < len(cells):
            labels["non_google_stun"] = "true" if CHECK_MARK in cells[stun] else "false"
            if PHONE_MARK in cells[stun]:
                labels["dial_in"] = "true"
            if RECORD_MARK in cells[stun]:
                labels["recording"] = "true"
        cloud = self.roles.get("cloud")
        if cloud is not None and cloud < len(cells):
            labels["cloud"] = "true" if CROSS_MARK in cells[cloud] else "false"
        hoster = self.roles.get("hoster")
        if hoster is not None and hoster < len(cells):
            text = clean_text(_text(cells[hoster]))
            if text:
                labels["hoster"] = text
        _add(self.out, number, entry, labels, self.limited)

    def bullet(self, number: int, text: str) -> None:
        self.roles = self.pending_header = None
        entry = _entry(text)
        if entry is not None:
            _add(self.out, number, entry, self.labels(), self.limited)


def _add(out: ParsedList, number: int, entry: str, labels: dict[str, str], limited: bool) -> None:
    try:
        url = entry_url(entry)
    except ValueError as exc:
        out.skip(number, str(exc))
        return
    if len(out.instances) >= MAX_INSTANCES:
        out.skip(number, f"more than {MAX_INSTANCES} entries")
        return
    out.instances.append(Instance(url, number, labels, limited))


def _is_markdown(lines: list[str]) -> bool:
    return any(
        (_SEPARATOR.fullmatch(s) and "|" in s) or _BULLET.fullmatch(s)
        for s in (line.strip() for line in lines)
    )


def parse_list(text: str, fmt: str = "auto") -> ParsedList:
    """The instances a list names, duplicates merged (the first mention's
    labels win; labels it lacks come from later mentions)."""
    lines = text.splitlines()
    markdown = fmt == "markdown" or (fmt == "auto" and _is_markdown(lines))
    out = ParsedList(format="markdown" if markdown else "list")
    if markdown:
        _parse_markdown(lines, out)
    else:
        for number, line in enumerate(lines, 1):
            body = re.split(r"\s#", line, maxsplit=1)[0].strip()
            if not body or body.startswith(("#", ";", "//")):
                continue
            _add(out, number, body.split()[0], {}, False)
    out.instances = _merge(out)
    return out


def _parse_markdown(lines: list[str], out: ParsedList) -> None:
    walker = _Markdown(out)
    start = 0
    if lines and lines[0].strip() == "---":  # front matter
        ends = [i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"]
        start = ends[0] + 1 if ends else 0
    for number, line in enumerate(lines[start:], start + 1):
        stripped = line.strip()
        if m := _HEADING.fullmatch(stripped):
            walker.heading(len(m.group(1)), m.group(2))
        elif "|" in stripped and (stripped.startswith("|") or walker.roles is not None):
            walker.row(number, stripped)
        elif m := _BULLET.fullmatch(stripped):
            walker.bullet(number, m.group(1))
        elif not stripped:
            walker.pending_header = None
            walker.roles = None


def _key(url: str) -> str:
    return url.split("://", 1)[1]


def _merge(out: ParsedList) -> list[Instance]:
    merged: dict[str, Instance] = {}
    for instance in out.instances:
        first = merged.get(_key(instance.url))
        if first is None:
            merged[_key(instance.url)] = instance
            continue
        out.duplicates += 1
        for key, value in instance.labels.items():
            first.labels.setdefault(key, value)
        first.limited = first.limited or instance.limited
    return list(merged.values())


@dataclass(frozen=True)
class Filters:
    """Which instances to keep: every given filter must hold."""

    countries: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    include_limited: bool = False

    def keep(self, instance: Instance) -> bool:
        labels = instance.labels
        if instance.limited and not self.include_limited:
            return False
        if self.countries and not _matches(labels.get("country"), self.countries):
            return False
        if self.regions and not _matches(labels.get("region"), self.regions):
            return False
        return all(labels.get(k, "").lower() == v.lower() for k, v in self.labels)


def _matches(value: str | None, wanted: tuple[str, ...]) -> bool:
    """Case-insensitive: a wanted word found in the value (``america`` finds
    ``South & North America``)."""
    return value is not None and any(w.lower() in value.lower() for w in wanted)


def servers_of(instances: list[Instance], taken: set[str] | None = None) -> list[dict[str, object]]:
    """``servers:`` entries (``kind: public``) with names derived from the URLs."""
    names = unique_names([derive_name(i.url) for i in instances], taken)
    servers: list[dict[str, object]] = []
    for name, instance in zip(names, instances, strict=True):
        labels = dict(sorted(instance.labels.items()))
        if instance.limited:
            labels["access"] = "limited"
        entry: dict[str, object] = {"name": name, "url": instance.url, "kind": "public"}
        if labels:
            entry["labels"] = labels
        servers.append(entry)
    return servers
