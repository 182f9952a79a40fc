"""Listrak's bulk profile-field route: strict body checks, and the list imports it starts."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from ._http import HttpError

BOX_TYPES = frozenset({"CheckBox", "RadioButton"})
_SELECT = frozenset({"on", "true", "1"})
_DESELECT = frozenset({"off", "false", "0"})
_INVALID = "ERROR_INVALID_PARAMETER"


class BulkRequest(NamedTuple):
    """One request to the bulk route as it arrived: the list id in its path, its body parsed
    (None when it was not JSON) and the status it got."""

    list_id: str
    body: Any
    status: int


class BulkItem(NamedTuple):
    """One contact of a valid request: its email as sent and field id -> value."""

    email: str
    values: dict[int, str]


@dataclass(slots=True)
class ListImport:
    """The import one accepted request started; `results` maps lower-cased email -> outcome."""

    import_id: int
    list_id: int
    items: list[BulkItem]
    due: datetime
    state: str = "pending"  # then "applied"; "dropped" imports never apply
    results: dict[str, str] = field(default_factory=dict)


def _invalid(message: str) -> HttpError:
    return HttpError(400, message, _INVALID)


def parse_bulk(body: bytes, fields: Mapping[int, str]) -> list[BulkItem]:
    """The items of a request body, refused whole (400) at its first fault.

    `fields` maps the list's field ids to their dataType. Messages name items by position,
    never by email.
    """
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        code = "ERROR_MALFORMED_REQUEST_BODY"
        raise HttpError(400, "The request body is not valid JSON.", code) from None
    if not isinstance(doc, list) or not doc:
        raise _invalid("The request body must be an array of one or more contacts.")
    seen: set[str] = set()
    return [_item(i, raw, fields, seen) for i, raw in enumerate(doc)]


def _item(i: int, raw: object, fields: Mapping[int, str], seen: set[str]) -> BulkItem:
    if not isinstance(raw, dict):
        raise _invalid(f"Item {i} is not an object.")
    email = raw.get("emailAddress")
    if not isinstance(email, str) or not email.strip():
        raise _invalid(f"An invalid value was supplied for emailAddress of item {i}.")
    key = email.strip().lower()
    if key in seen:
        raise _invalid(f"Item {i} repeats an emailAddress of this request.")
    seen.add(key)
    values = raw.get("segmentationFieldValues")
    if not isinstance(values, list) or not values:
        raise _invalid(f"segmentationFieldValues of item {i} must be a non-empty array.")
    found: dict[int, str] = {}
    for value in values:
        field_id, text = _value(i, value, fields)
        if field_id in found:
            raise _invalid(f"Item {i} sets segmentationFieldId {field_id} more than once.")
        found[field_id] = text
    return BulkItem(email.strip(), found)


def _value(i: int, raw: object, fields: Mapping[int, str]) -> tuple[int, str]:
    if not isinstance(raw, dict):
        raise _invalid(f"A segmentationFieldValues entry of item {i} is not an object.")
    field_id, value = raw.get("segmentationFieldId"), raw.get("value")
    if not isinstance(field_id, int) or isinstance(field_id, bool) or field_id not in fields:
        raise _invalid(f"An invalid value was supplied for segmentationFieldId of item {i}.")
    if not isinstance(value, str):
        raise _invalid(f"An invalid value was supplied for value of item {i}.")
    text = value.strip().lower()
    if fields[field_id] in BOX_TYPES and text and text not in _SELECT | _DESELECT:
        raise _invalid(f"Item {i} sets check box {field_id} to neither on nor off.")
    return field_id, value


def field_changes(
    values: Mapping[int, str], types: Mapping[int, str], checked: str, unchecked: str | None
) -> dict[int, str | None]:
    """What an import writes: a blank leaves a field; boxes read back as checked/unchecked."""
    changes: dict[int, str | None] = {}
    for field_id, value in values.items():
        text = value.strip().lower()
        if not text:
            continue
        if types.get(field_id) in BOX_TYPES:
            changes[field_id] = checked if text in _SELECT else unchecked
        else:
            changes[field_id] = value
    return changes


def list_fields(field_ids: Collection[int], types: Mapping[int, str]) -> dict[int, str]:
    """field id -> dataType of every field of a list."""
    return {field_id: types.get(field_id, "Text") for field_id in field_ids}
