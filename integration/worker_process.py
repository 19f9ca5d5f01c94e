"""Worker processes (intake, derivation) that end with the process that started them.

A pool's workers hold both ends of its pipes, so they would never see their parent
go, even by kill -9, and would wait forever.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from types import FrameType

from integration.gc_policy import use_batch_collection

# How often a worker looks whether its parent is still there (where the kernel
# does not tell it at once).
PARENT_POLL_SECONDS = 0.5
_PR_SET_PDEATHSIG = 1


def start_worker(parent: int) -> None:
    """The initializer of a worker process started by `parent`."""
    use_batch_collection()
    exit_with_parent(parent)


def exit_with_parent(parent: int) -> None:
    """End this process when `parent` (the process that started it) has gone.

    On Linux the kernel signals us when our parent exits. It also does when only the
    *thread* that started us exits (a sync's download thread), so the signal is
    one to check, not a SIGKILL: a parent that is gone has handed us to another
    (getppid changes). A thread polling getppid covers other systems, and a
    failed prctl."""

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        if os.getppid() != parent:
            os._exit(1)

    if sys.platform.startswith("linux"):
        signal.signal(signal.SIGUSR1, on_signal)
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGUSR1, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the polling thread is enough
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # gone before we were watching
        os._exit(1)


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(PARENT_POLL_SECONDS)
        if os.getppid() != parent:
            os._exit(1)
