"""Loopback fakes of Listrak's Email API and Segment's /v1/batch, for tests, demo and benchmarks."""

from ._faults import ListrakFaults, SinkFaults
from ._http import RequestRecord
from ._listrak import ListrakSimulator, PageStats
from ._sink import SegmentSink, SinkStats, rebuild_profiles

__all__ = [
    "ListrakFaults",
    "ListrakSimulator",
    "PageStats",
    "RequestRecord",
    "SegmentSink",
    "SinkFaults",
    "SinkStats",
    "rebuild_profiles",
]
