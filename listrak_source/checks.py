"""`check`: is it safe to start the daemon? Each check says what passed or what to fix."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from . import db
from .config import Settings
from .errors import ListrakSourceError
from .listrak import ListrakClient
from .wiring import listrak_client

# Segment write keys are 32 characters of letters and digits; a looser shape is
# accepted because Segment answers 200 even for a wrong key and we cannot verify it.
_WRITE_KEY = re.compile(r"^[A-Za-z0-9_\-]{8,128}$")


@dataclass(frozen=True, slots=True)
class Outcome:
    """One row of the check table."""

    name: str
    ok: bool
    detail: str


def _database(settings: Settings) -> Outcome:
    engine = db.make_engine(settings.database.url)
    try:
        revision = db.check_schema(engine)
    finally:
        engine.dispose()
    head = db.head_revision()
    if revision == head:
        return Outcome("database", True, f"{db.redact_url(settings.database.url)} at {head}")
    return Outcome(
        "database",
        False,
        f"schema {revision or 'empty'}, head is {head}: run `listrak-source migrate`",
    )


def _write_key(settings: Settings) -> Outcome:
    key = settings.segment.write_key.get_secret_value()
    if _WRITE_KEY.match(key):
        return Outcome(
            "segment write key",
            True,
            "shape looks right (Segment cannot confirm a key: it answers 200 to any)",
        )
    return Outcome(
        "segment write key", False, "does not look like a write key (letters and digits)"
    )


def _listrak(settings: Settings, client: ListrakClient) -> list[Outcome]:
    client.check_credentials()
    outcomes = [Outcome("listrak credentials", True, f"token from {settings.listrak.auth_url}")]
    for cfg in settings.lists:
        info = client.get_list(cfg.id)
        outcomes.append(Outcome(f"list {cfg.id}", True, str(info.get("listName") or "exists")))
        if cfg.user_id_field is None:
            continue
        fields = client.get_profile_fields(cfg.id)
        name = fields.get(cfg.user_id_field)
        outcomes.append(
            Outcome(
                f"list {cfg.id} field {cfg.user_id_field}",
                name is not None,
                f"profile field {name!r}" if name else "no such profile field on this list",
            )
        )
    return outcomes


def _guard(name: str, check: Callable[[], list[Outcome]]) -> list[Outcome]:
    try:
        return check()
    except ListrakSourceError as exc:
        return [Outcome(name, False, str(exc))]


def run_checks(settings: Settings, out: TextIO) -> bool:
    """Print a table of checks; True when every one passed."""
    outcomes = [Outcome("config", True, f"{len(settings.lists)} list(s)")]
    outcomes += _guard("database", lambda: [_database(settings)])
    outcomes.append(_write_key(settings))
    with listrak_client(settings) as client:
        outcomes += _guard("listrak", lambda: _listrak(settings, client))
    width = max(len(o.name) for o in outcomes)
    for outcome in outcomes:
        mark = "ok  " if outcome.ok else "FAIL"
        print(f"{mark}  {outcome.name.ljust(width)}  {outcome.detail}", file=out)
    passed = all(o.ok for o in outcomes)
    print("ready to run" if passed else "not ready: fix the FAIL lines above", file=out)
    return passed
