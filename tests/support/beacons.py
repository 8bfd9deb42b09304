"""Beacons to feed ``monitor.beacon.Beacons`` without a browser: bodies and client addresses.

The addresses are loopback ones (127.0.0.0/8 holds 65,536 distinct /24
prefixes), handed to the pure functions only: nothing connects to them.
"""

from __future__ import annotations

import json

from monitor.beacon import BeaconPolicy, Beacons, Rejected
from monitor.selector import Decision, PoolSettings
from monitor.state import State
from tests.support.metrics import report, targets

ORIGIN = "https://lms.example"


def body(rtt: dict[str, object], pool: str = "moodle", region: str | None = None) -> bytes:
    data: dict[str, object] = {"pool": pool, "rtt": rtt}
    if region is not None:
        data["region"] = region
    return json.dumps(data).encode()


def address(prefix: int, host: int = 1) -> str:
    """A loopback address in the ``prefix``-th /24 of 127.0.0.0/8."""
    return f"127.{prefix // 256 % 256}.{prefix % 256}.{host}"


def state(nearest: str = "users") -> State:
    """Two healthy members: the monitor sees ``a`` nearer (its connect round trips)."""
    s = State()
    s.set_targets(targets("a", "b"))
    s.set_pools(
        [
            PoolSettings(
                name="moodle",
                servers=("a", "b"),
                require=("web",),
                after=1,
                hold_down=0.0,
                nearest=nearest,
            )
        ]
    )
    return s


def beacons(s: State, **policy: object) -> Beacons:
    settings: dict[str, object] = {
        "origins": (ORIGIN,),
        "window": 3600.0,
        "min_samples": 10,
        "min_prefixes": 5,
        "period": 0.0,
    }
    settings.update(policy)
    b = Beacons(s, BeaconPolicy(**settings))  # type: ignore[arg-type]
    s.users = b
    return b


def probe_round(s: State, *, a_rtt: float = 0.010, b_rtt: float = 0.040) -> list[Decision]:
    """A finished ladder of each member, ``a`` first; the pool's changes it made."""
    made: list[Decision] = []
    for name, rtt in (("a", a_rtt), ("b", b_rtt)):
        made += s.record(report(name, connect=rtt))
    return made


def send(b: Beacons, raw: bytes, client: str, now: float, origin: str | None = ORIGIN) -> str:
    """Hand a beacon to ``b``: "ok" when taken, else the reason it was refused."""
    try:
        b.receive(raw, origin, client, now)
    except Rejected as exc:
        return exc.reason
    return "ok"
