"""The results table, the targets table, and results.json."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .machine import worker_revision
from .rows import Row
from .runner import CASE_TITLES
from .targets import TIMES, Target
from .world import REQUESTS_PER_SECOND

NOTES = (
    "floor: python -m bench.floor, the wire work of a first sync without state: a token, "
    "every page of the list, and (unless scan only) one identify per contact, posted in gzip "
    "batches from a second thread. It runs through the same launcher, on the same list, just "
    "before the first case it measures (alternating with it under --repeat), and its "
    "messages are checked like the worker's.",
    f"{TIMES} floor: the case's wall time over its floor's, same run and size (first sync "
    "over floor; re-syncs and incremental over the scan-only floor). Machine drift reaches "
    "both alike, so the ratio is what to compare between runs; the targets are stated in it.",
    "wall s: the median run's wall time (the lower median for an even --repeat), and every "
    "other column of the row is that run's; min-max s: the spread over the runs; the RSS "
    "targets use the largest peak of any run.",
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


_COLUMNS = (
    ("size", "size", "{:,}"),
    ("case", "case", "{}"),
    ("wall s", "wall_s", "{:.2f}"),
    ("min-max s", "spread", "{}"),
    (f"{TIMES} floor", "x_floor", "{:.2f}"),
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


def _row(row: Mapping[str, Any]) -> list[str]:
    d = dict(row)
    d["case"] = CASE_TITLES.get(row["case"], row["case"])
    d["sent"] = f"{row['verify']['received']:,}/{row['verify']['expected']:,}"
    d["ok"] = "yes" if row.get("ok", row["verify"]["ok"] and not row["exit_code"]) else "NO"
    runs = row.get("runs", 1)
    d["spread"] = f"{row['wall_min_s']:.2f}-{row['wall_max_s']:.2f}" if runs > 1 else None
    return ["-" if d.get(key) is None else fmt.format(d[key]) for _, key, fmt in _COLUMNS]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: frozenset[int]) -> str:
    """Text columns (indexes in `left`) read best left-aligned, numbers right-aligned."""
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]

    def line(row: Sequence[str]) -> str:
        cells = zip(row, widths, strict=True)
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(cells))

    return "\n".join(line(row).rstrip() for row in (headers, *rows))


def results_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """One line per case, and a warning under it when other processes took CPU meanwhile."""
    text = table([title for title, _, _ in _COLUMNS], [_row(r) for r in rows], frozenset({1}))
    busy = [r for r in rows if (r.get("other_load_cores") or 0) > BUSY]
    if busy:
        text += (
            f"\nwarning: {len(busy)} case(s) shared the CPU with other processes "
            f"(others > {BUSY} cores); their times are inflated: re-run on a quiet machine."
        )
    return text


def targets_table(found: Sequence[Target]) -> str:
    """One line per goal, with whether it is met."""
    verdict = {True: "met", False: "MISSED", None: "-"}
    rows = [[t.name, t.goal, t.actual, verdict[t.met]] for t in found]
    return table(["target", "goal", "actual", "met"], rows, frozenset(range(4)))


def document(
    rows: Sequence[Row],
    found: Sequence[Target],
    *,
    database: str,
    profiled: bool,
    repeat: int = 1,
    listrak_ms: float = 0.0,
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
        "repeat": repeat,
        # Listrak's own time per page: 0 is the simulator's speed, more a remote API's.
        "listrak_ms_per_page": listrak_ms,
        "notes": list(NOTES),
        "results": list(rows),
        "targets": [asdict(t) for t in found],
    }


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write results.json, ending in a newline so diffs stay clean."""
    path.write_text(json.dumps(doc, indent=2) + "\n")
