"""The deploy/ files load: systemd accepts the units, cron accepts the crontab."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

from .tools import required_tool

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = ("listrak-source.service", "listrak-source-sync.service", "listrak-source-sync.timer")
INSTALLED_BINARY = "/usr/local/bin/listrak-source"
# systemd-analyze's words for a directive or section it does not know.
UNKNOWN = re.compile(r"unknown (key|section|lvalue)|ignoring", re.IGNORECASE)


def _systemd_analyze() -> str:
    return required_tool("systemd-analyze", "systemd")


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / name)
    return parser


def test_systemd_analyze_verify_accepts_units(tmp_path: Path) -> None:
    analyze = _systemd_analyze()
    # verify insists the ExecStart binary exists; point it at one that does here.
    stand_in = shutil.which("true") or "/bin/true"
    for name in UNITS:
        text = (DEPLOY / name).read_text().replace(INSTALLED_BINARY, stand_in)
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        [analyze, "verify", "--man=no", *(str(tmp_path / name) for name in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert not UNKNOWN.search(output), output


def test_daemon_unit_has_the_agreed_settings() -> None:
    service = _unit("listrak-source.service")["Service"]
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert service["ExecStart"].endswith("--config /etc/listrak-source/config.toml run")
    assert service["WatchdogSec"] == "120"
    assert service["Restart"] == "on-failure"
    assert service["StateDirectory"] == "listrak-source"
    assert service["CapabilityBoundingSet"] == ""
    assert service["EnvironmentFile"] == "-/etc/listrak-source/secrets.env"


def test_sync_unit_and_timer_fit_together() -> None:
    service = _unit("listrak-source-sync.service")["Service"]
    timer = _unit("listrak-source-sync.timer")["Timer"]
    assert service["Type"] == "oneshot"
    assert service["ExecStart"].endswith(" sync")
    # verify does not complain about a timer naming a unit that does not exist.
    assert (DEPLOY / timer["Unit"]).is_file()
    assert timer["OnCalendar"] == "*:0/15"
    assert timer["Persistent"] == "true"


def test_sync_unit_keeps_the_daemons_sandbox() -> None:
    daemon = _unit("listrak-source.service")["Service"]
    oneshot = _unit("listrak-source-sync.service")["Service"]
    sandbox = {k: v for k, v in daemon.items() if k.startswith(("Protect", "Restrict", "Private"))}
    sandbox |= {k: daemon[k] for k in ("NoNewPrivileges", "MemoryDenyWriteExecute")}
    assert len(sandbox) > 10
    for key, value in sandbox.items():
        assert oneshot.get(key) == value, key


_FIELD_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_ATOM = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?$")


def _valid_field(field: str, low: int, high: int) -> bool:
    for part in field.split(","):
        match = _ATOM.match(part)
        if not match:
            return False
        numbers = [int(n) for n in re.findall(r"\d+", match.group(1))]
        if any(n < low or n > high for n in numbers):
            return False
    return True


def test_crontab_example_parses() -> None:
    lines = (DEPLOY / "crontab.example").read_text().splitlines()
    entries = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    assert entries, "the example has no schedule line"
    for line in entries:
        fields = line.split(None, 5)
        assert len(fields) == 6, f"want 5 time fields and a command: {line!r}"
        for field, (low, high) in zip(fields[:5], _FIELD_RANGES, strict=True):
            assert _valid_field(field, low, high), f"bad field {field!r} in {line!r}"
        command = fields[5]
        # cron turns an unescaped % into a newline, which would cut the command short.
        assert "%" not in command.replace("\\%", "")
        assert "flock" in command and " sync" in command and ">>" in command


def test_crontab_field_checker_rejects_nonsense() -> None:
    assert _valid_field("*/15", 0, 59)
    assert _valid_field("1-5,7", 0, 7)
    assert not _valid_field("61", 0, 59)
    assert not _valid_field("every", 0, 59)
