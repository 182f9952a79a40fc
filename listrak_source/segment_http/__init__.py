"""Identify dicts to Segment's /v1/batch a whole batch at a time, with one answer per batch."""

from .answers import Accepted, Answer, Permanent, Transient
from .batches import Batch, Refused, pack

__all__ = ["Accepted", "Answer", "Batch", "Permanent", "Refused", "Transient", "pack"]
