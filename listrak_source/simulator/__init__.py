"""Loopback fakes of Listrak's Email API v1 and Segment's /v1/batch, for tests, demo and benchmarks.

ListrakSimulator serves contact data that tests change while it runs (add_list, add_field,
seed, subscribe, unsubscribe, set_field, remove, add_raw, override; truth() says what a
correct sync ends up with), takes profile-field imports on the bulk route (bulk_requests,
imports, apply_imports()), and serves messages with their cumulative activity
(add_campaign, send_message, add_link, open, click, bounce, complain, convert).
SegmentSink keeps what the worker sends; rebuild_profiles() replays it as Segment would.
Both switch failures and behaviours on per test through `.faults`, and run from the command
line with `python -m listrak_source.simulator`. The webhooks module plays Segment's Webhooks
(Actions) destination and builds Engage audience events.
"""

from ._faults import ListrakFaults, SinkFaults
from ._http import RequestRecord
from ._imports import BulkRequest, ListImport
from ._listrak import ListrakSimulator, PageStats
from ._sink import SegmentSink, SinkStats, rebuild_profiles

__all__ = [
    "BulkRequest",
    "ListImport",
    "ListrakFaults",
    "ListrakSimulator",
    "PageStats",
    "RequestRecord",
    "SegmentSink",
    "SinkFaults",
    "SinkStats",
    "rebuild_profiles",
]
