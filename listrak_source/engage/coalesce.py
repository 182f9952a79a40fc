"""One desired value per (list, field, email): the newest event wins, whatever order they came in.

Segment delivers at least once and in no order, so events are ranked by a total order of
their own, `(timestamp, messageId)`: the later timestamp wins, and between equal timestamps
the larger messageId does. Copies of one messageId are one event (Segment's contract), so a
copy never replaces the value it equals. Folding any shuffle of a stream, with any copies,
therefore ends in the state of the stream applied in that order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from .mapping import Mapped, Target
from .membership import Membership

Rank = tuple[datetime, str]


def rank(membership: Membership) -> Rank:
    """The event's place in the total order that decides which value stands."""
    return (membership.timestamp, membership.message_id)


def supersedes(candidate: Membership, current: Membership | None) -> bool:
    """Whether the candidate replaces the standing value: only a strictly later rank does."""
    return current is None or rank(candidate) > rank(current)


def fold(
    items: Iterable[Mapped], into: Mapping[Target, Mapped] | None = None
) -> dict[Target, Mapped]:
    """The newest membership per target, starting from `into` (left unchanged) when given."""
    newest: dict[Target, Mapped] = dict(into) if into is not None else {}
    for item in items:
        target = item.target
        standing = newest.get(target)
        if standing is None or supersedes(item.membership, standing.membership):
            newest[target] = item
    return newest
