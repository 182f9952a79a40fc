"""Run the Listrak simulator and the Segment sink in one process, for manual use and benchmarks."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from types import FrameType

from ._listrak import ListrakSimulator
from ._sink import SegmentSink
from .control import Control

_EPILOG = """\
Prints one JSON line (base_url, auth_url, segment_host, credentials), then serves until
SIGTERM or SIGINT. GET <origin>/_sim/stats and <segment_host>/_sink/stats report what
each side served and how long it spent doing so.

POST <base_url>/List/ID/Contact/SegmentationField starts an import of profile field
values: it applies after --import-delay seconds (checked on the next request) and only to
current subscribers; a check box set by it reads back as --checked-value.

Changes and outages from outside, as JSON over HTTP on the Listrak port, outside
Listrak's own API (answers are JSON; GET <origin>/_control/lists shows the lists):
  POST <origin>/_control/churn        {"list_id": 1001, "count": 30}
  POST <origin>/_control/subscribe    {"list_id": 1001, "email": "a@example.com",
                                       "fields": {"678": "crm-1"}}
  POST <origin>/_control/unsubscribe  {"list_id": 1001, "email": "a@example.com"}
  POST <origin>/_control/remove       {"list_id": 1001, "email": "a@example.com"}
  POST <origin>/_control/field        {"list_id": 1001, "email": "a@example.com",
                                       "field_id": 678, "value": "x"}
  POST <origin>/_control/outage       {"service": "listrak" or "segment",
                                       "requests": 20, "status": 503}
  POST <origin>/_control/reset        (drops the outages still queued)
  POST <origin>/_control/broadcast    {"list_id": 1001, "message_id": 501, "subject": "Hi"}
                                      (sent now to every subscriber, with link 1)
  POST <origin>/_control/activity     {"list_id": 1001, "message_id": 501,
                                       "email": "a@example.com", "action": "open"}
                                      (or click, bounce, complain, convert with "amount")

example:
  python -m listrak_source.simulator --lists 1001:100000 --lists 1002:500 --field-id 678
  python -m listrak_source.simulator --lists 1001:2000 --field-id 678 --checkbox-field 901 \\
      --port-listrak 18080 --port-sink 18081
"""


def _list_spec(text: str) -> tuple[int, int]:
    list_id, _, count = text.partition(":")
    try:
        return int(list_id), int(count or 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LIST_ID:CONTACTS, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m listrak_source.simulator",
        description="Serve a fake Listrak Email API v1 and a fake Segment /v1/batch on loopback.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--lists", metavar="ID:CONTACTS", type=_list_spec, action="append", default=[],
        help="a list and how many subscribed contacts to generate (repeatable)")  # fmt: skip
    add("--field-id", type=int, help="profile field id half the contacts get a value for")
    add("--checkbox-field", metavar="ID", type=int, action="append", default=[],
        help="a CheckBox profile field on every list (repeatable)")  # fmt: skip
    add("--checked-value", metavar="TEXT", default="on",
        help="what a box checked by an import reads back as (default: %(default)s)")  # fmt: skip
    add("--import-delay", metavar="SECONDS", type=float, default=0.0,
        help="how long a profile-field import takes to apply (default: %(default)s)")  # fmt: skip
    add("--offset-cursors", action="store_true",
        help="cursors hold an offset, so changes mid-scan shift later pages")  # fmt: skip
    add("--client-id", default="sim-client", help="OAuth2 client id (default: %(default)s)")
    add("--client-secret", default="sim-secret", help="OAuth2 secret (default: %(default)s)")
    add("--write-key", default="sink-write-key", help="the sink's write key (default: %(default)s)")
    add("--host", default="127.0.0.1", help="address both servers bind (default: %(default)s)")
    add("--port-listrak", type=int, default=0, help="Listrak port (default: any free one)")
    add("--port-sink", type=int, default=0, help="Segment sink port (default: any free one)")
    add("--seed", type=int, default=0, help="random seed for the generated data")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Start both fakes, announce where they are, serve until told to stop."""
    args = build_parser().parse_args(argv)
    sim = ListrakSimulator(
        args.client_id, args.client_secret, host=args.host, port=args.port_listrak
    )
    fields = [] if args.field_id is None else [args.field_id]
    for list_id, count in args.lists:
        sim.add_list(list_id, field_ids=fields)
        for box in args.checkbox_field:
            sim.add_field(list_id, box, "CheckBox")
        sim.seed(list_id, count, field_id=args.field_id, seed=args.seed + list_id)
    sim.faults.checked_value = args.checked_value
    sim.faults.import_delay = args.import_delay
    sim.faults.offset_cursors = args.offset_cursors
    sink = SegmentSink(args.write_key, host=args.host, port=args.port_sink)
    sim.control = Control(sim, sink, seed=args.seed)
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with sim, sink:
        announce = {
            "base_url": sim.base_url,
            "auth_url": sim.auth_url,
            "segment_host": sink.url,
            "client_id": args.client_id,
            "client_secret": args.client_secret,
            "write_key": args.write_key,
            "lists": {str(list_id): count for list_id, count in args.lists},
            "control": f"{sim.base_url.removesuffix('/email/v1')}/_control/",
        }
        print(json.dumps(announce), flush=True)
        while not done.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
