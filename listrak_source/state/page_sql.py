"""The scan's per-page statements on members, as driver SQL.

A page is 5,000 rows. Through SQLAlchemy's compiler an expanding IN of 5,000 keys is
re-rendered on every call, and an insert runs five bind processors per row: measured,
that cost more than SQLite's own work. These statements are the hot path, so
they are written once here for both dialects; everything else stays SQLAlchemy Core.

On SQLite a page's new rows go in, its changed rows are rewritten and its stored rows come
out as one JSON array, each in one step of one statement. The driver gives up the GIL at
every step, a row each with `executemany` or a row-by-row read; while another thread ran
Python (the reader, the Segment library's consumer), each row then waited for the GIL's
next switch, and a first sync's inserts took three times SQLite's own time.

On PostgreSQL a page's writes are one statement (`PageWrites`), each of them a
data-modifying WITH of it, so that on a connection that commits each statement by itself
a page takes a round trip for its read and one for its writes, where a transaction's
BEGIN, statements and COMMIT took five or six.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from ..feed import Feed
from ..records import Change, Reject
from .locks import HeldLock
from .rows import CHUNK, chunks
from .schema import members

_DIVISION_BY_ZERO = "22012"  # PostgreSQL's SQLSTATE
# A statement's parameters: one tuple, or (SQLite) a list of them, one a row.
Params = tuple[Any, ...] | list[tuple[Any, ...]]

_INSERT_COLUMNS = (
    "list_id",
    "email_key",
    "email",
    "desired_subscribed",
    "desired_user_id",
    "message_id",
    "detected_at",
    "attempts",
    "dead",
    "in_doubt",
    "last_seen_run",
    "digest",
)
# (email_key, desired_subscribed, desired_user_id, sent_subscribed, sent_user_id, in_doubt,
# email, digest) per stored row.
Row = tuple[str, Any, str | None, Any, str | None, Any, str, int | None]
# Server-side cursors' names.
_CURSOR_NUMBERS = itertools.count()
_STORED = (
    "desired_subscribed, desired_user_id, sent_subscribed, sent_user_id, in_doubt, email, digest"
)


def is_postgres(conn: Connection) -> bool:
    """Whether the connection is PostgreSQL's (else SQLite's)."""
    return conn.dialect.name == "postgresql"


def placeholder(conn: Connection) -> str:
    """The driver's parameter mark: `?` for sqlite3, `%s` for psycopg."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def column_in(
    conn: Connection, column: str, values: Sequence[Any]
) -> Iterator[tuple[str, list[Any]]]:
    """(SQL condition that `column` is one of the values, its parameters): one array on
    Postgres, IN lists of at most CHUNK on SQLite."""
    if is_postgres(conn):
        yield f"{column} = ANY(%s)", [list(values)]
        return
    for chunk in chunks(values):
        yield f"{column} IN ({','.join('?' * len(chunk))})", list(chunk)


def fetch(conn: Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    """The driver's own tuples: a SQLAlchemy Row per contact cost a microsecond each."""
    result = conn.exec_driver_sql(sql, tuple(params))
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


class PageWrites:
    """A page's writes, gathered, then made by `flush`: on SQLite each in turn, in the
    page's transaction; on PostgreSQL as one statement that holds each of them as a
    data-modifying WITH, which commits them together even on a connection that commits
    each statement by itself. They must touch different rows: within one statement no
    part sees another's changes. The statement's own SELECT reads none of them."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._parts: list[tuple[str, Params]] = []

    def __bool__(self) -> bool:
        """Whether any write is gathered."""
        return bool(self._parts)

    def add(self, sql: str, params: Params) -> None:
        """One more write; a list of parameter tuples (SQLite only) runs it once for each."""
        self._parts.append((sql, params))

    def flush(self, lock: HeldLock | None = None) -> None:
        """Make the writes gathered so far, and forget them; with `lock`, only while it is
        held (LockLostError otherwise, and nothing written)."""
        parts, self._parts = self._parts, []
        if not parts:
            return
        held = self._held_query(lock)
        if lock is not None and held is None:
            lock.verify()
        if not is_postgres(self.conn):
            for sql, params in parts:
                self.conn.exec_driver_sql(sql, params)
            return
        with_ = ", ".join(f"w{n} AS ({sql})" for n, (sql, _) in enumerate(parts))
        params = tuple(itertools.chain.from_iterable(p for _, p in parts))
        if lock is None or held is None:
            self.conn.exec_driver_sql(f"WITH {with_} SELECT 1", params).close()
            return
        self._while_held(f"WITH {with_} SELECT 1 / ({held[0]})", (*params, *held[1]), lock)

    def _held_query(self, lock: HeldLock | None) -> tuple[str, tuple[Any, ...]] | None:
        """The lock's check to carry in the statement itself: only on PostgreSQL, and only
        where the statement is its own transaction. In a dry run's one transaction a
        failure would end every list's work after it, so the lock is verified instead."""
        if lock is None or not is_postgres(self.conn):
            return None
        if self.conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            return None
        return lock.held_query()

    def _while_held(self, sql: str, params: tuple[Any, ...], lock: HeldLock) -> None:
        """The statement's result divides by the lock check's count, so a lock no longer
        held fails the whole statement, and no part of it is written."""
        try:
            self.conn.exec_driver_sql(sql, params).close()
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == _DIVISION_BY_ZERO:
                raise lock.lost("its database session no longer holds it") from None
            raise


def _stream(conn: Connection, sql: str, params: Sequence[Any]) -> Iterator[list[Any]]:
    """A query's rows a chunk at a time, so a million never sit in memory at once.

    SQLite's cursor steps through the table as it is read, and its own tuples are taken as
    they come. On PostgreSQL a server-side cursor of psycopg's own: through SQLAlchemy's
    streaming result the same million rows took 2.3-3.1 s, through the driver's cursor
    0.8-1.0 s.
    """
    if is_postgres(conn):
        yield from _server_side(conn, sql, params)
        return
    result = conn.exec_driver_sql(sql, tuple(params))
    try:
        while rows := result.cursor.fetchmany(CHUNK):
            yield list(rows)
    finally:
        result.close()


def _server_side(conn: Connection, sql: str, params: Sequence[Any]) -> Iterator[list[Any]]:
    """PostgreSQL's rows through a named cursor, in the transaction psycopg has open (or
    opens) on the connection: a cursor's name is unique in the process, so in its session."""
    driver = conn.connection.driver_connection
    assert driver is not None  # a live connection
    with driver.cursor(name=f"listrak_source_stream_{next(_CURSOR_NUMBERS)}") as cursor:
        cursor.execute(sql, tuple(params))
        while rows := cursor.fetchmany(CHUNK):
            yield rows


def subscribed_rows(
    conn: Connection,
    list_id: int,
    *,
    with_email: bool = False,
    with_user_id: bool = False,
    keys: Sequence[str] | None = None,
    missed_by: int | None = None,
    digested_without_user_id: bool = False,
    walk: bool = False,
) -> Iterator[list[Any]]:
    """The list's desired-subscribed rows as (email_key,), (email_key, email) or
    (email_key, desired_user_id, digest), a chunk at a time; only these keys, or only those
    the run `missed_by` missed, when given. `digested_without_user_id`: a row that carries a
    digest has None for its userId, which is then not read (a fifth of the time at 1 M), and
    one that carries none has 0 for its digest (digests are never 0). `walk`: all of them
    (no keys given) are read by walking the table (see `walks_table`)."""
    mark = placeholder(conn)
    columns = "email_key, email" if with_email else "email_key"
    if with_user_id:
        columns = "email_key, " + ", ".join(_user_id_and_digest(digested_without_user_id))
    sql = f"SELECT {columns} FROM {_members(conn, walk and keys is None)} WHERE {_subscribed(conn)}"
    params: list[Any] = [list_id]
    if missed_by is not None:
        sql += f" AND missed_run = {mark}"
        params.append(missed_by)
    if keys is None:
        yield from _stream(conn, sql, params)
        return
    for condition, batch in column_in(conn, "email_key", keys):
        yield fetch(conn, f"{sql} AND {condition}", (*params, *batch))


def _user_id_and_digest(digested_without_user_id: bool) -> tuple[str, str]:
    if digested_without_user_id:
        return "CASE WHEN digest IS NULL THEN desired_user_id END", "COALESCE(digest, 0)"
    return "desired_user_id", "digest"


def _members(conn: Connection, walk: bool) -> str:
    """The table, told on SQLite to be walked rather than read through an index."""
    return "members NOT INDEXED" if walk and not is_postgres(conn) else "members"


def walks_table(conn: Connection, list_id: int, size: int) -> bool:
    """SQLite: whether a read of all the list's subscribed rows walks the table rather than
    its key index; `size`, the contacts its last full scan read.

    SQLite's statistics hold only the average rows a list, so with one large list and one
    small its planner read both through the index: counting a list of 300 k rows in a
    table of 303 k took 0.48 s that way, against 0.02 s walking the table. So a list of a
    tenth of the table's rows or more is walked whatever the plan; a smaller one as the
    planner has it (a list that is most of the table once ANALYZE has said so).
    """
    if size and 10 * size >= _table_rows(conn):
        return True
    sql = f"EXPLAIN QUERY PLAN SELECT email_key FROM members WHERE {_subscribed(conn)}"
    details = [row[-1] for row in fetch(conn, sql, (list_id,))]
    return len(details) == 1 and details[0].startswith("SCAN") and "USING" not in details[0]


def count_subscribed(conn: Connection, list_id: int, *, walk: bool) -> int:
    """The list's desired-subscribed rows; `walk` as in `subscribed_rows`."""
    sql = f"SELECT count(*) FROM {_members(conn, walk)} WHERE {_subscribed(conn)}"
    return int(fetch(conn, sql, (list_id,))[0][0])


def _subscribed(conn: Connection) -> str:
    mark = placeholder(conn)
    true = "true" if is_postgres(conn) else "1"
    return f"list_id = {mark} AND desired_subscribed = {true}"


Columns = tuple[list[str], list[str | None], list[Any]]


def subscribed_columns(
    conn: Connection,
    list_id: int,
    *,
    digested_without_user_id: bool,
    size: int = 0,
    beside: Callable[[], AbstractContextManager[Connection]] | None = None,
) -> Generator[Columns, None, None]:
    """The list's desired-subscribed rows as `subscribed_rows(..., with_user_id=True)` has
    them, a chunk at a time as three columns: keys, userIds, digests.

    Where SQLite reads the list by walking the whole table (`walks_table`; `size`, the
    contacts the list's last full scan read), each chunk comes as one JSON array a column
    from one step of one statement, the next chunk starting past the last one's rowid: a
    million rows stepped one at a time each gave up the GIL and, while the page reader ran
    Python, waited for its next switch (1.0-1.8 s at 1 M rows against 0.75 s). A small
    list among large ones is read through the key index, row by row, as SQLite plans it.

    PostgreSQL reads such a list by ranges of the table's blocks, a JSON array a column
    each, in one REPEATABLE READ snapshot (see `_block_chunks`); otherwise (a server before
    14, which has no TID range scan, or a dry run's connection, whose transaction has begun)
    through a server-side cursor, 5,000 rows a fetch. With `beside`, which opens a second
    connection, PostgreSQL's second half of the blocks is read on it at the same time.
    """
    if is_postgres(conn) and _walks_blocks(conn, list_id):
        yield from _block_chunks(conn, list_id, digested_without_user_id, beside)
        return
    if not is_postgres(conn) and walks_table(conn, list_id, size):
        yield from _rowid_chunks(conn, list_id, digested_without_user_id)
        return
    rows = subscribed_rows(
        conn, list_id, with_user_id=True, digested_without_user_id=digested_without_user_id
    )
    for chunk in rows:
        keys, user_ids, digests = zip(*chunk, strict=True)
        yield list(keys), list(user_ids), list(digests)


def _walks_blocks(conn: Connection, list_id: int) -> bool:
    """Whether PostgreSQL reads the list's subscribed rows by scanning the table, and can
    read them by ranges of its blocks in one snapshot. Called before the connection's
    first statement, it makes the connection's transaction REPEATABLE READ."""
    version = conn.dialect.server_version_info or (0,)
    if version < (14,) or _transaction_begun(conn):
        return False
    conn.execution_options(isolation_level="REPEATABLE READ")
    sql = f"EXPLAIN SELECT email_key FROM members WHERE {_subscribed(conn)}"
    plan = " ".join(row[0] for row in fetch(conn, sql, (list_id,)))
    return "Seq Scan" in plan and "Index" not in plan and "Bitmap" not in plan


def _transaction_begun(conn: Connection) -> bool:
    """Whether a transaction is open on the connection: SQLAlchemy's, or psycopg's own,
    which a server-side cursor (`_server_side`) opens without SQLAlchemy knowing."""
    driver = conn.connection.driver_connection
    return conn.in_transaction() or driver.info.transaction_status.name != "IDLE"  # type: ignore[union-attr]


# Blocks of the table one statement reads by TID range: 8 MiB, some 25,000 rows of a list.
BLOCKS = 1000


def _block_chunks(
    conn: Connection,
    list_id: int,
    digested_without_user_id: bool,
    beside: Callable[[], AbstractContextManager[Connection]] | None,
) -> Iterator[Columns]:
    """The chunks of PostgreSQL's table, BLOCKS blocks at a time.

    All in one REPEATABLE READ snapshot: a row's update puts its new version in another
    block, which in a snapshot of each statement's own could be read twice or not at all.
    Blocks added after the snapshot hold no row it sees. At 1 M rows, in a script: 0.63 s
    (0.18 s of the client's CPU) against 0.87-1.15 s (0.57-0.85) through the server-side
    cursor, and beside a thread spinning Python 1.05 s against 3.2-3.5 s, each fetch's
    rows made into tuples under the GIL.
    """
    user_id, digest = _user_id_and_digest(digested_without_user_id)
    size = "SELECT pg_relation_size('members'::regclass) / current_setting('block_size')::int"
    starts = list(range(0, int(fetch(conn, size, ())[0][0]), BLOCKS))
    sql = (
        "SELECT json_agg(email_key)::text, json_agg(user_id)::text, json_agg(digest)::text FROM"
        f" (SELECT email_key, {user_id} AS user_id, {digest} AS digest FROM members"
        f" WHERE ctid >= %s::tid AND ctid < %s::tid AND {_subscribed(conn)}) AS chunk"
    )

    def read(on: Connection, start: int) -> _Texts:
        bounds = (f"({start},0)", f"({start + BLOCKS},0)")
        texts: _Texts = fetch(on, sql, (*bounds, list_id))[0]
        return texts

    if beside is None or len(starts) < 2:
        texts: Iterator[_Texts] = (read(conn, start) for start in starts)
    else:
        texts = _in_halves(conn, beside, starts, read)
    for keys, user_ids, digests in texts:
        if keys is not None and user_ids is not None and digests is not None:
            yield orjson.loads(keys), orjson.loads(user_ids), orjson.loads(digests)


# One block range's keys, userIds and digests as JSON texts; None where it holds no row.
_Texts = tuple[str | None, str | None, str | None]


def _in_halves(
    conn: Connection,
    beside: Callable[[], AbstractContextManager[Connection]],
    starts: list[int],
    read: Callable[[Connection, int], _Texts],
) -> Iterator[_Texts]:
    """The block ranges read in two halves at once: the first on `conn`, the second on a
    connection of `beside`, in a thread, in `conn`'s snapshot (exported by its
    transaction, which `_walks_blocks` made REPEATABLE READ). The server walks the table
    on two cores: at 1 M rows the read took 0.95 s beside a re-sync's first pages, most of
    it the server's."""
    (snapshot,) = fetch(conn, "SELECT pg_export_snapshot()", ())[0]
    half = len(starts) // 2

    def other_half() -> Iterator[_Texts]:
        with beside() as other:
            _take_snapshot(other, str(snapshot))
            for start in starts[half:]:
                yield read(other, start)

    # Two ahead at most: each is a few MB of JSON.
    feed = Feed(other_half, depth=2, name="rows-beside")
    try:
        for start in starts[:half]:
            yield read(conn, start)
            # Taken as they come, so that only a few wait.
            yield from feed.ready()
        yield from feed.rest()
    finally:
        # Waits until the other half's connection is given back.
        feed.close()


# What pg_export_snapshot() returns: hexadecimal numbers joined by dashes.
_SNAPSHOT_ID = re.compile(r"[0-9A-F]+(-[0-9A-F]+)+")


def _take_snapshot(conn: Connection, snapshot: str) -> None:
    """Make the connection's transaction see what the exporting one sees (SET TRANSACTION
    SNAPSHOT must be its first statement, and takes no parameter)."""
    if _SNAPSHOT_ID.fullmatch(snapshot) is None or _transaction_begun(conn):
        raise RuntimeError("the table's second half cannot share the first half's snapshot")
    conn.execution_options(isolation_level="REPEATABLE READ")
    conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")


def _rowid_chunks(
    conn: Connection, list_id: int, digested_without_user_id: bool
) -> Iterator[Columns]:
    user_id, digest = _user_id_and_digest(digested_without_user_id)
    # Each statement is a read of its own, and a row keeps its rowid when it is updated, so
    # each row is read once: as it was before a write between two statements, or after.
    # Only the scan itself writes the list's rows meanwhile (the list's lock keeps every
    # other run out), and the rows it writes are of keys it has seen or unsubscribed, which
    # it never takes by what this read found (Members.read_ahead). Past the key index:
    # among many small lists the planner chose it for a large one, reading and sorting the
    # rest of the list again for every chunk (340 s for 1 M rows beside 100 lists of 1 k).
    sql = (
        "SELECT max(rowid), json_group_array(email_key), json_group_array(user_id),"
        " json_group_array(digest) FROM"
        f" (SELECT rowid, email_key, {user_id} AS user_id, {digest} AS digest"
        f" FROM {_members(conn, walk=True)}"
        f" WHERE {_subscribed(conn)} AND rowid > ? ORDER BY rowid LIMIT {CHUNK})"
    )
    after = -1  # SQLite's rowids start at 1
    while True:
        last, keys, user_ids, digests = fetch(conn, sql, (list_id, after))[0]
        if last is None:
            return
        yield orjson.loads(keys), orjson.loads(user_ids), orjson.loads(digests)
        after = last


def statistics_behind(conn: Connection) -> bool:
    """SQLite: whether ANALYZE never ran on the members table, or ran when it held fewer
    than ten elevenths of the rows it holds now."""
    stats = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'"
    if not fetch(conn, stats, ()):
        return True
    # The primary key's index has every row: its statistics begin with their number.
    sql = "SELECT stat FROM sqlite_stat1 WHERE tbl = 'members' AND idx = ?"
    found = fetch(conn, sql, ("sqlite_autoindex_members_1",))
    if not found:
        return True
    counted = int(str(found[0][0]).split()[0])
    return 10 * _table_rows(conn) > 11 * counted


def _table_rows(conn: Connection) -> int:
    """SQLite: the members table's rows, in one step down the table. No member row is ever
    deleted, so its largest rowid counts them."""
    return int(fetch(conn, "SELECT coalesce(max(rowid), 0) FROM members", ())[0][0])


def has_rows(conn: Connection, list_id: int) -> bool:
    """Whether the list has any row at all."""
    sql = f"SELECT 1 FROM members WHERE list_id = {placeholder(conn)} LIMIT 1"
    return bool(fetch(conn, sql, (list_id,)))


def load_rows(conn: Connection, list_id: int, keys: Sequence[str]) -> list[Row]:
    """The stored rows of these contacts (see Row): a read, which writes nothing.

    A page that matches what is stored is then no write at all; the scan keeps the keys
    it has seen in memory (state/seen.py) rather than marking each row.
    """
    if is_postgres(conn):
        # Joined to the page's keys as a set, each found through the primary key. With
        # `email_key = ANY(array)` the planner reads the whole table instead: at 1 M rows,
        # 165 ms a page against 70 (EXPLAIN ANALYZE, keys at random).
        sql = (
            f"SELECT email_key, {_STORED} FROM unnest(%s::text[]) AS page(key)"
            " JOIN members ON list_id = %s AND email_key = page.key"
        )
        return fetch(conn, sql, (list(keys), list_id))
    # SQLite: each chunk's rows as one JSON array, in one step (see the module's docstring).
    sql = f"SELECT json_group_array(json_array(email_key, {_STORED})) FROM members WHERE"
    rows: list[Row] = []
    for condition, params in column_in(conn, "email_key", keys):
        (found,) = fetch(conn, f"{sql} list_id = ? AND {condition}", (list_id, *params))
        rows.extend(orjson.loads(found[0]))
    return rows


def insert_new(
    writes: PageWrites,
    list_id: int,
    changes: Sequence[Change],
    detected_at: datetime,
    *,
    posting: bool,
    run_id: int,
) -> None:
    """Contacts never stored before, each pending under its message id and read by this
    run; `posting`: their messages are about to be posted, so Segment may hold them now."""
    if not changes:
        return
    conn = writes.conn
    # One timestamp per page: convert it as SQLAlchemy would, once, not per row.
    when = _bind(conn, detected_at)
    # Contacts holding NUL or a lone surrogate were refused when parsed, so JSON carries
    # every value here as it is. In key order: a page's keys land all over the key index,
    # and taken in order each of its index pages is reached once, while the cache still
    # holds it (a script inserting 1 M rows in pages of 5,000 spent 22 % less of SQLite's
    # time, 19.5-20.9 s of CPU against 25.9-26.6).
    sql = _INSERT_JSONB if is_postgres(conn) else _INSERT_JSON
    writes.add(sql, (list_id, when, posting, run_id, _page_json(changes)))


def _page_json(changes: Sequence[Change]) -> str:
    """The changes as one JSON array of (key, email, subscribed, userId, message id, digest),
    in key order."""
    rows = [(c.key, c.email, c.subscribed, c.user_id, c.message_id, c.digest) for c in changes]
    return orjson.dumps(sorted(rows, key=itemgetter(0))).decode()


# SQLite: the page's new rows as one JSON array, in one step (see the module's docstring).
_INSERT_JSON = (
    f"INSERT INTO members ({', '.join(_INSERT_COLUMNS)})"
    " SELECT ?, json_extract(value, '$[0]'), json_extract(value, '$[1]'),"
    " json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]'),"
    " ?, 0, 0, ?, ?, json_extract(value, '$[5]') FROM json_each(?)"
)
# PostgreSQL: the same array, as one parameter, parsed once by the server (jsonb). Six
# arrays instead (`unnest`) are the same work for the server, but psycopg builds an
# array's text in Python, element by element: 0.8 s of the worker's time per 100 k rows
# against 0.03 s for the JSON, which orjson writes in C.
_INSERT_JSONB = (
    f"INSERT INTO members ({', '.join(_INSERT_COLUMNS)})"
    " SELECT %s, r->>0, r->>1, (r->>2)::boolean, r->>3, r->>4, %s, 0, false, %s, %s,"
    " (r->>5)::bigint FROM jsonb_array_elements(%s::jsonb) AS page(r)"
)


def update_changed(
    writes: PageWrites,
    list_id: int,
    changes: Sequence[Change],
    detected_at: datetime,
    *,
    posting: bool,
    run_id: int,
) -> None:
    """Stored contacts' new desired values and digests, each with its new message, in one
    statement over the page's changes.

    Back to a subscription Segment last accepted, and no message of the row posted since
    (not in doubt), the pending message has nothing left to say, so it is dropped rather
    than replaced. A removal always goes out: an answer lost after Segment kept the
    pending true would otherwise leave the trait set. The diff decides the same; this
    repeats it in SQL against the row as it is when written. A row in doubt stays so; one
    whose message is about to be posted (`posting`) becomes so. Every write of a row's
    desired values gives it a clean slate of retries.
    """
    if not changes:
        return
    # The diff gives a key one change a page (it refuses a second); were there two, the
    # last would win.
    page = _page_json(list({c.key: c for c in changes}.values()))
    conn = writes.conn
    sql = _UPDATE_JSONB if is_postgres(conn) else _UPDATE_JSON
    writes.add(sql, (posting, _bind(conn, detected_at), run_id, page, list_id))


# SET expressions read the row as it was before the statement, on both databases. SQLite's
# `IS` compares as PostgreSQL's IS NOT DISTINCT FROM does, NULL equal to NULL. The retry
# columns get `rows.clean_slate`'s values, written out here as SQL.
_AS_ACCEPTED = (
    "page.s AND members.sent_subscribed IS TRUE"
    " AND members.sent_user_id {same} page.u AND members.in_doubt IS FALSE"
)
_UPDATE_SET = (
    "UPDATE members SET email = page.e, desired_subscribed = page.s,"
    " desired_user_id = page.u, attempts = 0, next_attempt_at = NULL, last_error = NULL,"
    " dead = {false}, in_doubt = (members.in_doubt OR ({mark} AND page.m IS NOT NULL)),"
    f" message_id = CASE WHEN {_AS_ACCEPTED} THEN NULL ELSE page.m END,"
    f" detected_at = CASE WHEN {_AS_ACCEPTED} THEN NULL ELSE {{mark}} END,"
    " last_seen_run = {mark}, digest = page.d"
)
# SQLite: the page as one JSON array, one step of one statement (see the module's docstring).
_UPDATE_JSON = _UPDATE_SET.format(false="0", mark="?", same="IS") + (
    " FROM (SELECT json_extract(value, '$[0]') AS k, json_extract(value, '$[1]') AS e,"
    " json_extract(value, '$[2]') AS s, json_extract(value, '$[3]') AS u,"
    " json_extract(value, '$[4]') AS m, json_extract(value, '$[5]') AS d FROM json_each(?))"
    " AS page"
    " WHERE members.list_id = ? AND members.email_key = page.k"
)
# PostgreSQL: the same array as one jsonb parameter.
_UPDATE_JSONB = _UPDATE_SET.format(false="false", mark="%s", same="IS NOT DISTINCT FROM") + (
    " FROM (SELECT r->>0 AS k, r->>1 AS e, (r->>2)::boolean AS s, r->>3 AS u, r->>4 AS m,"
    " (r->>5)::bigint AS d"
    " FROM jsonb_array_elements(%s::jsonb) AS rows(r)) AS page"
    " WHERE members.list_id = %s AND members.email_key = page.k"
)


def _bind(conn: Connection, value: datetime) -> Any:
    process: Callable[[Any], Any] | None = members.c.detected_at.type.bind_processor(conn.dialect)
    return process(value) if process is not None else value


def stamp_digests(writes: PageWrites, list_id: int, stamps: Sequence[tuple[str, int]]) -> None:
    """(key, digest): the bytes these rows' desired values were read from, where the rows
    already held those values (a new or changed row gets its digest as it is written)."""
    if not stamps:
        return
    if is_postgres(writes.conn):
        sql = (
            "UPDATE members SET digest = page.d"
            " FROM unnest(%s::text[], %s::bigint[]) AS page(k, d)"
            " WHERE members.list_id = %s AND members.email_key = page.k"
        )
        keys, digests = zip(*stamps, strict=True)
        writes.add(sql, (list(keys), list(digests), list_id))
        return
    sql = "UPDATE members SET digest = ? WHERE list_id = ? AND email_key = ?"
    writes.add(sql, [(digest, list_id, key) for key, digest in stamps])


def insert_rejects(
    writes: PageWrites, list_id: int, run_id: int, rejected: Sequence[Reject], at: datetime
) -> None:
    """The page's contacts the scan refused, with why: `status` and the run report list them."""
    if not rejected:
        return
    rows = [(r.email, r.reason) for r in rejected]
    when = _bind(writes.conn, at)
    if is_postgres(writes.conn):
        sql = (
            "INSERT INTO rejects (list_id, run_id, email, reason, created_at)"
            " SELECT %s, %s, r->>0, r->>1, %s FROM jsonb_array_elements(%s::jsonb) AS page(r)"
        )
        writes.add(sql, (list_id, run_id, when, orjson.dumps(rows).decode()))
        return
    sql = "INSERT INTO rejects (list_id, run_id, email, reason, created_at) VALUES (?, ?, ?, ?, ?)"
    writes.add(sql, [(list_id, run_id, email, reason, when) for email, reason in rows])
