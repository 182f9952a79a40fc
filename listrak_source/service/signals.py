"""Which signals ask the worker to stop, and how their handlers are put in and taken out."""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

Handler = Callable[[int, FrameType | None], Any]

# SIGHUP too: a closed terminal, or a `kill -HUP` meant as "reload", must not kill a run
# half-way with runs left open; it stops as SIGTERM does.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def on_stop_signals(handler: Handler) -> dict[signal.Signals, Any]:
    """Route the stop signals to `handler`; return the handlers they had before.

    A SIGHUP that is ignored (under nohup) stays ignored: whoever started us asked for that.
    """
    previous: dict[signal.Signals, Any] = {}
    for sig in STOP_SIGNALS:
        if sig == signal.SIGHUP and signal.getsignal(sig) == signal.SIG_IGN:
            continue
        previous[sig] = signal.signal(sig, handler)
    return previous


def restore(previous: Mapping[signal.Signals, Any]) -> None:
    """Put back the handlers `on_stop_signals` replaced."""
    for sig, handler in previous.items():
        signal.signal(sig, handler)
