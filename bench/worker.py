"""Runs the real worker, or the floor beside it, as a child process and measures it exactly."""

from __future__ import annotations

import compileall
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_LAUNCHER = Path(__file__).resolve().parent / "launcher.py"
# The floor runs as `python -m bench.floor`, from the worktree that holds this package.
_ROOT = _LAUNCHER.parent.parent
# Kept from the worker's stderr when it fails, enough for the error and its context.
_STDERR_TAIL = 2000


@dataclass(frozen=True, slots=True)
class WorkerRun:
    """One `listrak-source sync` (or floor run): exit status, spawn and exit times, CPU, RSS.

    The times are time.perf_counter() values, which on Linux read CLOCK_MONOTONIC in every
    process, so they line up with the simulator's page times taken in the driver.
    """

    exit_code: int
    started: float
    finished: float
    cpu_s: float
    sys_s: float
    peak_rss_kib: int
    tree_peak_rss_kib: int
    processes: int
    summary: str
    stderr_tail: str

    @property
    def footprint_kib(self) -> int:
        """What the worker held at its peak: the sampled sum when it ran several processes."""
        return max(self.peak_rss_kib, self.tree_peak_rss_kib)

    @property
    def wall_s(self) -> float:
        """Spawn to exit, interpreter start-up and imports included."""
        return self.finished - self.started


def worker_command(config: Path, profile: Path | None = None) -> list[str]:
    """The command a user would run, optionally under cProfile."""
    prefix = [sys.executable]
    if profile is not None:
        prefix += ["-m", "cProfile", "-o", str(profile)]
    return [
        *prefix,
        "-m",
        "listrak_source",
        "--config",
        str(config),
        "--log-format",
        "json",
        "sync",
    ]


def floor_command(arguments: Sequence[str]) -> list[str]:
    """`python -m bench.floor` with the simulator's and sink's endpoints and credentials."""
    return [sys.executable, "-m", "bench.floor", *arguments]


def _environment(**extra: str) -> dict[str, str]:
    # A LISTRAK_SOURCE_* variable in the caller's shell would override the bench's config.
    kept = {k: v for k, v in os.environ.items() if not k.startswith("LISTRAK_SOURCE_")}
    return kept | extra


def run_worker(config: Path, folder: Path, *, profile: Path | None = None) -> WorkerRun:
    """Run one sync through the launcher, which reaps it with wait4 and reports its rusage."""
    return run_launched(worker_command(config, profile), folder, _environment())


def compile_sources() -> None:
    """Byte-compile the worker's and the floor's own modules, as installing a wheel does.

    Installed from a wheel, or run once where Python may write its caches, the worker
    starts from compiled modules; in a checkout run under PYTHONDONTWRITEBYTECODE=1 it
    would compile its own 100-odd modules at every start (about 0.08 s), which neither a
    user nor the floor (whose libraries come compiled) pays.
    """
    import listrak_source  # noqa: PLC0415 - only to find the folder the worker runs

    for package in (Path(listrak_source.__file__).parent, _ROOT / "bench"):
        if not compileall.compile_dir(package, quiet=1):
            raise RuntimeError(f"could not byte-compile {package}")


def run_floor(arguments: Sequence[str], folder: Path) -> WorkerRun:
    """Run the floor through the same launcher, so its wall, CPU and RSS compare like for like."""
    path = os.pathsep.join(p for p in (str(_ROOT), os.environ.get("PYTHONPATH")) if p)
    return run_launched(floor_command(arguments), folder, _environment(PYTHONPATH=path))


def run_launched(command: Sequence[str], folder: Path, env: dict[str, str]) -> WorkerRun:
    """Run `command` under the launcher in `folder`, and read back its report and output."""
    out_path, err_path = folder / "worker.out", folder / "worker.err"
    report_path = folder / "rusage.json"
    report_path.unlink(missing_ok=True)
    # -S: no site packages, so the launcher stays small (its RSS is a floor on the report).
    launch = [sys.executable, "-S", str(_LAUNCHER), str(report_path), *command]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        launcher = subprocess.Popen(launch, stdout=out, stderr=err, env=env, cwd=folder)
        try:
            launcher.wait()
        except BaseException:
            # SIGTERM, not Popen's SIGKILL: the launcher then kills the worker it started.
            launcher.terminate()
            launcher.wait()
            raise
    if launcher.returncode:
        raise RuntimeError(f"the launcher failed (status {launcher.returncode}): see {err_path}")
    usage = json.loads(report_path.read_text())
    return WorkerRun(
        exit_code=usage["exit_code"],
        started=usage["started"],
        finished=usage["finished"],
        cpu_s=usage["cpu_s"],
        sys_s=usage["sys_s"],
        peak_rss_kib=usage["peak_rss_kib"],
        tree_peak_rss_kib=usage["tree_peak_rss_kib"],
        processes=usage["processes"],
        summary=out_path.read_text(errors="replace").strip(),
        stderr_tail=err_path.read_text(errors="replace")[-_STDERR_TAIL:],
    )
