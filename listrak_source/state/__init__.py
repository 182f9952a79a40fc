"""The state: tables, engines and migrations, and the parts a run reads and writes."""

from .database import Database
from .engine import SchemaError, describe_db_error, make_engine, redact_url, upgrade
from .leases import new_holder

__all__ = [
    "Database",
    "SchemaError",
    "describe_db_error",
    "make_engine",
    "new_holder",
    "redact_url",
    "upgrade",
]
