"""Engage membership events shaped as Segment's Webhooks destination delivers them."""

from __future__ import annotations

import copy
from typing import Any

DELETE = object()


def track(
    key: str = "first_time_shopper",
    member: object = True,
    email: object = "Jane@Example.com",
    message_id: str = "personas_2g5WGNhZtTET4DhSeILpE6muHnH",
    timestamp: str = "2024-05-06T09:30:22.829Z",
    space_id: str = "spa_rHVb",
) -> dict[str, Any]:
    """A track event: membership under properties[key], email under context.traits."""
    return {
        "type": "track",
        "event": "Audience Entered" if member is True else "Audience Exited",
        "userId": "u123",
        "messageId": message_id,
        "timestamp": timestamp,
        "receivedAt": "2024-05-06T09:30:38.650Z",
        "context": {
            "personas": {
                "computation_class": "audience",
                "computation_id": "aud_2g5Vilff",
                "computation_key": key,
                "namespace": space_id,
                "space_id": space_id,
            },
            "traits": {"email": email},
        },
        "properties": {"audience_key": key, key: member},
    }


def identify(
    key: str = "first_time_shopper",
    member: object = False,
    email: object = "jane@example.com",
    message_id: str = "personas_identify_1",
    timestamp: str = "2024-05-06T09:31:00Z",
    space_id: str = "spa_rHVb",
) -> dict[str, Any]:
    """An identify event: membership and email both under traits, no audience_key."""
    event = track(key, member, email, message_id, timestamp, space_id)
    del event["event"], event["properties"], event["context"]["traits"]
    event["type"] = "identify"
    event["traits"] = {key: member, "email": email}
    return event


def altered(event: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    """A deep copy with the value at a dotted path replaced, or removed when it is DELETE."""
    out = copy.deepcopy(event)
    *parents, last = path.split(".")
    node: Any = out
    for part in parents:
        node = node[part]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return out
