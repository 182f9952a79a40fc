"""`python -m bench.audiences`: the audience direction at scale, against the simulator.

One run: a list of N subscribers is synced; `listrak-source run` serves the receiver while
two senders post an Engage backfill (one "Audience Entered" per member, in JSON arrays of
1,000, as Segment's Webhooks destination batches them), pushing as it would; then
`listrak-source push` sends the rest to the simulator's bulk route. Reported: the ingest
rate, each request's latency (p50, p99), the worker's RSS while it ingests (flat, or
growing with the events?), the push's wall time and the Listrak requests it took, and
whether every box ended checked.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from listrak_source.simulator import ListrakSimulator, SegmentSink

LIST_ID, BOX = 1001, 901
SECRET = "bench-receiver-secret"
BATCH = 1000
SENDERS = 2
TARGET_RATE = 20_000
TARGET_P99_S = 1.0
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "audiences-results.json"
# One Engage track event, as the Webhooks destination sends it, with its varying parts open.
_EVENT = (
    b'{"type":"track","event":"Audience Entered","userId":"u%(n)d",'
    b'"messageId":"personas_bench_%(n)d","timestamp":"2024-05-06T09:30:22.%(ms)03dZ",'
    b'"receivedAt":"2024-05-06T09:30:38.650Z","context":{"personas":{"computation_class":'
    b'"audience","computation_id":"aud_bench","computation_key":"vip","namespace":"spa_bench",'
    b'"space_id":"spa_bench"},"traits":{"email":"user%(n)06d@example.com"}},'
    b'"properties":{"audience_key":"vip","vip":true}}'
)


@dataclass
class Result:
    """What one run measured."""

    members: int
    sync_s: float = 0.0
    ingest_s: float = 0.0
    events_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    rss_mib: list[float] = field(default_factory=list)
    peak_rss_mib: float = 0.0
    worker_cpu_s: float = 0.0
    driver_cpu_s: float = 0.0
    push_s: float = 0.0
    push_requests: int = 0
    bulk_requests: int = 0
    checked: int = 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(folder: Path, sim: ListrakSimulator, sink: SegmentSink, port: int) -> Path:
    path = folder / "config.toml"
    path.write_text(
        f"""
[listrak]
client_id = "{sim.client_id}"
client_secret = "{sim.client_secret}"
base_url = "{sim.base_url}"
auth_url = "{sim.auth_url}"
requests_per_second = 1000

[segment]
write_key = "{sink.write_key}"
host = "{sink.url}"
requests_per_second = 1000

[database]
url = "sqlite:///{folder / "bench.db"}"

[push]
interval = "24h"

[receiver]
port = {port}
secrets = ["{SECRET}"]

[[lists]]
id = {LIST_ID}
cron = "0 0 1 1 *"

[[audiences]]
key = "vip"
list_id = {LIST_ID}
field_id = {BOX}
"""
    )
    return path


def _cli(config: Path, *args: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "listrak_source", "--config", str(config), *args]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _timed(config: Path, *args: str) -> float:
    started = time.perf_counter()
    code = _cli(config, *args).wait()
    if code != 0:
        raise RuntimeError(f"listrak-source {' '.join(args)} exited {code}")
    return time.perf_counter() - started


def _bodies(members: int, part: int, parts: int) -> Iterator[bytes]:
    """This sender's share of the backfill, a JSON array of BATCH events at a time."""
    for start in range(part * BATCH, members, parts * BATCH):
        stop = min(start + BATCH, members)
        events = [_EVENT % {b"n": n, b"ms": n % 1000} for n in range(start, stop)]
        yield b"[" + b",".join(events) + b"]"


def _send(
    url: str, bodies: Iterator[bytes], latencies: list[float], statuses: dict[str, int]
) -> None:
    headers = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}
    with httpx.Client(timeout=60) as client:
        for body in bodies:
            while True:
                started = time.perf_counter()
                status = client.post(url, content=body, headers=headers).status_code
                latencies.append(time.perf_counter() - started)
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                if status == 200:
                    break


def _rss_mib(pid: int, name: str = "VmRSS") -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(name + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def _cpu_s(pid: int) -> float:
    """User and system CPU seconds a process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ingest(result: Result, config: Path, port: int) -> None:
    worker = _cli(config, "run")
    url = f"http://127.0.0.1:{port}/events"
    _wait_for_receiver(port)
    latencies: list[float] = []
    threads = [
        threading.Thread(
            target=_send,
            args=(url, _bodies(result.members, n, SENDERS), latencies, result.statuses),
        )
        for n in range(SENDERS)
    ]
    started, worker_cpu, driver_cpu = time.perf_counter(), _cpu_s(worker.pid), _cpu_s(os.getpid())
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        result.rss_mib.append(round(_rss_mib(worker.pid), 1))
        time.sleep(1.0)
    result.ingest_s = time.perf_counter() - started
    result.worker_cpu_s = round(_cpu_s(worker.pid) - worker_cpu, 1)
    result.driver_cpu_s = round(_cpu_s(os.getpid()) - driver_cpu, 1)
    result.peak_rss_mib = round(_rss_mib(worker.pid, "VmHWM"), 1)
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=60)
    result.events_per_s = round(result.members / result.ingest_s)
    ordered = sorted(latencies)
    result.p50_ms = round(statistics.median(ordered) * 1000, 1)
    result.p99_ms = round(ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000, 1)


def _wait_for_receiver(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("the receiver did not start")


def run(members: int) -> Result:
    """Sync, ingest the backfill through `run`, push it with `push`; measure each part."""
    result = Result(members)
    with (
        tempfile.TemporaryDirectory() as tmp,
        ListrakSimulator() as sim,
        SegmentSink() as sink,
    ):
        sim.add_list(LIST_ID, "Bench")
        sim.add_field(LIST_ID, BOX, "CheckBox")
        sim.seed(LIST_ID, members, seed=1)
        # The senders allocate as they go; without this every collection would walk the
        # simulator's million contacts and the benchmark would time the driver's pauses.
        gc.freeze()
        port = _free_port()
        config = _config(Path(tmp), sim, sink, port)
        result.sync_s = round(_timed(config, "sync"), 1)
        _ingest(result, config, port)
        before = len(sim.bulk_requests)
        result.push_s = round(_timed(config, "push"), 1)
        result.push_requests = len(sim.bulk_requests) - before
        result.bulk_requests = len(sim.bulk_requests)
        sim.apply_imports()
        with sim.lock:
            contacts = sim.get(LIST_ID).contacts.values()
            result.checked = sum(1 for c in contacts if any(f[0] == BOX for f in c.fields))
    return result


def report(result: Result) -> str:
    """A few lines a person reads, with the targets beside the numbers."""
    rate_ok = result.events_per_s >= TARGET_RATE
    p99_ok = result.p99_ms < TARGET_P99_S * 1000
    rss = result.rss_mib
    return "\n".join(
        [
            f"audiences: {result.members:,} members, SQLite, {SENDERS} senders x {BATCH} events",
            f"  subscriber sync first: {result.sync_s} s",
            f"  ingest: {result.events_per_s:,} events/s over {result.ingest_s:.1f} s "
            f"(target >= {TARGET_RATE:,}: {'met' if rate_ok else 'MISSED'}); answers "
            f"{result.statuses}",
            f"  CPU while ingesting: worker {result.worker_cpu_s} s, "
            f"driver {result.driver_cpu_s} s",
            f"  latency: p50 {result.p50_ms} ms, p99 {result.p99_ms} ms "
            f"(target < {TARGET_P99_S * 1000:.0f} ms: {'met' if p99_ok else 'MISSED'})",
            f"  worker RSS while ingesting: first {rss[0] if rss else 0} MiB, "
            f"middle {rss[len(rss) // 2] if rss else 0} MiB, last {rss[-1] if rss else 0} MiB, "
            f"peak {result.peak_rss_mib} MiB",
            f"  push: {result.push_s} s, {result.push_requests} bulk requests "
            f"({result.bulk_requests} in all, with the daemon's own pushes while it "
            f"ingested); boxes checked {result.checked:,} of {result.members:,}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Run, print, and write the JSON results."""
    parser = argparse.ArgumentParser(prog="python -m bench.audiences", description=__doc__)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="50,000 members")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    result = run(50_000 if args.quick else args.members)
    print(report(result))
    args.output.write_text(json.dumps(asdict(result), indent=2) + "\n")
    ok = result.events_per_s >= TARGET_RATE and result.p99_ms < TARGET_P99_S * 1000
    return 0 if ok and result.checked == result.members else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
