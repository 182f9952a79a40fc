"""Per-list locks from the database's own primitives, so they die with whoever holds them.

On PostgreSQL a session advisory lock on a connection of its own, which the server drops
when the session ends; beside an SQLite file an flock() on one file per list, which the
kernel drops when the process exits. A killed worker therefore never blocks the next run,
and `status` asks the same primitive who holds a list.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import secrets
import socket
import tempfile
import time
import uuid
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from ..errors import ConfigError, ListBusyError, LockLostError
from .engine import describe_db_error

# A refused lock is tried again after a pause: a holder killed a moment ago may still be
# ending its database session, and `status` holds a file lock for an instant when it asks
# who holds a list. A live holder is still there after the last try.
_TRIES = 3
_PAUSE = 0.1
# PostgreSQL keeps 63 bytes of application_name; the holder name must fit.
_HOST_CHARS = 40
# The list id is the low half of a 64-bit advisory key (config.MAX_LIST_ID keeps to it).
_MAX_LIST_ID = 2**32 - 1


@functools.cache
def new_holder() -> str:
    """This process's name as a lock holder: host and pid tell an operator who holds a list."""
    return f"{socket.gethostname()[:_HOST_CHARS]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


# What a lock is for: a list's sync (and its runs), or the push of its audience values.
LIST_LOCK = "list"
PUSH_LOCK = "push"
_DOING = {LIST_LOCK: "synced", PUSH_LOCK: "pushed"}


def busy_message(list_id: int, holder: str | None, kind: str = LIST_LOCK) -> str:
    """The one line a refused run prints."""
    return f"list {list_id} is being {_DOING[kind]} by {holder or 'another worker'}; skipped"


class HeldLock(ABC):
    """A list's lock while a run holds it."""

    def __init__(self, list_id: int, holder: str) -> None:
        self.list_id = list_id
        self.holder = holder

    @abstractmethod
    def verify(self) -> None:
        """Raise LockLostError when the lock is gone, so the run stops before it writes more."""

    @abstractmethod
    def release(self) -> None:
        """Give the list back now; safe to call twice."""

    def held_query(self) -> tuple[str, tuple[Any, ...]] | None:
        """A query any session of the database can run, in psycopg's parameter style,
        whose one value is 0 once this lock is no longer held; None where only `verify`
        can tell (a lock file)."""
        return None

    def due(self) -> bool:
        """Whether the lock wants a `verify` now even if nothing is written (a session kept
        from looking idle)."""
        return False

    def lost(self, why: str) -> LockLostError:
        """The error that stops a run whose lock went away."""
        return LockLostError(f"list {self.list_id}: lost its lock ({why}); stopping")


class Locks(ABC):
    """Take a list's lock, or learn who holds it; one holder per list across every process."""

    def __init__(self, *, pause: Callable[[float], None] = time.sleep) -> None:
        self._pause = pause

    @abstractmethod
    def take(self, list_id: int, holder: str, kind: str = LIST_LOCK) -> HeldLock:
        """The list's lock of this kind, or ListBusyError naming whoever holds it."""

    @abstractmethod
    def holders(self, kind: str = LIST_LOCK) -> dict[int, str]:
        """Every list whose lock of this kind is held right now, with its holder's name."""

    def persist(self, attempt: Callable[[], bool]) -> bool:
        """Whether `attempt` succeeds within a few tries."""
        for n in range(1, _TRIES + 1):
            if attempt():
                return True
            if n < _TRIES:
                self._pause(_PAUSE)
        return False

    @abstractmethod
    def schema_lock(self) -> AbstractContextManager[None]:
        """Waits for, then holds, the lock that lets one process at a time migrate."""

    @contextmanager
    def hold(self, list_id: int, holder: str, kind: str = LIST_LOCK) -> Iterator[HeldLock]:
        """The list's lock of this kind for the length of a block."""
        lock = self.take(list_id, holder, kind)
        try:
            yield lock
        finally:
            lock.release()


def list_locks(engine: Engine) -> Locks:
    """The locks that fit the database: advisory on PostgreSQL, files beside an SQLite file."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLocks(engine)
    return FileLocks(lock_folder(engine.url.database))


def lock_folder(database: str | None) -> Path:
    """`<database file>-locks`, beside the file; an in-memory database is this process's alone."""
    if not database or database == ":memory:":
        return _private_folder()
    path = Path(database).expanduser().resolve()
    return path.with_name(f"{path.name}-locks")


# Folders for in-memory databases, kept for the life of the process and removed at exit.
_PRIVATE: list[tempfile.TemporaryDirectory[str]] = []


@functools.cache
def _private_folder() -> Path:
    _PRIVATE.append(tempfile.TemporaryDirectory(prefix="listrak-source-locks-"))
    return Path(_PRIVATE[-1].name)


class FileLocks(Locks):
    """flock() on `list-<id>.lock` in one folder; the file holds the holder's name."""

    def __init__(self, folder: Path, *, pause: Callable[[float], None] = time.sleep) -> None:
        super().__init__(pause=pause)
        self.folder = folder

    def path(self, list_id: int, kind: str = LIST_LOCK) -> Path:
        """The list's lock file of this kind."""
        return self.folder / f"{kind}-{list_id}.lock"

    def take(self, list_id: int, holder: str, kind: str = LIST_LOCK) -> HeldLock:
        path = self.path(list_id, kind)
        fd = _open_lock_file(path)
        try:
            taken = self.persist(lambda: _try_flock(fd, fcntl.LOCK_EX))
        except BaseException:
            os.close(fd)
            raise
        if not taken:
            os.close(fd)
            raise ListBusyError(busy_message(list_id, _read_name(path), kind))
        # The name only tells `status` who holds the list: a full disk must not fail the run.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, holder.encode(), 0)
        return FileLock(list_id, holder, fd, path)

    @contextmanager
    def schema_lock(self) -> Iterator[None]:
        fd = _open_lock_file(self.folder / "schema.lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def holders(self, kind: str = LIST_LOCK) -> dict[int, str]:
        found: dict[int, str] = {}
        for path in self.folder.glob(f"{kind}-*.lock"):
            list_id = path.name.removeprefix(f"{kind}-").removesuffix(".lock")
            if list_id.isdigit() and (holder := _probe(path)):
                found[int(list_id)] = holder
        return found


class FileLock(HeldLock):
    """An open, flock()ed lock file: closing it (or the process dying) frees the list."""

    def __init__(self, list_id: int, holder: str, fd: int, path: Path) -> None:
        super().__init__(list_id, holder)
        self._fd: int | None = fd
        self._path = path

    def verify(self) -> None:
        if self._fd is None:
            raise self.lost("it was released")
        held = os.fstat(self._fd)
        try:
            now = os.stat(self._path)
        except FileNotFoundError:
            raise self.lost(f"{self._path} was removed") from None
        if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
            raise self.lost(f"{self._path} was replaced")

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            # The name goes first, so `status` sees a free list without probing it.
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)


def _open_lock_file(path: Path) -> int:
    try:
        path.parent.mkdir(exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(f"cannot open the lock file {path}: {exc.strerror}") from None


def _try_flock(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_name(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip() or None
    except FileNotFoundError:
        return None


def _probe(path: Path) -> str | None:
    """The holder's name while the file is locked; a name a killed holder left is no holder."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        name = os.pread(fd, 256, 0).decode(errors="replace").strip()
        return name if name and not _try_flock(fd, fcntl.LOCK_SH) else None
    finally:
        os.close(fd)


_TRY_LOCK = text("SELECT pg_try_advisory_lock(:key)")
_UNLOCK = text("SELECT pg_advisory_unlock(:key)")
_NAME_SESSION = text("SELECT set_config('application_name', :name, false)")
_SCHEMA = text("SELECT coalesce(current_schema(), '')")
# A bigint advisory key shows in pg_locks as classid (high half) and objid (low half).
_IN_THIS_DATABASE = (
    "l.locktype = 'advisory' AND l.granted AND l.database ="
    " (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())"
)
_ADVISORY = f"{_IN_THIS_DATABASE} AND l.objsubid = 1"
_HOLDERS = text(
    "SELECT l.objid::bigint AS list_id, a.application_name, l.pid FROM pg_locks l"
    f" LEFT JOIN pg_stat_activity a ON a.pid = l.pid WHERE {_ADVISORY}"
    " AND l.classid::bigint = :space"
)
# Asked of the session itself: a connection that was silently re-established holds nothing.
_STILL_HELD = text(
    f"SELECT count(*) FROM pg_locks l WHERE {_ADVISORY} AND l.pid = pg_backend_pid()"
    " AND l.classid::bigint = :key >> 32 AND l.objid::bigint = :key & 4294967295"
)


class AdvisoryLocks(Locks):
    """Session advisory locks, each on a connection of its own held for the whole run.

    The key's high half is drawn from the schema's name, so installations in two schemas of
    one database never block each other; its low half is the list id.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        pause: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(pause=pause)
        # Never pooled: a pooled session would keep its locks after the run gave it back.
        self._engine = create_engine(engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        self._clock = clock

    def take(self, list_id: int, holder: str, kind: str = LIST_LOCK) -> HeldLock:
        if not 0 < list_id <= _MAX_LIST_ID:
            raise ConfigError(f"list {list_id}: ids above {_MAX_LIST_ID} cannot be locked")
        conn = self._engine.connect()
        try:
            space = _space(conn, kind)
            key = space << 32 | list_id
            conn.execute(_NAME_SESSION, {"name": holder})
            if self.persist(lambda: bool(conn.execute(_TRY_LOCK, {"key": key}).scalar())):
                return SessionLock(list_id, holder, conn, key, self._clock)
            busy = ListBusyError(busy_message(list_id, _holders(conn, space).get(list_id), kind))
        except BaseException:
            conn.close()
            raise
        conn.close()
        raise busy

    def holders(self, kind: str = LIST_LOCK) -> dict[int, str]:
        with self._engine.connect() as conn:
            return _holders(conn, _space(conn, kind))

    @contextmanager
    def schema_lock(self) -> Iterator[None]:
        # Key 0 of the schema's space: no list has id 0.
        with self._engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _space(conn) << 32})
            yield


# The lock's session also holds a lock of its own on a random pair of keys (PostgreSQL's
# two-key form, apart from the lists' one-key locks). It ends with the session and no later
# session can hold it, so any other session can tell from pg_locks alone that the list's
# lock is still this session's: pg_stat_activity, which names a session by its process id
# and start, may hide the start from a role without the login role's rights, and keeps one
# reading for a whole transaction.
_MARK = text("SELECT pg_try_advisory_lock(:high, :low)")
_MARK_KEY = 2**31  # each half is a non-negative int4
# One pass over pg_locks, whose every reading copies the server's whole lock table (with
# 5,000 locks held elsewhere 1.9 ms, where joining it to itself took 4.0): a session that
# holds both the list's lock and the mark shows two rows.
_HELD_BY = (
    "SELECT count(*)::int FROM (SELECT l.pid FROM pg_locks l"
    f" WHERE {_IN_THIS_DATABASE}"
    " AND ((l.objsubid = 1 AND l.classid::bigint = %s AND l.objid::bigint = %s)"
    " OR (l.objsubid = 2 AND l.classid::bigint = %s AND l.objid::bigint = %s))"
    " GROUP BY l.pid HAVING count(*) = 2) AS held"
)
# While a scan goes on, the lock's session is spoken to about this often (at the first page
# after it is due): a server's idle_session_timeout ends a session that says nothing longer.
KEEPALIVE_S = 1.0


class SessionLock(HeldLock):
    """An advisory lock and the session that holds it."""

    def __init__(
        self,
        list_id: int,
        holder: str,
        conn: Connection,
        key: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(list_id, holder)
        self._conn: Connection | None = conn
        self._key = key
        self._clock = clock
        self._spoken = clock()
        self._mark: tuple[int, int] | None = None

    def held_query(self) -> tuple[str, tuple[Any, ...]] | None:
        """Lets a page's writes carry the check in their own statement (page_sql.PageWrites),
        which saves the round trip of `verify` on every page that writes; None once the
        session is due a word (`due`)."""
        if self.due():
            return None
        if self._mark is None:
            self._mark = self._take_mark()
        return _HELD_BY, (self._key >> 32, self._key & 0xFFFF_FFFF, *self._mark)

    def due(self) -> bool:
        """A second has passed since the lock's session last said anything."""
        return self._clock() - self._spoken >= KEEPALIVE_S

    def _take_mark(self) -> tuple[int, int]:
        if self._conn is None:
            raise self.lost("it was released")
        try:
            while True:  # another session holds the pair drawn: as good as never
                mark = secrets.randbelow(_MARK_KEY), secrets.randbelow(_MARK_KEY)
                if self._conn.execute(_MARK, {"high": mark[0], "low": mark[1]}).scalar():
                    self._spoken = self._clock()
                    return mark
        except SQLAlchemyError as exc:
            raise self.lost(f"its database session ended: {describe_db_error(exc)}") from None

    def verify(self) -> None:
        if self._conn is None:
            raise self.lost("it was released")
        try:
            held = self._conn.execute(_STILL_HELD, {"key": self._key}).scalar()
        except SQLAlchemyError as exc:
            raise self.lost(f"its database session ended: {describe_db_error(exc)}") from None
        if not held:
            raise self.lost("its database session no longer holds it")
        self._spoken = self._clock()

    def release(self) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        try:
            # Unlocking first frees the list at once; a closed session frees it a moment later.
            conn.execute(_UNLOCK, {"key": self._key})
        except SQLAlchemyError:
            pass  # the session is gone, and its lock with it
        finally:
            conn.close()


def _space(conn: Connection, kind: str = LIST_LOCK) -> int:
    schema = str(conn.execute(_SCHEMA).scalar())
    # A list's sync keeps the space it always had; other kinds get a space of their own.
    name = f"listrak-source:{schema}" if kind == LIST_LOCK else f"listrak-source:{kind}:{schema}"
    return zlib.crc32(name.encode()) & 0x7FFF_FFFF


def _holders(conn: Connection, space: int) -> dict[int, str]:
    rows = conn.execute(_HOLDERS, {"space": space}).all()
    return {
        int(list_id): name or f"another worker (PostgreSQL backend {pid})"
        for list_id, name, pid in rows
    }
