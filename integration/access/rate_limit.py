"""Per-client rate limits: a token bucket per client (API key, OAuth client or pushing
source), refilled at `per_minute`, holding at most `burst`. Kept in each API process's
memory: with N processes behind a balancer a client gets up to N times the rate."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client: (tokens, at)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._rate > 0

    def wait_seconds(self, client: str) -> int:
        """0 if the client may go on now (a token is taken), else whole seconds until a
        token is back (for Retry-After)."""
        if not self.enabled:
            return 0
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(client, (self._burst, now))
            tokens = min(self._burst, tokens + (now - at) * self._rate)
            if tokens >= 1:
                self._buckets[client] = (tokens - 1, now)
                return 0
            self._buckets[client] = (tokens, now)
            return max(1, math.ceil((1 - tokens) / self._rate))
