"""Identify dicts to Segment's /v1/batch a whole batch at a time, with one answer per batch.

`deliver_batches(messages, BatchPoster(write_key, host, ...))` packs (message id, identify)
pairs into batches under Segment's limits, posts each through segment-analytics-python's
request function, splits a refused batch until the messages at fault are isolated, and stops
at the first outage, leaving the rest due for the next run.
"""

from .answers import Accepted, Answer, Permanent, Transient
from .batches import Batch, Refused, pack
from .deliver import Outcome, Poster, deliver_batches
from .poster import BatchPoster

__all__ = [
    "Accepted",
    "Answer",
    "Batch",
    "BatchPoster",
    "Outcome",
    "Permanent",
    "Poster",
    "Refused",
    "Transient",
    "deliver_batches",
    "pack",
]
