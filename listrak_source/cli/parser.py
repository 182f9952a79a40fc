"""The command line's shape: sub-commands, options, and the help text of each."""

from __future__ import annotations

import argparse

PROG = "listrak-source"
DESCRIPTION = """\
Sync Listrak email-list subscriptions into Segment as identify calls.

Each configured list's subscribers are read from Listrak, compared with the
state table, and every change becomes one identify with a Listrak_list_<id>
trait: true while subscribed, null (removed) when not.
"""
EPILOG = """\
Configuration comes from config.toml (or --config PATH, or $LISTRAK_SOURCE_CONFIG),
and every key can be overridden by environment variables such as
LISTRAK_SOURCE_LISTRAK__CLIENT_SECRET. Exit status: 0 success, 1 the run did not
fully succeed (see `status`), 2 configuration or environment error.
Start with `listrak-source demo` to see the whole pipeline without an account.
"""


def _lists(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--list",
        dest="lists",
        type=int,
        action="append",
        metavar="ID",
        help="only this list id (repeatable; default: every configured list)",
    )


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"expected a number of runs from 0 to 1000, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; `--help` on each sub-command says what it does."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $LISTRAK_SOURCE_CONFIG or ./config.toml)",
    )
    parser.add_argument("--debug", action="store_true", help="debug logs and full tracebacks")
    parser.add_argument(
        "--log-format",
        choices=("auto", "text", "json"),
        default="auto",
        help="log format on stderr (auto: text on a terminal, else JSON)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("sync", help="one pass over the configured lists")
    _lists(p)
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the identify calls as JSON lines; change and send nothing",
    )
    p.add_argument(
        "--allow-mass-removal",
        action="store_true",
        help="let a sweep remove more than delivery.max_removal_ratio of a list",
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="scan the whole list even where incremental polling is configured",
    )
    sub.add_parser(
        "run",
        help="the daemon: sync each list on its schedule, serve the audience receiver and "
        "push audience values, until SIGTERM",
    )
    p = sub.add_parser("backfill", help="re-send every subscribed contact with fresh messageIds")
    _lists(p)
    p = sub.add_parser(
        "baseline", help="adopt what Listrak holds now as already sent; send nothing"
    )
    _lists(p)
    p = sub.add_parser("retry", help="re-queue dead rows so the next sync delivers them")
    _lists(p)
    p = sub.add_parser(
        "rename-trait",
        help="send a list's new trait to every subscriber and remove the old one",
    )
    p.add_argument("--list", type=int, required=True, metavar="ID", help="the renamed list")
    p.add_argument(
        "--confirm", action="store_true", help="do it; without it, say what would be sent"
    )
    p = sub.add_parser(
        "push", help="send pending audience values to Listrak once (cron style), then exit"
    )
    _lists(p)
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print each request to Listrak and its exact JSON body; change and send nothing",
    )
    p.add_argument(
        "--allow-mass-flip",
        action="store_true",
        help="let a push uncheck more than push.max_flip_ratio of a field's checked contacts",
    )
    p = sub.add_parser(
        "explain", help="one email's audience chain: events, desired, sent, read back"
    )
    p.add_argument("email", help="the email address to explain")
    p = sub.add_parser(
        "status",
        help="per list: recent runs, pending and dead messages, next run; then a verdict",
        description="Per list: last run and last ok (UTC, with offset), pending and dead "
        "messages, next run and overdue marks; audiences; then a verdict.",
        epilog="exit status: 0 healthy, 1 degraded (something waits or needs a look), "
        "2 failing (overdue, failing runs in a row, removals held) or a configuration error",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--runs",
        type=_count,
        default=0,
        metavar="N",
        help="also show each list's last N runs (for cron and timer installs without metrics)",
    )
    p = sub.add_parser(
        "lookup", help="a contact's reference and state per list, from an address you give"
    )
    p.add_argument("emails", nargs="+", metavar="EMAIL", help="the address to look up")
    sub.add_parser("check", help="check config, database, Listrak credentials and list ids")
    sub.add_parser("migrate", help="upgrade the database schema to the newest version")
    p = sub.add_parser("demo", help="the whole pipeline against a local simulator; no account")
    p.add_argument("--contacts", type=int, default=2000, help="contacts in the demo list")
    p.add_argument("--cycles", type=int, default=3, help="change-and-sync cycles to show")
    return parser
