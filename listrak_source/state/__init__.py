"""The state: tables, engines and migrations, and the parts a run reads and writes."""

from .database import Database
from .engine import SchemaError, describe_db_error, make_engine, redact_url, upgrade
from .locks import new_holder
from .snapshot import sqlite_copy

__all__ = [
    "Database",
    "SchemaError",
    "describe_db_error",
    "make_engine",
    "new_holder",
    "redact_url",
    "sqlite_copy",
    "upgrade",
]
