"""Engines and schema versions: where SQLite and PostgreSQL are told apart."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    URL,
    Column,
    Connection,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from ..errors import ConfigError, SchemaError

__all__ = ["SchemaError", "check_schema", "head_revision", "make_engine", "upgrade"]

# The newest migration in state/migrations/versions; a test keeps the two in step. Knowing it
# without Alembic lets every command skip importing Alembic when the schema is current.
SCHEMA_HEAD = "0011_run_last_stamp"
_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def migrations_dir() -> Path:
    """Where the Alembic scripts live: beside this module, in a checkout and a wheel alike."""
    if not (_MIGRATIONS / "env.py").exists():
        raise SchemaError("the migrations folder is missing from this installation")
    return _MIGRATIONS


_MASK = "***"
# How long SQLite waits for another connection's lock before it says the database is locked.
_SQLITE_BUSY_SECONDS = 30.0
# Between tries to put a new file into WAL mode (see _into_wal).
_WAL_RETRY_SECONDS = 0.01
# SQLite's write-ahead log is copied back into the database once it holds this many
# pages (4 KiB each): 64 MiB. See _sqlite_pragmas.
WAL_CHECKPOINT_PAGES = 16384
# Query keys libpq reads a password from: postgresql://host/db?password=...
_SECRET_QUERY = frozenset({"password", "sslpassword"})


def redact_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return shown(make_url(url))
    except (ArgumentError, ValueError):
        return "<unparseable database url>"


def shown(url: URL) -> str:
    """A parsed URL as messages show it: the password masked, in user:password@ or the query."""
    query = {k: _MASK if k.lower() in _SECRET_QUERY else v for k, v in url.query.items()}
    return url.set(query=query).render_as_string(hide_password=True)


def database_shown(url: str) -> str:
    """Where the state lives, for `check` and `status`: an SQLite file's absolute path, or
    the server, its port and database, without user, password or options."""
    path = sqlite_path(url)
    if path is not None:
        return str(path)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return "<unparseable database url>"
    bare = URL.create(
        parsed.drivername, host=parsed.host, port=parsed.port, database=parsed.database
    )
    return bare.render_as_string()


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL (absolute once the config loaded it), else None."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database).expanduser().resolve()


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError:
        # Never echo it: a URL that does not parse may still hold a password.
        raise ConfigError(
            "database.url is not a database URL (such as sqlite:///path/state.db or "
            "postgresql+psycopg://user:password@host/dbname)"
        ) from None
    except ValueError:
        # SQLAlchemy reads the port as a number, and an unclosed [ as a host:port.
        raise ConfigError(
            "database.url: the port is not a number, or an IPv6 address is not written "
            "as [address] (such as postgresql+psycopg://user@[::1]:5432/dbname)"
        ) from None


def make_engine(url: str) -> Engine:
    """An engine for the configured URL; SQLite gets WAL and a busy timeout."""
    parsed = _parse(url)
    # Parameters are contacts' emails and userIds: keep them out of every error's text.
    kwargs: dict[str, Any] = {"hide_parameters": True}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": _SQLITE_BUSY_SECONDS}
        _ensure_sqlite_dir(parsed.database)
    try:
        engine = create_engine(parsed, **kwargs)
    except (ArgumentError, ModuleNotFoundError, SQLAlchemyError) as exc:
        raise ConfigError(f"database.url: cannot use {redact_url(url)}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    elif parsed.get_backend_name() == "postgresql":
        event.listen(engine, "connect", _iso_dates)
        IdlePing(engine).listen()
    return engine


def _iso_dates(dbapi_connection: Any, _record: Any) -> None:
    """psycopg reads dates only in ISO style: a server set to another DateStyle (SQL,
    German, Postgres) gets ISO on the worker's sessions. The server states its style when
    the session starts, so a session already in ISO costs no round trip."""
    style = dbapi_connection.info.parameter_status("DateStyle") or ""
    if not style.startswith("ISO"):
        dbapi_connection.execute("SET DateStyle TO ISO")
        dbapi_connection.commit()  # a SET is undone with its transaction, as the pool's reset


# A pooled connection whose session said something this recently is used without a ping.
PING_AFTER_IDLE_S = 1.0
_SPOKE = "listrak_source_spoke_at"


class IdlePing:
    """Pings a pooled PostgreSQL connection before it is used again, only after its session
    said nothing for a while.

    A session the server or the network ended while it was silent (a restart, a server's
    idle_session_timeout) is then replaced before a statement fails on it. SQLAlchemy's
    own pre-ping asks at every checkout: a scan takes a connection a few times a page, and
    on a machine whose two cores were busy each ping's round trip cost about 1.3 ms, 0.26 s
    of a 1 % churn re-sync of 1 M. Within a second of its session's last statement the
    connection is taken as alive; if it ended in that second, the next statement fails
    with the run, whose lock session would have ended with it. The time is the last
    statement's, not the last checkout's: a page with nothing to read or write takes a
    connection and gives it back without a word to the server.
    """

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.monotonic) -> None:
        self._engine = engine
        self._clock = clock

    def listen(self) -> None:
        """Attach to the engine and its pool."""
        event.listen(self._engine, "connect", self._connected)
        event.listen(self._engine, "checkout", self._checkout)
        event.listen(self._engine, "after_cursor_execute", self._spoke)

    def _connected(self, _dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_SPOKE] = self._clock()

    def _spoke(self, conn: Connection, *_statement: Any) -> None:
        conn.info[_SPOKE] = self._clock()

    def _checkout(self, dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        spoke = record.info.get(_SPOKE)
        if spoke is not None and self._clock() - spoke < PING_AFTER_IDLE_S:
            return
        try:
            self._engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool throws this connection away and checks out a new one.
            raise DisconnectionError("the pooled session ended") from exc
        record.info[_SPOKE] = self._clock()


def _ensure_sqlite_dir(database: str | None) -> None:
    if not database or database == ":memory:":
        return
    parent = Path(database).expanduser().resolve().parent
    if not parent.is_dir():
        raise ConfigError(f"database.url: folder {parent} does not exist")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets `status` read while a sync writes; NORMAL is durable across a process
    # kill (the failure we guard against), and much faster than FULL.
    cursor = dbapi_connection.cursor()
    _into_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Contacts arrive in Listrak's order, so every page writes all over the indexes; an
    # 8 MB cache (default 2 MB) holds their hot pages without memory growing with the list.
    # 16 MB was no faster at 1 M contacts, and took 10 MB more of the worker's memory.
    cursor.execute("PRAGMA cache_size=-8192")
    # A page of new contacts dirties thousands of the key index's pages, so with the
    # default (a checkpoint once the log passes 1,000 pages) every page's commit copied
    # the log back and waited for two fsyncs. Letting the log reach 64 MB first makes
    # that a checkpoint every few pages: 1 M inserts in pages of 5,000 took 25.6 s of
    # SQLite's time against 31.7 s, and with no fsync at all 2.9 against 5.2 s at 300 k.
    # A commit is still durable against a killed process, as NORMAL always was; a power
    # loss may take back the commits since the last checkpoint, which Listrak's next read
    # repeats (a message posted from them is then sent again, never lost).
    cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
    cursor.close()


def _into_wal(cursor: Any) -> None:
    """WAL mode, which the first connections to a new file may race to set. Each reads the
    file, then asks for it alone; the one that loses the race is refused at once, without
    SQLite's busy wait (which would deadlock on the reads the others hold), so it tries
    again until the busy timeout. Once the file is in WAL mode, setting it again takes no
    such lock. Workers starting together on a new file failed 5 times in 40 without it."""
    deadline = time.monotonic() + _SQLITE_BUSY_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(_WAL_RETRY_SECONDS)


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision, or None when it has never been migrated."""
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            return str(value) if value is not None else None
    except OperationalError as exc:
        raise ConfigError(
            f"database.url: cannot connect to {_where(engine)}: {describe_db_error(exc)}"
        ) from None


def head_revision() -> str:
    """The newest schema this version of the worker knows."""
    return SCHEMA_HEAD


def check_schema(engine: Engine) -> str | None:
    """Refuse a database migrated by a newer worker; return its revision."""
    revision = current_revision(engine)
    if revision is None or revision == SCHEMA_HEAD:
        return revision
    from .migrate import is_known  # noqa: PLC0415 - Alembic only when the schema moves

    if not is_known(migrations_dir(), revision):
        raise SchemaError(
            f"database at {_where(engine)} has schema {revision}, newer than this worker "
            f"knows (head {SCHEMA_HEAD}): upgrade listrak-source"
        )
    return revision


def upgrade(engine: Engine) -> None:
    """Bring the schema to head; safe to call on every start, and cheap when current."""
    if check_schema(engine) == SCHEMA_HEAD:
        return
    from .locks import list_locks  # noqa: PLC0415 - the locks module reads errors from this one

    # Workers started together on a new database migrate one after the other.
    with list_locks(engine).schema_lock():
        if check_schema(engine) == SCHEMA_HEAD:
            return
        with migration_transaction(engine) as conn:
            if inspect(conn).get_table_names():
                from .migrate import upgrade_to_head  # noqa: PLC0415 - Alembic only to migrate

                upgrade_to_head(migrations_dir(), conn)
            else:
                create_at_head(conn)


def create_at_head(conn: Connection) -> None:
    """A new database's tables, made as the migrations would leave them, at their head.

    The table definitions are the migrations' result (a test compares the two on both
    backends), so a database that holds no table yet is made from them at once, and
    stamped as Alembic stamps one. Alembic's import and its every step took 0.14 s on
    SQLite and 0.2 s on PostgreSQL, where making the tables takes 0.01-0.05 s.
    """
    from .schema import metadata  # noqa: PLC0415 - the table definitions, once

    # Not checked first: a view (or anything else) already called as one of the tables
    # fails the creation, as it fails the migrations, rather than standing in for it.
    metadata.create_all(conn, checkfirst=False)
    _VERSION.create(conn)
    conn.execute(_VERSION.insert().values(version_num=SCHEMA_HEAD))


# Alembic's own record of the schema's revision, as its stamp makes it.
_VERSION = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)


@contextmanager
def migration_transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction around a whole migration, DDL included, so a kill leaves the schema
    as it was. pysqlite begins no transaction before DDL: it is begun here explicitly."""
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN")
        yield conn


def _where(engine: Engine) -> str:
    return shown(engine.url)


def describe_db_error(exc: BaseException) -> str:
    """The driver's own first line, e.g. "database or disk is full", never the SQL."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
