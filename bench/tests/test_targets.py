"""The goals as ratios to the floor, judged from rows at 100 k and 1 M."""

from __future__ import annotations

from collections.abc import Sequence

from bench.rows import rows
from bench.runner import CaseResult
from bench.targets import BIG, MID, targets

from .results import result


def _met(results: Sequence[CaseResult]) -> dict[str, bool | None]:
    return {t.name: t.met for t in targets(rows(results))}


def test_nothing_is_judged_at_sizes_the_goals_do_not_name() -> None:
    found = targets(rows([result(10_000, "floor", 1.0), result(10_000, "first", 1.1)]))

    assert all(t.met is None and t.actual == "not run" for t in found)


def test_time_goals_are_ratios_to_the_floor_of_the_same_size() -> None:
    met = _met(
        [
            result(MID, "floor", 10.0),
            result(MID, "first", 14.9),
            result(BIG, "floor", 100.0),
            result(BIG, "first", 151.0),
            result(BIG, "floor-scan", 20.0),
            result(BIG, "nochange", 26.0),
            result(BIG, "churn", 26.2),
        ]
    )

    assert met["first sync 100 k: time"] is True
    assert met["first sync 1 M: time"] is False
    assert met["no-change re-sync 1 M: time"] is True
    assert met["1 % churn re-sync 1 M: time"] is False


def test_the_rss_goals_read_the_workers_tree_not_the_floors() -> None:
    met = _met(
        [
            result(MID, "floor", 1.0, rss_mb=50),
            result(MID, "first", 1.0, rss_mb=150),
            result(BIG, "floor", 1.0, rss_mb=300),
            result(BIG, "first", 1.0, rss_mb=170),
            result(BIG, "nochange", 1.0, rss_mb=185),
        ]
    )

    assert met["peak RSS 1 M, whole process tree"] is True
    assert met["peak RSS 1 M vs 100 k, whole process tree"] is False


def test_exactness_goals_follow_every_run_of_the_case() -> None:
    found = {
        t.name: t
        for t in targets(
            rows([result(BIG, "churn", 1.0, sent=10_000), result(BIG, "churn", 1.0, ok=False)])
        )
    }

    churned = found["1 % churn re-sync 1 M: exactly the churned messages"]
    assert churned.met is False
    assert churned.actual == "10,000 sent, 10,000 expected"
