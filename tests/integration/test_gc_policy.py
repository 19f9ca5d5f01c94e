"""Batch work collects garbage less often, and leaves the collector as it found it."""

from __future__ import annotations

import gc
import threading
import weakref

from integration.gc_policy import BATCH_THRESHOLDS, batch_collection, freeze_what_is_loaded


def test_thresholds_come_back_when_the_last_overlapping_block_ends() -> None:
    before = gc.get_threshold()
    entered = threading.Event()
    release = threading.Event()

    def other_import() -> None:
        with batch_collection():
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=other_import)
    with batch_collection():
        assert gc.get_threshold() == BATCH_THRESHOLDS
        thread.start()
        assert entered.wait(5)
    # This block ended first; the other thread's import is still running.
    assert gc.get_threshold() == BATCH_THRESHOLDS
    release.set()
    thread.join(5)
    assert gc.get_threshold() == before


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_what_is_loaded_is_set_aside_and_what_comes_later_is_still_collected() -> None:
    try:
        assert freeze_what_is_loaded() > 1_000  # this process's modules, at least
        later = Cycle()
        gone = threading.Event()
        weakref.finalize(later, gone.set)
        del later
        gc.collect()
        assert gone.is_set()  # a cycle made after the freeze is collected as ever
    finally:
        gc.unfreeze()  # the other tests' objects go back to the collector
