"""The worker starts from compiled modules, as it would once installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import listrak_source
from bench.worker import compile_sources


def test_every_module_of_the_worker_and_the_floor_is_byte_compiled() -> None:
    compile_sources()
    root = Path(listrak_source.__file__).parent
    sources = [*root.rglob("*.py"), *(Path(__file__).parents[1]).glob("*.py")]
    stale = [
        source
        for source in sources
        if not Path(importlib.util.cache_from_source(str(source))).is_file()
    ]
    assert sources and not stale
