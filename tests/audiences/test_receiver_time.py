"""The receiver believes no event dated after its arrival, beyond a little clock skew."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ._events import track
from .conftest import StartReceiver


def test_an_event_from_the_future_is_acknowledged_counted_and_not_kept(
    start_receiver: StartReceiver,
) -> None:
    receiver = start_receiver()
    soon = (datetime.now(UTC) + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    body = [
        track(message_id="future", timestamp="9999-12-31T23:59:59.999Z"),
        track(message_id="a-year-ahead", timestamp=f"{datetime.now(UTC).year + 1}-01-01T00:00:00Z"),
        track(message_id="skewed-a-little", timestamp=soon),
    ]
    response = receiver.post(body)
    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "ignored": {"future_timestamp": 2}}
    (committed,) = receiver.commits
    assert [m.membership.message_id for m in committed.memberships] == ["skewed-a-little"]
