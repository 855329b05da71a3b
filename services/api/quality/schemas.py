"""Response body of `GET /v1/data-quality` (SPEC 4: vendor events whose rep is unknown)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from pydantic.config import JsonDict

from services.api.kit.answers import AS_OF_EXAMPLE, AsOf, example

ALIAS_EXAMPLE: JsonDict = {
    "kind": "aircall_user_id",
    "value": "123456",
    "events": 28,
    "first_seen": "2026-10-02T14:03:11Z",
    "last_seen": "2026-10-30T16:40:52Z",
    "resolves_to": None,
}


class UnknownAliasOut(BaseModel):
    model_config = example(ALIAS_EXAMPLE)

    kind: str = Field(description="The kind of vendor identity: hubspot_owner_id, phone, email, ...")
    value: str
    events: int = Field(description="Events archived without a rep because of this identity")
    first_seen: datetime = Field(description="Event time of the earliest of them")
    last_seen: datetime = Field(description="Event time of the latest of them")
    resolves_to: str | None = Field(
        description="The rep this identity belongs to since (PUT /v1/reps/{rep_id} aliases); "
        "`salesloop rebuild` attributes the events to it. Null: still unknown."
    )


class SourceQualityOut(BaseModel):
    events: int = Field(description="Unassigned events of this source")
    unknown_aliases: int = Field(description="Distinct identities behind them")
    aliases: list[UnknownAliasOut] = Field(description="The identities with the most events first")


class DataQualityOut(BaseModel):
    model_config = example(
        {
            "as_of": AS_OF_EXAMPLE,
            "unassigned_events": 31,
            "unknown_aliases": 2,
            "sources": {
                "aircall": {"events": 28, "unknown_aliases": 1, "aliases": [ALIAS_EXAMPLE]},
                "hubspot": {
                    "events": 3,
                    "unknown_aliases": 1,
                    "aliases": [
                        {
                            **ALIAS_EXAMPLE,
                            "kind": "hubspot_owner_id",
                            "value": "31337",
                            "events": 3,
                            "resolves_to": "r7",
                        }
                    ],
                },
            },
        }
    )

    as_of: AsOf
    unassigned_events: int = Field(description="Vendor events whose rep could not be resolved, all sources")
    unknown_aliases: int
    sources: dict[str, SourceQualityOut]
