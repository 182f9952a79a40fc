"""`listrak-source demo` shows both directions end to end and passes on a fresh machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from listrak_source.cli import main


def test_the_demo_passes_in_both_directions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--contacts", "200", "--cycles", "1"]) == 0
    out = capsys.readouterr().out
    assert "profiles rebuilt from the sink equal the simulator's lists: yes" in out
    assert "audiences: Engage events -> receiver -> Listrak check-box field:" in out
    assert "all answered 200" in out
    assert "MISMATCH" not in out
    assert "its box now matches its last membership: yes" in out
    assert "later pass: OK" in out and "re-run with no change: OK" in out
    assert "each fact once: yes" in out
    assert "\ndemo passed\nnext: " in out


def _demo(*args: str) -> subprocess.Popen[str]:
    """`listrak-source demo ARGS` as a shell starts it, its lines readable as they come."""
    return subprocess.Popen(
        [sys.executable, "-m", "listrak_source", "demo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_a_larger_demo_follows_the_two_scan_rule_and_says_what_to_do_next() -> None:
    # 8,000 contacts on the second list: a cycle removes 53 of them, more than
    # confirm_unseen_max (50), so they go out one full scan later, as documented.
    proc = _demo("--contacts", "32000", "--cycles", "1")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out + err
    assert "MISMATCH" not in out
    assert "53 contact(s) removed from a list wait for a second full scan" in out
    assert "one more sync with no change but 53 removal(s) waiting:" in out
    assert "sent 53 identify calls, expected 53 OK" in out
    assert "demo passed\nnext: " in out
    assert "Try it against the simulator" in out


def test_ctrl_c_stops_the_demo_at_the_next_page_and_says_so() -> None:
    proc = _demo("--contacts", "20000")
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("initial sync of"):
            break
    proc.send_signal(signal.SIGINT)
    # Bounds a hang only: the sync stops at its next page and delivers what is stored.
    out, err = proc.communicate(timeout=25)
    assert proc.returncode == 1, out + err
    assert out.rstrip().endswith("demo stopped: nothing was kept (it lived in a temporary folder)")
    assert "Traceback" not in err and "interrupted" not in err
