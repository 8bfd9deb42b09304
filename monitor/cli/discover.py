"""``jitsi-monitor discover SOURCE``: a list of instances made into a servers.yaml fragment."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click
import yaml

from monitor import escape
from monitor import loop as event_loop
from monitor.cli.common import EXIT_CONFIG, EXIT_OK
from monitor.runner import user_agent
from monitor.sources.fetch import SourceError, read_source
from monitor.sources.lists import Filters, ParsedList, parse_list, servers_of

__all__ = ["Discovered", "discover", "discover_options", "discovered"]

# A list is a page of text: the handbook's was some 50 KB.
MAX_LIST_BYTES = 4 * 1024 * 1024
LIST_TIMEOUT = 30.0

F = TypeVar("F", bound=Callable[..., Any])


def _label(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[Any, ...]:
    pairs = []
    for item in value:
        key, sep, wanted = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE")
        pairs.append((key.strip(), wanted.strip()))
    return tuple(pairs)


def discover_options(func: F) -> F:
    """The filters and fetch settings ``discover`` and ``rank --discover`` share."""
    options = [
        click.option(
            "--format",
            "fmt",
            type=click.Choice(["auto", "markdown", "list"]),
            default="auto",
            show_default=True,
            help="How the list is written (auto: Markdown when it has tables or bullets).",
        ),
        click.option(
            "--country",
            multiple=True,
            help="Keep instances of this country (repeatable; a part of the name, any case).",
        ),
        click.option("--region", multiple=True, help="Keep instances of this region (repeatable)."),
        click.option(
            "--label",
            "labels",
            multiple=True,
            callback=_label,
            metavar="KEY=VALUE",
            help="Keep instances with this label, e.g. non_google_stun=true (repeatable).",
        ),
        click.option(
            "--include-limited",
            is_flag=True,
            help="Keep the 'special cases' that need an account to open rooms.",
        ),
        click.option(
            "--contact",
            default=None,
            help="Appended to the User-Agent when SOURCE is a URL (your URL or e-mail).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@dataclass
class Discovered:
    """What a list gave: its servers (kept by the filters) and what was left out."""

    source: str
    parsed: ParsedList
    servers: list[dict[str, object]]
    filtered_out: int
    limited: int


def discovered(
    source: str,
    *,
    fmt: str,
    country: tuple[str, ...],
    region: tuple[str, ...],
    labels: tuple[tuple[str, str], ...],
    include_limited: bool,
    contact: str | None,
) -> Discovered:
    """Read, parse and filter a list; exit 2 when it cannot be read."""
    if contact is not None and any(c in contact for c in "\r\n()"):
        raise click.BadParameter("one line without parentheses", param_hint="--contact")
    try:
        text, name = event_loop.run(
            read_source(
                source,
                user_agent=user_agent(contact),
                time_limit=LIST_TIMEOUT,
                max_bytes=MAX_LIST_BYTES,
            )
        )
    except SourceError as exc:
        click.echo(f"cannot read {escape.plain(source, 200)}: {escape.plain(exc)}", err=True)
        sys.exit(EXIT_CONFIG)
    parsed = parse_list(text, fmt)
    filters = Filters(country, region, labels, include_limited)
    kept = [i for i in parsed.instances if filters.keep(i)]
    limited = sum(i.limited for i in parsed.instances) if not include_limited else 0
    out = len(parsed.instances) - len(kept) - limited
    return Discovered(name, parsed, servers_of(kept), out, limited)


def summary(found: Discovered) -> str:
    """One line on what the list gave, for a comment or standard error."""
    parsed = found.parsed
    parts = [
        f"{len(found.servers)} server(s) from {escape.plain(found.source, 200)} ({parsed.format})",
        f"{parsed.duplicates} duplicate(s) merged",
    ]
    if found.limited:
        parts.append(f"{found.limited} limited-access left out (--include-limited keeps them)")
    if found.filtered_out:
        parts.append(f"{found.filtered_out} left out by the filters")
    if parsed.skipped_count:
        parts.append(f"{parsed.skipped_count} line(s) not understood")
    return "; ".join(parts)


def fragment(servers: list[dict[str, object]]) -> str:
    """A ``servers:`` block; YAML's own quoting keeps any text of the list a string."""
    return yaml.safe_dump(
        {"servers": servers},
        sort_keys=False,
        allow_unicode=True,
        width=1000,
        default_flow_style=None,
    )


@click.command()
@click.argument("source")
@discover_options
def discover(
    source: str,
    fmt: str,
    country: tuple[str, ...],
    region: tuple[str, ...],
    labels: tuple[tuple[str, str], ...],
    include_limited: bool,
    contact: str | None,
) -> None:
    """Read a list of Jitsi instances (a URL or a file; - for standard input)
    and print a servers.yaml fragment: one `kind: public` server per instance.

    Markdown tables as the Jitsi handbook's community page had them, and
    plain lists of URLs or host names (one a line, # comments) are read.
    """
    found = discovered(
        source,
        fmt=fmt,
        country=country,
        region=region,
        labels=labels,
        include_limited=include_limited,
        contact=contact,
    )
    for line, why in found.parsed.skipped:
        click.echo(
            f"{escape.plain(source, 200)}:{line}: skipped: {escape.plain(why, 200)}", err=True
        )
    click.echo(f"# jitsi-monitor discover: {summary(found)}")
    click.echo("# Public servers of strangers: keep intervals of a minute or more, set `contact`.")
    click.echo(fragment(found.servers), nl=False)
    sys.exit(EXIT_OK)
