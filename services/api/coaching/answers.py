"""The coaching answers (SPEC 5.2, 5.9): a peer group's window sums read in one statement, coached at
once, and served from the snapshot-keyed cache (services/api/kit/reads.py) while nothing was committed.

One group, every active rep of the tenant over one window, serves the team view and the view of
every active rep whose timezone gives the same days: 200 reps' coaching is one read. Ramping reps
(SPEC 5.9) need their tenure peers' sums over other windows: one more statement for every tenure
month the answer needs (queries.tenure_sums), cached like the group.

The default ramp length is the tenant's measured one (kit.ramp). Measuring it reads every rep's
first 25 months of rollups, a hundred times what an answer may cost, and it moves with months of
tenure, not with each batch folded: `RampLengths` keeps it per tenant and measures it again in the
background once a quarter of an hour has passed (reads meanwhile use the length known), or at once
when a rep was added or written (hire and leaving dates decide who is ramping).

The bodies are written as plain values (bodies.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime

from services.api.coaching import queries
from services.api.coaching.bodies import Group, Ramp, rep_coaching_body, team_coaching_body
from services.api.coaching.queries import GroupSums
from services.api.coaching.schemas import Scope
from services.api.coaching.service import Table
from services.api.coaching.tables import table_from_sums
from services.api.coaching.tenure import coach_ramping, ramping
from services.api.kit.errors import NotFound
from services.api.kit.ramp import measured_ramp_months
from services.api.kit.reads import AnswerKey, Reads, json_answer, rollup_read
from services.api.kit.snapshot import Seen, answer_key, tenant_probe
from services.api.kit.windows import WindowSpec

__all__ = [
    "Group",
    "Ramp",
    "rep_answer",
    "rep_coaching",
    "rep_coaching_body",
    "team_coaching",
    "team_coaching_body",
]

log = logging.getLogger(__name__)

GROUP = "coaching_group"
TEAM = "coaching_team"
REP = "coaching_rep"
TENURE = "coaching_tenure"


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


Measure = Callable[[Reads, str, datetime, str], Awaitable[int]]


async def _measure(reads: Reads, tenant: str, now: datetime, snapshot: str) -> int:
    return await measured_ramp_months(reads, tenant, now=now, snapshot=snapshot)


class RampLengths:
    """The measured ramp length per tenant, with the quarter hour and reps it was measured for (the
    least recently used tenants dropped beyond `size`).

    Once a tenant's length is known, a new quarter hour with the same reps is served the length
    known and measured again in the background (one measurement per tenant at a time), so no read
    waits for it; a rep added or written is waited for, since hire and leaving dates decide who is
    ramping."""

    def __init__(self, size: int = 4096, measure: Measure = _measure) -> None:
        self._found: OrderedDict[str, tuple[tuple[datetime, str], int]] = OrderedDict()
        self._size = size
        self._measure = measure
        self._refreshing: dict[str, asyncio.Task[None]] = {}

    async def months(self, reads: Reads, tenant: str, group: Group, now: datetime) -> int:
        version = (_quarter_hour(now), group.sums.reps_version)
        found = self._found.get(tenant)
        if found is not None and found[0][1] == version[1]:
            self._found.move_to_end(tenant)
            if found[0] != version and tenant not in self._refreshing:
                task = asyncio.create_task(self._refresh(reads, tenant, version, now, group.sums.snapshot))
                self._refreshing[tenant] = task
            return found[1]
        months = await self._measure(reads, tenant, now, group.sums.snapshot)
        self._keep(tenant, version, months)
        return months

    async def _refresh(
        self, reads: Reads, tenant: str, version: tuple[datetime, str], now: datetime, snapshot: str
    ) -> None:
        try:
            self._keep(tenant, version, await self._measure(reads, tenant, now, snapshot))
        except Exception:  # the length known stays; the next read tries again
            log.warning("measuring the ramp length failed", extra={"tenant": tenant}, exc_info=True)
        finally:
            self._refreshing.pop(tenant, None)

    def _keep(self, tenant: str, version: tuple[datetime, str], months: int) -> None:
        found = self._found.get(tenant)
        if found is not None and found[0][0] > version[0]:
            return  # a newer measurement finished first
        self._found[tenant] = (version, months)
        self._found.move_to_end(tenant)
        while len(self._found) > self._size:
            self._found.popitem(last=False)


RAMP_LENGTHS = RampLengths()


def _quarter_hour(now: datetime) -> datetime:
    now = now.astimezone(UTC)
    return now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)


async def _pools(
    reads: Reads, tenant: str, group: Group, months: frozenset[int], now: datetime
) -> dict[int, Table]:
    """Per tenure month N of `months`, the table of every active rep over its own month N (SPEC
    5.9), read in one statement and cached with the group's snapshot and window."""
    key = answer_key(TENURE, group.sums, tenant, tuple(sorted(months)))

    async def read() -> tuple[AnswerKey, dict[int, Table]]:
        with rollup_read("coaching_tenure"):
            found = await queries.tenure_sums(
                reads.pool, tenant, group.sums.start, group.sums.end, sorted(months), now
            )
        return key, {n: table_from_sums(rows, group.sums.days) for n, rows in found.items()}

    return await reads.cache.get(TENURE, key, read)


async def _ramp(
    reads: Reads,
    tenant: str,
    group: Group,
    rows: Iterable[int],
    *,
    ramp_months: int | None,
    min_sample: int,
    scope: Scope,
    now: datetime,
) -> Ramp:
    """The ramp length (the parameter, else the tenant's measured one) and the coaching of those of
    `rows` still ramping against their tenure peers."""
    months = ramp_months
    if months is None:
        months = await RAMP_LENGTHS.months(reads, tenant, group, now)
    ramping_rows = ramping(group.months, months, list(rows))
    if not ramping_rows:
        return Ramp(months)
    pools = await _pools(reads, tenant, group, frozenset(ramping_rows.values()), now)
    tenure = coach_ramping(
        group.prorated, ramping_rows, pools, min_sample=min_sample, by_team=scope == "team"
    )
    return Ramp(months, tenure)


async def rep_coaching(
    reads: Reads,
    *,
    tenant: str,
    rep_id: str,
    scope: Scope,
    min_sample: int,
    spec: WindowSpec,
    now: datetime,
    ramp_months: int | None = None,
) -> bytes:
    """The JSON of `RepCoachingOut`. The window follows the rep's timezone; its peers are the other
    active reps of the tenant (scope `team`: of its team), or its tenure peers while it ramps
    (`ramp_months`; None: the tenant's measured ramp). An inactive rep is coached too."""
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
            parts = (tenant, including, rep_id, scope, min_sample, ramp_months)
            return await _rep_answer(reads, group, parts, now)
    raise _no_rep()


async def rep_answer(
    reads: Reads,
    sums: GroupSums,
    *,
    tenant: str,
    rep_id: str,
    scope: Scope,
    min_sample: int,
    now: datetime,
    ramp_months: int | None = None,
) -> bytes:
    """The JSON of `RepCoachingOut` from a group read elsewhere (`sums`: the active reps and `rep_id`
    over a window, as the coaching history reads many windows' groups in one statement)."""
    group = Group.of(sums)
    if rep_id not in group.index:
        raise _no_rep()
    parts = (tenant, rep_id, rep_id, scope, min_sample, ramp_months)
    return await _rep_answer(reads, group, parts, now, alone=True)


async def _rep_answer(
    reads: Reads,
    group: Group,
    parts: tuple[str, str | None, str, Scope, int, int | None],
    now: datetime,
    *,
    alone: bool = False,
) -> bytes:
    """The JSON of a rep of the group, cached with the group's snapshot and window."""
    tenant, _, rep_id, scope, min_sample, ramp_months = parts
    key = answer_key(REP, group.sums, *parts)

    async def answer() -> tuple[AnswerKey, bytes]:
        rows = [group.index[rep_id]]
        ramp = await _ramp(
            reads, tenant, group, rows, ramp_months=ramp_months, min_sample=min_sample, scope=scope, now=now
        )
        body = rep_coaching_body(group, rep_id, scope=scope, min_sample=min_sample, ramp=ramp, alone=alone)
        return key, json_answer(body)

    return await reads.cache.get(REP, key, answer)


async def team_coaching(
    reads: Reads,
    *,
    tenant: str,
    scope: Scope,
    team: str | None,
    min_sample: int,
    spec: WindowSpec,
    now: datetime,
    ramp_months: int | None = None,
) -> bytes:
    """The JSON of `TeamCoachingOut`: every active rep (of `team`, if given) with its focus and
    priorities; peers per `scope`, or tenure peers for a ramping rep. The window follows the
    tenant's timezone."""
    probe = await tenant_probe(reads.pool, tenant, spec, now)
    if probe is None:
        raise _no_team()
    parts = (tenant, scope, team, min_sample, ramp_months)

    async def answer() -> tuple[AnswerKey, bytes]:
        group = await _group(
            reads, tenant, probe, spec=spec, now=now, zone_of=None, including=None, metric="coaching_team"
        )
        if group is None or (team is not None and team not in group.table.teams):
            # The same answer for another tenant's team and a team nobody is in.
            raise _no_team()
        listed = [i for i, t in enumerate(group.table.teams) if team is None or t == team]
        ramp = await _ramp(
            reads, tenant, group, listed, ramp_months=ramp_months, min_sample=min_sample, scope=scope, now=now
        )
        body = team_coaching_body(group, scope=scope, team=team, min_sample=min_sample, ramp=ramp)
        return answer_key(TEAM, group.sums, *parts), json_answer(body)

    return await reads.cache.get(TEAM, answer_key(TEAM, probe, *parts), answer)


def _no_rep() -> NotFound:
    return NotFound("no such rep")


def _no_team() -> NotFound:
    return NotFound("no active rep in this team")
