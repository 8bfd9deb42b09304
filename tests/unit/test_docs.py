"""The docs a reader can find: README.md is a short front door, every page
in docs/ is linked and every relative link resolves, and the reference pages
name every metric family, reason code and config key the code has.

Links and anchors are checked the way GitHub renders the pages: a heading's
anchor is its text in lower case, without punctuation, spaces made dashes,
and a repeated heading gets ``-1``, ``-2``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args
from urllib.parse import unquote

import pytest
from pydantic import BaseModel

from monitor.config import MonitorConfig, parse_config
from monitor.model import Reason
from tests.support.paths import ROOT

DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]

FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
IMG = re.compile(r"<img\s[^>]*src=\"([^\"]+)\"")


def prose(path: Path) -> str:
    """A page's text without its fenced code blocks."""
    return FENCE.sub("", path.read_text(encoding="utf-8"))


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown page."""
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+?)\s*#*$", prose(path), re.MULTILINE):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


def relative_links(path: Path) -> Iterator[str]:
    text = prose(path)
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans are not links
    yield from LINK.findall(text)
    yield from IMG.findall(text)


def test_readme_is_a_front_door() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 400, f"README.md has {len(lines)} lines; move detail to docs/"
    pages = sorted(p.name for p in DOCS.glob("*.md") if p.name not in {"README.md", "index.md"})
    assert len(pages) >= 8, pages


def test_every_page_opens_with_what_it_covers() -> None:
    for page in DOCS.glob("*.md"):
        blocks = page.read_text(encoding="utf-8").split("\n\n")
        assert blocks[0].startswith("# "), f"{page.name}: no title"
        opening = blocks[1].strip()
        assert opening, f"{page.name}: nothing after the title"
        assert not opening.startswith(("#", "|", "-", "```", "<", "!")), (
            f"{page.name}: the title is not followed by a paragraph saying what it covers"
        )


def test_the_index_lists_every_page() -> None:
    index = DOCS / "README.md"
    listed = {href.partition("#")[0] for href in relative_links(index)}
    for page in DOCS.glob("*.md"):
        if page != index:
            assert page.name in listed, f"docs/README.md does not list {page.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken: list[str] = []
    for href in relative_links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", href):  # https:, mailto: ...
            continue
        target, _, anchor = href.partition("#")
        file = (page.parent / unquote(target)).resolve() if target else page
        if not file.exists():
            broken.append(f"{href}: no file {file}")
        elif anchor and (file.suffix != ".md" or anchor not in anchors(file)):
            broken.append(f"{href}: no heading #{anchor} in {file.name}")
    assert not broken, "\n".join(broken)


def metric_names_in_code() -> set[str]:
    """Every full metric name a module of monitor/ spells out as a string."""
    names: set[str] = set()
    for source in (ROOT / "monitor").rglob("*.py"):
        names |= set(re.findall(r"[\"'](jitsi_[a-z0-9_]*[a-z0-9])[\"']", source.read_text()))
    return names


def test_every_metric_family_is_in_the_metric_reference() -> None:
    names = metric_names_in_code()
    assert len(names) > 30, sorted(names)
    page = prose(DOCS / "metrics.md")
    missing = sorted(n for n in names if f"`{n}`" not in page)
    assert not missing, f"docs/metrics.md does not document {missing}"


def test_every_reason_code_is_in_the_checks_page() -> None:
    page = prose(DOCS / "checks.md")
    section = page.partition("\n## Reason codes\n")[2]
    assert section, "docs/checks.md has no section Reason codes"
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE))
    assert rows == {r.value for r in Reason}, (
        f"missing: {sorted({r.value for r in Reason} - rows)}, "
        f"not a reason: {sorted(rows - {r.value for r in Reason})}"
    )


def config_keys(model: type[BaseModel], path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every key of the config, as a path; a block type met twice (the
    ``tls`` of ``defaults`` and of a server) is walked once."""
    seen: set[type[BaseModel]] = set()

    def walk(model: type[BaseModel], path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        for name, field in model.model_fields.items():
            key = (*path, field.alias or name)
            yield key
            for sub in models_in(field.annotation):
                if sub not in seen:
                    seen.add(sub)
                    yield from walk(sub, key)

    yield from walk(model, path)


def models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in get_args(annotation):
        yield from models_in(arg)


def test_every_config_key_is_in_the_configuration_reference() -> None:
    page = prose(DOCS / "configuration.md")
    sections = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^## ([^\n]+)\n(.*?)(?=^## |\Z)", page, re.MULTILINE | re.DOTALL)
    }
    named = {s: set(re.findall(r"`([^`\s]+)`", text)) for s, text in sections.items()}
    missing: list[str] = []
    keys = list(config_keys(MonitorConfig))
    assert len(keys) > 100
    for key in keys:
        # a key is told in the section of its block (jwt, pools, ...), else at the top level
        section = next((s for s in reversed(key[:-1]) if s in named), "Top level")
        suffixes = {".".join(key[i:]) for i in range(len(key))}
        if not any(
            word in suffixes or any(word.startswith(s + ".") for s in suffixes)
            for word in named[section]
        ):
            missing.append(".".join(key))
    assert not missing, f"docs/configuration.md does not name {missing}"


def test_the_readmes_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.partition("\n## A config in brief\n")[2]
    block = re.search(r"^```yaml\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    assert block, "README.md has no config in brief"
    monkeypatch.setenv("SCHOOL1_JWT_SECRET", "a secret of the test")
    config = parse_config(block.group(1), "README.md")
    assert [s.name for s in config.servers] == ["meet-jit-si", "school-1"]
    assert [p.name for p in config.pools] == ["moodle"]
