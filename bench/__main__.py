"""`python -m bench`: the worker against the simulator and sink at 10 k, 100 k and 1 M contacts."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from .profiles import summarize
from .report import document, results_table, targets, targets_table, write_json
from .runner import CASES, CaseResult, run_size

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results.json"


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
        "--postgres", metavar="URL", help="run on this PostgreSQL server (a schema per size)"
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        type=Path,
        help="run the worker under cProfile, one DIR/<size>-<case>.prof per run "
        "(times are inflated; results go to DIR/results.json unless --output)",
    )
    parser.add_argument("--output", type=Path, help=f"default {DEFAULT_OUTPUT}")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed, too")
    return parser


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # As an exception, so the worker, the fakes and a Postgres schema are cleaned up.
    sys.exit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print both tables, write the JSON; exit 1 when a result is wrong."""
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    sizes = [10_000] if args.quick else args.sizes
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    output = args.output or (
        DEFAULT_OUTPUT if args.profile is None else args.profile / "results.json"
    )
    database = "postgresql" if args.postgres else "sqlite"
    print(f"listrak-source bench on {database}: sizes {sizes}, cases {args.cases}", file=sys.stderr)
    results: list[CaseResult] = []
    for size in sizes:
        results += run_size(size, args.cases, postgres=args.postgres, profile_dir=args.profile)
    found = targets(results)
    print(results_table(results) + "\n\n" + targets_table(found))
    write_json(output, document(results, found, database=database, profiled=bool(args.profile)))
    print(f"\nwritten to {output}")
    if args.profile is not None:
        for path in sorted(args.profile.glob("*.prof")):
            print("\n" + summarize(path))
    wrong = any(not r.verdict.ok or r.run.exit_code for r in results)
    missed = args.strict and any(t.met is False for t in found)
    return 1 if wrong or missed else 0


if __name__ == "__main__":
    sys.exit(main())
