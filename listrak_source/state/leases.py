"""Per-list leases: one worker at a time on a list, named so an operator sees who holds it."""

from __future__ import annotations

import functools
import os
import socket
import uuid
from datetime import datetime, timedelta

from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from .schema import leases
from .transactions import Transactions


@functools.cache
def new_holder() -> str:
    """This process's lease holder name: host and pid tell an operator who holds a list.

    One name per process, so a lease this process failed to release (the database
    refused the write) is simply taken again by its next run.
    """
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Leases:
    """Take, renew and give back a list's lease; every method is its own short transaction."""

    def __init__(self, tx: Transactions) -> None:
        self.tx = tx

    def acquire(self, list_id: int, holder: str, now: datetime, ttl: timedelta) -> str | None:
        """Take the list's lease; return None on success, else the live holder's name."""
        expires = now + ttl
        with self.tx.begin() as conn:
            taken = conn.execute(
                update(leases)
                .where(
                    leases.c.list_id == list_id,
                    or_(leases.c.expires_at < now, leases.c.holder == holder),
                )
                .values(holder=holder, expires_at=expires)
            ).rowcount
        if taken:
            return None
        try:
            with self.tx.begin() as conn:
                conn.execute(
                    insert(leases).values(list_id=list_id, holder=holder, expires_at=expires)
                )
            return None
        except IntegrityError:
            with self.tx.begin() as conn:
                current = conn.execute(
                    select(leases.c.holder).where(leases.c.list_id == list_id)
                ).scalar()
            return str(current or "another worker")

    def renew(self, list_id: int, holder: str, now: datetime, ttl: timedelta) -> bool:
        """Extend our lease; False means it was lost (expired and taken over)."""
        with self.tx.begin() as conn:
            return bool(
                conn.execute(
                    update(leases)
                    .where(leases.c.list_id == list_id, leases.c.holder == holder)
                    .values(expires_at=now + ttl)
                ).rowcount
            )

    def release(self, list_id: int, holder: str) -> None:
        """Give the lease back so the next run need not wait for it to expire."""
        with self.tx.begin() as conn:
            conn.execute(
                leases.delete().where(leases.c.list_id == list_id, leases.c.holder == holder)
            )
