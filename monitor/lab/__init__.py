"""Simulated Jitsi deployments for demos, tests and benchmarks."""

from monitor.lab.server import FAULTS, LabOptions, LabServer

__all__ = ["FAULTS", "LabOptions", "LabServer", "servers_yaml"]


def servers_yaml(servers: list[LabServer], interval: str = "10s", timeout: str = "5s") -> str:
    """A servers.yaml that makes the monitor probe these lab servers."""
    lines = [
        f"# jitsi-monitor lab: {len(servers)} simulated Jitsi server(s) on loopback",
        "location: lab",
        "defaults:",
        f"  interval: {interval}   # local servers: a short interval is fine here",
        f"  timeout: {timeout}",
        "servers:",
    ]
    for index, server in enumerate(servers, 1):
        lines += [
            f"  - name: lab-{index}",
            f"    url: {server.url}",
            "    kind: self_hosted",
        ]
    return "\n".join(lines) + "\n"
