"""Helpers for end-to-end tests: a config file for the simulator and sink, and the truth check."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from listrak_source.cli import main
from listrak_source.simulator import ListrakSimulator, SegmentSink, rebuild_profiles

FIELD = 678


def write_config(
    path: Path,
    sim: ListrakSimulator,
    sink: SegmentSink,
    db_url: str,
    lists: Iterable[Mapping[str, Any]],
    *,
    extra: str = "",
) -> Path:
    """A config.toml pointing every URL at loopback."""
    blocks = []
    for item in lists:
        lines = "\n".join(f"{k} = {_toml(v)}" for k, v in item.items())
        blocks.append(f"[[lists]]\n{lines}\n")
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
max_backoff_seconds = 2
timeout = 5
requests_per_second = 1000

[database]
url = "{db_url}"
{extra}
"""
        + "\n".join(blocks)
    )
    return path


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, str) else str(value)


def run_cli(config: Path, *args: str) -> int:
    """The real CLI, in process."""
    return main(["--config", str(config), "--log-format", "text", *args])


def truth_traits(sim: ListrakSimulator, list_id: int, field: int | None) -> dict[str, Any]:
    """What Segment should hold for one list: lower email -> userId (or None)."""
    return {k: v["user_id"] for k, v in sim.truth(list_id, field).items()}


def assert_profiles_match(
    sim: ListrakSimulator, sink: SegmentSink, lists: Iterable[Mapping[str, Any]]
) -> None:
    """Profiles rebuilt from everything the sink kept equal the simulator's lists."""
    profiles = rebuild_profiles(sink.messages)
    for item in lists:
        list_id, field = item["id"], item.get("user_id_field")
        trait = f"Listrak_list_{list_id}"
        truth = truth_traits(sim, list_id, field)
        have = {k for k, p in profiles.items() if p["traits"].get(trait) is True}
        assert have == set(truth), (
            f"list {list_id}: missing {sorted(set(truth) - have)[:5]}, "
            f"extra {sorted(have - set(truth))[:5]}"
        )
        for key, user_id in truth.items():
            if user_id is not None:
                assert profiles[key]["user_id"] == user_id, key


def assert_no_change_under_two_ids(messages: Iterable[Mapping[str, Any]]) -> None:
    """One message id carries one content, and one change (same detection time) one id."""
    content_by_id: dict[str, tuple[Any, ...]] = {}
    ids_by_change: dict[tuple[Any, ...], set[str]] = {}
    for message in messages:
        content = (
            str(message["anonymousId"]).lower(),
            json.dumps(message["traits"], sort_keys=True),
            message.get("userId"),
            message["timestamp"],
        )
        assert content_by_id.setdefault(message["messageId"], content) == content
        ids_by_change.setdefault(content, set()).add(message["messageId"])
    twice = {change: ids for change, ids in ids_by_change.items() if len(ids) > 1}
    assert not twice, f"changes sent under two message ids: {list(twice.items())[:3]}"


def worker(
    config: Path, *args: str, env: Mapping[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """`listrak-source --config CONFIG ARGS` as a real subprocess."""
    full_env = {**os.environ, **(env or {})}
    command = [sys.executable, "-m", "listrak_source", "--config", str(config)]
    command += ["--log-format", "json", *args]
    if log is None:
        return subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=full_env
        )
    # The child keeps its own copy of the log's descriptor; ours closes at once.
    with log.open("ab") as stderr:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=full_env)


def member_rows(db_url: str, list_id: int) -> dict[str, dict[str, Any]]:
    """The members table of one list, keyed by email key, straight from the database."""
    from sqlalchemy import create_engine, select

    from listrak_source.state.schema import members

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(members).where(members.c.list_id == list_id)).mappings()
            return {row["email_key"]: dict(row) for row in rows}
    finally:
        engine.dispose()


def run_statuses(db_url: str, list_id: int) -> list[str]:
    """The status of each run of a list, oldest first, straight from the database."""
    return [str(status) for status in _of_runs(db_url, list_id, "status")]


def run_full_scans(db_url: str, list_id: int) -> list[bool]:
    """Whether each run of a list was a full scan, oldest first."""
    return [bool(full) for full in _of_runs(db_url, list_id, "full_scan")]


def _of_runs(db_url: str, list_id: int, column: str) -> list[Any]:
    from sqlalchemy import create_engine, select

    from listrak_source.state.schema import runs

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            stmt = select(runs.c[column]).where(runs.c.list_id == list_id).order_by(runs.c.id)
            return list(conn.execute(stmt).scalars())
    finally:
        engine.dispose()


def lock_holders(db_url: str) -> dict[int, str]:
    """Who holds which list, asked of the lock itself (advisory locks, or the lock files)."""
    from listrak_source.state import make_engine
    from listrak_source.state.locks import list_locks

    engine = make_engine(db_url)
    try:
        return list_locks(engine).holders()
    finally:
        engine.dispose()


def status_json(config: Path) -> dict[str, Any]:
    """`status --json`, parsed, per list id."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        # 0 healthy, 1 degraded, 2 failing: the document is there whatever the verdict.
        assert run_cli(config, "status", "--json") in (0, 1, 2)
    return {item["list_id"]: item for item in json.loads(out.getvalue())["lists"]}


def on_a_terminal(config: Path, env: Mapping[str, str], *args: str) -> str:
    """What a command writes to stderr when stderr is a terminal (a pseudo-terminal here)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("listrak-source")), "--config", str(config), *args],
        stdout=subprocess.DEVNULL,
        stderr=follower,
        env={**os.environ, **env},
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the last writer closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=120) == 0
    return b"".join(chunks).decode()
