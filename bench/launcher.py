"""Starts one command from a small, fresh process and writes its exact rusage as JSON.

Run as a script (`python -S launcher.py REPORT CMD...`), never imported by the worker.

Why a separate process: Linux keeps the high-water RSS of the memory image a process
replaces at exec. A child forked (or vforked) straight from the bench driver, which holds
the simulator's contacts and the sink's messages, therefore reports the driver's peak RSS
as its own. Started from this ~10 MB launcher, the worker's ru_maxrss is its own.

wait4's ru_maxrss is the largest single process of the worker's tree, not their sum; a
worker that spawns a helper (parallel delivery) holds both at once, so the launcher also
samples the summed RSS of the whole tree.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from types import FrameType

_SAMPLE_EVERY = 0.02  # seconds; short enough to catch a helper process that lives a second
_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def _tree(pid: int) -> list[int]:
    """pid and every descendant, from /proc/<pid>/task/<tid>/children."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    todo += [int(child) for child in f.read().split()]
        except OSError:
            continue  # it exited between the listing and the read
    return found


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE_KIB
    except (OSError, IndexError, ValueError):
        return 0


class TreeSampler(threading.Thread):
    """Keeps the peak of the summed RSS of a process tree, and the most processes seen."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kib = 0
        self.most_processes = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            pids = _tree(self.pid)
            self.peak_kib = max(self.peak_kib, sum(_rss_kib(p) for p in pids))
            self.most_processes = max(self.most_processes, len(pids))
            self.done.wait(_SAMPLE_EVERY)


def main(argv: list[str]) -> int:
    """Spawn, reap with wait4 (this child's rusage only), and write the report."""
    report, command = argv[1], argv[2:]
    started = time.perf_counter()  # CLOCK_MONOTONIC: the driver's clock too
    pid = os.posix_spawnp(command[0], command, os.environ)
    sampler = TreeSampler(pid)
    sampler.start()

    def stop(signum: int, frame: FrameType | None) -> None:
        # Interrupted, the worker would finish delivering to a sink that is going away.
        os.kill(pid, signal.SIGKILL)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    _, status, usage = os.wait4(pid, 0)
    finished = time.perf_counter()
    sampler.done.set()
    exit_code = os.waitstatus_to_exitcode(status)
    with open(report, "w") as out:
        json.dump(
            {
                "exit_code": exit_code,
                "started": started,
                "finished": finished,
                # Includes the worker's own reaped children, as wait4 reports them.
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "user_s": usage.ru_utime,
                "sys_s": usage.ru_stime,
                "peak_rss_kib": usage.ru_maxrss,  # KiB on Linux; largest single process
                "tree_peak_rss_kib": sampler.peak_kib,
                "processes": sampler.most_processes,
            },
            out,
        )
    return 0  # the worker's own status is in the report


if __name__ == "__main__":
    sys.exit(main(sys.argv))
