"""A benchmark world (simulator, sink and a SQLite path) on loopback, small enough for a test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.world import World

# Three pages of 5,000, the last one partial, and batches that straddle pages.
SIZE = 12_345


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A seeded list served by the simulator, and an empty sink."""
    with World(SIZE, tmp_path, postgres=None) as w:
        yield w
