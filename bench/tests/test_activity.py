"""bench.activity at a small size: it runs, the quiet pass sends nothing, the JSON is written."""

from __future__ import annotations

import json
from pathlib import Path

from bench import activity


def test_a_small_activity_bench(tmp_path: Path) -> None:
    output = tmp_path / "activity.json"
    activity.main(["--rows", "2000", "--output", str(output)])
    result = json.loads(output.read_text())
    assert result["rows"] == 2000 and result["pages"] == 1
    assert result["events_sent"] == 200 + 40 + 10  # opens (clicks open too), clicks, orders
    assert result["quiet_sent"] == 0
    assert "first pass" in activity.report(activity.Result(**result))
