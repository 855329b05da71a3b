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
    order."""
    found: list[tuple[Key, datetime]] = [
        ((e.tenant, e.source, *e.rep_alias), e.occurred_at)
        for e in events
        if e.rep_id is None and e.rep_alias is not None and e.source != _OWN_API
    ]
    found += [
        ((u.tenant, u.source, *u.rep_alias), u.occurred_at)
        for u in updates
        if u.property == "owner"
        and u.rep_id is None
        and u.rep_alias is not None
        and u.attribution is not None
    ]
    seen: dict[Key, tuple[int, datetime, datetime]] = {}
    for key, at in found:
        n, first, last = seen.get(key, (0, at, at))
        seen[key] = (n + 1, min(first, at), max(last, at))
    return [(*key, *counts) for key, counts in sorted(seen.items())]
