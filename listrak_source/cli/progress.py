"""Progress on stderr: a live bar on a terminal, a plain line every few seconds otherwise."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import TextIO

PLAIN_EVERY = 5.0
# A terminal redraw per page is cheap, but tiny pages would otherwise flood a slow terminal.
TTY_EVERY = 0.1
BAR_WIDTH = 20
_CLEAR_TO_END = "\x1b[K"


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
        self._name = ""
        self._totals: dict[str, int] = {}
        self._counts: dict[str, int] = {}
        self._stage = ""
        self._drawn_at = -math.inf
        self._plain_at = clock()
        self._dirty = False
        self._on_bar = False

    def start(self, name: str, totals: Mapping[str, int] | None = None) -> None:
        """A new part of the work (one list): counts restart, and known totals give a bar."""
        self._end_bar()
        self._name = name
        self._totals = {stage: n for stage, n in (totals or {}).items() if n > 0}
        self._counts = {}
        self._stage = ""

    def update(self, stage: str, count: int) -> None:
        """Record a count; redraw when the terminal allows, or when a plain line is due."""
        self._counts[stage] = count
        self._stage = stage
        self._dirty = True
        now = self.clock()
        if self.tty:
            if now - self._drawn_at >= TTY_EVERY:
                self._draw(now)
        elif now - self._plain_at >= PLAIN_EVERY:
            self._write(self.text() + "\n")
            self._plain_at = now
            self._dirty = False

    def text(self) -> str:
        """The counts as one line: `backfill list 1001: scanned 300 of ~1000, delivered 0`."""
        head = " ".join(part for part in (self.label, self._name) if part)
        parts = [self._count(stage, count) for stage, count in self._counts.items()]
        return f"{head}: {', '.join(parts)}" if parts else head

    def _count(self, stage: str, count: int) -> str:
        total = self._totals.get(stage)
        # "~": the total is the list's size at the last run, an estimate until the scan ends.
        return f"{stage} {count} of ~{total}" if total else f"{stage} {count}"

    def bar(self) -> str:
        """The bar of the stage in hand when its total is known, else nothing."""
        total = self._totals.get(self._stage)
        if not total:
            return ""
        done = min(self._counts[self._stage] / total, 1.0)
        filled = int(done * BAR_WIDTH)
        return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done:4.0%}  "

    def _draw(self, now: float) -> None:
        self._write("\r" + self.bar() + self.text() + _CLEAR_TO_END)
        self._drawn_at = now
        self._dirty = False
        self._on_bar = True

    def _end_bar(self) -> None:
        """Show the final counts a throttled redraw skipped, and end the bar's line."""
        if self.tty and self._dirty:
            self._draw(self.clock())
        if self._on_bar:
            self._write("\n")
            self._on_bar = False

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def close(self) -> None:
        """End the bar's line so the next output starts clean."""
        self._end_bar()
