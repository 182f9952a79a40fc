"""Progress: a bar on a terminal, plain lines every few seconds elsewhere; the clock is faked."""

from __future__ import annotations

import io

from listrak_source.cli.progress import PLAIN_EVERY, TTY_EVERY, Progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(tty: bool, label: str = "backfill") -> tuple[Progress, io.StringIO, FakeClock]:
    out, clock = io.StringIO(), FakeClock()
    return Progress(label, out, clock=clock, tty=tty), out, clock


def test_plain_lines_only_every_few_seconds() -> None:
    progress, out, clock = make(tty=False)
    progress.start("list 1001", {"scanned": 1000, "delivered": 1000})
    progress.update("scanned", 100)
    assert out.getvalue() == ""  # a short run prints no progress at all
    clock.now += PLAIN_EVERY
    progress.update("scanned", 600)
    clock.now += 1
    progress.update("scanned", 700)
    assert out.getvalue() == "backfill list 1001: scanned 600 of ~1000\n"
    clock.now += PLAIN_EVERY
    progress.update("delivered", 250)
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines[-1] == "backfill list 1001: scanned 700 of ~1000, delivered 250 of ~1000"
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_terminal_redraws_a_bar_in_place() -> None:
    progress, out, clock = make(tty=True)
    progress.start("list 1001", {"scanned": 200})
    progress.update("scanned", 50)
    text = out.getvalue()
    assert text.startswith("\r[#####...............]  25%  backfill list 1001: scanned 50 of ~200")
    assert text.endswith("\x1b[K") and "\n" not in text
    clock.now += 2 * TTY_EVERY
    progress.update("scanned", 200)
    assert "[####################] 100%" in out.getvalue()
    progress.close()
    assert out.getvalue().endswith("\n") and out.getvalue().count("\n") == 1


def test_terminal_throttles_but_shows_the_final_count() -> None:
    progress, out, _ = make(tty=True)
    progress.start("list 1001")
    progress.update("scanned", 10)
    progress.update("scanned", 20)  # within TTY_EVERY: not drawn yet
    assert "scanned 20" not in out.getvalue()
    progress.close()
    assert out.getvalue().endswith("backfill list 1001: scanned 20 (size not known yet)\x1b[K\n")


def test_unknown_total_shows_a_moving_bar_without_a_share() -> None:
    progress, out, clock = make(tty=True, label="sync")
    progress.start("list 7", {"scanned": 0})  # a list never synced has no size yet
    progress.update("scanned", 5000)
    first = "[####................]    ?  sync list 7: scanned 5000 (size not known yet)"
    assert out.getvalue() == f"\r{first}\x1b[K"
    clock.now += 2 * TTY_EVERY
    progress.update("scanned", 10000)
    assert progress.bar().startswith("[..####..............]    ?")


def test_count_past_the_estimate_drops_the_estimate() -> None:
    progress, _, _ = make(tty=True)
    progress.start("list 1", {"scanned": 100, "delivered": 100})
    progress.update("scanned", 150)
    progress.update("delivered", 120)
    assert progress.bar().startswith("[####################] 100%")
    assert progress.text() == "backfill list 1: scanned 150, delivered 120"


def test_the_bar_never_moves_back_when_delivery_counts_arrive() -> None:
    progress, _, clock = make(tty=True)
    progress.start("list 1", {"scanned": 100, "delivered": 100})
    shares = []
    for stage, count in [("scanned", 50), ("delivered", 10), ("scanned", 100), ("delivered", 60)]:
        clock.now += 2 * TTY_EVERY
        progress.update(stage, count)
        shares.append(progress.bar().split("]")[1].split("%")[0].strip())
    assert shares == ["50", "50", "100", "100"]


def test_without_escape_codes_a_shorter_line_is_padded_out() -> None:
    out, clock = io.StringIO(), FakeClock()
    progress = Progress("sync", out, clock=clock, tty=True, escapes=False)
    progress.start("list 1", {"scanned": 1000})
    progress.update("scanned", 1000)
    clock.now += 2 * TTY_EVERY
    progress.start("list 2", {"scanned": 10})
    progress.update("scanned", 1)
    progress.close()
    assert "\x1b" not in out.getvalue()


def test_each_list_starts_on_its_own_line() -> None:
    progress, out, clock = make(tty=True)
    progress.start("list 1", {"scanned": 10})
    progress.update("scanned", 10)
    clock.now += 2 * TTY_EVERY
    progress.start("list 2")
    progress.update("scanned", 3)
    progress.close()
    lines = out.getvalue().split("\n")
    assert "list 1: scanned 10 of ~10" in lines[0]
    second = "[####................]    ?  backfill list 2: scanned 3 (size not known yet)"
    assert lines[1] == f"\r{second}\x1b[K" and lines[2] == ""


def test_close_without_updates_prints_nothing() -> None:
    for tty in (True, False):
        progress, out, _ = make(tty=tty)
        progress.start("list 1", {"scanned": 10})
        progress.close()
        assert out.getvalue() == ""


def test_off_a_terminal_each_line_goes_where_it_is_told() -> None:
    """Beside JSON logs a progress line is a log record, not a plain line."""
    lines: list[str] = []
    out, clock = io.StringIO(), FakeClock()
    progress = Progress("sync", out, clock=clock, tty=False, plain=lines.append)
    progress.start("list 1", {"scanned": 10})
    clock.now += PLAIN_EVERY
    progress.update("scanned", 4)
    progress.close()
    assert lines == ["sync list 1: scanned 4 of ~10"] and out.getvalue() == ""
