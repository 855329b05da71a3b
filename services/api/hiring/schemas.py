"""Request and response bodies of the hiring routes (SPEC 5.3, 5.6)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic.config import JsonDict
from pydantic_core import InitErrorDetails, PydanticCustomError

from services.api.hiring.service import (
    MAX_SCORE,
    MIN_SCORE,
    ScorecardError,
    validate_scorecard,
)
from services.api.kit.answers import WINDOW_EXAMPLE, AsOf, FromDay, ToDay, example

Score = Annotated[int, Field(ge=MIN_SCORE, le=MAX_SCORE)]

CORRELATION_EXAMPLE: JsonDict = {
    "n": 14,
    "r": 0.61,
    "rho": 0.58,
    "p_value": 0.02,
    "ci95": [0.12, 0.86],
    "insufficient_data": False,
}


class ScorecardIn(BaseModel):
    """Trait scores 1-10 at hire: the five standard traits and any custom ones (lowercase names)."""

    model_config = example({"traits": {"coachability": 8, "curiosity": 6, "grit": 7}}, extra="forbid")

    traits: dict[str, Score]

    @model_validator(mode="before")
    @classmethod
    def _valid(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("traits"), dict):
            return data  # pydantic reports the wrong type itself
        try:
            return {**data, "traits": validate_scorecard(data["traits"])}
        except ScorecardError as exc:
            # One error per bad trait, each at its own location ("traits.<name>", or "traits" for a
            # bad name), so a client sees every problem of the scorecard at once.
            raise ValidationError.from_exception_data(
                cls.__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError("invalid_trait", "{reason}", {"reason": d["reason"]}),
                        loc=tuple(d["field"].split(".")),
                        input=data["traits"],
                    )
                    for d in exc.details
                ],
            ) from None


class ScorecardOut(BaseModel):
    model_config = example(
        {
            "rep_id": "r1",
            "traits": {"coachability": 8, "curiosity": 6},
            "updated_at": "2026-11-02T09:30:00Z",
        }
    )

    rep_id: str
    traits: dict[str, int]
    updated_at: datetime | None = None


class TraitCorrelationOut(BaseModel):
    """r, rho and p_value are null below 3 reps or for a constant trait or outcome; ci95 (Fisher z)
    is null below 4 reps or for |r| = 1; `insufficient_data` below 10 reps."""

    # Built from the service's `TraitCorrelation`, which has these fields.
    model_config = example(CORRELATION_EXAMPLE, from_attributes=True)

    n: int
    r: float | None
    rho: float | None
    p_value: float | None = Field(description="Two-sided p-value of r")
    ci95: tuple[float, float] | None
    insufficient_data: bool


class TraitCorrelationsOut(BaseModel):
    model_config = example(
        {
            "outcome": "quota_attainment",
            **WINDOW_EXAMPLE,
            "traits": {"coachability": CORRELATION_EXAMPLE},
        }
    )

    outcome: str
    from_: FromDay
    to: ToDay
    as_of: AsOf
    traits: dict[str, TraitCorrelationOut]
