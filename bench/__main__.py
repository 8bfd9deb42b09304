"""``python -m bench [--quick] [BENCH|all] [options]``, BENCH one of cpu, scale, accuracy,
metrics, scrape, configjs, config, history.

Subcommands starting with ``_`` are the workers the benchmarks start in
processes of their own; they are not meant to be run by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench import accuracy, config, configjs, cpu, delayserver, driver, render, scale, scrape
from bench import history as history_bench
from bench.common import have_uvloop, machine_info

BENCHES = ("cpu", "scale", "accuracy", "metrics", "configjs", "config", "history")
# Run by name only, not by ``all`` (bench 4 already measures the text at --quick sizes).
BY_NAME_ONLY = ("scrape",)

# Sizes for --quick: every benchmark runs in seconds (a smoke test, not figures).
QUICK: dict[str, dict[str, Any]] = {
    "cpu": {"probes": 40, "rounds": 1, "concurrency": 4},
    "scale": {"servers": "40", "duration": 12.0, "warmup": 4.0, "interval": 4.0, "scrape": 2.0},
    "accuracy": {
        "servers": 20,
        "duration": 8.0,
        "interval": 4.0,
        "blackbox_probes": 20,
        "burst_until": 5.0,
        "light_duration": 6.0,
        "blackbox_light": 10,
        "warm": 0.0,
        "targets": 2,
    },
    "metrics": {"servers": 200, "requests": 3},
    "scrape": {"sizes": "100,200", "requests": 3},
    "configjs": {"repeat": 5, "servers": 40, "rounds": 3, "hostile": 1},
    "config": {"servers": 300, "loads": 1, "reloads": 1},
    "history": {"servers": 200, "minutes": 3, "pages": "50", "repeat": 2},
}


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of seconds")
    common.add_argument("--json", type=Path, help="also write the figures to this file")
    parser = argparse.ArgumentParser(prog="bench", description=__doc__, parents=[common])
    sub = parser.add_subparsers(dest="bench")
    sub.add_parser("all", parents=[common], help="every benchmark with its defaults")
    cpu.add_arguments(sub.add_parser("cpu", parents=[common], help=cpu.__doc__))
    scale.add_arguments(sub.add_parser("scale", parents=[common], help=scale.__doc__))
    accuracy.add_arguments(sub.add_parser("accuracy", parents=[common], help=accuracy.__doc__))
    render.add_arguments(sub.add_parser("metrics", parents=[common], help=render.__doc__))
    scrape.add_arguments(sub.add_parser("scrape", parents=[common], help=scrape.__doc__))
    configjs.add_arguments(sub.add_parser("configjs", parents=[common], help=configjs.__doc__))
    config.add_arguments(sub.add_parser("config", parents=[common], help=config.__doc__))
    history_bench.add_arguments(
        sub.add_parser("history", parents=[common], help=history_bench.__doc__)
    )
    cpu.worker_arguments(sub.add_parser("_cpu-worker"))
    driver.add_arguments(sub.add_parser("_driver"))
    scale.worker_arguments(sub.add_parser("_monitor"))
    delayserver.add_arguments(sub.add_parser("_delay-server"))
    render.server_arguments(sub.add_parser("_metrics-server"))
    config.worker_arguments(sub.add_parser("_config-serve"))
    return parser


_WORKERS = {
    "_cpu-worker": cpu.worker,
    "_driver": driver.main,
    "_monitor": scale.worker,
    "_delay-server": delayserver.main,
    "_metrics-server": render.server,
    "_config-serve": config.worker,
}
_RUNS = {
    "cpu": cpu.run,
    "scale": scale.run,
    "accuracy": accuracy.run,
    "metrics": render.run,
    "scrape": scrape.run,
    "configjs": configjs.run,
    "config": config.run,
    "history": history_bench.run,
}
_ADDERS = {
    "cpu": cpu.add_arguments,
    "scale": scale.add_arguments,
    "accuracy": accuracy.add_arguments,
    "metrics": render.add_arguments,
    "scrape": scrape.add_arguments,
    "configjs": configjs.add_arguments,
    "config": config.add_arguments,
    "history": history_bench.add_arguments,
}


def _defaults(name: str, quick: bool) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    _ADDERS[name](parser)
    args = parser.parse_args([])
    if quick:
        for key, value in QUICK[name].items():
            setattr(args, key, value)
    return args


def _without_uvloop(args: argparse.Namespace) -> None:
    """Measure on asyncio's loop only when uvloop is not installed."""
    if have_uvloop():
        return
    if getattr(args, "loop", None) == "uvloop":
        args.loop = "asyncio"
    if getattr(args, "loops", None):
        args.loops = ",".join(x for x in args.loops.split(",") if x != "uvloop") or "asyncio"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    name = args.bench or "all"
    # A subcommand's own default must not undo a --quick given before it.
    quick = "--quick" in argv
    if name in _WORKERS:
        _WORKERS[name](args)
        return
    if not have_uvloop():
        print("uvloop is not installed: measuring on asyncio's loop only", flush=True)
    info = machine_info()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    results: dict[str, Any] = {"machine": info}
    if name == "all":
        for bench in BENCHES:
            args_of = _defaults(bench, quick)
            _without_uvloop(args_of)
            results[bench] = _RUNS[bench](args_of)
    else:
        if quick:
            explicit = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
            for key, value in QUICK[name].items():
                if f"--{key.replace('_', '-')}" not in explicit:
                    setattr(args, key, value)
        _without_uvloop(args)
        results[name] = _RUNS[name](args)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nfigures written to {args.json}")


if __name__ == "__main__":
    main()
