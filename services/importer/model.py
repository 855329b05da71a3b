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
    FLAGS,
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
    # key -> the header as the file has it, or the column's first name when the file lacks it.
    headers: Mapping[str, str] = field(init=False)
    _columns: dict[tuple[tuple[str, str], ...], Mapping[str, str]] = field(
        init=False, default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        cells = tuple((key, i) for key, (i, _) in self.found.items())
        object.__setattr__(self, "cells", cells)
        object.__setattr__(self, "width", max((i + 1 for _, i in cells), default=0))
        headers = {
            c.key: self.found[c.key][1] if c.key in self.found else c.names[0] for c in self.kind.columns
        }
        object.__setattr__(self, "headers", headers)

    def missing(self) -> list[str]:
        """What the file lacks to be this kind: each required column by its first name, and the
        columns of which it needs one."""
        out = [f"column {c.names[0]!r}" for c in self.kind.columns if c.required and c.key not in self.found]
        for group in (self.kind.one_of, self.kind.marks):
            if group and not any(k in self.found for k in group):
                out.append("one of the columns " + ", ".join(repr(self.headers[k]) for k in group))
        return out

    def matches(self) -> bool:
        return not self.missing()

    def header_of(self, key: str) -> str:
        return self.headers[key]

    def columns(self, pairs: tuple[tuple[str, str], ...]) -> Mapping[str, str]:
        """Event field -> the header it came from, for (event field, column key) pairs: one mapping
        per pairs, shared by the drafts of every row of the file (no one changes a draft's columns)."""
        got = self._columns.get(pairs)
        if got is None:
            got = self._columns[pairs] = {name: self.headers[key] for name, key in pairs}
        return got


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


class Row(dict[str, str | None]):
    """One record of a file, read through its layout: each column the layout found -> its cell,
    stripped, None when empty (a dict: `row.get(key)` is the dict's own, the mapping's most frequent
    call). The typed accessors raise Skip naming the column."""

    __slots__ = ("day_first", "layout", "number", "zone")

    def __init__(self, cells: list[str], layout: Layout, number: int, ctx: Context) -> None:
        # Each used cell read once: a row's mapping asks for a dozen of them, some twice.
        if len(cells) >= layout.width:
            super().__init__({key: cells[i].strip() or None for key, i in layout.cells})
        else:  # a row shorter than the header: its missing cells are empty
            super().__init__({key: cells[i].strip() or None for key, i in layout.cells if i < len(cells)})
        self.layout, self.number = layout, number
        self.zone, self.day_first = ctx.zone, ctx.day_first

    def has(self, key: str) -> bool:
        return key in self.layout.found

    def column(self, key: str) -> str:
        return self.layout.headers[key]

    def columns(self, *pairs: tuple[str, str]) -> Mapping[str, str]:
        """Event field -> the header it came from, for (event field, column key) pairs."""
        return self.layout._columns.get(pairs) or self.layout.columns(pairs)

    def need(self, key: str, what: str = "is empty") -> str:
        value = self.get(key)
        if value is None:
            raise Skip(self.column(key), what)
        return value

    def time(self, key: str) -> datetime | None:
        value = self.get(key)
        if value is None:
            return None
        try:
            return parse_time(value, self.zone, day_first=self.day_first)
        except Unreadable as exc:
            raise Skip(self.column(key), str(exc)) from None

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
        value = self.get(key)
        if value is not None and value.isascii() and value.isdigit():
            return float(value)  # whole seconds, as exports write them: parse_seconds' first case
        return self._read(key, parse_seconds)

    def flag(self, key: str) -> bool | None:
        value = self.get(key)
        if value is None:
            return None
        flag = FLAGS.get(value.lower())  # the cell is stripped: parse_flag's lookup
        return flag if flag is not None else self._read(key, parse_flag)

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
