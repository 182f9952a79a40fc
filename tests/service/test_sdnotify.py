"""The notify protocol against a real AF_UNIX datagram socket, as systemd would read it."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from listrak_source.service.sdnotify import Notifier, watchdog_interval


def _receiver(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2)
    return sock


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    address = str(tmp_path / "notify.sock")
    sock = _receiver(address)
    yield sock, address
    sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[tuple[socket.socket, str]]:
    name = f"listrak-source-test-{uuid.uuid4().hex}"
    sock = _receiver("\0" + name)
    yield sock, "@" + name
    sock.close()


def test_filesystem_socket_gets_exact_datagrams(path_socket: tuple[socket.socket, str]) -> None:
    sock, address = path_socket
    notifier = Notifier({"NOTIFY_SOCKET": address})
    assert notifier.enabled
    assert notifier.ready()
    assert sock.recv(4096) == b"READY=1"
    assert notifier.status("syncing list 1001")
    assert sock.recv(4096) == b"STATUS=syncing list 1001"
    assert notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    notifier.close()


def test_abstract_socket_gets_exact_datagrams(abstract_socket: tuple[socket.socket, str]) -> None:
    sock, address = abstract_socket
    notifier = Notifier({"NOTIFY_SOCKET": address})
    notifier.ready(status="idle")
    assert sock.recv(4096) == b"READY=1\nSTATUS=idle"
    notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    notifier.close()


def test_reloading_carries_monotonic_timestamp(path_socket: tuple[socket.socket, str]) -> None:
    sock, address = path_socket
    with contextlib.closing(Notifier({"NOTIFY_SOCKET": address})) as notifier:
        notifier.reloading()
    state, stamp = sock.recv(4096).decode().split("\n")
    assert state == "RELOADING=1"
    assert stamp.startswith("MONOTONIC_USEC=")
    assert int(stamp.removeprefix("MONOTONIC_USEC=")) > 0


def test_status_newlines_cannot_inject_assignments(path_socket: tuple[socket.socket, str]) -> None:
    sock, address = path_socket
    with contextlib.closing(Notifier({"NOTIFY_SOCKET": address})) as notifier:
        notifier.status("bad\nREADY=1")
    assert sock.recv(4096) == b"STATUS=bad READY=1"


def test_unset_socket_is_a_no_op() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False
    assert notifier.watchdog_interval() is None


def test_send_failure_is_logged_once_and_never_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    with caplog.at_level(logging.INFO, logger="listrak_source.service.sdnotify"):
        assert notifier.watchdog() is False
        assert notifier.watchdog() is False
        assert notifier.status("still alive") is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    # Once the socket is back (journald or systemd restarted) sends succeed again.
    sock = _receiver(str(tmp_path / "gone.sock"))
    with caplog.at_level(logging.INFO, logger="listrak_source.service.sdnotify"):
        assert notifier.watchdog() is True
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert "work again" in caplog.text
    sock.close()
    notifier.close()


def test_env_defaults_to_process_environment(
    monkeypatch: pytest.MonkeyPatch, path_socket: tuple[socket.socket, str]
) -> None:
    sock, address = path_socket
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    with contextlib.closing(Notifier()) as notifier:
        notifier.ready()
    assert sock.recv(4096) == b"READY=1"


def test_non_unix_socket_is_treated_as_absent() -> None:
    assert not Notifier({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled


def test_watchdog_interval_from_usec() -> None:
    pid = os.getpid()
    assert watchdog_interval({"WATCHDOG_USEC": "120000000"}) == 120.0
    assert watchdog_interval({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": str(pid)}) == 120.0
    notifier = Notifier({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": str(pid)})
    assert notifier.watchdog_interval() == 120.0
    assert notifier.ping_interval() == 60.0


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"WATCHDOG_USEC": "0"},
        {"WATCHDOG_USEC": "soon"},
        {"WATCHDOG_USEC": "-5"},
        {"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "1"},
        {"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "me"},
    ],
)
def test_watchdog_interval_absent(env: dict[str, str]) -> None:
    assert watchdog_interval(env, pid=4242) is None
    assert Notifier(env).ping_interval() is None


def test_watchdog_pid_must_match() -> None:
    env = {"WATCHDOG_USEC": "5000000", "WATCHDOG_PID": "4242"}
    assert watchdog_interval(env, pid=4242) == 5.0
    assert watchdog_interval(env, pid=4243) is None
