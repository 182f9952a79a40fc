"""The mass-flip guard's arithmetic: unchecks within the window against the boxes it began with."""

from __future__ import annotations

from listrak_source.engage.guard import FieldCounts, FlipGuard


def guard(checked: int, recent: int = 0, asked: list[int] | None = None) -> FlipGuard:
    def count(field_id: int) -> int:
        (asked if asked is not None else []).append(field_id)
        return checked

    return FlipGuard.over([FieldCounts(1, 0, recent)], 0.5, 3, count)


def test_a_few_unchecks_never_ask_for_the_checked_count() -> None:
    asked: list[int] = []
    assert guard(10, asked=asked).allows(1, 3)
    assert asked == [], "counting every value of a field is kept for when it matters"


def test_unchecks_in_the_window_count_with_those_about_to_go() -> None:
    g = guard(checked=11, recent=9)  # 20 when the window began
    assert g.allows(1, 1) and not g.allows(1, 2)
    assert g.describe(1, 3) == "would uncheck 12 of 20 checked contacts (60%"


def test_boxes_a_push_checks_do_not_widen_the_window() -> None:
    g = guard(checked=16)  # 12 at the start, then this push checked 4 more
    g.spend(1, 0, checked=4)
    assert g.base(1) == 12
    g.spend(1, 4)
    assert g.allows(1, 2) and not g.allows(1, 3)
