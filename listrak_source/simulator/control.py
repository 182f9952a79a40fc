"""Changes and outages made from outside a running simulator, over HTTP.

The standalone simulator serves these under `/_control/` on the Listrak port, outside
Listrak's own API (which lives under `/email/v1` and `/OAuth2`), so a worker pointed at the
simulator never reaches them. Every route takes and answers JSON:

  POST /_control/subscribe     {"list_id": 1001, "email": "a@example.com",
                                "fields": {"678": "crm-1"}}
  POST /_control/unsubscribe   {"list_id": 1001, "email": "a@example.com"}
  POST /_control/remove        {"list_id": 1001, "email": "a@example.com"}
  POST /_control/field         {"list_id": 1001, "email": "a@example.com", "field_id": 678,
                                "value": "x"}
  POST /_control/churn         {"list_id": 1001, "count": 30}  a third unsubscribe, a third
                               leave the list, the rest are new subscribers
  POST /_control/outage        {"service": "listrak" or "segment", "requests": 20, "status": 503}
  POST /_control/broadcast     {"list_id": 1001, "message_id": 501, "subject": "Hi",
                                "link_id": 42, "url": "https://shop.example.com/"}
                               a message sent now to every subscriber, with one tracked link
  POST /_control/activity      {"list_id": 1001, "message_id": 501, "email": "a@example.com",
                                "action": "open", "click", "bounce", "complain" or "convert",
                                "link_id": 42, "amount": 25.0}
  POST /_control/reset         every outage still queued is dropped
  GET  /_control/lists         each list's subscribed contacts, and what Segment's sink kept
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from typing import Any

from ._http import HttpError, Request, Response, json_response
from ._listrak import ListrakSimulator
from ._sink import SegmentSink

PREFIX = "/_control/"
_SERVICES = ("listrak", "segment")
# Behaviours the standalone simulator's command line sets; a reset keeps them.
_SWITCHES = ("checked_value", "import_delay", "offset_cursors")


class Control:
    """The control routes of one simulator and its sink."""

    def __init__(self, sim: ListrakSimulator, sink: SegmentSink, seed: int = 0) -> None:
        self.sim = sim
        self.sink = sink
        self.rng = random.Random(seed)
        self._posts: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
            "subscribe": self.subscribe,
            "unsubscribe": self.unsubscribe,
            "remove": self.remove,
            "field": self.field,
            "churn": self.churn,
            "outage": self.outage,
            "reset": self.reset,
            "broadcast": self.broadcast,
            "activity": self.activity,
        }

    def __call__(self, req: Request) -> Response:
        """Answer one request to /_control/...; errors as {"error": "..."}."""
        name = req.path.lower().removeprefix(PREFIX).strip("/")
        try:
            if req.method == "GET" and name == "lists":
                return json_response(200, self.lists())
            if name not in self._posts:
                raise HttpError(404, f"no control route {req.path}; see {PREFIX} in --help")
            if req.method != "POST":
                raise HttpError(405, "control routes that change something take POST")
            return json_response(200, self._posts[name](_body(req)))
        except HttpError as err:
            return json_response(err.status, {"error": str(err)})
        except (KeyError, ValueError, TypeError) as err:
            return json_response(400, {"error": f"{type(err).__name__}: {err}"})

    def lists(self) -> dict[str, Any]:
        """Subscribed contacts per list, and how many identify calls the sink kept."""
        with self.sim.lock:
            ids = sorted(self.sim.lists)
        return {
            "lists": {str(i): len(self.sim.truth(i)) for i in ids},
            "segment_messages": len(self.sink.messages),
        }

    def subscribe(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A new subscriber, or a re-subscribe; profile field values by field id."""
        fields = {int(k): str(v) for k, v in (body.get("fields") or {}).items()}
        self.sim.subscribe(int(body["list_id"]), str(body["email"]), fields or None)
        return {"subscribed": 1}

    def unsubscribe(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The contact stays on the list, as Unsubscribed."""
        self.sim.unsubscribe(int(body["list_id"]), str(body["email"]))
        return {"unsubscribed": 1}

    def remove(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The contact leaves the list altogether."""
        self.sim.remove(int(body["list_id"]), str(body["email"]))
        return {"removed": 1}

    def field(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Set (or, with "value": null, clear) one profile field of a contact."""
        value = body.get("value")
        list_id, email = int(body["list_id"]), str(body["email"])
        self.sim.set_field(
            list_id, email, int(body["field_id"]), None if value is None else str(value)
        )
        return {"changed": 1}

    def churn(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """`count` changes at random: a third unsubscribe, a third leave, the rest subscribe."""
        list_id, count = int(body["list_id"]), int(body.get("count", 10))
        current = sorted(self.sim.truth(list_id).values(), key=lambda c: str(c["email"]))
        picks = self.rng.sample(current, k=min(len(current), count))
        third = len(picks) // 3
        for contact in picks[:third]:
            self.sim.unsubscribe(list_id, str(contact["email"]))
        for contact in picks[third : 2 * third]:
            self.sim.remove(list_id, str(contact["email"]))
        added = max(count - 2 * third, 0)
        start = self.rng.randrange(10**9)
        for n in range(added):
            self.sim.subscribe(list_id, f"churn{start + n}@example.com")
        return {"unsubscribed": third, "removed": third, "subscribed": added}

    def outage(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The next `requests` requests to Listrak's API or to Segment fail with `status`."""
        service, requests = str(body["service"]), int(body.get("requests", 10))
        status = int(body.get("status", 503))
        if service not in _SERVICES:
            raise ValueError(f"service must be one of {', '.join(_SERVICES)}")
        faults = self.sim.faults if service == "listrak" else self.sink.faults
        if status == 429:
            faults.rate_limit_next(requests, retry_after=int(body.get("retry_after", 1)))
        else:
            faults.fail_next(requests, status=status)
        return {"service": service, "failing_requests": requests, "status": status}

    def broadcast(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A message sent now to every current subscriber of the list, with one tracked link."""
        list_id, message_id = int(body["list_id"]), int(body["message_id"])
        emails = [str(c["email"]) for c in self.sim.truth(list_id).values()]
        self.sim.send_message(list_id, message_id, emails, subject=str(body.get("subject", "")))
        link_id = int(body.get("link_id", 1))
        self.sim.add_link(
            list_id, message_id, link_id, str(body.get("url", "https://example.com/"))
        )
        return {"recipients": len(emails), "link_id": link_id}

    def activity(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """One recipient opens, clicks (the link), bounces, complains or buys (`amount`)."""
        list_id, message_id = int(body["list_id"]), int(body["message_id"])
        email, action = str(body["email"]), str(body["action"])
        if action == "click":
            self.sim.click(list_id, message_id, int(body.get("link_id", 1)), email)
        elif action == "convert":
            self.sim.convert(list_id, message_id, email, float(body.get("amount", 1.0)))
        elif action in ("open", "bounce", "complain"):
            getattr(self.sim, action)(list_id, message_id, email)
        else:
            raise ValueError("action must be open, click, bounce, complain or convert")
        return {"row": self.sim.activity_row(list_id, message_id, email)}

    def reset(self, _body: Mapping[str, Any]) -> dict[str, Any]:
        """Drop every outage still queued, on both sides; the command line's switches stay."""
        faults = self.sim.faults
        kept = {name: getattr(faults, name) for name in _SWITCHES}
        faults.reset()
        for name, value in kept.items():
            setattr(faults, name, value)
        self.sink.faults.reset()
        return {"reset": True}


def _body(req: Request) -> Mapping[str, Any]:
    if not req.body:
        return {}
    try:
        body = json.loads(req.body)
    except ValueError:
        raise HttpError(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise HttpError(400, "the body must be a JSON object")
    return body
