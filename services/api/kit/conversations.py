"""Sums of `conversation_rollups` over a window, and the SPEC 5.7 per-rep numbers taken from them.

The conversation reads and coaching both read these sums and apply the same formulas, so a rep's
`questions_per_call` means one thing everywhere. Nothing here reads a transcript: the rollups hold,
per rep and rep-local day, the calls analysed, each per-call metric's sum and the number of calls
that have it, and each tactic's moments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

# The per-call metrics and the tactics, in the order of every answer that lists them.
from services.core.models.conversations import CALL_METRICS, TACTICS

# A rep's (or team member's) numbers over a window: the mean of each per-call metric over the calls
# that have it, rep questions per analysed call, and each tactic's moments per analysed call.
REP_METRICS: tuple[str, ...] = (
    *CALL_METRICS,
    "questions_per_call",
    *(f"{tactic}_per_call" for tactic in TACTICS),
)

CALLS = "calls_analysed"

Number = int | float | Decimal


def sum_column(metric: str) -> str:
    """The rollup column holding the sum of `metric` over the calls that have it."""
    return f"{metric}_sum"


def count_column(metric: str) -> str:
    """The rollup column counting the calls where `metric` is not null."""
    return f"{metric}_n"


def moments_column(tactic: str) -> str:
    return f"{tactic}_moments"


# Every summed column of `conversation_rollups` the formulas read.
ROLLUP_COLUMNS: tuple[str, ...] = (
    CALLS,
    *(column for metric in CALL_METRICS for column in (sum_column(metric), count_column(metric))),
    *(moments_column(tactic) for tactic in TACTICS),
)
_FLOAT_SUMS = frozenset(sum_column(metric) for metric in CALL_METRICS)


def conversation_sums_sql(columns: Sequence[str], rollup: str = "c") -> str:
    """`columns` of `conversation_rollups` (aliased `rollup`) summed over a group: metric sums as
    float8, counts as bigint, 0 when there is no row."""
    out = []
    for name in columns:
        kind = "float8" if name in _FLOAT_SUMS else "bigint"
        out.append(f"coalesce(sum({rollup}.{name}), 0)::{kind} AS {name}")
    return ",\n       ".join(out)


def _mean(total: Number, calls: Number) -> float | None:
    # Like every rate of the API: null, not 0, when no call has the metric.
    return None if not calls else float(total) / float(calls)


def conversation_metrics(sums: Mapping[str, Number]) -> dict[str, float | None]:
    """`REP_METRICS` from summed rollup columns (one rep's or several reps' added up); a missing
    column counts as 0."""
    calls = sums.get(CALLS, 0)
    out = {m: _mean(sums.get(sum_column(m), 0), sums.get(count_column(m), 0)) for m in CALL_METRICS}
    out["questions_per_call"] = _mean(sums.get(sum_column("rep_questions"), 0), calls)
    for tactic in TACTICS:
        out[f"{tactic}_per_call"] = _mean(sums.get(moments_column(tactic), 0), calls)
    return out
