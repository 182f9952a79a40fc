"""Repeated runs become one row: the median run, the spread, the ratio to the same size's floor."""

from __future__ import annotations

from bench.rows import rows

from .results import result


def test_a_row_is_the_median_run_with_the_spread_of_all_runs() -> None:
    runs = [result(10_000, "first", w) for w in (6.0, 4.0, 9.0)]

    (row,) = rows(runs)

    assert row["wall_s"] == 6.0
    assert (row["wall_min_s"], row["wall_max_s"], row["runs"]) == (4.0, 9.0, 3)
    assert row["walls_s"] == [6.0, 4.0, 9.0]


def test_an_even_number_of_runs_reports_the_lower_median_run() -> None:
    (row,) = rows([result(10_000, "first", w) for w in (5.0, 3.0, 4.0, 8.0)])

    assert row["wall_s"] == 4.0


def test_each_case_is_divided_by_its_own_floor_at_the_same_size() -> None:
    results = [
        result(10_000, "floor", 2.0),
        result(10_000, "first", 3.0),
        result(10_000, "floor-scan", 1.0),
        result(10_000, "nochange", 1.2),
        result(10_000, "churn", 1.5),
        result(100_000, "floor", 10.0),
        result(100_000, "first", 14.0),
    ]

    ratios = {(r["size"], r["case"]): r["x_floor"] for r in rows(results)}

    assert ratios == {
        (10_000, "floor"): None,
        (10_000, "first"): 1.5,
        (10_000, "floor-scan"): None,
        (10_000, "nochange"): 1.2,
        (10_000, "churn"): 1.5,
        (100_000, "floor"): None,
        (100_000, "first"): 1.4,
    }
    assert rows(results)[1]["floor"] == "floor"


def test_a_failed_floor_gives_no_ratio_and_a_failed_run_fails_its_row() -> None:
    results = [
        result(10_000, "floor", 2.0, ok=False),
        result(10_000, "first", 3.0),
        result(10_000, "first", 3.5, ok=False),
    ]

    floor_row, first_row = rows(results)

    assert first_row["x_floor"] is None
    assert not floor_row["ok"]
    assert not first_row["ok"]
    assert first_row["failed_runs"][0]["problems"] == {"expected but not sent": 1}


def test_the_peak_of_a_row_is_the_largest_of_its_runs() -> None:
    runs = [result(10_000, "first", 3.0, rss_mb=120), result(10_000, "first", 2.0, rss_mb=150)]

    (row,) = rows(runs)

    assert row["footprint_max_mb"] == 150.0
