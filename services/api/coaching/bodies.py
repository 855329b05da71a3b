"""The coaching answers as plain values for the JSON writer (`RepCoachingOut`, `TeamCoachingOut`).

The answers are hot, so they are written straight to JSON rather than through the response models;
tests/api/test_contracts.py proves the bytes are the same.

A rep's `metrics` and `focus` are SPEC 5.2's: its standing against the whole group, the counts as
they are (`Group.coached`). Its `priorities` and `peer_group` are SPEC 5.9's: against the whole
group with the activity prorated, or for a ramping rep with enough tenure peers against those
(`TenureCoaching`). `Ramp` says which applies to whom. Both come from the group's one read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.api.coaching.priorities import Priority
from services.api.coaching.queries import GroupSums
from services.api.coaching.schemas import Scope
from services.api.coaching.service import (
    COACHING_METRICS,
    Coached,
    Table,
    coach_row,
    coach_table,
    standing_of,
)
from services.api.coaching.tables import tables_from_sums
from services.api.coaching.tenure import TenureCoaching, tenure_month


@dataclass
class Group:
    """A peer group read at one snapshot: the active reps (and, in one rep's own view, that rep)
    over one window. `table` holds their counts as they are (SPEC 5.2), `prorated` the same with
    the activity prorated (SPEC 5.9; `table` itself when nobody is). Its coaching per (min_sample,
    by_team) is computed once, when first asked. `months` holds each row's tenure month at the
    window's start (None: no hire date)."""

    sums: GroupSums
    table: Table
    prorated: Table
    index: dict[str, int]
    months: dict[int, int | None]
    _coached: dict[tuple[int, bool], Coached] = field(default_factory=dict)

    @classmethod
    def of(cls, sums: GroupSums) -> Group:
        table, prorated = tables_from_sums(sums.rows, sums.days)
        months = {i: tenure_month(row.get("hired_at"), sums.start) for i, row in enumerate(sums.rows)}
        return cls(sums, table, prorated, {rep_id: i for i, rep_id in enumerate(table.rep_ids)}, months)

    def coached(self, min_sample: int, by_team: bool) -> Coached:
        key = (min_sample, by_team)
        found = self._coached.get(key)
        if found is None:
            found = self._coached[key] = coach_table(
                self.table, min_sample=min_sample, by_team=by_team, prorated=self.prorated
            )
        return found


@dataclass(frozen=True)
class Ramp:
    """The ramp length an answer used and the priorities of its ramping reps against tenure peers."""

    months: int | None
    tenure: TenureCoaching | None = None

    def priorities(
        self, group: Group, i: int, scope: Scope, min_sample: int
    ) -> tuple[tuple[Priority, ...], str]:
        """Row `i`'s priorities (SPEC 5.9) and the peer group they were judged against."""
        return self.tenure_priorities(i) or (group.coached(min_sample, scope == "team").priorities[i], scope)

    def tenure_priorities(self, i: int) -> tuple[tuple[Priority, ...], str] | None:
        """Row `i`'s priorities against its tenure peers and their peer group; None when it has none."""
        if self.tenure is not None and i in self.tenure.rows:
            return self.tenure.priorities[self.tenure.rows[i]], f"tenure_month_{self.tenure.months[i]}"
        return None


NO_RAMP = Ramp(None)


def _window(group: Group) -> dict[str, Any]:
    return {"from": group.sums.start, "to": group.sums.end, "as_of": group.sums.as_of}


def priority_body(p: Priority) -> dict[str, Any]:
    return {
        "metric": p.metric,
        "value": p.value,
        "peer_median": p.peer_median,
        "z": p.z,
        "gap_pct": p.gap_pct,
        "impact_monthly": p.impact_monthly,
    }


def standing_body(table: Table, coached: Coached, i: int, name: str, j: int | None = None) -> dict[str, Any]:
    """Row `i` of the table on metric `name`, with its standing from row `j` of `coached` (default `i`)."""
    s = standing_of(table, coached, i, name, j)
    return {
        "value": s.value,
        "sample": s.sample,
        "peers": s.peers,
        "peer_median": s.peer_median,
        "percentile": s.percentile,
        "gap_pct": s.gap_pct,
        "z": s.z,
    }


def rep_coaching_body(
    group: Group, rep_id: str, *, scope: Scope, min_sample: int, ramp: Ramp = NO_RAMP, alone: bool = False
) -> dict[str, Any]:
    """`RepCoachingOut` of a rep of the group, as plain values for the JSON writer. `alone`: coach
    that rep only (service.coach_row), when no other rep of the group will be asked for."""
    i = group.index[rep_id]
    by_team = scope == "team"
    if alone:
        coached, j = (
            coach_row(group.table, i, min_sample=min_sample, by_team=by_team, prorated=group.prorated),
            0,
        )
    else:
        coached, j = group.coached(min_sample, by_team), i
    priorities, peer_group = ramp.tenure_priorities(i) or (coached.priorities[j], scope)
    metrics = {name: standing_body(group.table, coached, i, name, j) for name in COACHING_METRICS}
    head = {
        "rep_id": rep_id,
        "team": group.table.teams[i],
        "scope": scope,
        "peer_group": peer_group,
        "min_sample": min_sample,
        "ramp_months": ramp.months,
    }
    return {
        **head,
        **_window(group),
        "metrics": metrics,
        "focus": list(coached.focus[j]),
        "priorities": [priority_body(p) for p in priorities],
    }


def team_coaching_body(
    group: Group, *, scope: Scope, team: str | None, min_sample: int, ramp: Ramp = NO_RAMP
) -> dict[str, Any]:
    """`TeamCoachingOut` of the group (only the reps of `team`, if given), as plain values."""
    coached = group.coached(min_sample, scope == "team")
    reps = []
    for i, (rep_id, rep_team) in enumerate(zip(group.table.rep_ids, group.table.teams, strict=True)):
        if team is not None and rep_team != team:
            continue
        priorities, peer_group = ramp.priorities(group, i, scope, min_sample)
        reps.append(
            {
                "rep_id": rep_id,
                "team": rep_team,
                "peer_group": peer_group,
                "focus": list(coached.focus[i]),
                "priorities": [priority_body(p) for p in priorities],
            }
        )
    head = {
        "scope": scope,
        "peer_group": scope,
        "team": team,
        "min_sample": min_sample,
        "ramp_months": ramp.months,
    }
    return {**head, **_window(group), "reps": reps}
