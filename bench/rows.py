"""Repeated runs of one case become one row: the median run, its spread, its ratio to the floor.

A single run drifts by about 20 % on a shared machine; the median of a few runs drifts less,
and a ratio to a floor measured in the same world at the same time cancels what is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .runner import CASES, CaseResult

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class CaseRuns:
    """Every run of one case at one size, in the order they ran."""

    size: int
    case: str
    runs: tuple[CaseResult, ...]

    @property
    def median(self) -> CaseResult:
        """The run with the (low) median wall time, so a row's columns all come from one run."""
        ordered = sorted(self.runs, key=lambda r: r.run.wall_s)
        return ordered[(len(ordered) - 1) // 2]

    @property
    def ok(self) -> bool:
        """Every run exited 0 and sent exactly what it should have."""
        return all(r.verdict.ok and not r.run.exit_code for r in self.runs)

    def as_row(self, floor: CaseRuns | None) -> Row:
        """The median run's JSON form, with the spread, the peak, correctness and the ratio."""
        walls = [round(r.run.wall_s, 3) for r in self.runs]
        median = self.median
        failed = [r.verdict.as_dict() for r in self.runs if not r.verdict.ok]
        return {
            **median.as_dict(),
            "runs": len(self.runs),
            "walls_s": walls,
            "wall_min_s": min(walls),
            "wall_max_s": max(walls),
            # A peak is a peak: the largest of every run, not the median run's.
            "footprint_max_mb": max(r.as_dict()["footprint_mb"] for r in self.runs),
            "ok": self.ok,
            "floor": None if floor is None else floor.case,
            "x_floor": None if floor is None else ratio(median, floor.median),
            **({"failed_runs": failed} if failed else {}),
        }


def ratio(case: CaseResult, floor: CaseResult) -> float | None:
    """How many floors the case took; None when the floor failed, as it then measured nothing."""
    if floor.run.exit_code or not floor.verdict.ok or floor.run.wall_s <= 0:
        return None
    return round(case.run.wall_s / floor.run.wall_s, 3)


def group(results: Sequence[CaseResult]) -> list[CaseRuns]:
    """The runs of each (size, case), in the order each first ran."""
    grouped: dict[tuple[int, str], list[CaseResult]] = {}
    for result in results:
        grouped.setdefault((result.size, result.case), []).append(result)
    return [CaseRuns(size, case, tuple(runs)) for (size, case), runs in grouped.items()]


def rows(results: Sequence[CaseResult]) -> list[Row]:
    """One row per (size, case), each divided by its floor of the same size when there is one."""
    groups = group(results)
    by_key = {(g.size, g.case): g for g in groups}

    def floor_of(g: CaseRuns) -> CaseRuns | None:
        spec = CASES.get(g.case)
        return None if spec is None or spec.floor is None else by_key.get((g.size, spec.floor))

    return [g.as_row(floor_of(g)) for g in groups]
