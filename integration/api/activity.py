"""Whether this process is answering requests, for the background upkeep: while it is,
the upkeep takes only its share of the time (see journey/upkeep.py), so a backlog of
episodes after a large import does not slow every read beside it.

Counted by the request-latency middleware (latency.py), which already sees every
request arrive and its answer start: a request counts from its arrival to the start of
its answer, so an event stream open for hours (/feed/stream) does not keep the upkeep
resting for as long.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# A request answered this recently still counts: clients send their next one a few
# milliseconds later, and the gap between two must not read as an idle server.
RECENT_SECONDS = 1.0


class RequestActivity:
    """Requests not yet answering, and when the last one started its answer. Written by
    the event loop, read from the upkeep's thread: one int and one float, each read
    whole."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.in_flight = 0
        self._last_ended = float("-inf")

    def started(self) -> None:
        self.in_flight += 1

    def ended(self) -> None:
        self.in_flight -= 1
        self._last_ended = self._clock()

    def busy(self) -> bool:
        return self.in_flight > 0 or self._clock() - self._last_ended < RECENT_SECONDS
