"""Runs the cases for one list size and turns each worker run into a measured, checked result."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from statistics import fmean
from tempfile import TemporaryDirectory
from typing import Any

from .machine import CpuMark, other_cpu_s, worker_revision
from .verify import Verdict, verify
from .worker import WorkerRun, run_floor, run_worker
from .world import TRAIT, Expected, World


@dataclass(frozen=True, slots=True)
class Case:
    """How a case sets the list up, what it runs, what the sink must get, and its floor."""

    title: str
    expect: Callable[[World], dict[str, Expected]]
    launch: Callable[[World, Path | None], WorkerRun]
    # The floor case whose wall time this case's is divided by, run in the same size's world.
    floor: str | None = None
    # Whether each repeat needs an empty database (a first sync must find no state).
    fresh_state: bool = False


def _sync(world: World, profile: Path | None) -> WorkerRun:
    return run_worker(world.config, world.folder, profile=profile)


def _poll(world: World, profile: Path | None) -> WorkerRun:
    return run_worker(world.incremental_config, world.folder, profile=profile)


def _floor(*, scan_only: bool) -> Callable[[World, Path | None], WorkerRun]:
    def launch(world: World, profile: Path | None) -> WorkerRun:
        # Never profiled: it is the yardstick, and cProfile would inflate it.
        return run_floor(world.floor_arguments(scan_only=scan_only), world.folder)

    return launch


def _nothing(world: World) -> dict[str, Expected]:
    return {}


# The cases a user picks, in the order they run: each one's state is the previous one's.
CASES: dict[str, Case] = {
    "first": Case("first sync", World.expect_everyone, _sync, "floor", fresh_state=True),
    "nochange": Case("re-sync, no change", _nothing, _sync, "floor-scan"),
    "churn": Case("re-sync, 1 % churn", World.churn, _sync, "floor-scan"),
    "incremental": Case("incremental, 1 k changes", World.incremental_changes, _poll, "floor-scan"),
}
# The wire work without state that the cases are measured against; stateless, so repeatable.
FLOORS: dict[str, Case] = {
    "floor": Case("floor", World.expect_everyone, _floor(scan_only=False)),
    "floor-scan": Case("floor, scan only", _nothing, _floor(scan_only=True)),
}
CASE_TITLES = {name: case.title for name, case in (CASES | FLOORS).items()}


@dataclass(frozen=True, slots=True)
class Served:
    """What the fakes did during one worker run, from their own counters."""

    pages: int
    contacts: int
    sim_s: float
    sink_s: float
    driver_cpu_s: float
    other_cpu_s: float | None
    page_times: list[tuple[float, float]]


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One measured worker run, its phases on the driver's clock, and its correctness."""

    size: int
    case: str
    run: WorkerRun
    served: Served
    verdict: Verdict
    revision: str | None = None

    @property
    def messages(self) -> int:
        """Messages the sink kept."""
        return self.verdict.received

    def phases(self) -> dict[str, float | None]:
        """Start-up, scan and after-scan seconds, and per-page times in milliseconds."""
        times, run = self.served.page_times, self.run
        if not times:
            return dict.fromkeys(("startup_s", "scan_s", "after_scan_s", "worker_ms_per_page"))
        # Between the simulator finishing page i and being asked for page i + 1 the worker
        # receives, decodes, parses, diffs and stores page i: its own time per page.
        gaps = [nxt[0] - prev[1] for prev, nxt in pairwise(times)]
        return {
            "startup_s": times[0][0] - run.started,
            "scan_s": times[-1][1] - times[0][0],
            "after_scan_s": run.finished - times[-1][1],
            "worker_ms_per_page": 1000 * fmean(gaps) if gaps else None,
        }

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the derived rates."""
        run, served = self.run, self.served
        wall = run.wall_s
        return {
            "size": self.size,
            "case": self.case,
            "exit_code": run.exit_code,
            "wall_s": round(wall, 3),
            "cpu_s": round(run.cpu_s, 3),
            "sys_s": round(run.sys_s, 3),
            "peak_rss_mb": round(run.peak_rss_kib * 1024 / 1e6, 1),
            "tree_rss_mb": round(run.tree_peak_rss_kib * 1024 / 1e6, 1),
            "footprint_mb": round(run.footprint_kib * 1024 / 1e6, 1),
            "processes": run.processes,
            "contacts": served.contacts,
            "contacts_per_s": round(served.contacts / wall),
            "messages": self.messages,
            "messages_per_s": round(self.messages / wall),
            "pages": served.pages,
            "sim_ms_per_page": round(1000 * served.sim_s / served.pages, 2)
            if served.pages
            else None,
            "wall_ms_per_page": round(1000 * wall / served.pages, 2) if served.pages else None,
            **{k: None if v is None else round(v, 3) for k, v in self.phases().items()},
            "sink_s": round(served.sink_s, 3),
            "driver_cpu_s": round(served.driver_cpu_s, 3),
            "other_load_cores": _per_s(served.other_cpu_s, wall),
            "worker_revision": self.revision,
            "worker_summary": run.summary,
            "verify": self.verdict.as_dict(),
            **({"stderr_tail": run.stderr_tail} if run.exit_code else {}),
        }


def _per_s(seconds: float | None, wall: float) -> float | None:
    return None if seconds is None else round(seconds / wall, 2)


def run_size(
    size: int,
    cases: Sequence[str],
    *,
    postgres: str | None,
    profile_dir: Path | None,
    repeat: int = 1,
    page_delay: float = 0.0,
) -> list[CaseResult]:
    """Seed one list, then run each case `repeat` times, each repeat after its floor's;
    Listrak takes `page_delay` seconds over each page for every run alike."""
    results: list[CaseResult] = []
    with (
        TemporaryDirectory(prefix="lsrc-bench-") as tmp,
        World(size, Path(tmp), postgres=postgres) as world,
    ):
        world.sim.faults.page_delay = page_delay
        # The seeded contacts live as long as the run: keep the collector off them.
        gc.freeze()
        for name in CASES:
            # The re-sync cases need a synced database, so the first sync always runs.
            if name in cases:
                results += _repeat(world, name, repeat, results, profile_dir)
            elif name == "first":
                _run(world, name, 0, profile_dir, setup=True)
        gc.unfreeze()
    return results


def _repeat(
    world: World, name: str, repeat: int, done: Sequence[CaseResult], profile_dir: Path | None
) -> list[CaseResult]:
    """Alternate the floor and the case, so drift during the runs reaches both alike."""
    results: list[CaseResult] = []
    floor = CASES[name].floor
    for i in range(repeat):
        if floor is not None and sum(r.case == floor for r in (*done, *results)) <= i:
            results.append(_run(world, floor, i, None))
        if i and CASES[name].fresh_state:
            world.fresh_database()
        results.append(_run(world, name, i, profile_dir))
    return results


def _run(
    world: World, name: str, i: int, profile_dir: Path | None, *, setup: bool = False
) -> CaseResult:
    case = (CASES | FLOORS)[name]
    suffix = f"-{i + 1}" if i else ""
    profile = None if profile_dir is None else profile_dir / f"{world.size}-{name}{suffix}.prof"
    result = measure(world, name, case.expect(world), lambda: case.launch(world, profile))
    _progress(result, i, setup=setup)
    return result


def measure(
    world: World, case: str, expected: dict[str, Expected], launch: Callable[[], WorkerRun]
) -> CaseResult:
    """One launched run against the fakes, then what the sink got checked against `expected`."""
    sim, sink = world.sim, world.sink
    sink.clear()
    first_page = len(sim.page_times)
    pages, contacts, sim_s = sim.stats.pages, sim.stats.contacts, sim.stats.seconds
    sink_s = sink.stats.seconds
    # The worker's code can change between runs of a long benchmark; say which one ran.
    revision = worker_revision()
    before = CpuMark.now()
    run = launch()
    after = CpuMark.now()
    served = Served(
        pages=sim.stats.pages - pages,
        contacts=sim.stats.contacts - contacts,
        sim_s=sim.stats.seconds - sim_s,
        sink_s=sink.stats.seconds - sink_s,
        driver_cpu_s=after.driver - before.driver,
        other_cpu_s=other_cpu_s(before, after, run.cpu_s),
        page_times=sim.page_times[first_page:],
    )
    verdict = verify(sink.messages, expected, TRAIT)
    sink.clear()
    return CaseResult(
        size=world.size, case=case, run=run, served=served, verdict=verdict, revision=revision
    )


def _progress(result: CaseResult, i: int, *, setup: bool) -> None:
    d = result.as_dict()
    state = "ok" if result.verdict.ok and not result.run.exit_code else "FAILED"
    state += " (setup for the re-sync cases, not reported)" if setup else ""
    title = CASE_TITLES[result.case] + (f" #{i + 1}" if i else "")
    print(
        f"  {result.size:>9,} {title:<28} {d['wall_s']:>8.2f} s  "
        f"rss {d['footprint_mb']:>6.1f} MB  sent {d['messages']:,}  {state}",
        file=sys.stderr,
        flush=True,
    )
