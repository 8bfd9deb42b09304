"""The collector's survivors are frozen after a full pass, and handed back now and then."""

from __future__ import annotations

import gc
import time
import weakref

from monitor.gc_freeze import QuietGc


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


def test_survivors_are_frozen_and_frozen_cycles_are_freed_after_a_thaw() -> None:
    quiet = QuietGc(thaw_every=0.3)
    quiet.install()
    try:
        node = Node()
        alive = weakref.ref(node)
        quiet.settle()
        assert quiet.freezes == 0, "nothing is frozen before a full collection"
        gc.collect()
        quiet.settle()
        assert quiet.freezes == 1
        assert gc.get_freeze_count() > 0
        del node
        gc.collect()
        assert alive() is not None, "a frozen cycle is not collected ..."
        time.sleep(0.35)
        quiet.settle()  # time to thaw, with or without a full pass since
        assert quiet.thaws == 1
        gc.collect()
        assert alive() is None, "... until the objects are handed back"
    finally:
        quiet.uninstall()
        gc.unfreeze()
