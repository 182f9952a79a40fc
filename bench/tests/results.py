"""Measured runs as the runner returns them, built from plain numbers for report tests."""

from __future__ import annotations

from bench.runner import CaseResult, Served
from bench.verify import Verdict
from bench.worker import WorkerRun


def result(
    size: int, case: str, wall_s: float, *, ok: bool = True, rss_mb: float = 100.0, sent: int = 0
) -> CaseResult:
    """One run of `case` that took `wall_s`, peaked at `rss_mb` and sent `sent` messages."""
    kib = round(rss_mb * 1e6 / 1024)
    run = WorkerRun(
        exit_code=0,
        started=100.0,
        finished=100.0 + wall_s,
        cpu_s=wall_s / 2,
        sys_s=0.1,
        peak_rss_kib=kib,
        tree_peak_rss_kib=kib,
        processes=1,
        summary="",
        stderr_tail="",
    )
    served = Served(size // 5000 + 1, size, 0.1, 0.1, 0.2, 0.0, [])
    verdict = Verdict(expected=sent, received=sent)
    if not ok:
        verdict.note("expected but not sent", "someone")
    return CaseResult(size=size, case=case, run=run, served=served, verdict=verdict)
