"""A command in a process of its own tunes the garbage collector once its modules are
loaded, and glibc's allocator; a command run inside another program (the tests, an
embedding script) leaves that program's collector and allocator as they were."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_PROBE = """
import ctypes, gc, json, sys
from listrak_source import cli
seen = {"mallopt": []}
class Libc:
    def __init__(self, name):
        self.mallopt = lambda *option: seen["mallopt"].append(option)
ctypes.CDLL = Libc
def sync(args):
    seen["threshold"] = gc.get_threshold()
    seen["frozen"] = gc.get_freeze_count()
    return 0
cli.command = lambda name: sync
sys.argv = ["listrak-source", "sync"]
try:
    cli.run() if OWN else sys.exit(cli.main(["sync"]))
except SystemExit as exc:
    seen["code"] = exc.code
print(json.dumps(seen))
"""


def _probe(*, own_process: bool, env: dict[str, str] | None = None) -> dict[str, object]:
    code = _PROBE.replace("OWN", str(own_process))
    environment = {k: v for k, v in os.environ.items() if "MALLOC" not in k and "GLIBC" not in k}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=environment | (env or {}),
    )
    found: dict[str, object] = json.loads(done.stdout)
    return found


def test_the_console_entry_freezes_what_is_loaded_and_collects_the_young_less_often() -> None:
    seen = _probe(own_process=True)
    assert seen["code"] == 0
    assert seen["threshold"] == [50_000, 20, 10]
    assert isinstance(seen["frozen"], int) and seen["frozen"] > 1000
    assert seen["mallopt"] == [[-8, 2]], "glibc held to two arenas (M_ARENA_MAX)"


def test_main_called_from_another_program_leaves_its_collector_alone() -> None:
    seen = _probe(own_process=False)
    assert seen["code"] == 0
    assert seen["threshold"] == [700, 10, 10]
    assert seen["frozen"] == 0
    assert seen["mallopt"] == []


@pytest.mark.parametrize(
    "env", [{"MALLOC_ARENA_MAX": "4"}, {"GLIBC_TUNABLES": "glibc.malloc.arena_max=8"}]
)
def test_the_operators_own_arena_setting_is_kept(env: dict[str, str]) -> None:
    seen = _probe(own_process=True, env=env)
    assert seen["code"] == 0
    assert seen["mallopt"] == []
