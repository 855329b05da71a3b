"""Mapping the sample exports without a database: the importer's pure part, as `salesloop import` runs it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from services.importer.model import Context, Draft, Skip, Terms
from services.importer.owners import Owners, read_rep_map
from services.importer.run import index, mapped
from services.importer.sources import load

SAMPLES = Path(__file__).parent / "samples"
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
DANA_SF, EVE_SF, NOBODY_SF = "0055e000003QwErAAK", "0055e000003QwEsAAK", "0055e000003QwEtAAK"

Rows = list[tuple[int, list[Draft] | Skip]]


def context(
    zone: str = "UTC", terms: Terms | None = None, aliases: dict[tuple[str, str], str] | None = None
) -> Context:
    owners = Owners(read_rep_map(SAMPLES / "rep-map.csv"), aliases or {})
    return Context(ZoneInfo(zone), NOW, "USD", owners, terms or Terms())


def map_files(source: str, *paths: str | Path, ctx: Context | None = None) -> dict[str, Rows]:
    """Each file's rows as the import maps them: file name -> [(row number, drafts or Skip)]."""
    ctx = ctx or context()
    loaded = load(source, [p if isinstance(p, Path) else SAMPLES / p for p in paths])
    index(loaded, ctx)
    return {item.path.name: list(mapped(item, 0, 1_000_000, ctx)) for item in loaded}


def bodies(rows: Rows) -> dict[str, dict[str, Any]]:
    """The draft events of the rows that map, by event id, as JSON writes them (times RFC 3339,
    amounts as decimal text)."""
    return {d.body["event_id"]: as_json(d) for _, got in rows if not isinstance(got, Skip) for d in got}


def as_json(d: Draft) -> dict[str, Any]:
    out: dict[str, Any] = orjson.loads(orjson.dumps(d.body, default=str))
    return out


def drafts(rows: Rows) -> dict[str, Draft]:
    return {d.body["event_id"]: d for _, got in rows if not isinstance(got, Skip) for d in got}


def skips(rows: Rows) -> dict[int, Skip]:
    return {number: got for number, got in rows if isinstance(got, Skip)}
