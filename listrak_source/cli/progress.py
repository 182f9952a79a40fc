"""Progress on stderr: a live bar on a terminal, a line every few seconds otherwise.

The bar follows the scan, the one phase whose size is known ahead (the list's size at its
last full scan), so it only ever moves forward; what was sent is counted beside it. A
list never scanned has no size yet: its bar shows activity without a share. A count never
reads as more than its estimate: past it, the estimate is dropped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import TextIO

PLAIN_EVERY = 5.0
# A terminal redraw per page is cheap, but tiny pages would otherwise flood a slow terminal.
TTY_EVERY = 0.1
BAR_WIDTH = 20
# The moving block of a bar whose total is unknown.
_BLOCK = 4
_CLEAR_TO_END = "\x1b[K"
SCAN = "scanned"


class Progress:
    """Shows counts as they grow; the clock is injectable so tests never wait."""

    def __init__(
        self,
        label: str,
        out: TextIO,
        *,
        clock: Callable[[], float] = time.monotonic,
        tty: bool | None = None,
        escapes: bool = True,
        plain: Callable[[str], None] | None = None,
    ) -> None:
        self.label = label
        self.out = out
        self.clock = clock
        self.tty = out.isatty() if tty is None else tty
        # Without escape codes (TERM=dumb, NO_COLOR) a shorter line is padded out instead.
        self.escapes = escapes
        # Where a line goes when stderr is no terminal (the log, in its format).
        self.plain = plain or (lambda line: self._write(line + "\n"))
        self._name = ""
        self._totals: dict[str, int] = {}
        self._counts: dict[str, int] = {}
        self._done = 0.0
        self._frame = 0
        self._drawn_at = -math.inf
        self._plain_at = clock()
        self._dirty = False
        self._on_bar = False
        self._width = 0

    def start(self, name: str, totals: Mapping[str, int] | None = None) -> None:
        """A new part of the work (one list): counts restart, and known totals give a bar."""
        self._end_bar()
        self._name = name
        self._totals = {stage: n for stage, n in (totals or {}).items() if n > 0}
        self._counts = {}
        self._done = 0.0
        self._frame = 0

    def update(self, stage: str, count: int) -> None:
        """Record a count; redraw when the terminal allows, or when a plain line is due."""
        self._counts[stage] = count
        total = self._totals.get(SCAN)
        if stage == SCAN and total:
            self._done = max(self._done, min(count / total, 1.0))
        self._dirty = True
        now = self.clock()
        if self.tty:
            if now - self._drawn_at >= TTY_EVERY:
                self._draw(now)
        elif now - self._plain_at >= PLAIN_EVERY:
            self.plain(self.text())
            self._plain_at = now
            self._dirty = False

    def text(self) -> str:
        """The counts as one line: `backfill list 1001: scanned 300 of ~1000, delivered 0`."""
        head = " ".join(part for part in (self.label, self._name) if part)
        parts = [self._count(stage, count) for stage, count in self._counts.items()]
        if SCAN in self._counts and SCAN not in self._totals:
            parts[0] += " (size not known yet)"
        return f"{head}: {', '.join(parts)}" if parts else head

    def _count(self, stage: str, count: int) -> str:
        total = self._totals.get(stage)
        # "~": the total is the list's size at the last run, an estimate until the scan ends.
        return f"{stage} {count} of ~{total}" if total and count <= total else f"{stage} {count}"

    def bar(self) -> str:
        """The scan's share done, never moving back; a moving block when its size is unknown."""
        if SCAN not in self._totals:
            start = self._frame % (BAR_WIDTH - _BLOCK + 1)
            cells = "." * start + "#" * _BLOCK + "." * (BAR_WIDTH - _BLOCK - start)
            return f"[{cells}]    ?  "
        filled = int(self._done * BAR_WIDTH)
        return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self._done:4.0%}  "

    def _draw(self, now: float) -> None:
        line = self.bar() + self.text()
        end = _CLEAR_TO_END if self.escapes else " " * max(0, self._width - len(line))
        self._write("\r" + line + end)
        self._width = len(line)
        self._frame += 1
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
            self._width = 0

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def close(self) -> None:
        """End the bar's line so the next output starts clean."""
        self._end_bar()


class Silent(Progress):
    """--quiet: counts are kept, nothing is shown."""

    def _draw(self, now: float) -> None:
        self._dirty = False

    def _write(self, text: str) -> None:
        pass
