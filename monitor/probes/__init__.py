"""Probes: each talks to a server and returns plain results, never raising for its faults."""
