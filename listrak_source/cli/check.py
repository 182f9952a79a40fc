"""`check`: is it safe to start the daemon? Each check says what passed or what to fix."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

import httpx

from ..config import ListSettings, Settings
from ..engage.settings import AudienceSettings
from ..errors import ListrakSourceError, describe_error
from ..listrak import ListrakClient
from ..logs import redact
from ..service.schedules import describe, list_schedule
from ..state import Database
from ..state import engine as db
from ..subscribers.sync import trait_mismatch
from ..subscribers.trait_claims import standing_clash, trait_clash
from ..tracking.dates import to_listrak, zone
from .wiring import listrak_client, new_database, probe_segment

# Segment write keys are 32 characters of letters and digits; a looser shape is
# accepted because Segment answers 200 even for a wrong key and we cannot verify it.
_WRITE_KEY = re.compile(r"^[A-Za-z0-9_\-]{8,128}$")
# An operator waits at the prompt: two tries tell a blip from an outage soon enough.
_CHECK_ATTEMPTS = 2
_MARKS = {True: "ok  ", False: "FAIL", None: "skip"}
_CONNECT_TIMEOUT = 10.0
# Listrak sets and clears these with on/off; any other type would store the text "on".
_BOX_TYPES = ("CheckBox", "RadioButton")


@dataclass(frozen=True, slots=True)
class Outcome:
    """One row of the check table; ok is None when an earlier failure kept it from running."""

    name: str
    ok: bool | None
    detail: str


def _database(settings: Settings) -> Outcome:
    where = db.database_shown(settings.database.url)
    if new_database(settings) is not None:
        # Asking an absent SQLite file its schema would create it.
        return Outcome(
            "database", False, f"no database at {where} yet: run `listrak-source migrate`"
        )
    engine = db.make_engine(settings.database.url)
    try:
        revision = db.check_schema(engine)
    finally:
        engine.dispose()
    head = db.head_revision()
    if revision == head:
        return Outcome("database", True, f"{where} at {head}")
    return Outcome(
        "database",
        False,
        f"{where}: schema {revision or 'empty'}, head is {head}: run `listrak-source migrate`",
    )


def _traits(settings: Settings) -> Outcome:
    engine = db.make_engine(settings.database.url)
    try:
        claims = Database(engine).traits.claims()
    finally:
        engine.dispose()
    # A clash first: the rename a mismatch asks for would be refused for it.
    problems = [
        trait_clash(cfg, claims) or trait_mismatch(cfg, claims.get(cfg.id, (None, ()))[0])
        for cfg in settings.lists
    ]
    found = [p for p in (standing_clash(settings.lists, claims), *problems) if p is not None]
    if found:
        return Outcome("list traits", False, found[0])
    return Outcome("list traits", True, "each list's trait is the one its messages carry")


def _first_syncs(settings: Settings) -> list[Outcome]:
    """A list the state knows nothing of: its first sync sends every subscriber as new,
    which a team moving over from Listrak's own source does not want."""
    engine = db.make_engine(settings.database.url)
    try:
        state = Database(engine)
        new = [cfg.id for cfg in settings.lists if not state.runs.has_rows(cfg.id)]
    finally:
        engine.dispose()
    return [
        Outcome(
            f"list {list_id} state",
            True,
            "nothing stored yet: its first sync sends every subscriber to Segment as new; "
            "if the profiles already carry its trait (moving over from Listrak's own "
            f"source), run `listrak-source baseline --list {list_id}` first",
        )
        for list_id in new
    ]


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


def _segment_host(settings: Settings) -> Outcome:
    """The host takes a batch: an empty one, which Segment answers and keeps nothing of.

    A bare connection proves too little: a proxy or a redirector answers too, and would
    swallow every batch while each run counted it delivered.
    """
    where = httpx.URL(settings.segment.host).copy_with(username=None, password=None)
    timeout = min(settings.segment.timeout, _CONNECT_TIMEOUT)
    refusal = probe_segment(settings, timeout=timeout, retries=_CHECK_ATTEMPTS - 1)
    if refusal is None:
        return Outcome("segment host", True, f"{where} took an empty batch as Segment does")
    return Outcome("segment host", False, f"{where}: {refusal}")


def _schedule(settings: Settings) -> Outcome:
    from ..service.daemon import trigger_for  # noqa: PLC0415 - APScheduler is only needed here

    for cfg in settings.lists:
        trigger_for(cfg, settings)  # a bad cron expression raises ConfigError
    plans = sorted({describe(list_schedule(cfg, settings)) for cfg in settings.lists})
    return Outcome("schedule", True, "; ".join(plans))


def _credentials(settings: Settings, client: ListrakClient) -> Outcome:
    client.check_credentials()
    return Outcome("listrak credentials", True, f"token from {settings.listrak.auth_url}")


def _list_exists(cfg: ListSettings, client: ListrakClient) -> Outcome:
    info = client.get_list(cfg.id)
    return Outcome(f"list {cfg.id}", True, str(info.get("listName") or "exists"))


def _field(cfg: ListSettings, field_id: int, client: ListrakClient) -> Outcome:
    name = client.get_profile_fields(cfg.id).get(field_id)
    if name is None:
        return Outcome(f"list {cfg.id} field {field_id}", False, "no such profile field")
    return Outcome(f"list {cfg.id} field {field_id}", True, f"profile field {name!r}")


def _audience_field(audience: AudienceSettings, types: dict[int, str]) -> Outcome:
    name = f"audience {audience.key}"
    found = types.get(audience.field_id)
    where = f"list {audience.list_id} field {audience.field_id}"
    if found is None:
        return Outcome(name, False, f"{where}: no such profile field")
    if found not in _BOX_TYPES:
        return Outcome(name, False, f"{where} is a {found} field, not a CheckBox or RadioButton")
    return Outcome(name, True, f"{where}, a {found}")


def _audience_fields(settings: Settings, cfg: ListSettings, client: ListrakClient) -> list[Outcome]:
    """Each audience of the list writes a check box or radio button the list has."""
    audiences = [a for a in settings.audiences if a.list_id == cfg.id]
    if not audiences:
        return []
    types: dict[int, str] = {}
    fetched = _guard(f"list {cfg.id} fields", lambda: _fetch_types(cfg, client, types))
    if not fetched[0].ok:
        return fetched
    return [_audience_field(a, types) for a in audiences]


def _fetch_types(cfg: ListSettings, client: ListrakClient, into: dict[int, str]) -> Outcome:
    into.update(client.get_field_types(cfg.id))
    return Outcome(f"list {cfg.id} fields", True, f"{len(into)} profile field(s)")


def _list(settings: Settings, cfg: ListSettings, client: ListrakClient) -> list[Outcome]:
    outcomes = _guard(f"list {cfg.id}", lambda: _list_exists(cfg, client))
    field_id = cfg.user_id_field
    if field_id is not None and outcomes[0].ok:
        outcomes += _guard(f"list {cfg.id} field {field_id}", lambda: _field(cfg, field_id, client))
    if outcomes[0].ok:
        outcomes += _audience_fields(settings, cfg, client)
    if outcomes[0].ok and cfg.activity:
        outcomes += _guard(f"list {cfg.id} activity", lambda: _reporting(settings, cfg, client))
    return outcomes


def _time_zone(settings: Settings) -> Outcome:
    name = settings.listrak.timezone
    where = zone(name)  # the config's loading has refused an unknown name already
    sample = datetime(2026, 1, 15, 12, tzinfo=where).strftime("%z")
    return Outcome("listrak time zone", True, f"{name} (UTC{sample[:3]}:{sample[3:]} in January)")


def _reporting(settings: Settings, cfg: ListSettings, client: ListrakClient) -> Outcome:
    """The activity routes need the Reporting area: probe one message's links."""
    since = to_listrak(
        datetime.now(UTC) - settings.activity.window, zone(settings.listrak.timezone)
    )
    message = next(iter(client.iter_messages(cfg.id, start=since)), None)
    name = f"list {cfg.id} activity"
    if message is None:
        return Outcome(name, None, "no message within [activity] window to probe Reporting with")
    client.get_links(cfg.id, message.message_id)
    return Outcome(name, True, "the Reporting area answers (message activity can be read)")


def _listrak(settings: Settings) -> list[Outcome]:
    patient_less = settings.listrak.model_copy(update={"max_attempts": _CHECK_ATTEMPTS})
    with listrak_client(settings.model_copy(update={"listrak": patient_less})) as client:
        outcomes = _guard("listrak credentials", lambda: _credentials(settings, client))
        for cfg in settings.lists:
            if outcomes[0].ok:
                outcomes += _list(settings, cfg, client)
            else:
                outcomes.append(Outcome(f"list {cfg.id}", None, "not checked without a token"))
    return outcomes


def _guard(name: str, check: Callable[[], Outcome]) -> list[Outcome]:
    """A check that raised is a FAIL row with the reason, never a crash of `check`."""
    try:
        return [check()]
    except ListrakSourceError as exc:
        return [Outcome(name, False, str(exc))]
    except Exception as exc:
        return [Outcome(name, False, describe_error(exc))]


def run_checks(settings: Settings, out: TextIO) -> bool:
    """Print a table of checks; True when every one passed."""
    outcomes = [Outcome("config", True, f"{len(settings.lists)} list(s)")]
    outcomes += _guard("schedule", lambda: _schedule(settings))
    outcomes += _guard("database", lambda: _database(settings))
    if outcomes[-1].ok:
        outcomes += _guard("list traits", lambda: _traits(settings))
        outcomes += _first_syncs(settings)
    outcomes.append(_write_key(settings))
    outcomes += _guard("segment host", lambda: _segment_host(settings))
    if any(cfg.activity for cfg in settings.lists):
        outcomes += _guard("listrak time zone", lambda: _time_zone(settings))
    outcomes += _listrak(settings)
    width = max(len(o.name) for o in outcomes)
    secrets = settings.secrets()
    for outcome in outcomes:
        # Error texts quote URLs and answers; none should hold a secret, but never risk it.
        detail = redact(outcome.detail, secrets)
        print(f"{_MARKS[outcome.ok]}  {outcome.name.ljust(width)}  {detail}", file=out)
    passed = all(o.ok for o in outcomes)
    print("ready to run" if passed else "not ready: fix the FAIL lines above", file=out)
    return passed
