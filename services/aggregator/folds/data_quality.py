"""The data-quality fold, pure part: vendor identities that resolve to no rep, with how much activity
carries them (SPEC 4).

A vendor event whose rep alias is unknown is archived with `rep_id` null and counted nowhere per rep
("unassigned"). A CRM whose events are attributed through entity state (crm.py) names owners in
property updates instead; an update naming an unknown owner leaves that owner's deals and leads
unassigned. Both count here per tenant, source and identity, with the first and last time they
occurred at, until an operator adds the alias and `salesloop rebuild` re-attributes them (the
rebuild recomputes this table from the archive, so resolved identities drop out of it).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from services.core.crm import CrmUpdate
from services.core.events import Source
from services.core.wire import Event

Key = tuple[str, str, str, str]  # tenant, source, alias kind, alias value

_OWN_API: str = Source.API.value  # events sent to our API name reps themselves, never identities


def unresolved_rows(events: Iterable[Event], updates: Iterable[CrmUpdate]) -> list[tuple[Any, ...]]:
    """`data_quality` increments (tenant, source, kind, value, events, first_seen, last_seen), in key
    order. One pass, one running count per identity: an import of a CRM whose owners are not mapped yet
    brings thousands of events naming a few dozen identities."""
    seen: dict[tuple[str, str, tuple[str, str]], list[Any]] = {}  # -> [events, first_seen, last_seen]
    for e in events:
        alias = e.rep_alias
        if alias is not None and e.rep_id is None and e.source != _OWN_API:
            _count(seen, (e.tenant, e.source, alias), e.occurred_at)
    for u in updates:
        alias = u.rep_alias
        if u.property == "owner" and u.rep_id is None and alias is not None and u.attribution is not None:
            _count(seen, (u.tenant, u.source, alias), u.occurred_at)
    return [(tenant, source, *alias, *counts) for (tenant, source, alias), counts in sorted(seen.items())]


def _count(seen: dict[tuple[str, str, tuple[str, str]], list[Any]], key: tuple[str, str, tuple[str, str]],
           at: datetime) -> None:  # fmt: skip
    found = seen.get(key)
    if found is None:
        seen[key] = [1, at, at]
        return
    found[0] += 1
    if at < found[1]:
        found[1] = at
    elif at > found[2]:
        found[2] = at
