"""Segment: identify calls delivered to its HTTP API, or printed by a dry run."""

from .dry_run import PrintingEmitter
from .emitter import SegmentEmitter

__all__ = ["PrintingEmitter", "SegmentEmitter"]
