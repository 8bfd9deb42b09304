"""The jwt family's dashboard panels: the token matrix, case by case, and each case's age;
the matrix's column of the fleet table."""

from __future__ import annotations

from monitor.checks.family import DashboardPart, FleetColumn, PanelRow, Placed
from monitor.checks.jwt.cases import JwtCase
from monitor.grafana import (
    OK_FAIL,
    OK_FAIL_CELL,
    ONE_SERVER,
    OVERVIEW_UID,
    SERVER_UID,
    SERVERS,
    per_server,
    query,
    sel,
    state_timeline,
    timeseries,
)

__all__ = ["panels"]

_CASES = tuple(case.value for case in JwtCase)


def panels(uid: str) -> tuple[DashboardPart, ...]:
    """Its parts of dashboard ``uid``: the fleet table's column of the overview, and
    on the server's a row after the checks."""
    if uid == OVERVIEW_UID:
        matrix = per_server("min", sel("jitsi_jwt_case_success", SERVERS))
        return (FleetColumn("steps", "JWT matrix", matrix, OK_FAIL_CELL),)
    if uid != SERVER_UID:
        return ()
    return (
        PanelRow(
            "steps",
            "Tokens (JWT)",
            (
                Placed(
                    state_timeline(
                        "JWT matrix",
                        "Each case of the token check matrix (jitsi_jwt_case_success): OK when "
                        "the server treated the token as it must (a valid token logs in; bad "
                        "signature, expired and another room's token are refused; a client "
                        "without a token is kept out, unless jwt.guests is allowed: no_token "
                        "failing is jwt_optional; moderator_false does not make a moderator, "
                        "moderator_true does). All but valid run every jwt.matrix_interval and "
                        "are carried in between. Empty without a jwt block.",
                        [
                            query(sel("jitsi_jwt_case_success", ONE_SERVER, f'case="{c}"'), c)
                            for c in _CASES
                        ],
                        mappings=OK_FAIL,
                    ),
                    w=16,
                    h=8,
                ),
                Placed(
                    timeseries(
                        "JWT case age",
                        "How old each token case's verdict was at the server's last report "
                        "(jitsi_jwt_case_age_seconds): 0 for the valid token, which runs every "
                        "round; the others climb until the matrix runs again "
                        "(jwt.matrix_interval).",
                        [
                            query(sel("jitsi_jwt_case_age_seconds", ONE_SERVER, f'case="{c}"'), c)
                            for c in _CASES
                        ],
                        unit="s",
                    ),
                    w=8,
                    h=8,
                ),
            ),
        ),
    )
