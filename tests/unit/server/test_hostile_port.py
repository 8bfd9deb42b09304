"""Cause 5 of issue 13, in-process: the file-descriptor budget keeps a share
for the probes, and the open-file limit is raised where it can be. (The
flood against a ``serve`` child is in tests/system/test_hostile_port.py.)"""

from __future__ import annotations

import resource

import pytest

from monitor.server.guard import fd_budget, share
from tests.support.hostile import LIMIT


def test_the_budget_keeps_a_share_for_probing() -> None:
    budget = share(64 + 8, LIMIT)
    assert budget.probing == 72 * 8
    assert budget.connections == LIMIT - 72 * 8 - 64
    assert budget.warning is None
    low = share(200, LIMIT)
    assert low.warning is not None
    assert "too low for 200 ladders" in low.warning
    assert share(8, 1_000_000).connections == 1000
    # the soft limit is raised toward the hard one
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= LIMIT:
        pytest.skip("the hard limit leaves nothing to raise")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, hard))
        raised = fd_budget(64 + 8)
        assert raised.raised_from == LIMIT
        assert raised.limit > LIMIT
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == raised.limit
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
