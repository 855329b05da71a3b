"""Tenure-aware peers (SPEC 5.9): a rep still ramping is compared with what its peers did at the same
month of their own tenure, not with reps who have years of pipeline behind them.

A rep whose window starts in tenure month N (0 for a window that starts before the hire), N below
`ramp_months`, is ramping. Its peers are the other reps (of its team, with `scope=team`) hired at
least N + 1 months before the window's end, each over its own month N: the window's length in days
from N months after its hire (`queries.tenure_sums`). With fewer than MIN_TENURE_PEERS of them the
rep is compared with the whole tenant or team as usual. The rep's own numbers are always its
window's, prorated like everybody's in SPEC 5.9. Only the priorities follow from these peers: the
rep's standings and focus stay SPEC 5.2's, against every peer of the scope.

Pure: the tables in, the priorities of the ramping reps out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np

from services.api.coaching import stats
from services.api.coaching.priorities import Priority
from services.api.coaching.service import COACHING_METRICS, FUNNEL_EXTRA, Table, priorities_of
from services.api.kit.tenure import month_index

MIN_TENURE_PEERS = 5


def tenure_month(hired_at: date | None, start: date) -> int | None:
    """The tenure month a window starting on `start` begins in: 0 when it starts before the hire,
    None without a hire date."""
    if hired_at is None:
        return None
    return month_index(hired_at, start) or 0


def ramping(
    months: Mapping[int, int | None], ramp_months: int, rows: range | list[int] | None = None
) -> dict[int, int]:
    """Of the table rows `rows` (all when None), those ramping, with their tenure month;
    `months` holds each row's tenure month (queries: `tenure_month` of the window's start)."""
    picked = months.keys() if rows is None else rows
    return {i: n for i in picked if (n := months.get(i)) is not None and n < ramp_months}


@dataclass(frozen=True)
class TenureCoaching:
    """The priorities of the ramping reps that have enough tenure peers: `rows` maps a row of the
    group's table to its row in `priorities`, `months` to its tenure month."""

    rows: dict[int, int]
    months: dict[int, int]
    priorities: list[tuple[Priority, ...]]


def coach_ramping(
    table: Table,
    ramping_rows: Mapping[int, int],
    pools: Mapping[int, Table],
    *,
    min_sample: int,
    by_team: bool,
) -> TenureCoaching:
    """The priorities of each ramping row of `table` (row -> tenure month N) against the rows of
    `pools[N]` (every eligible rep over its own month N) but its own, and with `by_team` only those
    of its team. `table` and the pools are prorated (tables.table_from_sums)."""
    chosen: list[tuple[int, int, stats.Bools]] = []
    for i, n in sorted(ramping_rows.items()):
        pool = pools.get(n)
        if pool is None:
            continue
        team = table.teams[i]
        eligible = np.array(
            [
                rep_id != table.rep_ids[i] and (not by_team or (team is not None and peer_team == team))
                for rep_id, peer_team in zip(pool.rep_ids, pool.teams, strict=True)
            ],
            dtype=np.bool_,
        )
        if int(eligible.sum()) >= MIN_TENURE_PEERS:
            chosen.append((i, n, eligible))
    rows = np.array([i for i, _, _ in chosen], dtype=np.int64)
    per_metric = {
        name: _standings(table, name, chosen, pools, min_sample)
        for name in (*COACHING_METRICS, *FUNNEL_EXTRA)
    }
    values = {name: table.values[name][rows] for name in per_metric}
    volumes = {name: v[rows] for name, v in table.volumes.items()}
    priorities = priorities_of(values, volumes, per_metric, table.days)
    return TenureCoaching(
        {i: j for j, (i, _, _) in enumerate(chosen)}, {i: n for i, n, _ in chosen}, priorities
    )


def _standings(
    table: Table,
    name: str,
    chosen: list[tuple[int, int, stats.Bools]],
    pools: Mapping[int, Table],
    min_sample: int,
) -> stats.MetricStandings:
    k = len(chosen)
    out = stats.MetricStandings(
        peers=np.zeros(k, np.int64),
        median=np.full(k, np.nan),
        percentile=np.full(k, np.nan),
        gap=np.full(k, np.nan),
        z=np.full(k, np.nan),
    )
    scored = table.qualified(name, min_sample)
    for j, (i, n, eligible) in enumerate(chosen):
        pool = pools[n]
        peers = pool.values[name][pool.qualified(name, min_sample) & eligible]
        found = stats.against(float(table.values[name][i]), bool(scored[i]), peers)
        out.peers[j], out.median[j], out.percentile[j], out.gap[j], out.z[j] = found
    return out
