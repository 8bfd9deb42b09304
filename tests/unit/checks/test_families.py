"""Each check family's folder holds its own metric names, and the families'
parts are where ``FAMILIES`` says.

The media family's names (``jitsi_turn_``, ``jitsi_stun_``, ``jitsi_media_``)
appear in Python files of ``monitor/checks/media/`` only, the jwt family's
(``jitsi_jwt_``) in ``monitor/checks/jwt/`` only: adding or changing one of
them touches that folder and nothing else of the monitor. (Tests, scripts
and docs may name them.)
"""

from __future__ import annotations

import pytest

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
    # The schema names each family's block after the family, with the family's model.
    from monitor.config.schema import DefaultSettings, ServerConfig

    blocks = {f.name: f.settings for f in FAMILIES if f.settings is not None}
    assert set(blocks) == {"signalling", "jwt", "media"}
    for name, model in blocks.items():
        field = ServerConfig.model_fields[name]
        assert field.annotation == model | None, name
        if name in DefaultSettings.model_fields:
            assert DefaultSettings.model_fields[name].annotation is model, name
