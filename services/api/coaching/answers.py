"""The coaching answers (SPEC 5.2): a peer group's window sums read in one statement, coached at
once, and served from the snapshot-keyed cache (services/api/kit/reads.py) while nothing was committed.

One group, every active rep of the tenant over one window, serves the team view and the view of
every active rep whose timezone gives the same days: 200 reps' coaching is one read.

The answers are hot, so they are written as plain values straight to JSON rather than through
`RepCoachingOut` and `TeamCoachingOut`; tests/api/test_contracts.py proves the bytes are the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.api.coaching import queries
from services.api.coaching.schemas import Scope
from services.api.coaching.service import (
    COACHING_METRICS,
    Coached,
    Table,
    coach_table,
    standing_of,
    table_from_sums,
)
from services.api.kit.errors import NotFound
from services.api.kit.reads import AnswerKey, Reads, json_answer, rollup_read
from services.api.kit.snapshot import Seen, answer_key, tenant_probe
from services.api.kit.windows import WindowSpec

GROUP = "coaching_group"
TEAM = "coaching_team"


@dataclass
class Group:
    """A peer group read at one snapshot: the active reps (and, in one rep's own view, that rep)
    over one window. Its coaching per (min_sample, by_team) is computed once, when first asked."""

    sums: queries.GroupSums
    table: Table
    index: dict[str, int]
    _coached: dict[tuple[int, bool], Coached] = field(default_factory=dict)

    @classmethod
    def of(cls, sums: queries.GroupSums) -> Group:
        table = table_from_sums(sums.rows)
        return cls(sums, table, {rep_id: i for i, rep_id in enumerate(table.rep_ids)})

    def coached(self, min_sample: int, by_team: bool) -> Coached:
        key = (min_sample, by_team)
        found = self._coached.get(key)
        if found is None:
            found = self._coached[key] = coach_table(self.table, min_sample=min_sample, by_team=by_team)
        return found


async def _group(
    reads: Reads,
    tenant: str,
    probe: Seen,
    *,
    spec: WindowSpec,
    now: datetime,
    zone_of: str | None,
    including: str | None,
    metric: str,  # the read's name in the rollup read histogram
) -> Group | None:
    """The group of active reps (and `including`) at the probe's snapshot, read when not cached."""

    async def read() -> tuple[AnswerKey, Group | None]:
        with rollup_read(metric):
            found = await queries.group_sums(
                reads.pool, tenant, spec, now, zone_of=zone_of, including=including
            )
        if found is None:
            return answer_key(GROUP, probe, tenant, including), None
        return answer_key(GROUP, found, tenant, including), Group.of(found)

    return await reads.cache.get(GROUP, answer_key(GROUP, probe, tenant, including), read)


def _window(group: Group) -> dict[str, Any]:
    return {"from": group.sums.start, "to": group.sums.end, "as_of": group.sums.as_of}


def rep_coaching_body(group: Group, rep_id: str, *, scope: Scope, min_sample: int) -> dict[str, Any]:
    """`RepCoachingOut` of a rep of the group, as plain values for the JSON writer."""
    i = group.index[rep_id]
    coached = group.coached(min_sample, scope == "team")
    metrics = {}
    for name in COACHING_METRICS:
        s = standing_of(group.table, coached, i, name)
        metrics[name] = {
            "value": s.value,
            "sample": s.sample,
            "peers": s.peers,
            "peer_median": s.peer_median,
            "percentile": s.percentile,
            "gap_pct": s.gap_pct,
            "z": s.z,
        }
    head = {"rep_id": rep_id, "team": group.table.teams[i], "scope": scope, "min_sample": min_sample}
    return {**head, **_window(group), "metrics": metrics, "focus": list(coached.focus[i])}


def team_coaching_body(group: Group, *, scope: Scope, team: str | None, min_sample: int) -> dict[str, Any]:
    """`TeamCoachingOut` of the group (only the reps of `team`, if given), as plain values."""
    coached = group.coached(min_sample, scope == "team")
    reps = [
        {"rep_id": rep_id, "team": rep_team, "focus": list(focus)}
        for rep_id, rep_team, focus in zip(group.table.rep_ids, group.table.teams, coached.focus, strict=True)
        if team is None or rep_team == team
    ]
    head = {"scope": scope, "team": team, "min_sample": min_sample}
    return {**head, **_window(group), "reps": reps}


async def rep_coaching(
    reads: Reads,
    *,
    tenant: str,
    rep_id: str,
    scope: Scope,
    min_sample: int,
    spec: WindowSpec,
    now: datetime,
) -> bytes:
    """The JSON of `RepCoachingOut`. The window follows the rep's timezone; its peers are the other
    active reps of the tenant (scope `team`: of its team). An inactive rep is coached too."""
    probe = await queries.rep_probe(reads.pool, tenant, rep_id, spec, now)
    if probe is None:
        raise _no_rep()
    # An active rep's group is every active rep: one cached group serves all of them. When the rep
    # changed since the probe (or shared a read begun for another rep), it reads its own group.
    for including in (None if probe.active else rep_id, rep_id):
        group = await _group(
            reads,
            tenant,
            probe,
            spec=spec,
            now=now,
            zone_of=rep_id,
            including=including,
            metric="coaching_rep",
        )
        if group is not None and rep_id in group.index:
            return json_answer(rep_coaching_body(group, rep_id, scope=scope, min_sample=min_sample))
    raise _no_rep()


async def team_coaching(
    reads: Reads,
    *,
    tenant: str,
    scope: Scope,
    team: str | None,
    min_sample: int,
    spec: WindowSpec,
    now: datetime,
) -> bytes:
    """The JSON of `TeamCoachingOut`: every active rep (of `team`, if given) with its focus; peers
    per `scope`. The window follows the tenant's timezone."""
    probe = await tenant_probe(reads.pool, tenant, spec, now)
    if probe is None:
        raise _no_team()
    parts = (tenant, scope, team, min_sample)

    async def answer() -> tuple[AnswerKey, bytes]:
        group = await _group(
            reads, tenant, probe, spec=spec, now=now, zone_of=None, including=None, metric="coaching_team"
        )
        if group is None or (team is not None and team not in group.table.teams):
            # The same answer for another tenant's team and a team nobody is in.
            raise _no_team()
        body = json_answer(team_coaching_body(group, scope=scope, team=team, min_sample=min_sample))
        return answer_key(TEAM, group.sums, *parts), body

    return await reads.cache.get(TEAM, answer_key(TEAM, probe, *parts), answer)


def _no_rep() -> NotFound:
    return NotFound("no such rep")


def _no_team() -> NotFound:
    return NotFound("no active rep in this team")
