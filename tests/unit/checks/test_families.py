"""Each check family's folder holds its own metric names, and the families'
parts are where ``FAMILIES`` says.

The media family's names (``jitsi_turn_``, ``jitsi_stun_``, ``jitsi_media_``)
appear in Python files of ``monitor/checks/media/`` only, the jwt family's
(``jitsi_jwt_``) in ``monitor/checks/jwt/`` only: adding or changing one of
them touches that folder and nothing else of the monitor. (Tests, scripts
and docs may name them.)
"""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from monitor.checks import FAMILIES
from monitor.metrics.lines import server_families
from tests.support.paths import ROOT

MONITOR = ROOT / "monitor"

OWNERS = {
    "jitsi_turn_": "media",
    "jitsi_stun_": "media",
    "jitsi_media_": "media",
    "jitsi_jwt_": "jwt",
}


@pytest.mark.parametrize(("prefix", "family"), sorted(OWNERS.items()))
def test_a_family_s_metric_names_live_in_its_folder(prefix: str, family: str) -> None:
    home = MONITOR / "checks" / family
    found = {p for p in MONITOR.rglob("*.py") if prefix in p.read_text(encoding="utf-8")}
    assert found, f"no Python file of monitor/ names {prefix}"
    strays = sorted(str(p.relative_to(MONITOR)) for p in found if home not in p.parents)
    assert not strays, f"{prefix} is named outside monitor/checks/{family}/: {strays}"


def test_each_metric_family_is_declared_by_one_family() -> None:
    names = [m.name for f in FAMILIES for _, m in f.metrics]
    assert len(names) == len(set(names))
    for family in FAMILIES:
        for _, metric in family.metrics:
            owner = next((f for p, f in OWNERS.items() if metric.name.startswith(p)), None)
            assert owner in (None, family.name), f"{metric.name} is declared by {family.name}"
    # every family's metric families are exported, once
    exported = [m.name for m in server_families()]
    assert len(exported) == len(set(exported))
    assert set(names) <= set(exported)


def test_each_family_s_settings_block_is_the_schema_s() -> None:
    # The schema makes each family's block from FAMILIES, named after the family.
    from monitor.config.schema import DefaultSettings, ServerConfig

    blocks = {f.name: f.settings for f in FAMILIES if f.settings is not None}
    assert set(blocks) == {"signalling", "jwt", "media"}
    for name, model in blocks.items():
        field = ServerConfig.model_fields[name]
        assert field.annotation == model | None, name
        if name in DefaultSettings.model_fields:
            assert DefaultSettings.model_fields[name].annotation is model, name
    # jwt has no defaults block: its app_id has no default
    assert "jwt" not in DefaultSettings.model_fields


class ToySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    level: int = 3


def test_a_new_family_s_settings_block_needs_no_edit_of_the_schema() -> None:
    from monitor.config.schema import _DefaultFields, _ServerFields, family_blocks

    toy = dataclasses.replace(FAMILIES[0], name="toy", rows=(), settings=ToySettings)
    families = (*FAMILIES, toy)
    server = family_blocks("Server", _ServerFields, defaults=False, families=families)
    defaults = family_blocks("Defaults", _DefaultFields, defaults=True, families=families)
    assert list(server.model_fields)[-4:] == ["signalling", "jwt", "media", "toy"]
    written = server.model_validate({"name": "a", "url": "https://a.test/", "toy": {"level": 5}})
    assert written.block(ToySettings) == ToySettings(level=5)
    assert server.model_validate({"name": "a", "url": "https://a.test/"}).block(ToySettings) is None
    assert defaults.model_validate({}).block(ToySettings) == ToySettings()
    with pytest.raises(ValidationError, match="level"):
        server.model_validate({"name": "a", "url": "https://a.test/", "toy": {"level": "x"}})
