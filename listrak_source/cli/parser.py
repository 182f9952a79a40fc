"""The command line's shape: sub-commands, options, and the help text of each.

Kept free of the worker's heavy imports: `--help` and `--version` start in a blink.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import date
from typing import Any

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
LISTRAK_SOURCE_LISTRAK__CLIENT_SECRET. The options above go before or after the
command. `listrak-source COMMAND --help` says what a command does.

Exit status: 0 success, 1 the run did not fully succeed (see `status`),
2 configuration or environment error. `status` exits with its verdict:
0 healthy, 1 degraded, 2 failing.
Start with `listrak-source demo` to see the whole pipeline without an account.
"""

# The exit statuses most commands share; a command's help adds its own meaning of 1.
CONFIG_EXIT = "  2  configuration or environment error: a person must fix something first"
RUN_EXITS = (
    "  0  every list's run is ok: scanned, nothing held or skipped, everything delivered\n"
    "  1  a run did not finish everything (partial, held, stopped, failed, skipped);\n"
    "     each list's line says what is left, and `status` shows it\n" + CONFIG_EXIT
)
READ_EXITS = "  0  done\n" + CONFIG_EXIT


def _global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """The options every command takes, before or after its name.

    Only the top-level parser has defaults; a sub-command's copy is SUPPRESSed, so an
    option given before the command is not reset by the sub-command's own default.
    """

    def default(value: object) -> Any:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--config",
        metavar="PATH",
        default=default(None),
        help="config file (default: $LISTRAK_SOURCE_CONFIG or ./config.toml)",
    )
    parser.add_argument(
        "--debug", action="store_true", default=default(False), help="debug logs and tracebacks"
    )
    parser.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        default=default(False),
        help="no progress; log only warnings and errors (results are still shown)",
    )
    parser.add_argument(
        "--log-format",
        choices=("auto", "text", "json"),
        default=default("auto"),
        help="log format on stderr (auto: text on a terminal, else JSON)",
    )


class _Version(argparse.Action):
    """--version, reading the installed distribution's metadata only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_args: object, **_kw: object) -> None:
        from importlib.metadata import version  # noqa: PLC0415 - only for --version

        print(f"{PROG} {version(PROG)}")
        parser.exit()


class Commands:
    """Adds sub-commands that share the global options, help layout and no abbreviations."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self._sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(self, name: str, summary: str, does: str, exits: str) -> argparse.ArgumentParser:
        """A command: `summary` in the command list; `does` (what it does to Listrak and
        Segment) and `exits` (its exit statuses) in its own --help."""
        parser = self._sub.add_parser(
            name,
            help=summary,
            description=f"{summary[0].upper()}{summary[1:]}.\n\n{does.strip()}",
            epilog=f"Exit status:\n{exits}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            # A safety flag must be typed whole: `--c` is not `--confirm`.
            allow_abbrev=False,
        )
        _global_options(parser, defaults=False)
        return parser


def _lists(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--list",
        dest="lists",
        type=int,
        action="append",
        metavar="ID",
        help="only this list id (repeatable; default: every configured list)",
    )


def _dry_run(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--dry-run", action="store_true", help=f"{what}; change and send nothing")


def _addresses(parser: argparse.ArgumentParser, verb: str) -> None:
    """`lookup` and `explain` take addresses alike and answer alike."""
    parser.add_argument("emails", nargs="+", metavar="EMAIL", help=f"an address to {verb}")
    _json(parser)


def _address_exits(known: str) -> str:
    return f"  0  {known} every address\n  1  an address is unknown here\n" + CONFIG_EXIT


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output (JSON)")


def _count(text: str) -> int:
    value = int(text) if text.isdigit() else -1
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
        allow_abbrev=False,
    )
    _global_options(parser, defaults=True)
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    commands = Commands(parser)
    _subscriber_commands(commands)
    _audience_commands(commands)
    _activity_commands(commands)
    _state_commands(commands)
    return parser


def _subscriber_commands(commands: Commands) -> None:
    p = commands.add(
        "sync",
        "one pass over the configured lists",
        """
Reads each list's subscribers from Listrak (read only) and sends Segment one
identify per change: the list's trait true when a contact subscribes, null when it
leaves, a new userId when its field changed. What Segment does not accept waits
for the next run. --dry-run prints the identify calls as JSON lines on stdout and
sends and stores nothing.""",
        RUN_EXITS,
    )
    _lists(p)
    _dry_run(p, "print the identify calls as JSON lines")
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
    commands.add(
        "run",
        "the daemon: sync each list on its schedule, serve the audience receiver and "
        "push audience values, until SIGTERM",
        """
Does what `sync` does (Listrak read, identify calls to Segment) for each list on
schedule.interval or schedule.cron, serves the receiver Segment posts Engage
audiences to, and writes their values to Listrak profile fields (push). The first
SIGTERM or SIGINT finishes the page in hand and delivers what is stored.""",
        "  0  stopped by a signal after delivering what was stored\n" + CONFIG_EXIT,
    )
    p = commands.add(
        "backfill",
        "re-send every subscribed contact with fresh messageIds",
        """
Reads each list from Listrak and sends Segment an identify for every current
subscriber (trait true, with its userId) under fresh message ids, as when Segment
was emptied or a destination added. Changes its scan finds go out too. Without
--confirm it only says how many contacts it would send, and sends nothing.""",
        "  0  with --confirm: every list's run is ok\n"
        "  1  without --confirm: after saying what it would send; with it: a run did\n"
        "     not finish everything (see `status`)\n" + CONFIG_EXIT,
    )
    _lists(p)
    p.add_argument(
        "--confirm", action="store_true", help="do it; without it, say how many would be sent"
    )
    p = commands.add(
        "baseline",
        "adopt what Listrak holds now as already sent; send nothing",
        """
Reads each list from Listrak and records its subscribers as already known to
Segment, sending nothing: for a team moving over from Listrak's own Segment source,
whose profiles already carry the traits. Later runs send only what changes.""",
        RUN_EXITS,
    )
    _lists(p)
    p = commands.add(
        "rename-trait",
        "send a list's new trait to every subscriber and remove the old one",
        """
After a list's `trait` changed in the config: sends Segment, for every subscriber,
the new trait true and the old one null, then syncs the list. Without --confirm it
only says how many would be sent, and sends nothing. Listrak is only read.""",
        "  0  without --confirm: nothing to rename; with it: the list's run is ok\n"
        "  1  without --confirm: after saying what it would send; with it: the run\n"
        "     did not finish everything (see `status`)\n" + CONFIG_EXIT,
    )
    p.add_argument("--list", type=int, required=True, metavar="ID", help="the renamed list")
    p.add_argument(
        "--confirm", action="store_true", help="do it; without it, say what would be sent"
    )


def _audience_commands(commands: Commands) -> None:
    p = commands.add(
        "push",
        "send pending audience values to Listrak once (cron style), then exit",
        """
Writes the Engage audience values the receiver stored to Listrak check-box profile
fields (Listrak's bulk profile-field route), for current subscribers only. Segment
is not called. --dry-run prints each request and its exact JSON body instead.""",
        "  0  Listrak accepted every value due (values held for non-subscribers wait)\n"
        "  1  some values wait: an outage, a refusal, a held mass uncheck, or stopped\n"
        + CONFIG_EXIT,
    )
    _lists(p)
    _dry_run(p, "print each request to Listrak and its exact JSON body")
    p.add_argument(
        "--allow-mass-flip",
        action="store_true",
        help="let a push uncheck more than push.max_flip_ratio of a field's checked contacts",
    )
    p = commands.add(
        "explain",
        "one email's audience chain: events, desired, sent, read back",
        """
Reads the local database only (neither Listrak nor Segment is called): the
address's subscriptions, the Engage events kept, and per audience the desired
value, what was sent to Listrak and what the read-back saw.""",
        _address_exits("something is kept about"),
    )
    _addresses(p, "explain")


def since_date(value: str) -> date:
    """--since: YYYY-MM-DD."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _activity_commands(commands: Commands) -> None:
    does = """
Reads every message each activity list sent since the date (Listrak only read)
and {what}.
Identify calls are not touched; `[activity] events` decides which events.
Resumable: a message read to its end is not read again."""
    for name, summary, what in (
        (
            "activity-backfill",
            "send the email activity since a date as track events, with their own times",
            "sends Segment each fact once,\nas a track event with its own time",
        ),
        (
            "activity-baseline",
            "record the email activity since a date as already sent; send nothing",
            "records each fact as already sent,\nsending nothing: for a team moving over "
            "from Listrak's own Segment source;\nlater syncs send only what is newer",
        ),
    ):
        p = commands.add(name, summary, does.format(what=what), RUN_EXITS)
        p.add_argument(
            "--since", type=since_date, required=True, metavar="YYYY-MM-DD", help="first day"
        )
        _lists(p)
        _dry_run(p, "print the track calls as JSON lines")


def _state_commands(commands: Commands) -> None:
    p = commands.add(
        "retry",
        "re-queue dead rows so the next sync delivers them",
        """
Gives dead identify calls (and dead audience values) their attempts back in the
local database; the next sync sends them to Segment (push: to Listrak). Nothing is
sent now.""",
        READ_EXITS,
    )
    _lists(p)
    p = commands.add(
        "status",
        "per list: recent runs, pending and dead messages, next run; then a verdict",
        """
Reads the local database only (neither Listrak nor Segment is called; a daemon's
metrics port is asked whether it runs): per list the last run and its result, the
last ok, subscribers, messages waiting for Segment and why, dead rows, skipped
contacts, the next run (OVERDUE when late) and who is syncing it now; lists the
config no longer names; then the audiences, and last the verdict with its reasons.
Times are UTC, ISO 8601 with the offset. Contacts are named by reference, never
by address.""",
        "  0  healthy\n"
        "  1  degraded: something waits or needs a look (a failed or partial run, dead\n"
        "     rows, a list never run)\n"
        "  2  failing: a list overdue, its last 3 runs failed, removals or a push held;\n"
        "     or a configuration or database error",
    )
    _json(p)
    p.add_argument(
        "--runs",
        type=_count,
        default=0,
        metavar="N",
        help="also show each list's last N runs (for cron and timer installs without metrics)",
    )
    p = commands.add(
        "lookup",
        "a contact's reference and state per list, from an address you give",
        """
Reads the local database only (neither Listrak nor Segment is called): each
address's contact reference and, per list, whether it is subscribed and whether
Segment has its last change (delivered, waiting or dead, with Segment's answer).""",
        _address_exits("a list stores"),
    )
    _addresses(p, "look up")
    commands.add(
        "check",
        "check config, database, Listrak credentials and list ids",
        """
Is it safe to start? Checks the config, schedule and database, opens a connection
to segment.host (no event is sent), asks Listrak for a token, each list and each
profile field (read only), and prints one row per check.""",
        "  0  ready to run\n  2  a check failed: the row marked FAIL says what to fix",
    )
    commands.add(
        "migrate",
        "upgrade the database schema to the newest version",
        """
Upgrades the local database's schema (other commands that write do it too).
Neither Listrak nor Segment is called.""",
        READ_EXITS,
    )
    p = commands.add(
        "demo",
        "the whole pipeline against a local simulator; no account",
        """
Starts a Listrak simulator and a Segment sink on loopback, syncs, changes contacts
and syncs again, then shows what was sent. No real Listrak or Segment is called.""",
        "  0  the sink ended up holding the simulator's truth\n  1  it did not",
    )
    p.add_argument("--contacts", type=int, default=2000, help="contacts in the demo list")
    p.add_argument("--cycles", type=int, default=3, help="change-and-sync cycles to show")
