"""Builds real adapters from settings: the only module that knows every concrete class."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

from sqlalchemy import Engine

from . import db
from .config import Settings
from .ledger import Ledger, new_holder
from .listrak import ListrakClient
from .messages import Pending, identify_message
from .segment import Delivery, SegmentEmitter
from .store import Store
from .sync import Runtime


class PrintingEmitter:
    """A dry run's emitter: writes each identify as a JSON line and pretends it was accepted."""

    def __init__(self, out: TextIO | None = None) -> None:
        # Looked up at call time so a redirected stdout (tests, pipes) is honoured.
        self.out = out if out is not None else sys.stdout

    def deliver(self, rows: Sequence[Pending], trait: str) -> Delivery:
        """Print, never send."""
        for row in rows:
            self.out.write(json.dumps(identify_message(row, trait), sort_keys=True) + "\n")
        self.out.flush()
        return Delivery(accepted=[row.message_id for row in rows])


def listrak_client(settings: Settings) -> ListrakClient:
    """A Listrak client configured from [listrak]."""
    s = settings.listrak
    return ListrakClient(
        client_id=s.client_id,
        client_secret=s.client_secret.get_secret_value(),
        base_url=s.base_url,
        auth_url=s.auth_url,
        timeout=s.timeout,
        max_attempts=s.max_attempts,
        requests_per_second=s.requests_per_second,
    )


def open_database(settings: Settings, *, migrate: bool = True) -> Engine:
    """The engine, with the schema brought to head (or only checked)."""
    engine = db.make_engine(settings.database.url)
    if migrate:
        db.upgrade(engine)
    elif db.check_schema(engine) != db.head_revision():
        raise db.SchemaError(
            "the database schema is not current: run `listrak-source migrate` first"
        )
    return engine


@contextmanager
def runtime(
    settings: Settings, *, dry_run: bool = False, out: TextIO | None = None
) -> Iterator[Runtime]:
    """A Runtime with real adapters; a dry run's writes are rolled back at the end."""
    engine = open_database(settings)
    client = listrak_client(settings)
    try:
        if not dry_run:
            yield Runtime(
                settings=settings,
                store=Store(engine),
                ledger=Ledger(engine),
                listrak=client,
                emitter=SegmentEmitter(settings.segment),
                holder=new_holder(),
            )
            return
        with engine.connect() as conn:
            transaction = conn.begin()
            try:
                yield Runtime(
                    settings=settings,
                    store=Store(engine, connection=conn),
                    ledger=None,
                    listrak=client,
                    emitter=PrintingEmitter(out),
                    holder=new_holder(),
                )
            finally:
                transaction.rollback()
    finally:
        client.close()
        engine.dispose()
