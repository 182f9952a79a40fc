"""The audience table: which mapping an event belongs to, and the checks that keep it sound."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from listrak_source.engage.mapping import (
    AudienceMapping,
    MappingError,
    Mappings,
    mapping_problems,
)
from listrak_source.engage.settings import AudienceSettings, build_mappings

GENERAL = AudienceMapping("vip", list_id=1, field_id=10)
IN_SPACE_A = AudienceMapping("vip", list_id=1, field_id=11, space_id="spa_a")
OTHER = AudienceMapping("churn_risk", list_id=2, field_id=20, space_id="spa_b")


@pytest.fixture
def mappings() -> Mappings:
    return Mappings([GENERAL, IN_SPACE_A, OTHER])


@pytest.mark.parametrize(
    ("key", "space_id", "expected"),
    [
        ("vip", "spa_a", IN_SPACE_A),  # the space's own mapping comes first
        ("vip", "spa_z", GENERAL),  # a mapping without a space takes every other space
        ("vip", None, GENERAL),  # and events that name no space
        ("churn_risk", "spa_b", OTHER),
        ("churn_risk", "spa_a", None),  # a space-bound mapping takes only its space
        ("churn_risk", None, None),
        ("unknown", "spa_a", None),
        ("VIP", "spa_a", None),  # keys are Segment's identifiers: matched exactly
    ],
)
def test_resolve(
    mappings: Mappings, key: str, space_id: str | None, expected: AudienceMapping | None
) -> None:
    assert mappings.resolve(key, space_id) == expected


def test_a_sound_table_has_no_problems() -> None:
    assert mapping_problems([GENERAL, IN_SPACE_A, OTHER]) == []
    assert list(Mappings([GENERAL, OTHER])) == [GENERAL, OTHER]
    assert len(Mappings([])) == 0


def test_an_audience_mapped_twice_is_refused() -> None:
    again = AudienceMapping("vip", list_id=3, field_id=30, space_id="spa_a")
    assert mapping_problems([IN_SPACE_A, again]) == [
        "audience 'vip' in space spa_a is mapped more than once"
    ]
    general_again = AudienceMapping("vip", list_id=3, field_id=30)
    with pytest.raises(MappingError, match=r"^audience 'vip' is mapped more than once$"):
        Mappings([GENERAL, general_again])


def test_two_audiences_writing_one_field_are_refused() -> None:
    clash = AudienceMapping("churn_risk", list_id=1, field_id=10)
    assert mapping_problems([GENERAL, clash]) == [
        "audience 'vip' and audience 'churn_risk' both write list 1 field 10"
    ]
    # One key from two spaces is two audiences: they may not share a field either.
    same_key = AudienceMapping("vip", list_id=1, field_id=10, space_id="spa_a")
    with pytest.raises(MappingError, match="both write list 1 field 10"):
        Mappings([GENERAL, same_key])


def test_the_same_field_id_on_another_list_is_another_field() -> None:
    assert mapping_problems([GENERAL, AudienceMapping("b", list_id=2, field_id=10)]) == []


def test_every_problem_is_listed_once() -> None:
    table = [GENERAL, GENERAL, AudienceMapping("b", 1, 10)]
    assert mapping_problems(table) == [
        "audience 'vip' is mapped more than once",
        "audience 'vip' and audience 'b' both write list 1 field 10",
    ]


def test_settings_rows_become_mappings() -> None:
    rows = [
        AudienceSettings(key="vip", list_id=1, field_id=10),
        AudienceSettings(key="vip", list_id=1, field_id=11, space_id="spa_a"),
    ]
    assert list(build_mappings(rows)) == [GENERAL, IN_SPACE_A]
    with pytest.raises(ValueError, match="mapped more than once"):
        build_mappings([rows[0], rows[0]])


@pytest.mark.parametrize(
    "row",
    [
        {"key": "", "list_id": 1, "field_id": 2},
        {"key": "vip", "list_id": 0, "field_id": 2},
        {"key": "vip", "list_id": 1, "field_id": -2},
        {"key": "vip", "list_id": 1, "field_id": 2, "space_id": ""},
        {"key": "vip", "list_id": 1, "field_id": 2, "list": 3},
        {"list_id": 1, "field_id": 2},
    ],
)
def test_bad_audience_rows_are_refused(row: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AudienceSettings.model_validate(row)
