"""The event loop the commands run on: uvloop when installed, unless turned off."""

from __future__ import annotations

import asyncio

import pytest

from monitor import loop


async def which_loop() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JITSI_MONITOR_LOOP", raising=False)
    assert loop.loop_name() == "uvloop"
    assert loop.run(which_loop()).startswith("uvloop")


def test_asyncio_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JITSI_MONITOR_LOOP", "asyncio")
    assert loop.loop_name() == "asyncio"
    assert loop.run(which_loop()).startswith("asyncio")
