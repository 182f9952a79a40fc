"""The results table, the targets and whether each is met, and results.json."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .machine import worker_revision
from .runner import CASE_TITLES, CaseResult
from .world import REQUESTS_PER_SECOND

BIG, MID = 1_000_000, 100_000
NOTES = (
    f"listrak.requests_per_second = {REQUESTS_PER_SECOND}: the default 2 req/s is Listrak's "
    "published pace, and would by itself hold a 1 M scan (200 pages of 5,000) at 100 s.",
    "worker ms/page: mean time between the simulator finishing page i and being asked for "
    "page i+1. The worker reads one page ahead in a thread, so this is its pace per page: "
    "the slower of receiving and parsing a page and diffing and storing one.",
    "sim ms/page: the simulator's own time building a page (its stats); sink s: the sink's "
    "time handling batches. Both run in the driver process, the worker in its own.",
    "startup: spawn to first page request (interpreter, imports, migrations, token, lease); "
    "after scan: the last page, the sweep, delivery to the sink and recording the run.",
    "RSS MB: the worker's ru_maxrss from wait4, reaped by a small launcher process (a "
    "child forked from the driver would report the driver's RSS); it is the largest single "
    "process. tree MB: the summed RSS of the worker and its helper processes, sampled every "
    "20 ms. The RSS targets use the larger of the two. MB = 10^6 bytes.",
    "others: CPU used meanwhile by processes other than the worker and the driver, in cores "
    "(from /proc/stat); above 0.25 the run shared this machine's cores and its times are high.",
)
BUSY = 0.25


@dataclass(frozen=True, slots=True)
class Target:
    """One goal of issue 6; met is None when this run did not measure it."""

    name: str
    goal: str
    actual: str
    met: bool | None


def _find(results: Sequence[CaseResult], size: int, case: str) -> CaseResult | None:
    return next((r for r in results if r.size == size and r.case == case), None)


def _peak_mb(results: Sequence[CaseResult], size: int) -> float | None:
    peaks = [r.run.footprint_kib for r in results if r.size == size]
    return max(peaks) * 1024 / 1e6 if peaks else None


def _at(
    results: Sequence[CaseResult],
    case: str,
    name: str,
    goal: str,
    measure: Callable[[CaseResult], tuple[str, bool]],
) -> Target:
    found = _find(results, BIG, case)
    if found is None:
        return Target(name, goal, "not run", None)
    actual, met = measure(found)
    return Target(name, goal, actual, met)


def _sent(r: CaseResult) -> tuple[str, bool]:
    v = r.verdict
    return f"{v.received:,} sent, {v.expected:,} expected", v.ok and not r.run.exit_code


def _within(limit: float) -> Callable[[CaseResult], tuple[str, bool]]:
    return lambda r: (f"{r.run.wall_s:.1f} s", r.run.wall_s <= limit)


def _pages(r: CaseResult) -> tuple[str, bool]:
    return f"{r.served.pages} pages", r.served.pages <= 2


def _rss(r: CaseResult) -> tuple[str, bool]:
    mb = r.run.footprint_kib * 1024 / 1e6
    return f"{mb:.1f} MB", mb <= 200


def _scaling(results: Sequence[CaseResult]) -> Target:
    name, goal = "peak RSS 1 M vs 100 k", "<= 1.2 x peak RSS at 100 k"
    big, mid = _peak_mb(results, BIG), _peak_mb(results, MID)
    if big is None or mid is None:
        return Target(name, goal, "not run", None)
    return Target(name, goal, f"{big:.1f} / {mid:.1f} MB = {big / mid:.2f} x", big <= 1.2 * mid)


def targets(results: Sequence[CaseResult]) -> list[Target]:
    """Issue 6's goals at 1 M contacts, judged from these results."""
    return [
        _at(results, "first", "first sync 1 M: time", "<= 120 s", _within(120)),
        _at(results, "first", "first sync 1 M: peak RSS", "<= 200 MB", _rss),
        _at(results, "first", "first sync 1 M: every subscriber sent", "exact", _sent),
        _at(results, "nochange", "no-change re-sync 1 M: time", "<= 30 s", _within(30)),
        _at(results, "nochange", "no-change re-sync 1 M: sends nothing", "0 sent", _sent),
        _at(results, "churn", "1 % churn re-sync 1 M: time", "<= 35 s", _within(35)),
        _at(results, "churn", "1 % churn re-sync 1 M: exactly the churned", "exact", _sent),
        _scaling(results),
        _at(
            results,
            "incremental",
            "incremental 1 M, 1 k changes: pages",
            "<= 2 (full: 200)",
            _pages,
        ),
        _at(results, "incremental", "incremental 1 M: exactly the changes", "exact", _sent),
    ]


_COLUMNS = (
    ("size", "size", "{:,}"),
    ("case", "case", "{}"),
    ("wall s", "wall_s", "{:.2f}"),
    ("contacts/s", "contacts_per_s", "{:,}"),
    ("msgs/s", "messages_per_s", "{:,}"),
    ("RSS MB", "peak_rss_mb", "{:.1f}"),
    ("tree MB", "tree_rss_mb", "{:.1f}"),
    ("procs", "processes", "{}"),
    ("CPU s", "cpu_s", "{:.1f}"),
    ("sys s", "sys_s", "{:.1f}"),
    ("pages", "pages", "{}"),
    ("sim ms/pg", "sim_ms_per_page", "{:.1f}"),
    ("worker ms/pg", "worker_ms_per_page", "{:.1f}"),
    ("startup s", "startup_s", "{:.2f}"),
    ("scan s", "scan_s", "{:.2f}"),
    ("after scan s", "after_scan_s", "{:.2f}"),
    ("sink s", "sink_s", "{:.2f}"),
    ("others", "other_load_cores", "{:.2f}"),
    ("sent/expected", "sent", "{}"),
    ("ok", "ok", "{}"),
)


def _row(r: CaseResult) -> list[str]:
    d = r.as_dict()
    d["case"] = CASE_TITLES[r.case]
    d["sent"] = f"{r.verdict.received:,}/{r.verdict.expected:,}"
    d["ok"] = "yes" if r.verdict.ok and not r.run.exit_code else "NO"
    return ["-" if d[key] is None else fmt.format(d[key]) for _, key, fmt in _COLUMNS]


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: frozenset[int]) -> str:
    """Text columns (indexes in `left`) read best left-aligned, numbers right-aligned."""
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]

    def line(row: Sequence[str]) -> str:
        cells = zip(row, widths, strict=True)
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(cells))

    return "\n".join(line(row).rstrip() for row in (headers, *rows))


def results_table(results: Sequence[CaseResult]) -> str:
    """One line per case, and a warning under it when other processes took CPU meanwhile."""
    table = _table([title for title, _, _ in _COLUMNS], [_row(r) for r in results], frozenset({1}))
    busy = [r for r in results if (r.as_dict()["other_load_cores"] or 0) > BUSY]
    if busy:
        table += (
            f"\nwarning: {len(busy)} run(s) shared the CPU with other processes "
            f"(others > {BUSY} cores); their times are inflated: re-run on a quiet machine."
        )
    return table


def targets_table(found: Sequence[Target]) -> str:
    """One line per goal, with whether it is met."""
    verdict = {True: "met", False: "MISSED", None: "-"}
    rows = [[t.name, t.goal, t.actual, verdict[t.met]] for t in found]
    return _table(["target", "goal", "actual", "met"], rows, frozenset(range(4)))


def document(
    results: Sequence[CaseResult], found: Sequence[Target], *, database: str, profiled: bool
) -> dict[str, Any]:
    """Everything results.json holds."""
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "worker_revision": worker_revision(),
        "database": database,
        "profiled": profiled,
        "notes": list(NOTES),
        "results": [r.as_dict() for r in results],
        "targets": [asdict(t) for t in found],
    }


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write results.json, ending in a newline so diffs stay clean."""
    path.write_text(json.dumps(doc, indent=2) + "\n")
