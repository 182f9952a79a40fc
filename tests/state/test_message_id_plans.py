"""PostgreSQL looks each message id up through the index, whatever its statistics say.

After a sync every accepted message has left a dead entry in the partial message-id index
until VACUUM, while the statistics say the index is nearly empty. A statement the planner
then answers by walking the list's whole index reads every dead entry: a million after a
first sync of 1 M. These tests build that state and read the plan of the statements that
name rows by their message ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine

from listrak_source.state import Database
from listrak_source.state.engine import make_engine, upgrade

from .statements import recorded

LIST = 1001
NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)
ROWS = 20_000
pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    """A list whose messages were all accepted, analyzed, and three rows pending again."""
    engine = make_engine(postgres_url)
    upgrade(engine)
    ids = [f"m-{n:06d}" for n in range(ROWS)]
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO members (list_id, email_key, email, desired_subscribed, message_id,"
            " attempts, dead, in_doubt) SELECT %s, k, k, true, m, 0, false, false"
            " FROM unnest(%s::text[], %s::text[]) AS page(k, m)",
            (LIST, [f"c{n}@x.io" for n in range(ROWS)], ids),
        )
    Database(engine).outbox.mark_sent(LIST, ids)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE members")
        conn.exec_driver_sql(
            "UPDATE members SET message_id = 'n-' || email_key WHERE list_id = %s"
            " AND email_key = ANY(%s)",
            (LIST, ["c1@x.io", "c2@x.io", "c3@x.io"]),
        )
    yield engine
    engine.dispose()


def plans_of(engine: Engine, action: Callable[[], Any]) -> list[dict[str, Any]]:
    """The plan of every UPDATE the action runs, as EXPLAIN gives it for its parameters."""
    with recorded(engine, "UPDATE") as statements:
        action()
    with engine.connect() as conn:
        plans = [
            conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}", params).scalar_one()
            for sql, params in statements
        ]
    # psycopg hands EXPLAIN's JSON back decoded.
    return [plan[0]["Plan"] for plan in plans]


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def looks_ids_up(plan: dict[str, Any]) -> bool:
    """Some node finds rows through an index by the message id itself, not a filter."""
    return any("message_id" in node.get("Index Cond", "") for node in nodes(plan))


def test_marking_messages_sent_looks_each_id_up(engine: Engine) -> None:
    outbox = Database(engine).outbox
    plans = plans_of(engine, lambda: outbox.mark_sent(LIST, ["n-c1@x.io", "n-c2@x.io"]))
    assert plans and all(looks_ids_up(plan) for plan in plans)


def test_marking_messages_posted_looks_each_id_up(engine: Engine) -> None:
    outbox = Database(engine).outbox
    plans = plans_of(engine, lambda: outbox.mark_posted(LIST, ["n-c1@x.io", "n-c3@x.io"]))
    assert plans and all(looks_ids_up(plan) for plan in plans)


def test_the_rows_named_are_the_rows_changed(engine: Engine) -> None:
    outbox = Database(engine).outbox
    assert outbox.mark_sent(LIST, ["n-c1@x.io", "n-c1@x.io", "m-000005", "n-none"]) == 1
    assert outbox.mark_sent(LIST, ["n-c2@x.io", "n-c3@x.io"]) == 2
