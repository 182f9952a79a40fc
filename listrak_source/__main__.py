"""`python -m listrak_source` is the same as the console script."""

from .cli import run

run()
