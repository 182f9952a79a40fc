"""`listrak-source demo` shows both directions end to end and passes on a fresh machine."""

from __future__ import annotations

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
    assert out.rstrip().endswith("demo passed")
