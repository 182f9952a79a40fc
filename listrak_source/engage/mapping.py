"""Which Listrak (list, profile field) an audience writes, and checks that keep it unambiguous."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from .membership import Membership


@dataclass(frozen=True, slots=True)
class AudienceMapping:
    """An audience (by key, optionally only from one space) drives one profile field of a list."""

    key: str
    list_id: int
    field_id: int
    space_id: str | None = None


class Target(NamedTuple):
    """The one place a desired value lives: a profile field of one contact of one list."""

    list_id: int
    field_id: int
    email_key: str


@dataclass(frozen=True, slots=True)
class Mapped:
    """A membership together with the mapping it belongs to."""

    membership: Membership
    mapping: AudienceMapping

    @property
    def target(self) -> Target:
        """Where this membership's value is written."""
        return Target(self.mapping.list_id, self.mapping.field_id, self.membership.email_key)


class MappingError(ValueError):
    """The audience table is ambiguous; the message names the first conflict."""


def _describe(mapping: AudienceMapping) -> str:
    where = f" in space {mapping.space_id}" if mapping.space_id is not None else ""
    return f"audience {mapping.key!r}{where}"


def duplicate_audiences(mappings: Sequence[AudienceMapping]) -> list[str]:
    """An audience mapped twice would leave its events two places to go."""
    seen: set[tuple[str, str | None]] = set()
    problems: list[str] = []
    for mapping in mappings:
        name = (mapping.key, mapping.space_id)
        if name in seen:
            problems.append(f"{_describe(mapping)} is mapped more than once")
        seen.add(name)
    return problems


def shared_fields(mappings: Sequence[AudienceMapping]) -> list[str]:
    """Two audiences writing one field would overwrite each other's values."""
    owner: dict[tuple[int, int], AudienceMapping] = {}
    problems: list[str] = []
    for mapping in mappings:
        first = owner.setdefault((mapping.list_id, mapping.field_id), mapping)
        # A row repeated whole is one audience mapped twice, which duplicate_audiences names.
        if (first.key, first.space_id) != (mapping.key, mapping.space_id):
            problems.append(
                f"{_describe(first)} and {_describe(mapping)} both write"
                f" list {mapping.list_id} field {mapping.field_id}"
            )
    return problems


def mapping_problems(mappings: Sequence[AudienceMapping]) -> list[str]:
    """Every reason this audience table is ambiguous, in a stable order; empty when sound."""
    return [*duplicate_audiences(mappings), *shared_fields(mappings)]


class Mappings:
    """Finds an event's mapping: the one for its own space first, else a general one."""

    def __init__(self, mappings: Iterable[AudienceMapping]) -> None:
        self._items = tuple(mappings)
        problems = mapping_problems(self._items)
        if problems:
            raise MappingError(problems[0])
        self._by_name = {(m.key, m.space_id): m for m in self._items}

    def resolve(self, audience_key: str, space_id: str | None) -> AudienceMapping | None:
        """The mapping for this audience in this space, or None when it is not configured."""
        if space_id is not None:
            specific = self._by_name.get((audience_key, space_id))
            if specific is not None:
                return specific
        return self._by_name.get((audience_key, None))

    def __iter__(self) -> Iterator[AudienceMapping]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
