"""The worker's performance goals, judged from the results' rows.

Times are goals as multiples of a floor measured in the same run, so they hold whatever
the machine's speed that day. A goal is a name, a size and a judge; add one to GOALS.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .rows import Row
from .runner import FLOORS

BIG, MID = 1_000_000, 100_000
# The multiplication sign, which reads as "times" where a bare x could be a name.
TIMES = "\N{MULTIPLICATION SIGN}"
# What a judge says of the rows at one size: (actual, met), or None when not measured.
Judge = Callable[[Sequence[Row], int], tuple[str, bool] | None]


@dataclass(frozen=True, slots=True)
class Target:
    """One goal and how this run did; met is None when this run did not measure it."""

    name: str
    goal: str
    actual: str
    met: bool | None


@dataclass(frozen=True, slots=True)
class Goal:
    """A goal at one list size, and the judge that reads it from the rows."""

    name: str
    goal: str
    size: int
    judge: Judge

    def target(self, rows: Sequence[Row]) -> Target:
        """This goal against these rows."""
        found = self.judge(rows, self.size)
        if found is None:
            return Target(self.name, self.goal, "not run", None)
        return Target(self.name, self.goal, *found)


def find(rows: Sequence[Row], size: int, case: str) -> Row | None:
    """The row of `case` at `size`, if it ran."""
    return next((r for r in rows if r["size"] == size and r["case"] == case), None)


def ratio_at_most(case: str, limit: float) -> Judge:
    """The case's median wall time is at most `limit` times its floor's."""

    def judge(rows: Sequence[Row], size: int) -> tuple[str, bool] | None:
        row = find(rows, size, case)
        if row is None or row.get("x_floor") is None:
            return None
        x = row["x_floor"]
        return f"{x:.2f} {TIMES} ({row['wall_s']:.1f} s)", x <= limit

    return judge


def exact(case: str) -> Judge:
    """The sink got exactly the expected messages, each once, in every run of the case."""

    def judge(rows: Sequence[Row], size: int) -> tuple[str, bool] | None:
        row = find(rows, size, case)
        if row is None:
            return None
        v = row["verify"]
        return f"{v['received']:,} sent, {v['expected']:,} expected", bool(row["ok"])

    return judge


def pages_at_most(case: str, limit: int) -> Judge:
    """The case read at most `limit` pages."""

    def judge(rows: Sequence[Row], size: int) -> tuple[str, bool] | None:
        row = find(rows, size, case)
        return None if row is None else (f"{row['pages']} pages", row["pages"] <= limit)

    return judge


def tree_mb(rows: Sequence[Row], size: int) -> float | None:
    """The worker's peak footprint at `size` over every case and run; the floors are not it."""
    peaks = [r["footprint_max_mb"] for r in rows if r["size"] == size and r["case"] not in FLOORS]
    return max(peaks) if peaks else None


def tree_at_most(limit_mb: float) -> Judge:
    """The worker's process tree never held more than `limit_mb` at once."""

    def judge(rows: Sequence[Row], size: int) -> tuple[str, bool] | None:
        mb = tree_mb(rows, size)
        return None if mb is None else (f"{mb:.1f} MB", mb <= limit_mb)

    return judge


def tree_growth_at_most(base: int, limit: float) -> Judge:
    """The worker's peak at this size is at most `limit` times its peak at `base`."""

    def judge(rows: Sequence[Row], size: int) -> tuple[str, bool] | None:
        big, small = tree_mb(rows, size), tree_mb(rows, base)
        if big is None or small is None:
            return None
        return f"{big:.1f} / {small:.1f} MB = {big / small:.2f} {TIMES}", big <= limit * small

    return judge


GOALS: tuple[Goal, ...] = (
    Goal("first sync 100 k: time", f"<= 1.5 {TIMES} floor", MID, ratio_at_most("first", 1.5)),
    Goal("first sync 1 M: time", f"<= 1.5 {TIMES} floor", BIG, ratio_at_most("first", 1.5)),
    Goal("first sync 1 M: every subscriber sent exactly once", "exact", BIG, exact("first")),
    Goal(
        "no-change re-sync 1 M: time",
        f"<= 1.3 {TIMES} scan-only floor",
        BIG,
        ratio_at_most("nochange", 1.3),
    ),
    Goal("no-change re-sync 1 M: sends nothing", "0 sent", BIG, exact("nochange")),
    Goal(
        "1 % churn re-sync 1 M: time",
        f"<= 1.3 {TIMES} scan-only floor",
        BIG,
        ratio_at_most("churn", 1.3),
    ),
    Goal("1 % churn re-sync 1 M: exactly the churned messages", "exact", BIG, exact("churn")),
    Goal("peak RSS 1 M, whole process tree", "<= 200 MB", BIG, tree_at_most(200)),
    Goal(
        "peak RSS 1 M vs 100 k, whole process tree",
        f"<= 1.2 {TIMES} the tree at 100 k",
        BIG,
        tree_growth_at_most(MID, 1.2),
    ),
    Goal(
        "incremental 1 M, 1 k changes: pages",
        "<= 2 (full: 200)",
        BIG,
        pages_at_most("incremental", 2),
    ),
    Goal("incremental 1 M: exactly the changes", "exact", BIG, exact("incremental")),
)


def targets(rows: Sequence[Row]) -> list[Target]:
    """Every goal, judged from these rows."""
    return [goal.target(rows) for goal in GOALS]
