"""Which trait a list may take, beside the other lists' claims on trait names.

A trait name belongs to one list at a time, as the config's own check demands of the
names configured now. The config cannot see the names recorded in the state: the trait a
list's messages still carry while its rename waits (or since the list left the config,
its contacts holding it in Segment still), and the old names every one of its messages
removes (sent as null) until the rename is delivered. A list that took such a name would
have its `true` undone by the other list's nulls on every contact the two lists share.
So a list takes a trait (its first run, or a rename) only when no other list's recorded
trait is that name and no other list still removes it, names compared without case as
the config compares them. A rename may retire a name another list is configured to take:
that list's own move then waits until the rename is delivered.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..config import ListSettings
from ..errors import ConfigError
from ..state.traits import Claims


class TraitClashError(ConfigError):
    """A list would take a trait another list carries or still removes."""


def trait_clash(cfg: ListSettings, claims: Claims) -> str | None:
    """Why the list must not move to its configured trait now, with what to do; None when
    it may, or when it carries that trait already (nothing is taken)."""
    if claims.get(cfg.id, (None, ()))[0] == cfg.trait_name:
        return None
    for other, claim in sorted(claims.items()):
        problem = None if other == cfg.id else _against(cfg, other, claim)
        if problem is not None:
            return problem
    return None


def standing_clash(lists: Sequence[ListSettings], claims: Claims) -> str | None:
    """A configured list whose rename still removes a name another list's messages carry:
    a state recorded before names were checked, where every message of the first list
    takes the second list's trait from the contacts they share. None when there is none."""
    for cfg in lists:
        retired = {name.lower(): name for name in claims.get(cfg.id, (None, ()))[1]}
        for other, (carried, _) in sorted(claims.items()):
            if other != cfg.id and carried is not None and carried.lower() in retired:
                return (
                    f"list {cfg.id}: its rename still removes {retired[carried.lower()]}, "
                    f"which list {other}'s messages carry, from every subscriber it sends; "
                    f"sync list {cfg.id} until it has no message left to deliver, then "
                    f"`backfill --list {other}` to send list {other}'s trait again"
                )
    return None


def refuse_clash(cfg: ListSettings, claims: Claims) -> None:
    """Raise TraitClashError when `trait_clash` finds a reason."""
    problem = trait_clash(cfg, claims)
    if problem is not None:
        raise TraitClashError(problem)


def _against(
    cfg: ListSettings, other: int, claim: tuple[str | None, tuple[str, ...]]
) -> str | None:
    takes, (carried, retired) = cfg.trait_name, claim
    if takes.lower() in {name.lower() for name in retired}:
        return (
            f"list {cfg.id}: its trait {takes} is one list {other} still removes from "
            f"every subscriber it sends, since its rename, until that rename is delivered; "
            f"sync list {other} (in the config) until it has no message left to deliver "
            f"(`retry` revives dead ones), then try again, or give list {cfg.id} another "
            f"trait"
        )
    if carried is not None and carried.lower() == takes.lower():
        return (
            f"list {cfg.id}: its trait {takes} is the one list {other}'s messages still "
            f"carry; rename list {other} first (in the config) and sync it until nothing "
            f"is pending, then try again, or give list {cfg.id} another trait"
        )
    return None
