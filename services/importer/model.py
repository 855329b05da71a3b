"""What the import works with: export kinds and their columns, a row with typed accessors, the mapping
context, and the draft events a row becomes. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

from services.core.events import Channel, RepAlias, Source
from services.importer.owners import Owners
from services.importer.values import (
    Unreadable,
    parse_amount,
    parse_date,
    parse_flag,
    parse_seconds,
    parse_time,
)

T = TypeVar("T")

# A fact of a CRM record that other paths may have delivered under other event ids: ("deal", id, type)
# or ("lead", contact id, "lead.created" | "mql" | "sql"). See services/importer/known.py.
Fact = tuple[Literal["deal", "lead"], str, str]


def header_key(name: str) -> str:
    """Headers are matched ignoring case and spacing: `Close Date`, `close date`, `Close  Date`."""
    return " ".join(name.split()).casefold()


@dataclass(frozen=True)
class Column:
    key: str  # the name the mapping uses
    names: tuple[str, ...]  # the export's headers for it: API name and labels
    required: bool = False


@dataclass(frozen=True)
class Kind:
    """One kind of export file: its columns, how to recognise it, how a row becomes events."""

    name: str  # e.g. "hubspot-deals"
    title: str  # e.g. "HubSpot deals export"
    columns: tuple[Column, ...]
    map_row: Callable[[Row, Context], list[Draft]]
    # The file is this kind when it has every required column, one of `one_of` and one of `marks`
    # (columns that tell it from the vendor's other exports), where these are given.
    marks: tuple[str, ...] = ()
    one_of: tuple[str, ...] = ()

    def layout(self, header: Sequence[str]) -> Layout:
        at = {header_key(h): i for i, h in reversed(list(enumerate(header))) if h}
        found: dict[str, tuple[int, str]] = {}
        for column in self.columns:
            for name in column.names:
                if header_key(name) in at:
                    i = at[header_key(name)]
                    found[column.key] = (i, header[i])
                    break
        return Layout(self, found)


@dataclass(frozen=True)
class Layout:
    kind: Kind
    found: Mapping[str, tuple[int, str]]  # key -> (index, the header as the file writes it)
    # (key, index) of each column found, and the cells a row needs for all of them: what Row reads.
    cells: tuple[tuple[str, int], ...] = field(init=False)
    width: int = field(init=False)

    def __post_init__(self) -> None:
        cells = tuple((key, i) for key, (i, _) in self.found.items())
        object.__setattr__(self, "cells", cells)
        object.__setattr__(self, "width", max((i + 1 for _, i in cells), default=0))

    def missing(self) -> list[str]:
        """What the file lacks to be this kind: each required column by its first name, and the
        columns of which it needs one."""
        out = [f"column {c.names[0]!r}" for c in self.kind.columns if c.required and c.key not in self.found]
        for group in (self.kind.one_of, self.kind.marks):
            if group and not any(k in self.found for k in group):
                out.append("one of the columns " + ", ".join(repr(self._name(k)) for k in group))
        return out

    def matches(self) -> bool:
        return not self.missing()

    def _name(self, key: str) -> str:
        return next(c.names[0] for c in self.kind.columns if c.key == key)

    def header_of(self, key: str) -> str:
        hit = self.found.get(key)
        return hit[1] if hit is not None else self._name(key)


class Skip(Exception):
    """A row, or one fact of it, that cannot be imported: `column` is the header as the file has it."""

    def __init__(self, column: str | None, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


@dataclass(frozen=True)
class Problem:
    file: str
    row: int
    column: str | None
    reason: str


@dataclass(frozen=True)
class Terms:
    """The tenant's vendor options that decide what a value means (`salesloop tenants set-option`)."""

    won_stages: frozenset[str] = frozenset({"closedwon"})  # HubSpot, compared by `stage_key`
    lost_stages: frozenset[str] = frozenset({"closedlost"})
    mql_statuses: frozenset[str] = frozenset({"marketing qualified", "mql"})  # Salesforce, lower-cased
    sql_statuses: frozenset[str] = frozenset({"sales qualified", "sql"})
    hubspot_channels: Mapping[str, Channel] = field(default_factory=dict)  # channel_overrides
    salesforce_channels: Mapping[str, Channel] = field(default_factory=dict)


def stage_key(stage: str) -> str:
    """HubSpot exports show a stage's label ("Closed Won"), the options its id ("closedwon")."""
    return re.sub(r"[^0-9a-z]", "", stage.casefold())


@dataclass
class Context:
    zone: ZoneInfo
    now: datetime
    currency: str
    owners: Owners
    terms: Terms = field(default_factory=Terms)
    day_first: bool = False
    # Salesforce: each opportunity's stage history (time, stage), and what its own row says of it.
    history: dict[str, list[tuple[datetime, str]]] = field(default_factory=dict)
    deal_owners: dict[str, tuple[str | None, RepAlias | None]] = field(default_factory=dict)


@dataclass(slots=True)
class Draft:
    """One event a row becomes, before the wire format's check: `body` as a client would send it."""

    body: dict[str, Any]
    source: Source
    rep_alias: RepAlias | None = None
    fact: Fact | None = None
    columns: Mapping[str, str] = field(default_factory=dict)  # event field -> the header it came from


class Row:
    """One record of a file, read through its layout; accessors raise Skip naming the column."""

    __slots__ = ("day_first", "layout", "number", "values", "zone")

    def __init__(self, cells: list[str], layout: Layout, number: int, ctx: Context) -> None:
        self.layout, self.number = layout, number
        self.zone, self.day_first = ctx.zone, ctx.day_first
        # Each used cell read once: a row's mapping asks for a dozen of them, some twice.
        if len(cells) >= layout.width:
            self.values = {key: cells[i].strip() or None for key, i in layout.cells}
        else:  # a row shorter than the header: its missing cells are empty
            self.values = {key: cells[i].strip() or None for key, i in layout.cells if i < len(cells)}

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def has(self, key: str) -> bool:
        return key in self.layout.found

    def column(self, key: str) -> str:
        return self.layout.header_of(key)

    def need(self, key: str, what: str = "is empty") -> str:
        value = self.get(key)
        if value is None:
            raise Skip(self.column(key), what)
        return value

    def time(self, key: str) -> datetime | None:
        return self._read(key, lambda v: parse_time(v, self.zone, day_first=self.day_first))

    def need_time(self, key: str) -> datetime:
        at = self.time(key)
        if at is None:
            raise Skip(self.column(key), "is empty")
        return at

    def date(self, key: str) -> date | None:
        return self._read(key, lambda v: parse_date(v, self.zone, day_first=self.day_first))

    def amount(self, key: str) -> Decimal | None:
        return self._read(key, parse_amount)

    def seconds(self, key: str) -> float | None:
        return self._read(key, parse_seconds)

    def flag(self, key: str) -> bool | None:
        return self._read(key, parse_flag)

    def _read(self, key: str, parse: Callable[[str], T]) -> T | None:
        value = self.get(key)
        if value is None:
            return None
        try:
            return parse(value)
        except Unreadable as exc:
            raise Skip(self.column(key), str(exc)) from None


Rep = tuple[str | None, RepAlias | None]  # (rep_id, rep_alias): see services/importer/owners.py


def draft(
    source: Source,
    event_id: str,
    type_: str,
    at: datetime,
    rep: Rep,
    *,
    fact: Fact | None = None,
    columns: Mapping[str, str] | None = None,
    **fields: Any,
) -> Draft:
    """A draft event, None fields left out. Times, dates and amounts stay Python values: the wire
    decoder checks them as it checks their JSON form, and the message is written by orjson."""
    body: dict[str, Any] = {"event_id": event_id, "type": type_, "occurred_at": at}
    if rep[0] is not None:
        body["rep_id"] = rep[0]
    for name, value in fields.items():
        if value is not None:
            body[name] = value
    return Draft(body, source, rep[1], fact, columns or {})
