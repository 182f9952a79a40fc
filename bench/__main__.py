"""`python -m bench`: the worker against the simulator and sink at 10 k, 100 k and 1 M contacts."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from .profiles import summarize
from .report import document, results_table, targets_table, write_json
from .rows import rows
from .runner import CASES, CaseResult, run_size
from .targets import targets
from .worker import compile_sources

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
# One file per database, so a PostgreSQL run never overwrites the SQLite figures.
OUTPUT_NAMES = {"sqlite": "results.json", "postgresql": "results-postgres.json"}
DEFAULT_FOLDER = Path(__file__).resolve().parent


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of counts"
        ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive")
    return sizes


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive count")
    return int(text)


def _cases(text: str) -> list[str]:
    cases = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(cases) - set(CASES))
    if unknown or not cases:
        raise argparse.ArgumentTypeError(f"cases are {', '.join(CASES)}; not {unknown}")
    return cases


def build_parser() -> argparse.ArgumentParser:
    """Options; every one has a default, so `make bench` needs none."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--sizes", type=_sizes, default=list(DEFAULT_SIZES), help="e.g. 10000,100000"
    )
    parser.add_argument("--cases", type=_cases, default=list(CASES), help=",".join(CASES))
    parser.add_argument("--quick", action="store_true", help="only 10 k contacts")
    parser.add_argument(
        "--repeat",
        type=_positive,
        default=1,
        metavar="N",
        help="run every case (and its floor) N times; report the median and min-max wall",
    )
    parser.add_argument(
        "--postgres", metavar="URL", help="run on this PostgreSQL server (a schema per size)"
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        type=Path,
        help="run the worker under cProfile, one DIR/<size>-<case>.prof per run "
        "(times are inflated; the results file goes to DIR unless --output)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help=f"default {DEFAULT_FOLDER / OUTPUT_NAMES['sqlite']}, "
        f"or {OUTPUT_NAMES['postgresql']} beside it with --postgres",
    )
    parser.add_argument(
        "--listrak-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="Listrak's own time per page, as a remote API takes it (a wait in the "
        "simulator, no CPU of this machine), for the floors and the worker alike; "
        "default 0: pages come as fast as the simulator builds them",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed, too")
    return parser


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # As an exception, so the worker, the fakes and a Postgres schema are cleaned up.
    sys.exit(128 + signum)


def output_path(
    output: Path | None, profile: Path | None, database: str, listrak_ms: float = 0.0
) -> Path:
    """--output, else this database's file beside this module (or in the profile folder),
    named for Listrak's time per page when it is not the simulator's own."""
    name = OUTPUT_NAMES[database]
    if listrak_ms:
        name = name.replace(".json", f"-listrak-{listrak_ms:g}ms.json")
    return output or (profile or DEFAULT_FOLDER) / name


def _run(args: argparse.Namespace, sizes: Sequence[int], database: str) -> list[CaseResult]:
    print(
        f"listrak-source bench on {database}: sizes {list(sizes)}, cases {args.cases}, "
        f"{args.repeat} run(s) each, Listrak {args.listrak_ms:g} ms a page",
        file=sys.stderr,
    )
    results: list[CaseResult] = []
    for size in sizes:
        results += run_size(
            size,
            args.cases,
            postgres=args.postgres,
            profile_dir=args.profile,
            repeat=args.repeat,
            page_delay=args.listrak_ms / 1000,
        )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print both tables, write the JSON; exit 1 when a result is wrong."""
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    database = "postgresql" if args.postgres else "sqlite"
    output = output_path(args.output, args.profile, database, args.listrak_ms)
    compile_sources()
    table = rows(_run(args, [10_000] if args.quick else args.sizes, database))
    found = targets(table)
    print(results_table(table) + "\n\n" + targets_table(found))
    doc = document(
        table,
        found,
        database=database,
        profiled=bool(args.profile),
        repeat=args.repeat,
        listrak_ms=args.listrak_ms,
    )
    write_json(output, doc)
    print(f"\nwritten to {output}")
    if args.profile is not None:
        for path in sorted(args.profile.glob("*.prof")):
            print("\n" + summarize(path))
    wrong = any(not row["ok"] for row in table)
    missed = args.strict and any(t.met is False for t in found)
    return 1 if wrong or missed else 0


if __name__ == "__main__":
    sys.exit(main())
