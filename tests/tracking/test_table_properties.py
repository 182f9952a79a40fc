"""Any sequence of cumulative snapshots, each read once or twice in any order: each fact once."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from listrak_source.tracking.dates import zone
from listrak_source.tracking.records import CONVERTED, OPENED, SENT, ActivityRow, Seen
from listrak_source.tracking.table import fact_key, merge, row_facts

NY = zone("America/New_York")
SEND = "2026-03-01T09:00:00"


@st.composite
def snapshots(draw: st.DrawFn) -> list[ActivityRow]:
    """A row as it grows: flags turn true and stay true, the order total only rises."""
    rows = [ActivityRow("ann@example.com", send_date=SEND)]
    for _ in range(draw(st.integers(0, 6))):
        last = rows[-1]
        rows.append(
            last._replace(
                open=last.open or draw(st.booleans()),
                bounce=last.bounce or draw(st.booleans()),
                abuse=last.abuse or draw(st.booleans()),
                order_total=last.order_total + draw(st.sampled_from([0.0, 0.0, 9.99, 25.5])),
                activity_date=last.activity_date or "2026-03-01T10:00:00",
            )
        )
    return rows


@st.composite
def reads(draw: st.DrawFn) -> tuple[list[ActivityRow], list[ActivityRow]]:
    rows = draw(snapshots())
    copies = [row for row in rows for _ in range(draw(st.integers(1, 2)))]
    return rows, draw(st.permutations(copies))


@settings(max_examples=300)
@given(reads())
def test_each_fact_once(case: tuple[list[ActivityRow], list[ActivityRow]]) -> None:
    rows, order = case
    seen: Seen | None = None
    facts = []
    for n, row in enumerate(order):
        facts += row_facts(7, seen, row, where=NY, now=datetime(2026, 3, 2, n, tzinfo=UTC))
        seen = merge(seen, row)
    final = rows[-1]
    names = [f.event for f in facts]
    assert len({f.key for f in facts}) == len(facts)
    assert names.count(SENT) == 1
    for flag, name in [
        ("open", OPENED),
        ("bounce", "Email Bounced"),
        ("abuse", "Email Marked As Spam"),
    ]:
        assert names.count(name) == (1 if any(getattr(r, flag) for r in order) else 0)
    total = sum(f.extra["order_total"] for f in facts if f.event == CONVERTED)
    assert abs(total - final.order_total) < 1e-6


_PART = st.one_of(
    st.text(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.none(),
    st.booleans(),
    st.floats(),
)


@given(parts=st.lists(_PART, max_size=6))
def test_a_fact_key_is_spelled_as_the_json_encoder_spells_it(parts: list[object]) -> None:
    """Every stored fact and event id was made from this spelling: it never changes."""
    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
    assert fact_key(*parts) == encoder.encode(tuple(parts))
