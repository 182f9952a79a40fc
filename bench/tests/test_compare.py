"""PostgreSQL beside SQLite, from two results files as `python -m bench` writes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import compare
from bench.__main__ import output_path
from bench.report import document, write_json
from bench.rows import rows
from bench.runner import CaseResult
from bench.targets import TIMES, targets

from .results import result


def _write(path: Path, results: list[CaseResult], database: str) -> Path:
    table = rows(results)
    write_json(path, document(table, targets(table), database=database, profiled=False))
    return path


def _files(tmp_path: Path, pg_first: float, pg_floor: float) -> tuple[Path, Path]:
    lite = [result(10_000, "floor", 2.0), result(10_000, "first", 3.0)]
    lite += [result(10_000, "floor-scan", 1.0), result(10_000, "nochange", 1.2)]
    pg = [result(10_000, "floor", pg_floor), result(10_000, "first", pg_first)]
    pg += [result(10_000, "floor-scan", 1.0), result(10_000, "nochange", 2.0)]
    return (
        _write(tmp_path / "results.json", lite, "sqlite"),
        _write(tmp_path / "results-postgres.json", pg, "postgresql"),
    )


def _ratio_lines(text: str) -> dict[str, str]:
    table = text.split("PostgreSQL ÷ SQLite")[1]
    return {
        case: line
        for line in table.splitlines()
        for case in ("first sync", "no change")
        if case in line
    }


def test_both_tables_then_the_ratio_judged_on_the_floor_ratios(tmp_path: Path) -> None:
    # PostgreSQL ran on a slower machine: 2 x the wall, but its floor was 2 x too.
    lite, pg = _files(tmp_path, pg_first=6.0, pg_floor=4.0)

    text = compare.report(lite, pg)

    assert text.count("first sync") == 3
    lines = _ratio_lines(text)
    assert f"2.00 {TIMES}" in lines["first sync"]
    assert f"1.00 {TIMES}" in lines["first sync"]
    assert lines["first sync"].endswith("met")
    assert f"1.67 {TIMES}" in lines["no change"]
    assert lines["no change"].endswith("MISSED")


def test_a_missing_file_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lite, _ = _files(tmp_path, pg_first=3.0, pg_floor=2.0)

    code = compare.main(["--sqlite", str(lite), "--postgres", str(tmp_path / "none.json")])

    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "does not exist" in err


def test_a_postgres_run_writes_its_own_file_by_default(tmp_path: Path) -> None:
    assert output_path(None, None, "postgresql").name == "results-postgres.json"
    assert output_path(None, None, "sqlite").name == "results.json"
    assert output_path(None, tmp_path, "postgresql") == tmp_path / "results-postgres.json"
    assert output_path(tmp_path / "x.json", None, "postgresql") == tmp_path / "x.json"


def test_a_run_with_listrak_s_own_time_per_page_keeps_its_own_results(tmp_path: Path) -> None:
    assert output_path(None, None, "sqlite", 80).name == "results-listrak-80ms.json"
    assert output_path(None, None, "postgresql", 80).name == "results-postgres-listrak-80ms.json"
    assert output_path(tmp_path / "x.json", None, "sqlite", 80) == tmp_path / "x.json"
