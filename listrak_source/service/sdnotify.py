"""The systemd notify protocol (sd_notify), spoken directly so the worker needs no library."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)

USEC_PER_SECOND = 1_000_000


def _socket_address(raw: str | None) -> str | None:
    """Map NOTIFY_SOCKET to an AF_UNIX address; '@name' is Linux's abstract namespace."""
    if not raw:
        return None
    if raw.startswith("@"):
        return "\0" + raw[1:]
    if raw.startswith("/"):
        return raw
    # vsock: and other transports are rare (VMs); treating them as absent keeps the daemon up.
    log.warning("NOTIFY_SOCKET is not a unix socket path; systemd notifications are off")
    return None


def watchdog_interval(
    environ: Mapping[str, str] | None = None, pid: int | None = None
) -> float | None:
    """Seconds systemd allows between WATCHDOG=1 pings, or None when it watches nothing."""
    env = os.environ if environ is None else environ
    raw_usec = env.get("WATCHDOG_USEC", "")
    raw_pid = env.get("WATCHDOG_PID", "")
    if raw_pid:
        # The variable is inherited by children; only the process systemd named may ping.
        own_pid = os.getpid() if pid is None else pid
        if not raw_pid.isdigit() or int(raw_pid) != own_pid:
            return None
    if not raw_usec.isdigit() or int(raw_usec) == 0:
        return None
    return int(raw_usec) / USEC_PER_SECOND


class Notifier:
    """Sends state changes to systemd; every method is a no-op when NOTIFY_SOCKET is unset."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self._address = _socket_address(self._environ.get("NOTIFY_SOCKET"))
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._failing = False

    @property
    def enabled(self) -> bool:
        """True when systemd asked for notifications."""
        return self._address is not None

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd start-up is done (Type=notify waits for this)."""
        return self._send("READY=1", status)

    def stopping(self, status: str | None = None) -> bool:
        """Tell systemd a clean shutdown has begun, so it waits TimeoutStopSec."""
        return self._send("STOPPING=1", status)

    def reloading(self, status: str | None = None) -> bool:
        """Tell systemd a reload has begun; newer systemd wants the monotonic timestamp too."""
        stamp = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self._send(f"RELOADING=1\nMONOTONIC_USEC={stamp}", status)

    def status(self, text: str) -> bool:
        """Set the one-line status `systemctl status` shows."""
        return self._send(None, text)

    def watchdog(self) -> bool:
        """Ping the watchdog; go at half of watchdog_interval() so one late ping is harmless."""
        return self._send("WATCHDOG=1", None)

    def watchdog_interval(self) -> float | None:
        """WatchdogSec= in seconds for this process, or None when there is no watchdog."""
        return watchdog_interval(self._environ)

    def ping_interval(self) -> float | None:
        """How often to call watchdog(): half the allowed interval, as systemd advises."""
        interval = self.watchdog_interval()
        return None if interval is None else interval / 2

    def close(self) -> None:
        """Release the datagram socket."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def _send(self, state: str | None, status: str | None) -> bool:
        """Send one datagram; report failure as False, never raise."""
        if self._address is None:
            return False
        lines = [] if state is None else [state]
        if status is not None:
            # The protocol is newline-separated assignments; a newline would start a new one.
            lines.append("STATUS=" + " ".join(status.splitlines()))
        return self._send_datagram("\n".join(lines).encode())

    def _send_datagram(self, payload: bytes) -> bool:
        assert self._address is not None
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.sendto(payload, self._address)
            except OSError as exc:
                # systemd may be re-executing or journald restarting: keep running and
                # say so once per outage rather than on every ping.
                if not self._failing:
                    log.warning("systemd notification failed: %s", exc)
                self._failing = True
                return False
            if self._failing:
                log.info("systemd notifications work again")
            self._failing = False
            return True
