"""Helpers for end-to-end tests: a config file for the simulator and sink, and the truth check."""

from __future__ import annotations

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
        lines = "\n".join(
            f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in item.items()
        )
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

[database]
url = "{db_url}"
{extra}
"""
        + "\n".join(blocks)
    )
    return path


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
