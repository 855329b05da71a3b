"""Response body of `GET /v1/coaching/reps/{rep_id}/history` (coaching over time)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from services.api.coaching.schemas import PRIORITY_EXAMPLE, PriorityOut
from services.api.kit.answers import AS_OF_EXAMPLE, AsOf, FromDay, ToDay, example


class HistoryWeekOut(BaseModel):
    week_start: date = Field(description="Monday of the week, in the tenant's timezone")
    week_end: date = Field(description="Its Sunday")
    from_: FromDay
    to: ToDay
    source: Literal["snapshot", "computed"] = Field(
        description="`snapshot`: as the api took it after the week ended; `computed`: worked out now"
    )
    taken_at: datetime | None = Field(description="When the snapshot was taken; null when computed")
    coached: bool = Field(
        description="False when the week's snapshot has no coaching of the rep (not active then)"
    )
    peer_group: str | None
    focus: list[str]
    priorities: list[PriorityOut]


class ProgressWeekOut(BaseModel):
    week_start: date
    value: float | None
    peer_median: float | None
    gap_pct: float | None
    z: float | None
    priority: bool = Field(description="Whether the metric was a priority that week")


class ProgressOut(BaseModel):
    """A metric that was a priority, from the first week it was one to the last week."""

    metric: str
    since: date = Field(description="The first week (Monday) in which it was a priority")
    weeks_as_priority: int
    gap_pct_then: float | None = Field(description="gap_pct in the week it first was a priority")
    gap_pct_now: float | None = Field(description="gap_pct in the last week")
    closed: bool | None = Field(
        description="Whether the rep is within 10 % of the peer median (or past it, on the good side) in "
        "the last week; null without a value or a peer median then"
    )
    closed_since: date | None = Field(
        description="The first week of the closed run that ends in the last week"
    )
    weeks: list[ProgressWeekOut]


class RepHistoryOut(BaseModel):
    model_config = example(
        {
            "rep_id": "r1",
            "scope": "tenant",
            "min_sample": 20,
            "window_days": 28,
            "as_of": AS_OF_EXAMPLE,
            "weeks": [
                {
                    "week_start": "2026-10-19",
                    "week_end": "2026-10-25",
                    "from": "2026-09-28",
                    "to": "2026-10-25",
                    "source": "snapshot",
                    "taken_at": "2026-10-28T00:00:41Z",
                    "coached": True,
                    "peer_group": "tenant",
                    "focus": ["connect_rate"],
                    "priorities": [PRIORITY_EXAMPLE],
                }
            ],
            "progress": [
                {
                    "metric": "connect_rate",
                    "since": "2026-10-19",
                    "weeks_as_priority": 1,
                    "gap_pct_then": -0.52,
                    "gap_pct_now": -0.52,
                    "closed": False,
                    "closed_since": None,
                    "weeks": [
                        {
                            "week_start": "2026-10-19",
                            "value": 0.12,
                            "peer_median": 0.25,
                            "gap_pct": -0.52,
                            "z": -2.4,
                            "priority": True,
                        }
                    ],
                }
            ],
        }
    )

    rep_id: str
    scope: Literal["tenant"]
    min_sample: int
    window_days: int = Field(description="Each week's coaching covers this many days ending on its Sunday")
    as_of: AsOf
    weeks: list[HistoryWeekOut] = Field(description="The last `weeks` ended weeks, oldest first")
    progress: list[ProgressOut] = Field(
        description="Each metric that was a priority in one of the weeks, in the order they first were"
    )
