"""What every stateful property test shares: the example database kept in the repository.

Hypothesis stores each failing example it finds here, so a failure found once is replayed by
every later run, on every machine. CI reads it without writing: a run there must not leave
the checkout different from the commit it tests.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis.database import (
    DirectoryBasedExampleDatabase,
    ExampleDatabase,
    ReadOnlyDatabase,
)

EXAMPLES_DIR = Path(__file__).resolve().parent / "property-examples"


def example_database() -> ExampleDatabase:
    """The repository's examples: read and written here, only read in CI."""
    examples = DirectoryBasedExampleDatabase(EXAMPLES_DIR)
    return ReadOnlyDatabase(examples) if os.environ.get("CI") == "true" else examples
