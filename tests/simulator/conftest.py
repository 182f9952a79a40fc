"""A simulator with one list (a Text and a CheckBox field) and a client holding a token."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from listrak_source.simulator import ListrakSimulator

from ._support import BOX, LIST, TEXT_FIELD, api_client


@pytest.fixture
def lsim() -> Iterator[ListrakSimulator]:
    """The simulator with the main list."""
    with ListrakSimulator() as sim:
        sim.add_list(LIST, "Main", [TEXT_FIELD])
        sim.add_field(LIST, BOX, "CheckBox", "Audience: first time shopper")
        yield sim


@pytest.fixture
def api(lsim: ListrakSimulator) -> Iterator[httpx.Client]:
    """An authorized client on the simulator."""
    with api_client(lsim) as c:
        yield c
