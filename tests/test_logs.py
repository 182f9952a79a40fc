"""Log lines: format choice, list/run context per thread, and secrets that never get out."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from listrak_source.logs import (
    SecretFilter,
    Throttle,
    ThrottleFilter,
    configure_logging,
    current_context,
    hide_emails,
    log_context,
    redact,
)
from listrak_source.state import make_engine, upgrade

log = logging.getLogger("listrak_source.test")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    names = ("httpx", "httpcore", "segment", "apscheduler.executors")
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


def _json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_line_fields() -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    log.info("scanned %d contacts", 5000)
    (entry,) = _json_lines(stream)
    assert entry["level"] == "INFO"
    assert entry["logger"] == "listrak_source.test"
    assert entry["msg"] == "scanned 5000 contacts"
    ts = datetime.fromisoformat(str(entry["ts"]))
    assert ts.utcoffset() is not None and ts.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert "list_id" not in entry and "run_id" not in entry


def test_json_carries_context_and_exception() -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    with log_context(list_id=1001, run_id=7):
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("page failed")
    (entry,) = _json_lines(stream)
    assert entry["list_id"] == 1001
    assert entry["run_id"] == 7
    assert "RuntimeError: boom" in str(entry["exc"])
    assert "Traceback" in str(entry["exc"])


def test_text_line_shows_context() -> None:
    stream = io.StringIO()
    configure_logging("text", stream=stream)
    with log_context(list_id=1001, run_id=7):
        log.warning("held mass removal")
    line = stream.getvalue()
    assert "[list 1001 run 7]" in line
    assert "WARNING" in line and "held mass removal" in line
    assert line.count("\n") == 1


def test_auto_picks_text_on_a_tty_and_json_otherwise() -> None:
    tty, pipe = _Tty(), io.StringIO()
    configure_logging("auto", stream=tty)
    log.info("hello")
    configure_logging("auto", stream=pipe)
    log.info("hello")
    assert not tty.getvalue().startswith("{")
    assert _json_lines(pipe)[0]["msg"] == "hello"


def test_reconfiguring_replaces_our_handler_only() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("json", stream=first)
    configure_logging("json", stream=second)
    log.info("once")
    assert first.getvalue() == ""
    assert len(_json_lines(second)) == 1


def test_level_is_applied_and_validated() -> None:
    stream = io.StringIO()
    configure_logging("json", level="warning", stream=stream)
    log.info("hidden")
    log.warning("shown")
    assert [e["msg"] for e in _json_lines(stream)] == ["shown"]
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("json", level="LOUD", stream=stream)


def test_log_context_nests_and_restores() -> None:
    assert current_context() == {}
    with log_context(list_id=1):
        with log_context(run_id=2):
            assert current_context() == {"list_id": 1, "run_id": 2}
        with log_context(list_id=3):
            assert current_context() == {"list_id": 3}
        assert current_context() == {"list_id": 1}
    assert current_context() == {}


def test_each_thread_has_its_own_context() -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    barrier = threading.Barrier(2)

    def job(list_id: int) -> None:
        with log_context(list_id=list_id, run_id=list_id * 10):
            barrier.wait(timeout=5)  # both contexts are live at once
            log.info("job %d", list_id)

    threads = [threading.Thread(target=job, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entries = {e["msg"]: e for e in _json_lines(stream)}
    assert entries["job 1"]["list_id"] == 1 and entries["job 1"]["run_id"] == 10
    assert entries["job 2"]["list_id"] == 2 and entries["job 2"]["run_id"] == 20


def test_redact() -> None:
    assert redact("key=abc123 and abc123", ["abc123"]) == "key=*** and ***"
    assert redact("nothing", ["", "zzz"]) == "nothing"
    # The longer secret wins where one contains another.
    assert redact("token abcdef", ["abc", "abcdef"]) == "token ***"


def test_a_short_secret_is_masked_only_as_a_word_of_its_own() -> None:
    assert redact("Listrak refused s, key=s&next", ["s"]) == "Listrak refused ***, key=***&next"
    assert redact("user sim-1 is not sim-12", ["sim-1"]) == "user *** is not sim-12"
    # A secret of a sound length is masked wherever it appears, even glued to a word.
    long = "0123456789abcdef"
    assert redact(f"token{long}x and {long}", [long]) == "token***x and ***"


def test_a_throttle_lets_a_kind_of_line_through_once_an_interval_and_counts_the_rest() -> None:
    now = [0.0]
    throttle = Throttle(60.0, clock=lambda: now[0])
    assert throttle.admit("refused") == 0
    assert [throttle.admit("refused") for _ in range(1000)] == [None] * 1000
    assert throttle.admit("timed out") == 0, "each kind has its own clock"
    now[0] = 59.9
    assert throttle.admit("refused") is None
    now[0] = 60.0
    assert throttle.admit("refused") == 1001
    assert throttle.admit("refused") is None


def test_a_throttle_filter_says_how_many_lines_it_left_out() -> None:
    now = [0.0]
    logger = logging.getLogger("listrak_source.tests.throttled")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.addFilter(ThrottleFilter(Throttle(60.0, clock=lambda: now[0])))
    try:
        for n in range(500):
            logger.warning("refused %d", n)
        now[0] = 61.0
        logger.warning("refused %d", 500)
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in records] == [
        "refused 0",
        "refused 500 (499 more like this since the last such line)",
    ]


def test_secrets_never_reach_either_format() -> None:
    secret = "s3cr3t-write-key"
    for fmt in ("json", "text"):
        stream = io.StringIO()
        configure_logging(fmt, stream=stream, secrets=[secret])
        # A library formatting the secret into its own message, args and exception.
        logging.getLogger("segment").error("bad key %s", secret)
        try:
            raise ValueError(f"auth failed for {secret}")
        except ValueError:
            log.exception("request with %r", {"write_key": secret})
        out = stream.getvalue()
        assert secret not in out
        assert out.count("***") >= 3


def test_secret_filter_masks_tokens_added_later() -> None:
    stream = io.StringIO()
    secret_filter = configure_logging("json", stream=stream)
    secret_filter.add("bearer-token-123")
    log.info("Authorization: Bearer %s", "bearer-token-123")
    assert _json_lines(stream)[0]["msg"] == "Authorization: Bearer ***"


def test_secret_filter_masks_stack_info() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None, sinfo="at pw1")
    assert SecretFilter(["pw1"]).filter(record)
    assert record.stack_info == "at ***"


def test_noisy_libraries_are_quieted() -> None:
    configure_logging("json", level="INFO", stream=io.StringIO())
    quiet = (
        "httpx",
        "httpcore",
        "segment",
        "apscheduler.executors.default",
        "apscheduler.scheduler",
    )
    for name in quiet:
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
    assert logging.getLogger("listrak_source.subscribers.sync").isEnabledFor(logging.INFO)


def test_migrating_a_new_database_logs_nothing_from_alembic(tmp_path: Path) -> None:
    out = io.StringIO()
    configure_logging("json", level="INFO", stream=out)
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    upgrade(engine)
    engine.dispose()
    assert "alembic" not in out.getvalue()


def test_debug_unquiets_segment_but_not_httpcore() -> None:
    configure_logging("json", level="DEBUG", stream=io.StringIO())
    assert logging.getLogger("segment").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("apscheduler.executors.default").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("httpcore").isEnabledFor(logging.INFO)


@pytest.mark.parametrize(
    "address", ["ann@example.com", "Ann.Lee+news@Example.COM", "ann%40example.com", "a%b@x.io"]
)
def test_an_address_written_or_percent_encoded_is_hidden(address: str) -> None:
    assert hide_emails(f"could not read {address} now") == "could not read <email> now"


def test_text_without_an_address_is_kept() -> None:
    text = "50% of 40 pages; HTTP 500 ERROR_UNHANDLED_EXCEPTION"
    assert hide_emails(text) == text
