"""`python -m bench.compare`: the PostgreSQL results beside the SQLite ones, and their ratio.

The goal is every PostgreSQL case (first sync, no-change and 1 % churn re-syncs) within 1.3
times the SQLite figure.
The two files come from two runs, and the machine drifts between runs, so the ratio of the
two runs' floor ratios (each against a floor of its own run) is what the goal is judged on;
the plain ratio of wall times is shown beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .report import results_table, table
from .runner import CASE_TITLES
from .targets import TIMES, find

FOLDER = Path(__file__).resolve().parent
COMPARED = ("first", "nochange", "churn")
LIMIT = 1.3
Doc = Mapping[str, Any]


class CompareError(Exception):
    """A results file that is missing or unreadable, in one line."""


def load(path: Path) -> Doc:
    """One results file written by `python -m bench`."""
    try:
        doc: Doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise CompareError(f"{path} does not exist: run the benchmark first") from None
    except (OSError, ValueError) as exc:
        raise CompareError(f"{path} is not a results file: {type(exc).__name__}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise CompareError(f"{path} is not a results file: no results list")
    return doc


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return None if top is None or bottom is None or bottom <= 0 else top / bottom


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.2f}{unit}"


def _line(size: int, case: str, lite: Mapping[str, Any], pg: Mapping[str, Any]) -> list[str]:
    walls = _ratio(pg["wall_s"], lite["wall_s"])
    floors = _ratio(pg.get("x_floor"), lite.get("x_floor"))
    judged = walls if floors is None else floors
    met = "-" if judged is None else ("met" if judged <= LIMIT else "MISSED")
    cells = [
        f"{size:,}",
        CASE_TITLES.get(case, case),
        f"{lite['wall_s']:.2f}",
        f"{pg['wall_s']:.2f}",
    ]
    unit = f" {TIMES}"
    return [*cells, _fmt(walls, unit), _fmt(floors, unit), f"<= {LIMIT}{unit}", met]


def ratio_table(lite: Doc, pg: Doc) -> str:
    """PostgreSQL over SQLite for each compared case at every size both files hold."""
    sizes = sorted({r["size"] for r in lite["results"]} & {r["size"] for r in pg["results"]})
    lines = []
    for size in sizes:
        for case in COMPARED:
            a, b = find(lite["results"], size, case), find(pg["results"], size, case)
            if a is not None and b is not None:
                lines.append(_line(size, case, a, b))
    headers = [
        "size",
        "case",
        "SQLite s",
        "PostgreSQL s",
        "÷ wall",
        f"÷ {TIMES} floor",
        "goal",
        "met",
    ]
    return table(headers, lines, frozenset({1, 6, 7})) if lines else "no size ran on both"


def _heading(name: str, path: Path, doc: Doc) -> str:
    when, revision = doc.get("generated_at", "?"), doc.get("worker_revision", "?")
    return f"{name}: {path} ({when}, worker {revision}, {doc.get('repeat', 1)} run(s) each)"


def report(lite_path: Path, pg_path: Path) -> str:
    """Both results tables, one after the other, then PostgreSQL ÷ SQLite."""
    lite, pg = load(lite_path), load(pg_path)
    parts = [
        _heading("SQLite", lite_path, lite),
        results_table(lite["results"]),
        "",
        _heading("PostgreSQL", pg_path, pg),
        results_table(pg["results"]),
        "",
        f"PostgreSQL ÷ SQLite, judged on ÷ {TIMES} floor when both files have floors",
        ratio_table(lite, pg),
    ]
    if lite.get("worker_revision") != pg.get("worker_revision"):
        parts.append("note: the two files were written at different commits")
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the comparison; one line on stderr and exit 1 when a file is missing."""
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("--sqlite", type=Path, default=FOLDER / "results.json")
    parser.add_argument("--postgres", type=Path, default=FOLDER / "results-postgres.json")
    args = parser.parse_args(argv)
    try:
        print(report(args.sqlite, args.postgres))
    except CompareError as exc:
        print(f"compare failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
