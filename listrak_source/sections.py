"""The base of every config section, apart from config.py so section modules can share it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config table: an unknown key is an error, and loaded values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)
