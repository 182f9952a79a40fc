"""The base of every config section, apart from config.py so section modules can share it."""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

_NUMBERS = (int, float)


class Section(BaseModel):
    """A config table: an unknown key is an error, and loaded values never change."""

    # No inf or NaN: a timeout or pace of inf passes "> 0" and then breaks the client.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_truth_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # TOML's true is no number, though pydantic would read it as 1: `id = true`
        # would sync list 1.
        name = info.field_name
        if isinstance(value, bool) and name and _numeric(cls.model_fields[name].annotation):
            raise ValueError("is true or false where a number goes")
        return value


def _numeric(annotation: Any) -> bool:
    """A number, or a number or None; not a field that takes true or false itself."""
    if annotation in _NUMBERS:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        options = get_args(annotation)
        return bool not in options and any(option in _NUMBERS for option in options)
    return False
