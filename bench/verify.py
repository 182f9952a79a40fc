"""Did the sink receive exactly the expected identify calls, each once, with the right values?"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .world import Expected

# Enough examples to diagnose a failure without flooding the report at 1 M contacts.
_EXAMPLES = 5


@dataclass(slots=True)
class Verdict:
    """What arrived against what should have; `problems` counts each kind of mistake."""

    expected: int
    received: int
    problems: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Exactly the expected messages, nothing missing, nothing extra or repeated."""
        return not self.problems and self.received == self.expected

    def note(self, kind: str, detail: str) -> None:
        """Count one problem and keep the first few for the report."""
        self.problems[kind] += 1
        if len(self.examples) < _EXAMPLES:
            self.examples.append(f"{kind}: {detail}")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ok": self.ok,
            "expected": self.expected,
            "received": self.received,
            "problems": dict(self.problems),
            "examples": self.examples,
        }


def verify(
    messages: Iterable[Mapping[str, Any]], expected: Mapping[str, Expected], trait: str
) -> Verdict:
    """Compare every message with the contact it names; then list the contacts not sent."""
    verdict = Verdict(expected=len(expected), received=0)
    seen_keys: set[str] = set()
    seen_ids: set[str] = set()
    for message in messages:
        verdict.received += 1
        message_id = str(message.get("messageId"))
        if message_id in seen_ids:
            verdict.note("repeated messageId", message_id)
        seen_ids.add(message_id)
        who = message.get("anonymousId")
        key = who.lower() if isinstance(who, str) else ""
        if key in seen_keys:
            verdict.note("contact sent twice", key)
        seen_keys.add(key)
        _check(verdict, message, expected.get(key), trait)
    for key in expected.keys() - seen_keys:
        verdict.note("expected but not sent", key)
    return verdict


def _check(verdict: Verdict, message: Mapping[str, Any], want: Expected | None, trait: str) -> None:
    who = message.get("anonymousId")
    if want is None:
        verdict.note("not expected", repr(who))
        return
    traits = message.get("traits") or {}
    value = True if want.subscribed else None
    checks = (
        ("type is not identify", message.get("type") == "identify"),
        ("anonymousId differs from the Listrak email", who == want.email),
        ("traits.email differs from the Listrak email", traits.get("email") == want.email),
        # A removal must carry the trait as an explicit null, or Segment keeps it.
        (f"wrong {trait}", trait in traits and traits[trait] == value),
        ("wrong userId", message.get("userId") == want.user_id),
    )
    for kind, passed in checks:
        if not passed:
            verdict.note(kind, f"{who}: got {_summary(message, trait)}, want {want}")


def _summary(message: Mapping[str, Any], trait: str) -> str:
    traits = message.get("traits") or {}
    return f"userId={message.get('userId')!r} {trait}={traits.get(trait, '<absent>')!r}"
