"""Simulated Jitsi deployments for demos, tests and benchmarks."""

from monitor.lab.certs import LabCA
from monitor.lab.server import FAULTS, LabOptions, LabServer

__all__ = ["FAULTS", "LabCA", "LabOptions", "LabServer", "servers_yaml"]


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
        if server.ca is not None:
            lines.append(f"    tls: {{ca_file: '{server.ca.ca_file}'}}")
        if server.options.services is None:
            # It simulates no STUN or TURN server: nothing to check on its media path.
            lines.append("    media: {enabled: false}")
        tokens = server.options.tokens
        if tokens is not None and server.secret_file is not None:
            lines += [
                "    jwt:",
                f"      app_id: {tokens.app_id}",
                f"      algorithm: {tokens.algorithm}",
                f"      secret_file: '{server.secret_file}'",
                "      settle: 1s",
            ]
    return "\n".join(lines) + "\n"
