"""The command line as its users meet it: options, help, errors and output, through the real
console script in a subprocess. Each test spawns few processes: each costs about a second."""

from __future__ import annotations

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
    done = cli("status", "--config", config, "--log-format", "json", "--debug", cwd=offline)
    assert done.returncode == 0, done.stderr
    assert "LIST" in done.stdout
    done = cli("--config", config, "status", "--json", cwd=offline)
    assert done.returncode == 0, done.stderr


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
