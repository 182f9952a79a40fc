"""The scan's hand-written statements store exactly what they are given, on each backend."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, select

from listrak_source.records import Change, Kind
from listrak_source.state import page_sql
from listrak_source.state.schema import members

LIST = 1001
NOW = datetime(2026, 12, 6, 12, 30, 15, 123456, tzinfo=UTC)

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
        page_sql.insert_new(conn, LIST, page, NOW, posting=posting, run_id=7)
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
        page_sql.insert_new(conn, LIST, page, NOW, posting=False, run_id=7)
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
        page_sql.insert_new(conn, LIST, page, NOW, posting=False, run_id=7)
    with engine.connect() as conn:
        rows = page_sql.load_rows(conn, LIST, [c.key for c in page])
    assert sorted((row[0], row[7]) for row in rows) == sorted((c.key, c.digest) for c in page)
