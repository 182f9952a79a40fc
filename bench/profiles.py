"""Where a profiled worker's time went: self time by area, hottest functions, pipeline steps.

`python -m bench.profiles FILE.prof...` summarizes what `python -m bench --profile DIR` wrote.
cProfile sees the main thread only: the Segment client's consumer thread (message JSON,
gzip, the POST) shows up as the main thread waiting in flush().
"""

from __future__ import annotations

import argparse
import pstats
import sys
from collections.abc import Sequence
from pathlib import Path

# First match wins, so C-level names come before the Python packages that call them.
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("socket I/O and waiting", ("_socket.socket", "select.", "'poll'", "selectors.py")),
    ("locks (waiting on threads)", ("lock' objects", "threading.py", "queue.py")),
    ("sqlite3 (C)", ("sqlite3.",)),
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("JSON", ("json/", "_json")),
    ("HTTP client", ("httpx/", "httpcore/", "h11/", "http/client", "urllib3/", "requests/")),
    ("Segment client", ("segment/analytics",)),
    ("gzip/zlib", ("gzip", "zlib")),
    ("uuid", ("uuid",)),
    ("parse_contact (models.py)", ("listrak_source/models.py",)),
    ("diff.py", ("listrak_source/diff.py",)),
    ("store.py", ("listrak_source/store.py",)),
    ("sync.py", ("listrak_source/sync.py",)),
    ("other listrak_source", ("listrak_source/",)),
    ("imports", ("<frozen importlib", "importlib/", "marshal", "<built-in method builtins.exec>")),
    ("pydantic", ("pydantic",)),
    ("alembic", ("alembic/",)),
    ("datetime", ("datetime",)),
)
Key = tuple[str, int, str]


def _name(key: Key) -> str:
    filename, line, func = key
    if filename == "~":
        return func
    return f"{'/'.join(Path(filename).parts[-2:])}:{line}({func})"


def _area(key: Key) -> str:
    text = f"{key[0]}:{key[2]}"
    return next((name for name, marks in AREAS if any(m in text for m in marks)), "other")


def _raw(path: Path) -> dict[Key, tuple[int, int, float, float, object]]:
    # pstats keeps its table in an attribute it does not declare.
    table: dict[Key, tuple[int, int, float, float, object]] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    return table


def _by_size(areas: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(areas.items(), key=lambda kv: kv[1], reverse=True)


def summarize(path: Path, top: int = 15) -> str:
    """Self time by area, the functions with most self time, and listrak_source's steps."""
    table = _raw(path)
    total = sum(v[2] for v in table.values()) or 1.0
    areas: dict[str, float] = {}
    for key, (_, _, own, _, _) in table.items():
        areas[_area(key)] = areas.get(_area(key), 0.0) + own
    lines = [f"{path.name}: {total:.2f} s of main-thread time", "  self time by area:"]
    lines += [f"    {100 * s / total:5.1f} %  {s:7.2f} s  {name}" for name, s in _by_size(areas)]
    lines.append("  functions with most self time:")
    hottest = sorted(table.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    lines += [f"    {100 * v[2] / total:5.1f} %  {v[2]:7.2f} s  {_name(k)}" for k, v in hottest]
    lines.append("  listrak_source steps, cumulative (children included):")
    ours = [kv for kv in table.items() if "listrak_source/" in kv[0][0]]
    steps = sorted(ours, key=lambda kv: kv[1][3], reverse=True)[:top]
    lines += [f"    {100 * v[3] / total:5.1f} %  {v[3]:7.2f} s  {_name(k)}" for k, v in steps]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print a summary of each profile."""
    parser = argparse.ArgumentParser(prog="python -m bench.profiles", description=__doc__)
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    print("\n\n".join(summarize(path, args.top) for path in args.profiles))
    return 0


if __name__ == "__main__":
    sys.exit(main())
