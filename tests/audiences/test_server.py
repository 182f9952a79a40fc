"""The receiver's uvicorn server: binding, a stop that drains, and logs that leak nothing."""

from __future__ import annotations

import logging
import socket
import threading

import httpx
import pytest

from listrak_source.audiences.receiver import make_app
from listrak_source.audiences.server import ReceiverError, ReceiverServer, _bind, serve
from listrak_source.engage.ingest import Ingest
from listrak_source.engage.mapping import Mappings
from listrak_source.engage.settings import ReceiverSettings

from ._events import track
from .conftest import SECRET, SHARED, StartReceiver

EMAIL = "private.person@example.com"


def test_port_zero_reports_the_bound_port(start_receiver: StartReceiver) -> None:
    receiver = start_receiver()
    assert receiver.server.port > 0
    assert receiver.server.url == f"http://127.0.0.1:{receiver.server.port}"
    assert httpx.get(f"{receiver.server.url}/healthz", timeout=20).status_code == 200


def test_the_listening_socket_is_tcp_so_answers_go_out_without_nagle_delays() -> None:
    sock = _bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


def test_a_port_in_use_is_one_line_naming_the_address() -> None:
    taken = _bind("127.0.0.1", 0)
    port = taken.getsockname()[1]
    settings = ReceiverSettings(port=port, secrets=[SECRET])
    app = make_app(settings, Mappings([]), lambda ingest: None)
    try:
        expected = rf"^receiver cannot listen on 127\.0\.0\.1:{port}: "
        with pytest.raises(ReceiverError, match=expected):
            serve(app, settings)
    finally:
        taken.close()


def test_an_unknown_host_is_one_line() -> None:
    settings = ReceiverSettings(host="no-such-host.invalid", port=0, secrets=[SECRET])
    app = make_app(settings, Mappings([]), lambda ingest: None)
    expected = r"^receiver cannot listen on no-such-host\.invalid:0: "
    with pytest.raises(ReceiverError, match=expected):
        ReceiverServer(app, settings).start()


def test_stop_lets_the_request_in_flight_finish(start_receiver: StartReceiver) -> None:
    entered, release = threading.Event(), threading.Event()

    def slow_commit(ingest: Ingest) -> None:
        entered.set()
        assert release.wait(20)

    receiver = start_receiver(commit=slow_commit)
    server = receiver.server
    answers: list[int] = []
    poster = threading.Thread(target=lambda: answers.append(receiver.post([track()]).status_code))
    poster.start()
    assert entered.wait(20)
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    assert server.stopping.wait(20)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/healthz", timeout=20)
    # stop() is still waiting on the commit; once it returns, the request gets its 200.
    assert stopper.is_alive()
    release.set()
    poster.join(20)
    stopper.join(20)
    assert answers == [200]
    assert not stopper.is_alive()


def test_stop_is_idempotent_and_the_port_is_freed() -> None:
    settings = ReceiverSettings(port=0, secrets=[SECRET])
    with serve(make_app(settings, Mappings([]), lambda ingest: None), settings) as server:
        port = server.port
    server.stop()
    again = _bind("127.0.0.1", port)
    again.close()


def _leaky_records(records: list[logging.LogRecord]) -> list[str]:
    ours = [r for r in records if r.name.startswith(("uvicorn", "listrak_source"))]
    texts = [r.getMessage() + (r.exc_text or "") for r in ours]
    return [t for t in texts if any(s in t for s in (SECRET, SHARED, EMAIL, "first_time"))]


def test_even_trace_logging_shows_no_secret_email_or_body(
    start_receiver: StartReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(1)  # below uvicorn's TRACE, which logs every ASGI message
    # uvicorn logs ASGI messages only when uvicorn.error allows TRACE, and configure_logging
    # (any run of the CLI earlier in this process) leaves it at WARNING.
    for name in ("uvicorn.error", "uvicorn.asgi"):
        caplog.set_level(1, logger=name)
    receiver = start_receiver(shared_secret=SHARED, access_log=True)
    receiver.post([track(email=EMAIL)], headers={"X-Signature": "0" * 40})
    receiver.post([track(email=EMAIL)], secret="wrong")
    receiver.server.stop()
    names = {r.name for r in caplog.records}
    assert {"uvicorn.asgi", "uvicorn.access", "listrak_source.audiences.receiver"} <= names
    assert _leaky_records(caplog.records) == []


def test_the_access_log_is_off_by_default(
    start_receiver: StartReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    receiver = start_receiver()
    assert receiver.post([track(email=EMAIL)]).status_code == 200
    receiver.server.stop()
    assert not [r for r in caplog.records if r.name == "uvicorn.access"]
