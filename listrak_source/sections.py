"""The base of every config section, apart from config.py so section modules can share it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config table: an unknown key is an error, and loaded values never change."""

    # No inf or NaN: a timeout or pace of inf passes "> 0" and then breaks the client.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
