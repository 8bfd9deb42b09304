"""An ``http_sd:`` source: Prometheus HTTP service discovery's JSON, asked on an interval.

The answer is a list of target groups, ``[{"targets": [...], "labels":
{...}}]``. A target is a server's URL (``https://meet.example.org/``) or,
as Prometheus writes them, ``host:port`` (the group's ``__scheme__`` label,
else ``https``). Each target becomes a server named after its URL (as
``discover`` names them), of the group's ``kind`` label or the source's
``kind``, with the group's other labels and the source's ``labels``. Labels
starting with ``__`` (Prometheus' meta labels) are not taken.

The answer is untrusted: its size (``max_bytes``) and time (``timeout``) are
bounded, as are the targets of one answer (``max_servers``); an answer that
is not such a list is an error, and the source keeps the servers of its last
good answer. A target that is not a server (a bad URL, a label name the
monitor refuses) is left out of a good answer, and reported.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from monitor.config.schema import ServerConfig
from monitor.config.server_sources import ServerSourceConfig
from monitor.sources.fetch import SourceError
from monitor.sources.merge import Given
from monitor.sources.names import clean_text, derive_name, entry_url, unique_names

__all__ = ["parse_sd"]

_KINDS = ("public", "self_hosted", "jaas")
# A label value longer than this is cut; a group with more labels is refused.
_MAX_VALUE, _MAX_LABELS = 256, 64


def _groups(body: bytes) -> list[dict[str, Any]]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise SourceError(f"the answer is not JSON: {str(exc)[:200]}") from None
    if not isinstance(data, list):
        raise SourceError("the answer is not a list of target groups")
    for index, group in enumerate(data):
        if not isinstance(group, dict) or not isinstance(group.get("targets"), list):
            raise SourceError(f"group {index} is not an object with a list of targets")
        labels = group.get("labels", {})
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise SourceError(f"group {index}: labels are not an object of strings")
        if len(labels) > _MAX_LABELS:
            raise SourceError(f"group {index} has more than {_MAX_LABELS} labels")
    return data


def parse_sd(body: bytes, spec: ServerSourceConfig) -> tuple[Given, list[str]]:
    """The servers of an answer, and the targets left out with why."""
    groups = _groups(body)
    total = sum(len(g["targets"]) for g in groups)
    if total > spec.max_servers:
        raise SourceError(
            f"the answer has {total} targets, more than max_servers {spec.max_servers}"
        )
    left_out: list[str] = []
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for group in groups:
        labels: dict[str, str] = group.get("labels", {})
        scheme = labels.get("__scheme__", "https")
        kind = labels.get("kind", spec.kind)
        extra = {
            k: clean_text(v, _MAX_VALUE)
            for k, v in labels.items()
            if not k.startswith("__") and k != "kind"
        }
        for target in group["targets"]:
            shown = clean_text(str(target), 100)
            if not isinstance(target, str):
                left_out.append(f"{shown}: a target is a string")
                continue
            if kind not in _KINDS:
                left_out.append(
                    f"{shown}: kind {clean_text(kind, 40)!r} is not one of {', '.join(_KINDS)}"
                )
                continue
            try:
                url = entry_url(target, scheme if scheme in ("http", "https") else "https")
            except ValueError as exc:
                left_out.append(f"{shown}: {exc}")
                continue
            if url in seen:
                continue  # the same server twice: once is enough
            seen.add(url)
            entries.append({"url": url, "kind": kind, "labels": {**extra, **spec.labels}})
    names = unique_names([derive_name(e["url"]) for e in entries])
    servers: list[ServerConfig] = []
    for name, entry in zip(names, entries, strict=True):
        try:
            servers.append(ServerConfig.model_validate({"name": name, **entry}))
        except ValidationError as exc:
            why = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            left_out.append(f"{entry['url']}: {why}")
    return Given(spec.name, tuple(servers)), left_out
