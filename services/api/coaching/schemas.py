"""Response bodies of the coaching routes (SPEC 5.2, 5.6)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field
from pydantic.config import JsonDict

from services.api.kit.answers import WINDOW_EXAMPLE, AsOf, FromDay, ToDay, example

Scope = Literal["tenant", "team"]

STANDING_EXAMPLE: JsonDict = {
    "value": 0.12,
    "sample": 120,
    "peers": 11,
    "peer_median": 0.25,
    "percentile": 9.1,
    "gap_pct": -0.52,
    "z": -2.4,
}


class StandingOut(BaseModel):
    """One metric of a rep against the peers. `sample` is the rate's denominator, the calls analysed
    for a conversation metric (null for activity metrics); `z` is null below `min_sample`, with fewer
    than 5 peers, or when the peers' MAD is 0."""

    model_config = example(STANDING_EXAMPLE)

    value: float | None
    sample: int | None
    peers: int
    peer_median: float | None
    percentile: float | None = Field(description="100 x (peers below + half the peers equal) / peers")
    gap_pct: float | None = Field(description="(value - peer_median) / peer_median")
    z: float | None = Field(description="(value - peer_median) / (1.4826 x MAD of the peers)")


PRIORITY_EXAMPLE: JsonDict = {
    "metric": "connect_rate",
    "value": 0.12,
    "peer_median": 0.25,
    "z": -2.4,
    "gap_pct": -0.52,
    "impact_monthly": 18250.0,
}


class PriorityOut(BaseModel):
    """A gap worth coaching first (SPEC 5.9): z <= -1 as focus reads it and at least 10 % from the
    peer median. `impact_monthly` is the revenue per month the rep would add by reaching the peer
    median on this metric alone, through its own funnel; null for a metric with no path to revenue
    (talk ratio, the conversation metrics)."""

    model_config = example(PRIORITY_EXAMPLE)

    metric: str
    value: float | None
    peer_median: float | None
    z: float | None
    gap_pct: float | None
    impact_monthly: float | None = Field(description="Revenue per month (30.4375 days) from closing the gap")


PeerGroup = Annotated[
    str,
    Field(
        description="Whom the rep is compared with: `tenant` or `team` (the scope), or `tenure_month_N`: "
        "the other reps over their own month N of tenure, for a rep in month N of its ramp",
        examples=["tenant", "tenure_month_1"],
    ),
]
RampMonthsUsed = Annotated[
    int | None,
    Field(description="The ramp length applied: the parameter, else the tenant's measured ramp"),
]
Priorities = Annotated[
    list[PriorityOut],
    Field(description="At most two gaps to coach first, the largest monthly impact first"),
]


class RepCoachingOut(BaseModel):
    model_config = example(
        {
            "rep_id": "r1",
            "team": "east",
            "scope": "tenant",
            "peer_group": "tenant",
            "min_sample": 20,
            "ramp_months": 3,
            **WINDOW_EXAMPLE,
            "metrics": {"connect_rate": STANDING_EXAMPLE},
            "focus": ["connect_rate", "meeting_rate"],
            "priorities": [PRIORITY_EXAMPLE],
        }
    )

    rep_id: str
    team: str | None
    scope: Scope
    peer_group: PeerGroup
    min_sample: int
    ramp_months: RampMonthsUsed
    from_: FromDay
    to: ToDay
    as_of: AsOf
    metrics: dict[str, StandingOut]
    focus: list[str] = Field(description="At most two metrics to coach on, most negative z first")
    priorities: Priorities


class TeamRepOut(BaseModel):
    rep_id: str
    team: str | None
    peer_group: PeerGroup
    focus: list[str]
    priorities: Priorities


class TeamCoachingOut(BaseModel):
    model_config = example(
        {
            "scope": "tenant",
            "peer_group": "tenant",
            "team": None,
            "min_sample": 20,
            "ramp_months": 3,
            **WINDOW_EXAMPLE,
            "reps": [
                {
                    "rep_id": "r1",
                    "team": "east",
                    "peer_group": "tenant",
                    "focus": ["connect_rate"],
                    "priorities": [PRIORITY_EXAMPLE],
                }
            ],
        }
    )

    scope: Scope
    peer_group: Scope = Field(description="The peers of every rep past its ramp; each rep names its own")
    team: str | None = Field(description="The team listed, or null for every team of the tenant")
    min_sample: int
    ramp_months: RampMonthsUsed
    from_: FromDay
    to: ToDay
    as_of: AsOf
    reps: list[TeamRepOut]
