"""Per-list locks on both backends: one holder, its name, and freed when the holder goes."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text

from listrak_source.errors import ConfigError, ListBusyError, LockLostError
from listrak_source.state.locks import (
    AdvisoryLocks,
    FileLock,
    FileLocks,
    Locks,
    SessionLock,
    list_locks,
    lock_folder,
)

# Takes list 7's lock in a process of its own and waits to be killed.
HOLDER = """
import sys, time
from listrak_source.state import make_engine
from listrak_source.state.locks import list_locks
lock = list_locks(make_engine(sys.argv[1])).take(7, "doomed:1:abc")
print("held", flush=True)
time.sleep(600)
"""


class Pauses(list[float]):
    """Stands in for time.sleep: records the pause instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def pauses() -> Pauses:
    return Pauses()


def locks_for(engine: Engine, pauses: Pauses) -> Locks:
    if engine.dialect.name == "postgresql":
        return AdvisoryLocks(engine, pause=pauses)
    return FileLocks(lock_folder(engine.url.database), pause=pauses)


@pytest.fixture
def locks(engine: Engine, pauses: Pauses) -> Locks:
    return locks_for(engine, pauses)


@pytest.fixture
def killed_holder(db_url: str, engine: Engine) -> Iterator[subprocess.Popen[str]]:
    """A process that holds list 7's lock; the test kills it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, db_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_the_factory_picks_the_backends_own_primitive(engine: Engine) -> None:
    expected = AdvisoryLocks if engine.dialect.name == "postgresql" else FileLocks
    assert isinstance(list_locks(engine), expected)


def test_one_holder_per_list_named_to_whoever_is_refused(locks: Locks, pauses: Pauses) -> None:
    first = locks.take(1001, "host-a:11:aaaa")
    with pytest.raises(ListBusyError) as refused:
        locks.take(1001, "host-b:22:bbbb")
    assert str(refused.value) == "list 1001 is being synced by host-a:11:aaaa; skipped"
    assert len(pauses) == 2, "a refusal is tried again, without sleeping in this test"
    assert locks.holders() == {1001: "host-a:11:aaaa"}
    other = locks.take(1002, "host-b:22:bbbb")  # locks are per list
    assert locks.holders() == {1001: "host-a:11:aaaa", 1002: "host-b:22:bbbb"}
    first.verify()
    first.release()
    first.release()  # twice is harmless
    assert locks.holders() == {1002: "host-b:22:bbbb"}
    locks.take(1001, "host-b:22:bbbb").release()
    other.release()
    assert locks.holders() == {}


def test_hold_gives_the_list_back_when_the_block_fails(locks: Locks) -> None:
    with pytest.raises(RuntimeError), locks.hold(5, "me:1:x"):
        assert locks.holders() == {5: "me:1:x"}
        raise RuntimeError("the run failed")
    assert locks.holders() == {}
    with locks.hold(5, "you:2:y") as lock:
        lock.verify()


def test_a_killed_holder_frees_the_list(
    killed_holder: subprocess.Popen[str], engine: Engine, pauses: Pauses
) -> None:
    locks = locks_for(engine, pauses)
    with pytest.raises(ListBusyError, match="synced by doomed:1:abc"):
        locks.take(7, "next:2:def")
    assert locks.holders() == {7: "doomed:1:abc"}
    killed_holder.kill()
    killed_holder.wait()
    # The kernel drops a flock as the process exits; PostgreSQL ends the session as soon as
    # it reads the closed socket. The bound only guards against a hang.
    deadline = time.monotonic() + 10
    while (held := locks.holders()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert held == {}, "the dead holder still shows as holding the list"
    locks.take(7, "next:2:def").release()


def test_a_lock_file_left_by_a_dead_holder_names_no_one(engine: Engine, pauses: Pauses) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("file locks are SQLite's")
    locks = FileLocks(lock_folder(engine.url.database), pause=pauses)
    locks.path(3).parent.mkdir(exist_ok=True)
    locks.path(3).write_text("gone:9:zzzz")  # as kill -9 leaves it
    assert locks.holders() == {}
    lock = locks.take(3, "me:1:x")
    assert locks.path(3).read_text() == "me:1:x"
    lock.release()
    assert locks.path(3).read_text() == ""


def test_a_removed_lock_file_stops_the_run(engine: Engine, pauses: Pauses) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("file locks are SQLite's")
    locks = FileLocks(lock_folder(engine.url.database), pause=pauses)
    lock = locks.take(4, "me:1:x")
    assert isinstance(lock, FileLock)
    locks.path(4).unlink()
    with pytest.raises(LockLostError, match="list 4: lost its lock"):
        lock.verify()
    lock.release()


@pytest.mark.postgres
def test_a_dead_lock_session_stops_the_run(postgres_url: str, pauses: Pauses) -> None:
    engine = create_engine(postgres_url)
    locks = AdvisoryLocks(engine, pause=pauses)
    lock = locks.take(8, "me:1:x")
    assert isinstance(lock, SessionLock)
    with engine.begin() as conn:
        # The server ends the session, as a restart or a network cut would.
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'me:1:x'"
            )
        )
    with pytest.raises(LockLostError, match="list 8: lost its lock"):
        lock.verify()
    lock.release()
    locks.take(8, "you:2:y").release()
    engine.dispose()


@pytest.mark.postgres
def test_installations_in_two_schemas_do_not_block_each_other(
    postgres_url: str, postgres_server: str, pauses: Pauses
) -> None:
    here = create_engine(postgres_url)
    public = create_engine(postgres_server)
    mine = AdvisoryLocks(here, pause=pauses).take(9, "here:1:x")
    theirs = AdvisoryLocks(public, pause=pauses)
    theirs.take(9, "there:2:y").release()
    assert 9 not in theirs.holders()
    mine.release()
    here.dispose()
    public.dispose()


def test_a_lock_folder_that_cannot_be_made_is_one_readable_line(tmp_path, pauses) -> None:
    locks = FileLocks(tmp_path / "missing" / "state.db-locks", pause=pauses)
    with pytest.raises(ConfigError, match=r"cannot open the lock file .*list-1\.lock: No such"):
        locks.take(1, "me:1:x")
