"""The monitoring deploy/ ships loads: Prometheus's own promtool accepts the alert rules and
every query of the Grafana dashboard, and the rules fire on trouble and not otherwise.
(That each metric they name is exported by a running daemon: test_status_page.py.)"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from .tools import required_tool

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "listrak-source-alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana-dashboard.json"
UNIT_TESTS = Path(__file__).resolve().parent / "promtool" / "alerts_test.yml"
# What Grafana fills in before a query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$list_id": ".*"}


def _run(*args: str) -> str:
    done = subprocess.run(
        [required_tool("promtool", "prometheus"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_promtool_accepts_the_alert_rules() -> None:
    assert "SUCCESS: 9 rules found" in _run("check", "rules", str(RULES))


def test_the_alerts_fire_on_trouble_and_not_on_a_healthy_list() -> None:
    assert "SUCCESS" in _run("test", "rules", str(UNIT_TESTS))


def _queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for name, value in GRAFANA_VARIABLES.items():
        exprs = [expr.replace(name, value) for expr in exprs]
    return exprs


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys()
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
    queries = _queries(dashboard)
    assert len(queries) >= 20 and not any("$" in q for q in queries)
    # promtool parses PromQL only within rules: each query becomes a recording rule.
    rules = [{"record": f"dashboard:query_{n}", "expr": query} for n, query in enumerate(queries)]
    path = tmp_path / "dashboard-queries.yml"
    # JSON is YAML: promtool reads the file as it is.
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert f"SUCCESS: {len(queries)} rules found" in _run("check", "rules", str(path))
