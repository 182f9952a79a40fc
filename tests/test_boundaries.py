"""The folders' promises, checked from the imports themselves.

The pure rules import no I/O library; the one-run orchestration names the outside
systems only through its own protocols; adapters never reach into a front door; and
`cli/wiring.py` is the only module of the front doors that builds adapters.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "listrak_source"

PURE = [
    "records.py",
    "plan.py",
    "diff.py",
    "messages.py",
    "audiences/membership.py",
    "audiences/mapping.py",
    "audiences/coalesce.py",
]
ORCHESTRATION = [
    "context.py",
    "sync.py",
    "scan.py",
    "confirm.py",
    "deliver.py",
    "courier.py",
    "push.py",
    "readahead.py",
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
    assert "listrak_source.records.Contact" in imports_of(PACKAGE / "diff.py")
    assert "listrak_source.state" in imports_of(PACKAGE / "context.py")


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
    forbidden = [f"listrak_source.{name}" for name in FRONT_DOORS] + [
        f"listrak_source.{Path(name).stem}" for name in ORCHESTRATION
    ]
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
