"""How a contact is named where people read: a short stable reference, never the address."""

from __future__ import annotations

import hashlib

REF_LENGTH = 12


def contact_ref(email: str) -> str:
    """A short hash of the email key: the same in status, logs and `lookup`, and no address."""
    key = email.strip().lower().encode("utf-8", "surrogatepass")
    return hashlib.sha256(key).hexdigest()[:REF_LENGTH]
