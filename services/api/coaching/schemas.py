"""Response bodies of the coaching routes (SPEC 5.2, 5.6)."""

from __future__ import annotations

from typing import Literal

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


class RepCoachingOut(BaseModel):
    model_config = example(
        {
            "rep_id": "r1",
            "team": "east",
            "scope": "tenant",
            "min_sample": 20,
            **WINDOW_EXAMPLE,
            "metrics": {"connect_rate": STANDING_EXAMPLE},
            "focus": ["connect_rate", "meeting_rate"],
        }
    )

    rep_id: str
    team: str | None
    scope: Scope
    min_sample: int
    from_: FromDay
    to: ToDay
    as_of: AsOf
    metrics: dict[str, StandingOut]
    focus: list[str] = Field(description="At most two metrics to coach on, most negative z first")


class TeamRepOut(BaseModel):
    rep_id: str
    team: str | None
    focus: list[str]


class TeamCoachingOut(BaseModel):
    model_config = example(
        {
            "scope": "tenant",
            "team": None,
            "min_sample": 20,
            **WINDOW_EXAMPLE,
            "reps": [{"rep_id": "r1", "team": "east", "focus": ["connect_rate"]}],
        }
    )

    scope: Scope
    team: str | None = Field(description="The team listed, or null for every team of the tenant")
    min_sample: int
    from_: FromDay
    to: ToDay
    as_of: AsOf
    reps: list[TeamRepOut]
