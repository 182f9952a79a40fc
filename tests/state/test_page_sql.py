"""The scan's hand-written statements store exactly what they are given, on each backend."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, delete, select

from listrak_source.records import Change, Kind
from listrak_source.state import make_engine, page_sql, upgrade
from listrak_source.state.schema import members

from .statements import recorded

LIST = 1001
NOW = datetime(2026, 12, 6, 12, 30, 15, 123456, tzinfo=UTC)


def written(conn: Connection, write: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    """One of page_sql's writes, made at once."""
    writes = page_sql.PageWrites(conn)
    write(writes, *args, **kwargs)
    writes.flush()


# Any text a parsed contact can hold: no NUL, no lone surrogate (both refused when parsed).
texts = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=40
)
digests = st.one_of(
    st.none(),
    st.sampled_from([-(2**63), 2**63 - 1, -1, 1, 2**53 + 1]),
    st.integers(-(2**63), 2**63 - 1),
)
changes = st.lists(
    st.builds(
        Change,
        key=texts,
        email=texts,
        subscribed=st.booleans(),
        user_id=st.one_of(st.none(), texts),
        kind=st.just(Kind.SUBSCRIBED),
        message_id=st.one_of(st.none(), st.uuids().map(str)),
        is_new=st.just(True),
        digest=digests,
    ),
    max_size=30,
    unique_by=lambda c: c.key,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(page=changes, posting=st.booleans())
def test_inserted_rows_hold_each_value_as_given(
    engine: Engine, page: list[Change], posting: bool
) -> None:
    with engine.begin() as conn:
        conn.execute(delete(members))
        written(conn, page_sql.insert_new, LIST, page, NOW, posting=posting, run_id=7)
    c = members.c
    query = select(
        c.email_key,
        c.email,
        c.desired_subscribed,
        c.desired_user_id,
        c.message_id,
        c.digest,
        c.detected_at,
        c.attempts,
        c.dead,
        c.in_doubt,
        c.last_seen_run,
        c.list_id,
    )
    with engine.connect() as conn:
        got = {row[0]: tuple(row[1:]) for row in conn.execute(query)}
    want = {
        ch.key: (
            ch.email,
            ch.subscribed,
            ch.user_id,
            ch.message_id,
            ch.digest,
            NOW,
            0,
            False,
            posting,
            7,
            LIST,
        )
        for ch in page
    }
    assert got == want


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(page=changes, asked=st.lists(texts, max_size=10), sent=st.booleans())
def test_loaded_rows_are_the_stored_rows_of_the_keys_asked(
    engine: Engine, page: list[Change], asked: list[str], sent: bool
) -> None:
    with engine.begin() as conn:
        conn.execute(delete(members))
        written(conn, page_sql.insert_new, LIST, page, NOW, posting=False, run_id=7)
        conn.execute(members.update().values(sent_subscribed=sent, sent_user_id="u"))
    keys = [c.key for c in page[::2]] + asked + [c.key for c in page[:1]]
    with engine.connect() as conn:
        # A key asked twice may come back twice (PostgreSQL joins the keys as given).
        got = {row[0]: _plain(tuple(row)) for row in page_sql.load_rows(conn, LIST, keys)}
    want = {
        c.key: (c.key, c.subscribed, c.user_id, sent, "u", False, c.email, c.digest)
        for c in page
        if c.key in keys
    }
    assert got == want


EARLIER = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
user_ids = st.sampled_from([None, "u1", "u2"])
# What a stored row held before its change: what Segment last accepted, and its retries.
stored_states = st.tuples(st.sampled_from([None, True, False]), user_ids, st.booleans())


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    page=changes, states=st.lists(stored_states, min_size=30, max_size=30), posting=st.booleans()
)
def test_changed_rows_take_their_new_message_unless_back_to_what_segment_accepted(
    engine: Engine,
    page: list[Change],
    states: list[tuple[bool | None, str | None, bool]],
    posting: bool,
) -> None:
    page = [
        c._replace(is_new=False, user_id=states[n][1] if n % 2 else c.user_id)
        for n, c in enumerate(page)
    ]
    with engine.begin() as conn:
        conn.execute(delete(members))
        for list_id in (LIST, OTHER):
            written(conn, page_sql.insert_new, list_id, page, EARLIER, posting=False, run_id=3)
        for c, (sent, sent_user_id, doubt) in zip(page, states, strict=False):
            conn.execute(
                members.update()
                .where(members.c.email_key == c.key)
                .values(
                    sent_subscribed=sent,
                    sent_user_id=sent_user_id,
                    in_doubt=doubt,
                    attempts=4,
                    dead=True,
                    last_error="503",
                    next_attempt_at=EARLIER,
                    digest=11,
                )
            )
        written(conn, page_sql.update_changed, LIST, page, NOW, posting=posting, run_id=7)
    got = _rows(engine)
    for c, (sent, sent_user_id, doubt) in zip(page, states, strict=False):
        accepted = c.subscribed and sent is True and sent_user_id == c.user_id and not doubt
        message = None if accepted else c.message_id
        assert got[LIST, c.key] == (
            c.email,
            c.subscribed,
            c.user_id,
            message,
            None if accepted else NOW,
            doubt or (posting and c.message_id is not None),
            0,
            False,
            None,
            None,
            7,
            c.digest,
        )
        # The same key on another list is left as it was.
        assert got[OTHER, c.key][3:] == (
            c.message_id,
            EARLIER,
            doubt,
            4,
            True,
            "503",
            EARLIER,
            3,
            11,
        )


def _rows(engine: Engine) -> dict[tuple[int, str], tuple[object, ...]]:
    c = members.c
    query = select(
        c.list_id,
        c.email_key,
        c.email,
        c.desired_subscribed,
        c.desired_user_id,
        c.message_id,
        c.detected_at,
        c.in_doubt,
        c.attempts,
        c.dead,
        c.last_error,
        c.next_attempt_at,
        c.last_seen_run,
        c.digest,
    )
    with engine.connect() as conn:
        return {(row[0], row[1]): tuple(row[2:]) for row in conn.execute(query)}


def _plain(row: tuple[object, ...]) -> tuple[object, ...]:
    """Booleans as the drivers give them: SQLite's 0 and 1, PostgreSQL's bools."""
    key, subscribed, user_id, sent, sent_user_id, doubt, email, digest = row
    return (key, bool(subscribed), user_id, bool(sent), sent_user_id, bool(doubt), email, digest)


def test_more_keys_than_one_statement_binds_load_every_row(engine: Engine) -> None:
    page = [
        Change(f"c{n}@x.io", f"C{n}@x.io", True, None, Kind.SUBSCRIBED, None, True, n)
        for n in range(6001)
    ]
    with engine.begin() as conn:
        written(conn, page_sql.insert_new, LIST, page, NOW, posting=False, run_id=7)
    with engine.connect() as conn:
        rows = page_sql.load_rows(conn, LIST, [c.key for c in page])
    assert sorted((row[0], row[7]) for row in rows) == sorted((c.key, c.digest) for c in page)


OTHER = 2002


def _fill(engine: Engine, sizes: dict[int, int]) -> None:
    """Lists of these sizes, their rows interleaved in the table; every third row without a
    digest, every fifth without a userId, every seventh unsubscribed."""
    pages: dict[int, list[Change]] = {list_id: [] for list_id in sizes}
    for n in range(max(sizes.values())):
        for list_id, size in sizes.items():
            if n < size:
                digest = None if n % 3 == 0 else n - size // 2  # 0 too, and negatives
                user_id = None if n % 5 == 0 else f"u{n}"
                change = Change(
                    f"c{n}@x.io",
                    f"C{n}@x.io",
                    n % 7 != 0,
                    user_id,
                    Kind.SUBSCRIBED,
                    None,
                    True,
                    digest,
                )
                pages[list_id].append(change)
    with engine.begin() as conn:
        # Page by page, the lists in turn, so neither list's rows are one run of rowids.
        for start in range(0, max(sizes.values()), 1000):
            for list_id, page in pages.items():
                written(
                    conn,
                    page_sql.insert_new,
                    list_id,
                    page[start : start + 1000],
                    NOW,
                    posting=False,
                    run_id=7,
                )


@pytest.mark.parametrize("digested", [True, False])
def test_subscribed_columns_are_the_subscribed_rows_column_by_column(
    engine: Engine, digested: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(page_sql, "BLOCKS", 7)  # many ranges, some empty of a list
    _fill(engine, {LIST: 2 * page_sql.CHUNK + 1001, OTHER: 1500})
    with engine.connect() as conn:
        for list_id in (LIST, OTHER):
            rows = page_sql.subscribed_rows(
                conn, list_id, with_user_id=True, digested_without_user_id=digested
            )
            want = sorted(tuple(row) for chunk in rows for row in chunk)
            readers = [
                page_sql.subscribed_columns(conn, list_id, digested_without_user_id=digested)
            ]
            if engine.dialect.name == "sqlite":
                # Also walked by rowid, as SQLite reads a list that is most of the table.
                readers.append(page_sql._rowid_chunks(conn, list_id, digested))
            else:
                # And by ranges of blocks, as PostgreSQL reads such a list: on one
                # connection, and in two halves at once, the second on another.
                readers.append(page_sql._block_chunks(conn, list_id, digested, None))
                readers.append(_in_halves(engine, list_id, digested))
            for chunks in readers:
                got = [row for columns in chunks for row in zip(*columns, strict=True)]
                assert len(got) == len(want)
                assert sorted(got) == want


@pytest.mark.postgres
def test_a_failure_reading_the_second_half_of_the_table_is_raised_by_the_walk(
    postgres_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = postgres_engine
    monkeypatch.setattr(page_sql, "BLOCKS", 5)
    _fill(engine, {LIST: 3000})

    def beside() -> AbstractContextManager[Connection]:
        raise RuntimeError("no second connection")

    with engine.connect() as conn, pytest.raises(RuntimeError, match="no second connection"):
        conn.execution_options(isolation_level="REPEATABLE READ")
        list(page_sql._block_chunks(conn, LIST, True, beside))
    assert [t for t in threading.enumerate() if t.name == "rows-beside"] == []


def _in_halves(engine: Engine, list_id: int, digested: bool) -> Iterator[page_sql.Columns]:
    with engine.connect() as conn:
        conn.execution_options(isolation_level="REPEATABLE READ")
        yield from page_sql._block_chunks(conn, list_id, digested, engine.connect)


def test_sqlite_reads_a_list_that_fills_the_table_a_chunk_a_step(engine: Engine) -> None:
    """Once ANALYZE has said how the rows spread over lists (as a scan has it run), a list
    that is the table is walked in rowid order a chunk at a time; among many lists, one is
    read through the key index."""
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL streams through a server-side cursor")
    _fill(engine, {LIST: 3000})
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        assert page_sql.walks_table(conn, LIST, 0)
    _fill(engine, {OTHER + n: 30 for n in range(10)})
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        assert not page_sql.walks_table(conn, OTHER, 30)
        chunks = list(page_sql.subscribed_columns(conn, OTHER, digested_without_user_id=True))
    assert sum(len(keys) for keys, _, _ in chunks) == sum(n % 7 != 0 for n in range(30))


def test_sqlite_walks_a_large_list_beside_a_small_one_whatever_the_plan(engine: Engine) -> None:
    """SQLite's statistics hold only the average rows a list: with one large list and one
    small, its plan reads both through the key index. A list of a tenth of the table or
    more (by its last full scan) is walked anyway: its read a chunk a step, its count and
    its unseen rows past the index; the small one keeps the index."""
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's statistics know each list's share")
    _fill(engine, {LIST: 3000, OTHER: 30})
    subscribed = sum(n % 7 != 0 for n in range(3000))
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        where = page_sql._subscribed(conn)
        assert "USING INDEX" in _plan(conn, f"SELECT email_key FROM members WHERE {where}", LIST)
        assert page_sql.walks_table(conn, LIST, 2990)
        assert not page_sql.walks_table(conn, OTHER, 30)
        assert not page_sql.walks_table(conn, LIST, 0)  # no full scan yet: as planned
        with recorded(engine, "SELECT max(rowid), json_group_array") as walked:
            chunks = list(
                page_sql.subscribed_columns(conn, LIST, digested_without_user_id=True, size=2990)
            )
        assert walked and sum(len(keys) for keys, _, _ in chunks) == subscribed
        count = f"SELECT count(*) FROM members NOT INDEXED WHERE {where}"
        assert _plan(conn, count, LIST) == "SCAN members"
        assert page_sql.count_subscribed(conn, LIST, walk=True) == subscribed
        rows = page_sql.subscribed_rows(conn, LIST, walk=True)
        assert sum(len(chunk) for chunk in rows) == subscribed


def test_sqlite_walks_a_large_list_among_many_small_ones_a_rowid_range_a_chunk(
    engine: Engine,
) -> None:
    """With the average list small, the planner would read a chunk's rows through the key
    index and sort the rest of the list for every chunk: each chunk is a range of rowids."""
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL walks by block ranges")
    _fill(engine, {LIST: 1000} | {OTHER + n: 10 for n in range(100)})
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        with recorded(engine, "SELECT max(rowid), json_group_array") as walked:
            chunks = list(
                page_sql.subscribed_columns(conn, LIST, digested_without_user_id=True, size=990)
            )
        assert sum(len(keys) for keys, _, _ in chunks) == sum(n % 7 != 0 for n in range(1000))
        sql, params = walked[0]
        plan = " ".join(
            str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
        )
    assert "rowid>?" in plan and "INDEX" not in plan and "TEMP B-TREE" not in plan


def _plan(conn: Connection, sql: str, list_id: int) -> str:
    """SQLite's plan for a query of one list's rows, its steps' details."""
    rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", (list_id,)).all()
    return " ".join(str(row[-1]) for row in rows)


def test_postgres_reads_a_list_that_fills_the_table_by_block_ranges_in_one_snapshot(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every row once, though each was rewritten (so moved) while the walk was half done;
    among many lists, and on a connection whose transaction has begun, through the cursor."""
    engine = make_engine(postgres_url)
    upgrade(engine)
    monkeypatch.setattr(page_sql, "BLOCKS", 5)
    _fill(engine, {LIST: 3000})
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    for beside in (None, engine.connect):
        with engine.connect() as conn, recorded(engine, "SELECT json_agg") as walked:
            chunks = page_sql.subscribed_columns(
                conn, LIST, digested_without_user_id=True, beside=beside
            )
            keys = next(chunks)[0]
            with engine.begin() as other:
                other.exec_driver_sql("UPDATE members SET last_seen_run = 8")
            keys += [key for columns in chunks for key in columns[0]]
        assert len(walked) > 2
        assert sorted(keys) == sorted(f"c{n}@x.io" for n in range(3000) if n % 7 != 0)
    _fill(engine, {OTHER + n: 30 for n in range(10)})
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    with engine.connect() as conn:
        assert not page_sql._walks_blocks(conn, OTHER)
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
        assert not page_sql._walks_blocks(conn, LIST)
    engine.dispose()


def test_sqlite_stores_a_page_in_key_order(engine: Engine) -> None:
    """A page's new rows reach the key index in key order, whatever the page's own order:
    taken in order, each of the index's pages is reached once (see insert_new)."""
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL has no rowid that shows the order rows went in")
    keys = [f"{n * 7919 % 1000:04d}@x.io" for n in range(1000)]
    page = [Change(k, k, True, None, Kind.SUBSCRIBED, None, True, None) for k in keys]
    with engine.begin() as conn:
        written(conn, page_sql.insert_new, LIST, page, NOW, posting=False, run_id=7)
        stored = [
            row[0]
            for row in page_sql.fetch(conn, "SELECT email_key FROM members ORDER BY rowid", ())
        ]
    assert stored == sorted(keys) != keys
