"""Progress on stderr: a live bar on a terminal, a plain line every few seconds otherwise."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

_PLAIN_EVERY = 5.0


class Progress:
    """Shows counts as they grow; the clock is injectable so tests never wait."""

    def __init__(
        self,
        label: str,
        out: TextIO,
        *,
        clock: Callable[[], float] = time.monotonic,
        tty: bool | None = None,
    ) -> None:
        self.label = label
        self.out = out
        self.clock = clock
        self.tty = out.isatty() if tty is None else tty
        self._counts: dict[str, int] = {}
        self._last = clock()
        self._shown = False

    def update(self, stage: str, count: int) -> None:
        """Record a count; redraw when the terminal allows, or when a plain line is due."""
        self._counts[stage] = count
        now = self.clock()
        if self.tty:
            self.out.write("\r" + self._text())
            self.out.flush()
            self._shown = True
        elif now - self._last >= _PLAIN_EVERY:
            self.out.write(self._text() + "\n")
            self.out.flush()
            self._last = now

    def _text(self) -> str:
        parts = ", ".join(f"{stage} {count}" for stage, count in self._counts.items())
        return f"{self.label}: {parts}"

    def close(self) -> None:
        """End the bar's line so the next output starts clean."""
        if self._shown:
            self.out.write("\n")
            self.out.flush()
