"""A stored activity event as the `track` call Segment receives, as Listrak's source sends it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Any

from .records import Fact, MessageInfo, TrackEvent


def track_message(event: TrackEvent) -> dict[str, Any]:
    """No userId, as Listrak's source: the email is the anonymousId and the context's trait."""
    return {
        "type": "track",
        "event": event.event,
        "messageId": event.message_id,
        "anonymousId": event.email,
        "timestamp": event.timestamp.astimezone(UTC).isoformat(timespec="milliseconds"),
        "properties": dict(event.properties),
        "context": {"traits": {"email": event.email}},
    }


def list_properties(list_id: int, list_name: str | None) -> dict[str, Any]:
    """What every event says of its list: ids are strings, as Listrak's source sends them."""
    out: dict[str, Any] = {"list_id": str(list_id)}
    if list_name:
        out["list_name"] = list_name
    return out


def message_properties(info: MessageInfo) -> dict[str, Any]:
    """What every event of a message says of it; absent values are left out, not null."""
    out: dict[str, Any] = {"email_id": str(info.message_id)}
    if info.subject is not None:
        out["email_subject"] = info.subject
    if info.campaign_name:
        out["campaign_name"] = info.campaign_name
    if info.ga_campaign_name:
        out["google_analytics_campaign_name"] = info.ga_campaign_name
    return out


def properties(fact: Fact, common: Mapping[str, Any]) -> dict[str, Any]:
    """The event's properties: its message's and list's (`common`), then the fact's own."""
    return {**common, **fact.extra}
