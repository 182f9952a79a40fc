"""What else ran: CPU used by other processes meanwhile, and which worker code was measured."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

_STAT = Path("/proc/stat")


def machine_busy_s() -> float | None:
    """CPU seconds every process has used since boot, or None where /proc/stat is missing."""
    try:
        fields = _STAT.read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def driver_cpu_s() -> float:
    """CPU seconds of this process: the simulator and the sink serving the worker."""
    t = os.times()
    return t.user + t.system


@dataclass(frozen=True, slots=True)
class CpuMark:
    """A reading taken before a run, to subtract from one taken after."""

    machine: float | None
    driver: float

    @classmethod
    def now(cls) -> CpuMark:
        """Read both counters."""
        return cls(machine_busy_s(), driver_cpu_s())


def other_cpu_s(before: CpuMark, after: CpuMark, worker_cpu_s: float) -> float | None:
    """CPU seconds used meanwhile by processes that are neither the driver nor the worker."""
    if before.machine is None or after.machine is None:
        return None
    used = after.machine - before.machine
    return max(0.0, used - (after.driver - before.driver) - worker_cpu_s)


def worker_revision() -> str | None:
    """The commit the worker ran from, marked dirty when listrak_source/ had local edits."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        # --no-optional-locks: never refresh the index, so a concurrent commit is not blocked.
        command = ["git", "--no-optional-locks", *args]
        done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "listrak_source", "migrations")
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}-dirty" if dirty else head
