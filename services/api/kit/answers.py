"""What the response models share: the window and freshness every windowed answer carries, and how
a model shows its example in the OpenAPI document."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Unpack

from pydantic import ConfigDict, Field
from pydantic.config import JsonDict

FromDay = Annotated[date, Field(serialization_alias="from", description="First day of the window, inclusive")]
ToDay = Annotated[date, Field(description="Last day of the window, inclusive")]
AsOf = Annotated[
    datetime | None, Field(description="Newest event time folded for the tenant; null before any")
]

AS_OF_EXAMPLE = "2026-10-30T17:02:11Z"
WINDOW_EXAMPLE: JsonDict = {"from": "2026-10-01", "to": "2026-10-30", "as_of": AS_OF_EXAMPLE}


def example(body: JsonDict, **config: Unpack[ConfigDict]) -> ConfigDict:
    """A model's config (`config`) with `body` as its example."""
    return ConfigDict(json_schema_extra={"examples": [body]}, **config)
