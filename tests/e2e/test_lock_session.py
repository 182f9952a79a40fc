"""On PostgreSQL, a run's lock lives in a session of its own; the pages' writes check it
in their own statements. Settings a server may have must not stop a run that holds it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..conftest import _fresh_schema
from .harness import FIELD, assert_profiles_match, run_cli, write_config

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

MAIN = {"id": 1001, "user_id_field": FIELD}
OTHER = {"id": 1002}


@pytest.fixture
def idle_url(postgres_server: str) -> Iterator[str]:
    """A server that ends any session silent for 1.5 s (idle_session_timeout)."""
    for url in _fresh_schema(postgres_server):
        yield f"{url}%20-cidle_session_timeout%3D1500"


def test_a_dry_run_of_two_lists_writes_both_in_its_one_transaction(
    tmp_path, sim, sink, postgres_url, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("LISTRAK_SOURCE_LISTRAK__PAGE_SIZE", "100")
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 300, field_id=FIELD, seed=9)
    sim.add_list(1002, "Other")
    sim.seed(1002, 30, seed=10)
    config = write_config(tmp_path / "c.toml", sim, sink, postgres_url, [MAIN, OTHER])
    assert run_cli(config, "migrate") == 0
    assert run_cli(config, "sync", "--dry-run") == 0, capsys.readouterr().out
    assert not sink.messages


def test_lock_sessions_outlive_a_servers_idle_timeout_through_long_scans(
    tmp_path, sim, sink, idle_url, monkeypatch, capsys
) -> None:
    """A first sync writes every page; a re-sync with no change writes none. Pages come
    0.4 s apart, ten of them, while the server ends a session silent for 1.5 s."""
    monkeypatch.setenv("LISTRAK_SOURCE_LISTRAK__PAGE_SIZE", "100")
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 1000, field_id=FIELD, seed=9)
    sim.faults.page_delay = 0.4
    config = write_config(tmp_path / "c.toml", sim, sink, idle_url, [MAIN])
    assert run_cli(config, "sync") == 0, capsys.readouterr().out
    assert_profiles_match(sim, sink, [MAIN])
    assert run_cli(config, "sync", "--full") == 0, capsys.readouterr().out
