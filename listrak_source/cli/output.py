"""Where a command's words go: results on stdout, everything else on stderr in one form.

On a terminal, stderr carries a live progress bar, plain summaries and text logs. When the
logs are JSON (by default wherever stderr is no terminal: a pipe, a file, journald), every
line on stderr is a JSON record, progress, summaries and the error line included, so a
reader of JSON never meets a plain line. TERM=dumb and NO_COLOR keep escape codes out;
--quiet shows no progress and logs only warnings and errors.

`listrak-source status | head` closes the pipe after a few lines; the command then stops
quietly with 128 + SIGPIPE, as `git log | head` does, instead of a traceback. SIGPIPE
itself stays ignored: with its default action a socket to Listrak or Segment that the
peer closed would kill the process mid-run.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from dataclasses import dataclass

from ..logs import LogFormat, resolve_format
from .progress import Progress, Silent

# What a shell reports for a process that SIGPIPE ended.
EXIT_READER_GONE = 141
_gone = threading.Event()
# Summaries meant for a person, sent through the log when stderr is no terminal.
_results = logging.getLogger("listrak_source.result")


@dataclass
class Stderr:
    """How this process talks on stderr, decided once from the options and the terminal."""

    terminal: bool = False
    escapes: bool = False
    quiet: bool = False
    json: bool = True


_stderr = Stderr()


def configure(*, quiet: bool, log_format: LogFormat) -> None:
    """Decide once, from the stream itself, TERM, NO_COLOR, --quiet and --log-format."""
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):  # a closed or file-less stream
        tty = False
    dumb = os.environ.get("TERM", "") == "dumb"
    _stderr.terminal = tty and not dumb
    _stderr.escapes = _stderr.terminal and "NO_COLOR" not in os.environ
    _stderr.quiet = quiet
    _stderr.json = resolve_format(log_format, sys.stderr) == "json"
    # A summary is a result: --quiet keeps it, as it keeps stdout.
    _results.setLevel(logging.INFO)


def progress(label: str) -> Progress:
    """A bar on a terminal; elsewhere a log line every few seconds; nothing with --quiet."""
    if _stderr.quiet:
        return Silent(label, sys.stderr, tty=False)
    plain = logging.getLogger("listrak_source.progress").info if _stderr.json else None
    return Progress(label, sys.stderr, tty=_stderr.terminal, escapes=_stderr.escapes, plain=plain)


def tell(line: str, level: int = logging.INFO) -> None:
    """A line for a person on stderr: plain beside text logs, a record among JSON ones."""
    if not _stderr.json:
        print(line, file=sys.stderr)
        return
    for part in line.splitlines():
        _results.log(level, "%s", part)


def reader_gone() -> bool:
    """True once a write to stdout found no reader."""
    return _gone.is_set()


def stdout_closed() -> None:
    """Point stdout at /dev/null, so nothing more fails (the interpreter's final flush
    included), and remember that the reader went away."""
    _gone.set()
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # a stdout without a descriptor (a test's StringIO)
        pass
