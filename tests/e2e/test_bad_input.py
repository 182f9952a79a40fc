"""Bad contacts are skipped with a reason; bad config or state stops with one line and exit 2."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from segment.analytics.request import DatetimeSerializer
from sqlalchemy import create_engine, text

from listrak_source.messages import MAX_MESSAGE_BYTES, identify_message, oversize_reason
from listrak_source.records import Pending
from listrak_source.simulator import ListrakSimulator, SegmentSink, rebuild_profiles

from .harness import FIELD, member_rows, run_cli, status_json, write_config

MAIN = {"id": 1001, "user_id_field": FIELD}


@pytest.fixture
def seeded(sim: ListrakSimulator) -> ListrakSimulator:
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 50, field_id=FIELD, seed=3)
    return sim


# Each over Segment's 32 KB as JSON escapes it: 1, 6 and 12 bytes a character.
@pytest.mark.parametrize("huge", ["x" * 40_000, "\u00e9" * 6_000, "\U0001f600" * 3_000])
def test_bad_contacts_are_skipped_and_shown(
    tmp_path: Path, seeded: ListrakSimulator, sink: SegmentSink, db_url: str, huge: str
) -> None:
    first = next(iter(seeded.truth(1001, FIELD).values()))
    seeded.add_raw(1001, {"emailAddress": None, "subscriptionState": "Subscribed"})
    seeded.add_raw(1001, {"emailAddress": "not-an-email", "subscriptionState": "Subscribed"})
    seeded.add_raw(1001, {"emailAddress": str(first["email"]).upper()})
    seeded.add_raw(
        1001,
        {
            "emailAddress": "nulls@example.com",
            "subscriptionState": None,
            "segmentationFieldValues": None,
            "subscribeDate": None,
        },
    )
    seeded.subscribe(1001, "huge@example.com", {FIELD: huge})
    config = write_config(tmp_path / "c.toml", seeded, sink, db_url, [MAIN])
    assert run_cli(config, "sync") == 1  # partial: some contacts were skipped
    sent = {m["anonymousId"].lower() for m in sink.messages}
    assert sent == set(seeded.truth(1001, FIELD)) - {"huge@example.com"} | {"nulls@example.com"}
    status = status_json(config)[1001]
    assert status["last_run"]["status"] == "partial" and status["last_run"]["rejected"] == 4
    reasons = sorted(r["reason"] for r in status["rejects"])
    assert reasons[0] == "duplicate email in one scan"
    assert "identify would be" in reasons[1] and "32768" in reasons[1]
    assert reasons[2:] == ["invalid emailAddress", "missing emailAddress"]
    assert "huge@example.com" not in member_rows(db_url, 1001)


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("listrak-source: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_unknown_key_is_one_line_and_writes_nothing(tmp_path: Path, seeded, sink, capsys) -> None:
    db = tmp_path / "state.db"
    config = write_config(
        tmp_path / "c.toml",
        seeded,
        sink,
        f"sqlite:///{db}",
        [MAIN],
        extra="[delivery]\nmax_atempts = 3\n",
    )
    assert run_cli(config, "sync") == 2
    assert "delivery.max_atempts: unknown key" in one_error_line(capsys)
    assert not db.exists()


def test_missing_secret(tmp_path: Path, seeded, sink, capsys) -> None:
    config = write_config(tmp_path / "c.toml", seeded, sink, "sqlite:///x.db", [MAIN])
    config.write_text(config.read_text().replace(f'client_secret = "{seeded.client_secret}"', ""))
    assert run_cli(config, "sync") == 2
    assert "listrak.client_secret: missing" in one_error_line(capsys)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+psycopg://postgres@127.0.0.1:1/test", "cannot connect"),
        ("nonsense", "is not a database URL"),
        ("sqlite:////no/such/folder/state.db", "folder /no/such/folder does not exist"),
        ("mysql://root@127.0.0.1/test", "database.url"),
    ],
)
def test_bad_database_url(tmp_path: Path, seeded, sink, capsys, url: str, expected: str) -> None:
    config = write_config(tmp_path / "c.toml", seeded, sink, url, [MAIN])
    assert run_cli(config, "sync") == 2
    assert expected in one_error_line(capsys)


def test_list_unknown_to_listrak(tmp_path: Path, seeded, sink, sqlite_url, capsys) -> None:
    config = write_config(tmp_path / "c.toml", seeded, sink, sqlite_url, [MAIN, {"id": 4242}])
    assert run_cli(config, "sync") == 2
    out = capsys.readouterr().out
    assert "list 4242: failed" in out and "4242" in out.split("list 4242: failed")[1]
    assert "list 1001: ok" in out  # the good list still synced
    assert len(sink.messages) == 50


def test_refused_credentials(tmp_path: Path, seeded, sink, sqlite_url, capsys) -> None:
    config = write_config(tmp_path / "c.toml", seeded, sink, sqlite_url, [MAIN])
    config.write_text(config.read_text().replace(seeded.client_secret, "wrong-secret"))
    assert run_cli(config, "sync") == 2
    assert "Invalid Credentials" in capsys.readouterr().out
    assert sink.messages == []


def test_database_from_a_newer_schema(tmp_path: Path, seeded, sink, db_url, capsys) -> None:
    config = write_config(tmp_path / "c.toml", seeded, sink, db_url, [MAIN])
    assert run_cli(config, "migrate") == 0
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    capsys.readouterr()
    for command in ("sync", "status", "migrate"):
        assert run_cli(config, command) == 2
        assert "newer than this worker knows" in one_error_line(capsys)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM runs")).scalar() == 0
    engine.dispose()
    assert sink.messages == []


@pytest.mark.parametrize(
    "url",
    [
        "postgres//user:hunter2@localhost/db",
        "postgresql+nosuchdriver://user:hunter2@localhost/db",
        "postgresql+psycopg://user:hunter2@127.0.0.1:1/db",
    ],
)
def test_a_database_url_password_is_never_printed(
    tmp_path: Path, seeded, sink, capsys, url: str
) -> None:
    config = write_config(tmp_path / "c.toml", seeded, sink, url, [MAIN])
    for command in ("sync", "check", "status"):
        assert run_cli(config, command) == 2
        captured = capsys.readouterr()
        assert "hunter2" not in captured.out + captured.err, command


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LISTRAK_SOURCE_LISTS", "garbage"),
        ("LISTRAK_SOURCE_SCHEDULE", "x"),
        ("LISTRAK_SOURCE_SCHEDULE__INTERVAL", "1000000000d"),
        ("LISTRAK_SOURCE_LISTRAK__TIMEOUT", "inf"),
        ("LISTRAK_SOURCE_LISTS", '[{"id": 9223372036854775808}]'),
    ],
)
def test_bad_environment_values_stop_with_one_line_and_exit_2(
    tmp_path: Path, seeded, sink, sqlite_url, capsys, monkeypatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    config = write_config(tmp_path / "c.toml", seeded, sink, sqlite_url, [MAIN])
    for command in ("sync", "run", "check"):
        assert run_cli(config, command) == 2, command
        assert "unexpected" not in one_error_line(capsys)


def _longest_user_id(email: str, trait: str, retired: list[str] | None = None) -> str:
    """The longest userId of x's whose identify the scan lets through."""
    lo, hi = 1000, 40_000
    while lo < hi:
        mid = (lo + hi + 1) // 2
        fits = oversize_reason(email, "u" * mid, trait, retired or []) is None
        lo, hi = (mid, hi) if fits else (lo, mid - 1)
    return "u" * lo


def test_an_unsubscribe_goes_out_whatever_the_scan_thinks_of_its_size(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    """A userId as long as a `true` can carry once the list is renamed to a long trait,
    its old one sent as null beside it: Segment takes that message. The removal, no
    larger, goes out when the contact leaves."""
    big, trait = "big@example.com", "b" * 100
    user_id = _longest_user_id(big, trait, ["a"])
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.subscribe(1001, big, {FIELD: user_id})
    short = write_config(tmp_path / "a.toml", sim, sink, db_url, [{**MAIN, "trait": "a"}])
    assert run_cli(short, "sync") == 0
    longer = write_config(tmp_path / "b.toml", sim, sink, db_url, [{**MAIN, "trait": trait}])
    assert run_cli(longer, "rename-trait", "--list", "1001", "--confirm") == 0
    assert rebuild_profiles(sink.messages)[big]["traits"][trait] is True

    sim.unsubscribe(1001, big)
    assert run_cli(longer, "sync", "--full") == 0
    assert trait not in rebuild_profiles(sink.messages)[big]["traits"]


def test_a_true_of_exactly_32768_bytes_as_the_library_encodes_it_goes_out(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    big, trait = "big@example.com", "Listrak_list_1001"

    def size(user_id: str) -> int:  # as the library's request path encodes the message
        row = Pending(1001, big, big, True, user_id, "0" * 36, datetime.now(UTC))
        return len(json.dumps(identify_message(row, trait), cls=DatetimeSerializer))

    user_id = "u" * (MAX_MESSAGE_BYTES - size(""))
    assert size(user_id) == MAX_MESSAGE_BYTES
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.subscribe(1001, big, {FIELD: user_id})
    config = write_config(tmp_path / "c.toml", sim, sink, db_url, [MAIN])
    assert run_cli(config, "sync") == 0
    assert rebuild_profiles(sink.messages)[big]["traits"][trait] is True


def test_a_true_too_large_beside_a_renames_old_names_waits_at_the_scan_until_they_go(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    """A rename's messages also carry each old name as null. A new subscriber whose `true`
    fits alone but not with them is skipped at the scan, so no row of it holds the old
    name back, and goes out once the rename is delivered and its old name forgotten."""
    old, new, big = "a" * 100, "b" * 100, "big@example.com"
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.subscribe(1001, "small@example.com")
    config = functools.partial(write_config, tmp_path / "c.toml", sim, sink, db_url)
    assert run_cli(config([{**MAIN, "trait": old}]), "sync") == 0
    renamed = config([{**MAIN, "trait": new}])
    sink.faults.outage = True
    assert run_cli(renamed, "rename-trait", "--list", "1001", "--confirm") == 1
    sink.faults.reset()

    user_id = _longest_user_id(big, new)  # fits alone, not beside the old name
    assert oversize_reason(big, user_id, new, [old]) is not None
    sim.subscribe(1001, big, {FIELD: user_id})
    assert run_cli(renamed, "sync") == 1  # the rename delivered; big skipped for now
    assert big not in rebuild_profiles(sink.messages)
    assert run_cli(renamed, "sync") == 0
    assert rebuild_profiles(sink.messages)[big]["traits"] == {"email": big, new: True}


def test_a_true_held_for_a_renames_old_names_comes_back_to_the_incremental_poll(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    """Nothing changes in Listrak to bring the held contact back, so the run that held it
    keeps the high-water mark where it was, though a later contact came in beside it."""
    old, new, big = "a" * 100, "b" * 100, "big@example.com"
    sim.set_now(datetime.now(UTC) - timedelta(hours=5))
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.subscribe(1001, "small@example.com")
    config = functools.partial(write_config, tmp_path / "c.toml", sim, sink, db_url)
    polled = {**MAIN, "full_scan_every": "24h"}
    assert run_cli(config([{**polled, "trait": old}]), "sync") == 0
    renamed = config([{**polled, "trait": new}])
    sink.faults.outage = True
    assert run_cli(renamed, "rename-trait", "--list", "1001", "--confirm") == 1
    sink.faults.reset()

    user_id = _longest_user_id(big, new)  # fits alone, not beside the old name
    sim.subscribe(1001, big, {FIELD: user_id})
    sim.set_now(None)
    sim.subscribe(1001, "late@example.com")
    assert run_cli(renamed, "sync") == 1  # the rename delivered; big held
    assert big not in rebuild_profiles(sink.messages)
    assert run_cli(renamed, "sync") == 0
    assert rebuild_profiles(sink.messages)[big]["traits"] == {"email": big, new: True}
