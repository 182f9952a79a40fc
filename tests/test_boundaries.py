"""The folders' promises, checked from the imports themselves.

The package stands in layers, and no import runs back up: the shared base (config, records,
message building, the Engage rules), the adapters of the outside systems and the state, the
delivery every pipeline shares, the pipelines, and the front doors on top. The pure rules
import no I/O library; the pipelines name the outside systems only through their own
protocols; and `cli/wiring.py` is the only module of the front doors that builds adapters.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "listrak_source"

PURE = [
    "records.py",
    "messages.py",
    "subscribers/plan.py",
    "subscribers/diff.py",
    "engage/membership.py",
    "engage/mapping.py",
    "engage/coalesce.py",
    "engage/readback.py",
    "engage/records.py",
    "tracking/records.py",
    "tracking/table.py",
    "tracking/ids.py",
    "tracking/dates.py",
    "tracking/messages.py",
]
PIPELINES = ["subscribers", "audiences", "activity"]
ORCHESTRATION = [
    *(path.relative_to(PACKAGE).as_posix() for path in sorted((PACKAGE / "delivery").glob("*.py"))),
    *(
        path.relative_to(PACKAGE).as_posix()
        for folder in PIPELINES
        for path in sorted((PACKAGE / folder).glob("*.py"))
        # The receiver is the audience pipeline's HTTP door, served by uvicorn (its app,
        # its server and the bounds on its connections).
        if path.name not in {"receiver.py", "server.py", "connections.py"}
    ),
]
# Lowest first; a module may import its own layer and those below, never one above.
LAYERS: list[set[str]] = [
    {"<base>", "engage", "tracking"},
    {"listrak", "segment", "state"},
    {"delivery"},
    set(PIPELINES),
    {"cli", "service"},
]
IO_LIBRARIES = {
    "httpx",
    "requests",
    "segment",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "sqlite3",
    "socket",
    "apscheduler",
    "prometheus_client",
    "starlette",
    "uvicorn",
}
ADAPTERS = ["listrak", "segment", "state"]
FRONT_DOORS = ["cli", "service"]


def imports_of(path: Path) -> set[str]:
    """Absolute dotted names a module imports, relative imports resolved against the package."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names.add(prefix)
            names.update(f"{prefix}.{alias.name}" for alias in node.names)
    return names


def modules_in(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def test_the_resolver_sees_relative_imports() -> None:
    assert "listrak_source.records.Contact" in imports_of(PACKAGE / "subscribers/diff.py")
    assert "listrak_source.state" in imports_of(PACKAGE / "delivery/context.py")


@pytest.mark.parametrize("name", PURE)
def test_pure_rules_import_no_io_library(name: str) -> None:
    roots = {imported.split(".")[0] for imported in imports_of(PACKAGE / name)}
    assert not roots & IO_LIBRARIES


@pytest.mark.parametrize("name", PURE + ORCHESTRATION)
def test_the_orchestration_imports_no_outside_system_or_front_door(name: str) -> None:
    forbidden = [f"listrak_source.{folder}" for folder in ["listrak", "segment", *FRONT_DOORS]]
    imported = imports_of(PACKAGE / name)
    assert not [i for i in imported if any(i.startswith(f) for f in forbidden)]
    assert not {i.split(".")[0] for i in imported} & IO_LIBRARIES


@pytest.mark.parametrize("folder", ADAPTERS)
def test_adapters_never_reach_into_a_front_door_or_the_orchestration(folder: str) -> None:
    forbidden = [f"listrak_source.{name}." for name in [*FRONT_DOORS, "delivery", *PIPELINES]]
    for path in modules_in(folder):
        imported = imports_of(path)
        assert not [i for i in imported if any(i.startswith(f) for f in forbidden)], path


def test_only_wiring_builds_the_outside_systems_adapters() -> None:
    builders = {"listrak_source.listrak.ListrakClient", "listrak_source.segment.SegmentEmitter"}
    users = [
        path.relative_to(PACKAGE).as_posix()
        for folder in FRONT_DOORS
        for path in modules_in(folder)
        if imports_of(path) & builders
    ]
    assert users in (["cli/wiring.py"], ["cli/check.py", "cli/wiring.py"])


def test_the_service_does_not_import_the_command_line() -> None:
    for path in modules_in("service"):
        assert not [i for i in imports_of(path) if i.startswith("listrak_source.cli")], path


def layer_of(module: str) -> int | None:
    """The layer of a dotted module of the package (None for the simulator, a world apart)."""
    parts = module.split(".")
    if parts[0] != "listrak_source":
        return None
    if module == "listrak_source.__main__":
        return len(LAYERS) - 1  # `python -m listrak_source` is the command line's door
    folder = parts[1] if len(parts) > 2 and (PACKAGE / parts[1]).is_dir() else "<base>"
    if folder == "simulator":
        return None
    return next(n for n, layer in enumerate(LAYERS) if folder in layer)


def test_every_folder_has_a_layer() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    placed = set().union(*LAYERS) | {"simulator"}
    assert folders <= placed, folders - placed


def test_no_import_runs_back_up() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        here = layer_of(module)
        if here is None or "migrations" in path.parts:
            continue
        for imported in imports_of(path):
            there = layer_of(imported)
            if there is not None and there > here:
                upward.append(f"{module} -> {imported}")
    assert not upward


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_pipelines_do_not_import_each_other(pipeline: str) -> None:
    others = [f"listrak_source.{p}." for p in PIPELINES if p != pipeline]
    for path in modules_in(pipeline):
        assert not [i for i in imports_of(path) if any(i.startswith(o) for o in others)], path


def test_only_the_front_doors_start_the_simulator() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in {"cli", "simulator"}:
            continue
        assert not [i for i in imports_of(path) if i.startswith("listrak_source.simulator")], rel
