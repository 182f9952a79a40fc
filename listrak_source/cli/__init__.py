"""Command line: parse, configure logging, dispatch, and turn errors into one line and a status."""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence

from ..errors import EXIT_CONFIG, EXIT_FAILED, ListrakSourceError, describe_error
from ..logs import configure_logging, redact
from . import output
from .parser import PROG, build_parser

# Containers allocated between collections of the young generation (Python's default: 700).
_YOUNG_COLLECTION = 50_000
# mallopt's parameter for the most arenas glibc makes (malloc.h), and the number kept.
_M_ARENA_MAX = -8
_ARENAS = 2
# (module, function) of each command, imported when the command runs: `--help` and a
# mistyped option then cost the parser alone, not SQLAlchemy, httpx and pydantic.
COMMANDS: dict[str, tuple[str, str]] = {
    "sync": ("commands", "sync"),
    "run": ("commands", "run"),
    "backfill": ("commands", "backfill"),
    "baseline": ("commands", "baseline"),
    "retry": ("commands", "retry"),
    "rename-trait": ("commands", "rename_trait"),
    "push": ("commands", "push"),
    "explain": ("commands", "explain"),
    "status": ("commands", "status"),
    "lookup": ("commands", "lookup"),
    "check": ("commands", "check"),
    "migrate": ("commands", "migrate"),
    "demo": ("commands", "demo"),
    "activity-backfill": ("activity_commands", "activity_backfill"),
    "activity-baseline": ("activity_commands", "activity_baseline"),
}


def command(name: str) -> Callable[[argparse.Namespace], int]:
    """The function that runs this sub-command."""
    module, attribute = COMMANDS[name]
    function: Callable[[argparse.Namespace], int] = getattr(
        importlib.import_module(f".{module}", __name__), attribute
    )
    return function


def main(argv: Sequence[str] | None = None, *, own_process: bool = False) -> int:
    """Entry point of the console script and of `python -m listrak_source`; `own_process`:
    the process is the command's alone, so its garbage collector is tuned for it."""
    args = build_parser().parse_args(argv)
    configure_logging(args.log_format, _level(args))
    output.configure(quiet=args.quiet, log_format=args.log_format)
    try:
        run_command = command(args.command)
        if own_process:
            settle_collector()
            settle_allocator()
        code = run_command(args)
        # Buffered output meets a closed pipe here, not at the interpreter's exit.
        sys.stdout.flush()
    except BrokenPipeError:
        output.stdout_closed()
        return output.EXIT_READER_GONE
    except ListrakSourceError as exc:
        return _fail(args, str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return _fail(args, "interrupted", 130)
    except Exception as exc:
        # One line, without SQL, parameters or values: they may hold contacts' emails.
        return _fail(args, describe_error(exc), EXIT_FAILED)
    return output.EXIT_READER_GONE if output.reader_gone() else code


def settle_collector() -> None:
    """Tune Python's cyclic garbage collector once the command's modules are loaded (only
    in a process of the command's own: frozen objects are never collected).

    Everything loaded so far (modules, classes, SQLAlchemy's and pydantic's tables) lives
    as long as the process: frozen, it is no longer walked by every full collection. A
    scan builds a few containers a contact and frees nearly all of them by their reference
    counts, so the young generation is collected every 50,000 new containers rather than
    700. A scan is GIL-bound, and the collector was a large share of its Python: at 100 k,
    medians of three, a first sync went from about 3.1 to 2.6 times its floor, a no-change
    re-sync from about 2.7 to 2.35 (README, "Performance"). Cycles are still collected, a
    generation at a time.
    """
    gc.freeze()
    gc.set_threshold(_YOUNG_COLLECTION, 20, 10)


def settle_allocator() -> None:
    """Hold glibc's allocator to two arenas (only in a process of the command's own).

    glibc gives each thread that allocates while another holds an arena one of its own, up
    to eight a core, and each keeps what was freed in it. A scan's threads (the page
    reader, the stored rows' reader, the courier, each post) allocate pages and batches of
    a megabyte or more, so the peak depended on which thread freed what where: a 1 % churn
    of 1 M on PostgreSQL peaked at 177-200 MB, and at 168-173 MB with two arenas, in the
    same time (README, "Performance"). Elsewhere than glibc nothing changes, nor where the
    operator chose the arenas (MALLOC_ARENA_MAX, or arena_max in GLIBC_TUNABLES).
    """
    chosen = "MALLOC_ARENA_MAX" in os.environ or "arena_max" in os.environ.get("GLIBC_TUNABLES", "")
    if chosen or not _glibc():
        return
    import ctypes  # noqa: PLC0415 - only a process that runs a command needs it

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, _ARENAS)


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (OSError, ValueError):
        return False


def _level(args: argparse.Namespace) -> str:
    if args.debug:
        return "DEBUG"
    return "WARNING" if args.quiet else "INFO"


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    from .commands import known_secrets  # noqa: PLC0415 - loaded once a command runs

    secrets = known_secrets()
    text = redact(message, secrets)
    if args.debug:
        print(redact(traceback.format_exc(), secrets), file=sys.stderr, end="")
    hint = "" if args.debug or code == EXIT_CONFIG else " (--debug shows the traceback)"
    output.tell(f"{PROG}: error: {text}{hint}", logging.ERROR)
    logging.shutdown()
    return code


def run() -> None:
    """Console-script shim so the exit status reaches the shell."""
    sys.exit(main(own_process=True))
