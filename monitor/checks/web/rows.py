"""The web family's rows of the ladder table: page, config.js, external_api.js, embed."""

from __future__ import annotations

from monitor.ladder import Check, CheckSpec

__all__ = ["ROWS"]

ROWS: tuple[CheckSpec, ...] = (
    CheckSpec(Check.WEB, "web", "web", verdict=True, always=True, require="web"),
    CheckSpec(Check.CONFIGJS, "web", "config.js", verdict=True, always=True, require="web"),
    CheckSpec(
        Check.EXTERNAL_API, "web", "external_api.js", verdict=True, always=True, require="web"
    ),
    # What a server is fit for, not whether it works: reported on its own
    # (pools that serve embedded meetings ask for it with `embedding`).
    CheckSpec(Check.EMBED, "web", "embed"),
)
