"""Weak secrets, through the console script: refused in one line, and never a reason to
mangle the words of a log line."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from .test_command_line import OFFLINE, cli

AUDIENCE = '\n[[audiences]]\nkey = "vip"\nlist_id = 1001\nfield_id = 901\n'


def project(folder: Path, config: str) -> Path:
    (folder / "state").mkdir(parents=True)
    (folder / "config.toml").write_text(config)
    return folder


@pytest.mark.parametrize(
    ("receiver", "where"),
    [
        ('secrets = ["tiny-bearer"]', "receiver.secrets"),
        ('secrets = ["a-receiver-secret-long-enough"]\nshared_secret = "x"', "shared_secret"),
    ],
)
def test_a_short_receiver_secret_is_one_configuration_line(
    tmp_path: Path, receiver: str, where: str
) -> None:
    folder = project(tmp_path, OFFLINE + f"\n[receiver]\n{receiver}\n" + AUDIENCE)
    result = cli("status", cwd=folder)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert where in lines[0] and "at least 16 characters" in lines[0]
    assert "tiny-bearer" not in result.stderr + result.stdout


def test_a_one_character_listrak_secret_masks_no_part_of_a_word(tmp_path: Path) -> None:
    # Listrak does not publish the shape of its client secrets, so a short one is taken;
    # masking it inside words would print "Li***trak" for every line that names Listrak.
    long_secret = project(tmp_path / "long", OFFLINE)
    short = OFFLINE.replace('client_secret = "listrak-secret-5d1f"', 'client_secret = "s"')
    short_secret = project(tmp_path / "short", short)
    expected, result = cli("check", cwd=long_secret), cli("check", cwd=short_secret)
    assert result.returncode == expected.returncode
    # Only where the secret stands alone, as in "list(s)", may a line differ.
    got, wanted = lines(result, short_secret), lines(expected, long_secret)
    for line, want in zip(got, wanted, strict=True):
        assert line == want or line == want.replace("(s)", "(***)"), (line, want)
    assert "Listrak POST /token" in result.stdout and "listrak-source migrate" in result.stdout


def lines(result: subprocess.CompletedProcess[str], folder: Path) -> list[str]:
    """The output without what differs between two runs: times and the project's folder."""
    text = (result.stdout + result.stderr).replace(str(folder), "<project>")
    text = re.sub(r'"ts": "[^"]*"', "", text)
    return re.sub(r"\d+(\.\d+)?\s*m?s\b", "<time>", text).splitlines()
