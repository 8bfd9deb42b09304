"""Drives blackbox_exporter's ``/probe`` from a process of its own.

Either as fast as ``concurrency`` allows (CPU benchmark) or paced at a rate
(accuracy benchmark); every answer is parsed for ``probe_success`` and the
``processing`` phase of ``probe_http_duration_seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from typing import Any

import aiohttp

__all__ = ["add_arguments", "main"]

_SUCCESS = re.compile(r"^probe_success (\S+)$", re.M)
_PROCESSING = re.compile(r'^probe_http_duration_seconds\{phase="processing"\} (\S+)$', re.M)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--blackbox", required=True, help="base URL of blackbox_exporter")
    parser.add_argument("--module", default="https")
    parser.add_argument(
        "--target", action="append", required=True, help="probe target URL ({i}: probe number)"
    )
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=0.0, help="probes/s (0: no pacing)")


async def _drive(args: argparse.Namespace) -> dict[str, Any]:
    processing: list[tuple[int, float]] = []
    failed = 0
    next_index = 0
    start = time.monotonic()
    headers = {"X-Prometheus-Scrape-Timeout-Seconds": "10"}
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal next_index, failed
            while next_index < args.count:
                index = next_index
                next_index += 1
                if args.rate > 0:
                    await asyncio.sleep(max(0.0, start + index / args.rate - time.monotonic()))
                target = args.target[index % len(args.target)].replace("{i}", str(index))
                params = {"module": args.module, "target": target}
                async with session.get(
                    f"{args.blackbox}/probe", params=params, headers=headers
                ) as resp:
                    text = await resp.text()
                ok = _SUCCESS.search(text)
                phase = _PROCESSING.search(text)
                if resp.status != 200 or ok is None or ok.group(1) != "1" or phase is None:
                    failed += 1
                    continue
                processing.append((index, float(phase.group(1))))

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    return {
        "ok": len(processing),
        "failed": failed,
        "wall": time.monotonic() - start,
        "processing": processing,  # (probe number, seconds)
    }


def main(args: argparse.Namespace) -> None:
    print(json.dumps(asyncio.run(_drive(args))), flush=True)
