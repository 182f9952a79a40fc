"""Every cron start pays the imports: a command loads only the libraries it uses.

Checked by the modules a fresh interpreter holds after the command, never by its time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from listrak_source.simulator import ListrakSimulator, SegmentSink
from listrak_source.state import make_engine, upgrade

from ..e2e.harness import write_config

# What the parser and `--help` must never load: the database, HTTP, the daemon's server,
# the scheduler, the metrics, the migrations and the settings library.
HEAVY = (
    "sqlalchemy",
    "httpx",
    "uvicorn",
    "starlette",
    "alembic",
    "pydantic_settings",
    "prometheus_client",
    "apscheduler",
)
# `status` reads the database and asks a daemon how it is: no Segment library, no server,
# no scheduler, no migrations.
NOT_FOR_STATUS = (
    "segment.analytics",
    "requests",
    "uvicorn",
    "starlette",
    "alembic",
    "prometheus_client",
    "apscheduler",
)

# A sync loads the Segment library (and `requests` under it) to post its first batch: one
# that finds nothing to send never loads it, nor another command's reports and checks.
NOT_FOR_A_QUIET_SYNC = (
    "segment.analytics",
    "requests",
    "jwt",
    "listrak_source.segment.poster",
    "listrak_source.cli.check",
    "listrak_source.cli.health",
    "listrak_source.audiences.push",
    "uvicorn",
    "starlette",
    "alembic",
    "apscheduler",
)

_PROBE = """
import json, sys
from listrak_source.cli import main
try:
    code = main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code
names = json.loads(sys.argv[1])
print(json.dumps({"code": code, "loaded": [n for n in names if n in sys.modules]}))
"""


def loaded_after(args: list[str], watched: tuple[str, ...], cwd: Path) -> tuple[object, list[str]]:
    """Run the CLI with `args` in a fresh interpreter; its exit code and the watched modules."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(watched), *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
        timeout=60,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    return report["code"], report["loaded"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "args", [["--help"], ["sync", "--help"], ["status", "--help"], ["run", "--help"], []]
)
def test_the_parser_loads_no_heavy_library(args: list[str], tmp_path: Path) -> None:
    code, loaded = loaded_after(args, HEAVY, tmp_path)
    assert code in (0, 2)
    assert loaded == []


@pytest.mark.slow
def test_status_loads_no_segment_library_server_or_migrations(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    config = tmp_path / "config.toml"
    config.write_text(
        '[listrak]\nclient_id = "id"\nclient_secret = "secret"\n'
        '[segment]\nwrite_key = "key"\n'
        f'[database]\nurl = "{url}"\n'
        "[[lists]]\nid = 1\n"
    )
    code, loaded = loaded_after(
        ["--config", str(config), "--log-format", "json", "status"], NOT_FOR_STATUS, tmp_path
    )
    assert code == 1  # degraded: the list has never run
    assert loaded == []


@pytest.mark.slow
def test_a_sync_loads_the_segment_library_only_when_it_posts(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink
) -> None:
    sim.add_list(1, "Main")
    sim.seed(1, 30, seed=1)
    url = f"sqlite:///{tmp_path / 'state.db'}"
    config = write_config(tmp_path / "config.toml", sim, sink, url, [{"id": 1}])
    args = ["--config", str(config), "--log-format", "json", "sync"]
    code, loaded = loaded_after(args, NOT_FOR_A_QUIET_SYNC, tmp_path)
    # The first sync posts everyone, through the library; the new database it makes is
    # made from the table definitions, without Alembic.
    assert code == 0 and len(sink.messages) == 30
    assert {"segment.analytics", "requests"} <= set(loaded)
    assert "alembic" not in loaded
    sink.clear()
    code, loaded = loaded_after(args, NOT_FOR_A_QUIET_SYNC, tmp_path)
    assert code == 0 and sink.messages == []
    assert loaded == []
