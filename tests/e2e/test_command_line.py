"""The command line as its users meet it: options, help, errors and output, through the real
console script in a subprocess. Each test spawns few processes: each costs about a second."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from listrak_source.cli.parser import build_parser

SCRIPT = Path(sys.executable).with_name("listrak-source")
# Nothing listens here: commands that only read the config and the database never call it.
OFFLINE = """
[listrak]
client_id = "id"
client_secret = "listrak-secret-5d1f"
base_url = "http://127.0.0.1:9/email/v1"
auth_url = "http://127.0.0.1:9/token"

[segment]
write_key = "segment-key-8c2e"
host = "http://127.0.0.1:9"

[database]
url = "sqlite:///state/listrak.db"

[[lists]]
id = 1001
"""


def cli(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`listrak-source ARGS` as a user types it, with no LISTRAK_SOURCE_* from the test run."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LISTRAK_SOURCE_")}
    return subprocess.run(
        [str(SCRIPT), *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        check=False,
    )


@pytest.fixture
def offline(tmp_path: Path) -> Path:
    """A project folder with a config whose SQLite path is relative to it."""
    (tmp_path / "state").mkdir()
    (tmp_path / "config.toml").write_text(OFFLINE)
    return tmp_path


def test_global_options_go_on_either_side_of_the_command(offline: Path) -> None:
    config = str(offline / "config.toml")
    assert cli("migrate", "--config", config, cwd=offline).returncode == 0
    # Parsed and run: its list has never run, so the verdict is degraded (1), not an error (2).
    done = cli("status", "--config", config, "--log-format", "json", "--debug", cwd=offline)
    assert done.returncode == 1, done.stderr
    assert "LIST" in done.stdout
    done = cli("--config", config, "status", "--json", cwd=offline)
    assert done.returncode == 1, done.stderr


def test_safety_flags_are_never_abbreviated(offline: Path) -> None:
    done = cli("rename-trait", "--list", "1001", "--c", cwd=offline)
    assert done.returncode == 2
    assert "unrecognized arguments: --c" in done.stderr


def test_version_and_a_command_help_that_says_what_it_does(offline: Path) -> None:
    done = cli("--version", cwd=offline)
    assert done.returncode == 0 and done.stdout.startswith("listrak-source 0."), done
    done = cli("sync", "--help", cwd=offline)
    assert done.returncode == 0
    assert "Segment" in done.stdout and "exit status" in done.stdout.lower()
    assert "--config" in done.stdout  # the global options are shown, and taken, here too


def test_every_command_help_has_a_description_an_effect_and_exit_statuses() -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert commands, "no sub-commands"
    for name, sub in commands.items():
        text = sub.format_help()
        assert sub.description, name
        assert "Exit status" in text, name
        assert "Segment" in text or "Listrak" in text, name
        assert sub.allow_abbrev is False, name
    assert parser.allow_abbrev is False


def error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a command that stopped, with no traceback; stderr is no
    terminal here, so it is a JSON record like every other line."""
    assert "Traceback" not in done.stderr
    said = [json.loads(line)["msg"] for line in done.stderr.splitlines()]
    lines = [x for x in said if x.startswith("listrak-source: error:")]
    assert len(lines) == 1, done.stderr
    return str(lines[0])


def test_no_config_file_says_so_and_how_to_make_one(tmp_path: Path) -> None:
    done = cli("status", cwd=tmp_path)
    assert done.returncode == 2
    line = error_line(done)
    assert "./config.toml does not exist" in line, line
    assert "config.example.toml" in line and "--config" in line


def test_every_config_problem_is_named_with_its_source_and_the_closest_key(
    offline: Path,
) -> None:
    text = OFFLINE.replace("client_id", "client_idd").replace('write_key = "segment-key-8c2e"', "")
    (offline / "config.toml").write_text(text)
    typo = {"LISTRAK_SOURCE_LISTRAK__CLIENTSECRET": "x", "LISTRAK_SOURCE_LISTRACK__CLIENT_ID": "y"}
    done = cli("status", cwd=offline, env=typo)
    warned = [json.loads(line)["msg"] for line in done.stderr.splitlines()]
    assert any(
        "LISTRAK_SOURCE_LISTRACK__CLIENT_ID names no setting" in m
        and "did you mean LISTRAK_SOURCE_LISTRAK?" in m
        for m in warned
    ), warned
    line = error_line(done)
    assert "listrak.client_idd: unknown key (did you mean client_id?)" in line, line
    # The misspelt variable, not the file, is blamed, with the variable it meant.
    assert (
        "LISTRAK_SOURCE_LISTRAK__CLIENTSECRET: listrak.clientsecret: unknown key "
        "(did you mean LISTRAK_SOURCE_LISTRAK__CLIENT_SECRET?)" in line
    ), line
    assert "config.toml: segment.write_key: missing" in line, line
    assert "more problem" not in line


def test_a_relative_sqlite_path_follows_the_config_file_not_the_working_folder(
    offline: Path,
) -> None:
    elsewhere = offline / "elsewhere"
    elsewhere.mkdir()
    config = str(offline / "config.toml")
    database = (offline / "state" / "listrak.db").resolve()
    done = cli("status", "--config", config, cwd=elsewhere)
    assert done.returncode == 2
    assert f"no database at {database} yet" in error_line(done)
    done = cli("migrate", "--config", config, cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert f"created a new database at {database}" in done.stdout
    assert database.exists() and not (elsewhere / "state").exists()
    done = cli("status", "--config", config, cwd=elsewhere)
    assert done.returncode == 1, done.stderr  # a list never run: degraded
    assert f"database: {database}" in done.stdout
    check = cli("check", "--config", config, cwd=offline / "state")
    assert f"database             {database} at " in check.stdout, check.stdout


@pytest.mark.parametrize(
    ("url", "command"),
    [
        ("postgresql+psycopg://postgres@127.0.0.1:abc/test", "sync"),
        ("postgresql+psycopg://postgres@[::1/test", "status"),
    ],
)
def test_a_database_url_that_does_not_parse_is_one_line_and_exit_2(
    offline: Path, url: str, command: str
) -> None:
    (offline / "config.toml").write_text(OFFLINE.replace("sqlite:///state/listrak.db", url))
    done = cli(command, cwd=offline)
    assert done.returncode == 2
    line = error_line(done)
    assert "unexpected" not in line and "database.url" in line, line


def test_a_password_in_the_url_query_is_never_printed(offline: Path, postgres_server: str) -> None:
    sep = "&" if "?" in postgres_server else "?"
    good = f"{postgres_server}{sep}password=hunter2"
    refused = "postgresql+psycopg://postgres@127.0.0.1:1/test?password=hunter2"
    for url, commands in ((good, ("check",)), (refused, ("status", "check"))):
        (offline / "config.toml").write_text(OFFLINE.replace("sqlite:///state/listrak.db", url))
        for command in commands:
            done = cli(command, cwd=offline)
            assert "hunter2" not in done.stdout + done.stderr, (command, done)
            assert "database" in done.stdout + done.stderr
