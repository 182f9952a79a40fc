"""The mass-flip guard: a field's boxes are not unchecked wholesale without an operator.

An audience deleted or edited in Engage, or a broken computation, exits everyone at once, or
a few at a time over an hour. Unchecks are therefore judged over a window of time: those
sent within it, with the ones about to go, against the boxes that were checked when it
began (checked now, plus those unchecked since). Only values a push really sends count:
unchecks of current subscribers' boxes that are checked, or may be after a send whose
answer was lost. Entries never count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple


class FieldCounts(NamedTuple):
    """A field's standing at the start of a push, among the list's current subscribers."""

    field_id: int
    pending: int  # unchecks this push would send
    recent: int  # unchecks sent within the window


@dataclass
class FlipGuard:
    """What each field may still uncheck within the window; one per push.

    `checked` counts a field's checked boxes among current subscribers. It reads every value
    of the field, so it is asked only of a field whose unchecks pass min_count, once a push.
    """

    max_ratio: float
    min_count: int
    checked: Callable[[int], int]
    spent: dict[int, int] = field(default_factory=dict)
    _base: dict[int, int] = field(default_factory=dict)
    # Boxes this push checked: they were not checked when the window began.
    _added: Counter[int] = field(default_factory=Counter)

    @classmethod
    def over(
        cls,
        counts: Iterable[FieldCounts],
        max_ratio: float,
        min_count: int,
        checked: Callable[[int], int],
    ) -> FlipGuard:
        """The guard at a push's start, from each field's counts."""
        return cls(max_ratio, min_count, checked, {c.field_id: c.recent for c in counts})

    def base(self, field_id: int) -> int:
        """The boxes checked when the window began: checked now, plus unchecked since."""
        if field_id not in self._base:
            unchecked = self.spent.get(field_id, 0)
            self._base[field_id] = self.checked(field_id) + unchecked - self._added[field_id]
        return self._base[field_id]

    def allows(self, field_id: int, more: int) -> bool:
        """Whether `more` unchecks of the field keep it within the window's share."""
        total = self.spent.get(field_id, 0) + more
        if more <= 0 or total <= self.min_count:
            return True
        base = self.base(field_id)
        return base > 0 and total / base <= self.max_ratio

    def spend(self, field_id: int, unchecked: int, checked: int = 0) -> None:
        """Listrak accepted these: unchecks count against the window from now on, and boxes
        checked anew are no part of what the window began with."""
        self.spent[field_id] = self.spent.get(field_id, 0) + unchecked
        self._added[field_id] += checked

    def describe(self, field_id: int, more: int) -> str:
        """`would uncheck N of M checked contacts (P%`, for the hold's message."""
        total = self.spent.get(field_id, 0) + more
        base = self.base(field_id)
        share = total / base if base else 1.0
        return f"would uncheck {total} of {base} checked contacts ({share:.0%}"
