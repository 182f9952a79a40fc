"""`python -m bench.activity`: one activity pass over a broadcast's rows, against a bare loop.

The simulator and the sink run in a process of their own, with one list of N subscribers and
one message sent to all of them (a tenth opened, 2 % clicked, 0.5 % bought). Measured in
this process, each from a cold client, once the simulator has served every row (it caches
their JSON): a bare loop that pages the message's activity rows through the Listrak client
and does nothing with them; the worker's first pass (diff, ledger, events delivered to the
sink); and a second pass with nothing changed, which must send nothing.
Targets: the first pass within 1.5 x the bare loop, the quiet pass within 1.3 x.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NamedTuple

from listrak_source.activity.run import activity_pass
from listrak_source.cli.wiring import listrak_client, run_context
from listrak_source.config import Settings
from listrak_source.simulator import ListrakSimulator, SegmentSink

LIST_ID, MESSAGE, LINK = 1001, 501, 42
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "activity-results.json"
FIRST_TARGET, QUIET_TARGET = 1.5, 1.3


@dataclass
class Result:
    """What one run measured (seconds, counts, and the worker's peak RSS in MB)."""

    rows: int
    pages: int = 0
    bare_s: float = 0.0
    first_s: float = 0.0
    quiet_s: float = 0.0
    first_ratio: float = 0.0
    quiet_ratio: float = 0.0
    events_sent: int = 0
    quiet_sent: int = 0
    rss_mb_after_first: float = 0.0
    rss_mb_after_quiet: float = 0.0


def _serve(conn: Connection, rows: int) -> None:
    """The fakes' process: seed, send the broadcast, make activity, serve until told.

    The sink runs here too, so the worker's process pays for nothing Segment would do."""
    with ListrakSimulator() as sim, SegmentSink() as sink:
        sim.add_list(LIST_ID, "Bench")
        emails = sim.seed(LIST_ID, rows, seed=1)
        sim.send_message(LIST_ID, MESSAGE, emails, subject="Bench broadcast")
        sim.add_link(LIST_ID, MESSAGE, LINK, "https://shop.example.com/bench")
        for n, email in enumerate(emails):
            if n % 10 == 0:
                sim.open(LIST_ID, MESSAGE, email)
            if n % 50 == 0:
                sim.click(LIST_ID, MESSAGE, LINK, email)
            if n % 200 == 0:
                sim.convert(LIST_ID, MESSAGE, email, 25.0)
        conn.send(
            Fakes(
                sim.base_url,
                sim.auth_url,
                sim.client_id,
                sim.client_secret,
                sink.url,
                sink.write_key,
            )
        )
        while conn.recv() == "count":
            conn.send(sink.message_count)


class Fakes(NamedTuple):
    """Where the simulator and the sink listen, and their credentials."""

    base_url: str
    auth_url: str
    client_id: str
    client_secret: str
    sink_url: str
    write_key: str


def _settings(fakes: Fakes, folder: Path, database: str | None = None) -> Settings:
    return Settings.from_values(
        listrak={
            "client_id": fakes.client_id,
            "client_secret": fakes.client_secret,
            "base_url": fakes.base_url,
            "auth_url": fakes.auth_url,
            "requests_per_second": 10_000,
        },
        segment={
            "write_key": fakes.write_key,
            "host": fakes.sink_url,
            "requests_per_second": 10_000,
        },
        database={"url": database or f"sqlite:///{folder / 'bench.db'}"},
        lists=[{"id": LIST_ID, "activity": True}],
        activity={"max_requests": 1_000_000},
    )


def _bare(settings: Settings) -> tuple[float, int]:
    """Page every row through the client, doing nothing with them."""
    started = time.perf_counter()
    pages = 0
    with listrak_client(settings) as client:
        for _page in client.iter_activity(LIST_ID, MESSAGE, page_size=5000):
            pages += 1
    return time.perf_counter() - started, pages


def _pass(settings: Settings) -> float:
    started = time.perf_counter()
    with run_context(settings) as ctx:
        outcome = activity_pass(ctx, settings.list_by_id(LIST_ID))
    if outcome.status != "ok":
        raise SystemExit(f"the pass was not ok: {outcome.describe()}")
    return time.perf_counter() - started


def _sent(conn: Connection) -> int:
    conn.send("count")
    count: int = conn.recv()
    return count


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(rows: int, database: str | None = None) -> Result:
    """Start the simulator, then time the bare loop, the first pass and the quiet pass."""
    result = Result(rows)
    parent, child = multiprocessing.get_context("spawn").Pipe()
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(child, rows))
    server.start()
    try:
        fakes = parent.recv()
        with tempfile.TemporaryDirectory() as tmp:
            settings = _settings(fakes, Path(tmp), database)
            with run_context(settings):
                pass  # the schema is made before anything is timed
            _bare(settings)  # once untimed: the simulator caches each row's JSON as it serves it
            result.bare_s, result.pages = _bare(settings)
            result.first_s = _pass(settings)
            result.events_sent = _sent(parent)
            result.rss_mb_after_first = _rss_mb()
            result.quiet_s = _pass(settings)
            result.quiet_sent = _sent(parent) - result.events_sent
            result.rss_mb_after_quiet = _rss_mb()
    finally:
        parent.send("stop")
        server.join(60)
    result.first_ratio = result.first_s / result.bare_s
    result.quiet_ratio = result.quiet_s / result.bare_s
    return result


def report(r: Result) -> str:
    """A small table for the terminal."""
    return "\n".join(
        [
            f"activity: one message, {r.rows:,} rows in {r.pages} pages",
            f"  bare loop (client pages, nothing done)  {r.bare_s:8.2f} s",
            f"  first pass ({r.events_sent:,} events sent)  {r.first_s:8.2f} s"
            f"  {r.first_ratio:4.2f} x  (target {FIRST_TARGET} x)",
            f"  pass with nothing changed ({r.quiet_sent} sent)  {r.quiet_s:8.2f} s"
            f"  {r.quiet_ratio:4.2f} x  (target {QUIET_TARGET} x)",
            f"  peak RSS of the worker's process  {r.rss_mb_after_first:.0f} MB after the first "
            f"pass, {r.rss_mb_after_quiet:.0f} MB after the second",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Run, print, write the JSON results; 0 when every target was met."""
    parser = argparse.ArgumentParser(prog="python -m bench.activity", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="20,000 rows")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--database", help="a database URL (default: SQLite in a temp folder)")
    args = parser.parse_args(argv)
    result = run(20_000 if args.quick else args.rows, args.database)
    print(report(result))
    doc: dict[str, Any] = asdict(result)
    args.output.write_text(json.dumps(doc, indent=2) + "\n")
    met = result.first_ratio <= FIRST_TARGET and result.quiet_ratio <= QUIET_TARGET
    return 0 if met and result.quiet_sent == 0 else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
