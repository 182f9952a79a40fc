"""The mass-flip guard: a field's boxes are not unchecked wholesale without an operator.

An audience deleted or edited in Engage, or a broken computation, exits everyone at once, or
a few at a time over an hour. Unchecks are therefore judged over a window of time: those
sent within it, with the ones about to go, against the boxes that were checked when it
began (checked now, plus those unchecked since). Only values a push really sends count:
unchecks of current subscribers' boxes that are checked, or may be after a send whose
answer was lost. Entries never count.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple


class FieldCounts(NamedTuple):
    """A field's standing at the start of a push, among the list's current subscribers."""

    field_id: int
    pending: int  # unchecks this push would send
    checked: int  # boxes checked now, as far as is known
    recent: int  # unchecks sent within the window


@dataclass
class FlipGuard:
    """What each field may still uncheck within the window; one per push."""

    max_ratio: float
    min_count: int
    base: dict[int, int] = field(default_factory=dict)
    spent: dict[int, int] = field(default_factory=dict)

    @classmethod
    def over(cls, counts: Iterable[FieldCounts], max_ratio: float, min_count: int) -> FlipGuard:
        """The guard at a push's start, from each field's counts."""
        guard = cls(max_ratio, min_count)
        for c in counts:
            guard.base[c.field_id] = c.checked + c.recent
            guard.spent[c.field_id] = c.recent
        return guard

    def allows(self, field_id: int, more: int) -> bool:
        """Whether `more` unchecks of the field keep it within the window's share."""
        total = self.spent.get(field_id, 0) + more
        if more <= 0 or total <= self.min_count:
            return True
        base = self.base.get(field_id, 0)
        return base > 0 and total / base <= self.max_ratio

    def spend(self, field_id: int, sent: int) -> None:
        """Unchecks Listrak accepted count against the window from now on."""
        self.spent[field_id] = self.spent.get(field_id, 0) + sent

    def describe(self, field_id: int, more: int) -> str:
        """`would uncheck N of M checked contacts (P%`, for the hold's message."""
        total = self.spent.get(field_id, 0) + more
        base = self.base.get(field_id, 0)
        share = total / base if base else 1.0
        return f"would uncheck {total} of {base} checked contacts ({share:.0%}"
