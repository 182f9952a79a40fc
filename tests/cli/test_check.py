"""`check` against the simulator: a table of what passed, and exit 0 only when safe to start."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from listrak_source.simulator import ListrakSimulator, SegmentSink

from ..e2e.harness import FIELD, run_cli, write_config

SECRET = "s3cret-never-printed-7f3a"


@pytest.fixture
def sim() -> Iterator[ListrakSimulator]:
    # A distinctive secret, so "not printed" is a meaningful assertion.
    with ListrakSimulator(client_secret=SECRET) as server:
        server.add_list(1001, "Main", field_ids=[FIELD])
        server.seed(1001, 5, field_id=FIELD, seed=1)
        server.add_list(1002, "Other")
        yield server


def configure(tmp_path: Path, sim, sink: SegmentSink, url: str, lists: list[dict]) -> Path:
    return write_config(tmp_path / "config.toml", sim, sink, url, lists)


def rows(output: str) -> dict[str, tuple[str, str]]:
    """name -> (mark, detail) from the check table."""
    table = {}
    for line in output.splitlines()[:-1]:
        mark, rest = line[:4].strip(), line[6:]
        name, _, detail = rest.partition("  ")
        table[name.strip()] = (mark, detail.strip())
    return table


def test_all_checks_pass(tmp_path: Path, sim, sink, db_url: str, capsys) -> None:
    config = configure(tmp_path, sim, sink, db_url, [{"id": 1001, "user_id_field": FIELD}])
    assert run_cli(config, "migrate") == 0
    capsys.readouterr()
    assert run_cli(config, "check") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "ready to run"
    table = rows(out)
    assert set(table) == {
        "config",
        "schedule",
        "database",
        "list traits",
        "list 1001 state",  # never synced: its first sync sends everyone, or baseline
        "segment write key",
        "segment host",
        "listrak credentials",
        "list 1001",
        f"list 1001 field {FIELD}",
    }
    assert {mark for mark, _ in table.values()} == {"ok"}
    assert table["list 1001"][1] == "Main"
    assert table["schedule"][1] == "every 15m"
    assert SECRET not in out


def test_wrong_client_secret(tmp_path: Path, sim, sink, sqlite_url: str, capsys) -> None:
    config = configure(tmp_path, sim, sink, sqlite_url, [{"id": 1001}, {"id": 1002}])
    assert run_cli(config, "migrate") == 0
    sim.client_secret = "the-one-listrak-now-expects"
    capsys.readouterr()
    assert run_cli(config, "check") == 2
    captured = capsys.readouterr()
    table = rows(captured.out)
    assert table["listrak credentials"][0] == "FAIL"
    assert "refused" in table["listrak credentials"][1]
    # Without a token the lists cannot be looked at: shown as skipped, not as passed.
    assert table["list 1001"][0] == table["list 1002"][0] == "skip"
    assert captured.out.splitlines()[-1] == "not ready: fix the FAIL lines above"
    assert SECRET not in captured.out + captured.err


def test_list_missing_in_listrak(tmp_path: Path, sim, sink, sqlite_url: str, capsys) -> None:
    lists = [{"id": 1001}, {"id": 4242}, {"id": 1002}]
    config = configure(tmp_path, sim, sink, sqlite_url, lists)
    assert run_cli(config, "migrate") == 0
    capsys.readouterr()
    assert run_cli(config, "check") == 2
    table = rows(capsys.readouterr().out)
    assert table["list 4242"][0] == "FAIL" and "does not exist" in table["list 4242"][1]
    # One missing list does not hide the verdict on the others.
    assert table["list 1001"][0] == table["list 1002"][0] == "ok"


def test_missing_profile_field(tmp_path: Path, sim, sink, sqlite_url: str, capsys) -> None:
    lists = [{"id": 1001, "user_id_field": FIELD}, {"id": 1002, "user_id_field": 999}]
    config = configure(tmp_path, sim, sink, sqlite_url, lists)
    assert run_cli(config, "migrate") == 0
    capsys.readouterr()
    assert run_cli(config, "check") == 2
    table = rows(capsys.readouterr().out)
    assert table[f"list 1001 field {FIELD}"][0] == "ok"
    assert table["list 1002"][0] == "ok"
    assert table["list 1002 field 999"] == ("FAIL", "no such profile field")


def test_database_not_migrated(tmp_path: Path, sim, sink, db_url: str, capsys) -> None:
    config = configure(tmp_path, sim, sink, db_url, [{"id": 1001}])
    assert run_cli(config, "check") == 2
    table = rows(capsys.readouterr().out)
    mark, detail = table["database"]
    assert mark == "FAIL" and "run `listrak-source migrate`" in detail
    assert table["listrak credentials"][0] == "ok"
    assert run_cli(config, "migrate") == 0
    assert run_cli(config, "check") == 0


def test_bad_cron_and_unreachable_database(tmp_path: Path, sim, sink, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'no-such-dir' / 'state.db'}"
    config = write_config(
        tmp_path / "config.toml", sim, sink, url, [{"id": 1001}], extra='[schedule]\ncron = "x"'
    )
    assert run_cli(config, "check") == 2
    table = rows(capsys.readouterr().out)
    assert table["schedule"][0] == "FAIL" and "expected 5 fields" in table["schedule"][1]
    assert table["database"][0] == "FAIL" and "does not exist" in table["database"][1]


def test_a_cron_expression_that_never_fires_fails_check_and_run(
    tmp_path: Path, sim, sink, sqlite_url: str, capsys
) -> None:
    lists = [{"id": 1001, "cron": "0 0 30 2 *"}, {"id": 1002}]
    config = configure(tmp_path, sim, sink, sqlite_url, lists)
    assert run_cli(config, "migrate") == 0
    capsys.readouterr()
    assert run_cli(config, "check") == 2
    mark, detail = rows(capsys.readouterr().out)["schedule"]
    assert mark == "FAIL" and "list 1001" in detail and "never fires" in detail
    assert run_cli(config, "run") == 2
    assert "never fires" in capsys.readouterr().err


def test_check_connects_to_segment_without_sending_an_event(
    tmp_path: Path, sim, sink, sqlite_url: str, capsys
) -> None:
    config = configure(tmp_path, sim, sink, sqlite_url, [{"id": 1002}])
    assert run_cli(config, "migrate") == 0
    capsys.readouterr()
    assert run_cli(config, "check") == 0
    assert rows(capsys.readouterr().out)["segment host"][0] == "ok"
    # It proves the host takes a batch by posting an empty one, which creates nothing.
    assert sink.messages == [] and sink.stats.requests == 1 and sink.batches == 0
    sink.faults.redirect = (307, f"{sink.url}/_sink/stats")
    assert run_cli(config, "check") == 2
    mark, detail = rows(capsys.readouterr().out)["segment host"]
    assert mark == "FAIL" and "redirect (307)" in detail
    sink.faults.redirect = None
    config.write_text(config.read_text().replace(sink.url, "http://127.0.0.1:1"))
    assert run_cli(config, "check") == 2
    mark, detail = rows(capsys.readouterr().out)["segment host"]
    assert mark == "FAIL" and "no answer from Segment" in detail


def test_audience_fields_must_be_check_boxes_of_their_list(
    tmp_path: Path, sim, sink, sqlite_url: str, capsys
) -> None:
    sim.add_field(1001, 901, "CheckBox")
    sim.add_field(1001, 902, "RadioButton")
    sim.add_field(1001, 903, "Text")
    audiences = "".join(
        f'\n[[audiences]]\nkey = "{key}"\nlist_id = 1001\nfield_id = {field}\n'
        for key, field in (("vip", 901), ("lapsed", 902), ("notes", 903), ("gone", 904))
    )
    config = write_config(
        tmp_path / "config.toml", sim, sink, sqlite_url, [{"id": 1001}], extra=audiences
    )
    assert run_cli(config, "migrate") == 0
    capsys.readouterr()
    assert run_cli(config, "check") == 2
    table = rows(capsys.readouterr().out)
    assert table["audience vip"] == ("ok", "list 1001 field 901, a CheckBox")
    assert table["audience lapsed"] == ("ok", "list 1001 field 902, a RadioButton")
    assert table["audience notes"] == (
        "FAIL",
        "list 1001 field 903 is a Text field, not a CheckBox or RadioButton",
    )
    assert table["audience gone"] == ("FAIL", "list 1001 field 904: no such profile field")


def test_a_receiver_without_audiences_is_a_configuration_error(
    tmp_path: Path, sim, sink, sqlite_url: str, capsys
) -> None:
    config = configure(tmp_path, sim, sink, sqlite_url, [{"id": 1001}])
    assert run_cli(config, "migrate") == 0
    receiver = '[receiver]\nsecrets = ["a-receiver-secret-of-some-length"]\n'
    write_config(config, sim, sink, sqlite_url, [{"id": 1001}], extra=receiver)
    capsys.readouterr()
    assert run_cli(config, "check") == 2
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).strip().splitlines()
    assert len(lines) == 1 and "no [[audiences]]" in lines[0]
    assert "Traceback" not in captured.err
