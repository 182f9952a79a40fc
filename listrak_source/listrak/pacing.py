"""How fast Listrak requests start: one request in flight, starts at least an interval apart.

Clock and sleep are injected so tests check the pace without waiting.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class Pacer:
    """Keeps request starts at least ``interval`` seconds apart."""

    def __init__(
        self,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval, self._clock, self._sleep = interval, clock, sleep
        self._next_start = -math.inf

    def wait(self) -> None:
        now = self._clock()
        start = max(now, self._next_start)
        if start > now:
            self._sleep(start - now)
        # Computed from the planned start, not a re-read clock, so a fake clock still paces.
        self._next_start = start + self._interval
