"""One import, in order: read and recognise every file (nothing is sent if one is refused), read the
tenant, map each file's rows to events in chunks, check every event with the wire format's decoder,
leave out what the tenant already has, and send the rest with a bounded window.

Rows are imported whole or skipped with their reason: a row whose cell cannot be read, or one of
whose events the wire format refuses, sends nothing. Fix the file and run the import again: what
was imported the first time is then a duplicate.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple
from zoneinfo import ZoneInfo, available_timezones

from services.core.events import CheckedEvent
from services.core.wire import check_event
from services.importer import known
from services.importer.csvfile import FIRST_ROW
from services.importer.model import Context, Draft, Problem, Row, Skip
from services.importer.owners import Owners, read_rep_map
from services.importer.salesforce import HISTORY, OPPORTUNITIES, index_history, index_opportunity
from services.importer.send import Records, Sender
from services.importer.sources import CsvExport, JsonLines, Loaded, json_drafts, load

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

CHUNK_ROWS = 2_000
_INDEXES = {HISTORY.name: index_history, OPPORTUNITIES.name: index_opportunity}


class ImportFailed(Exception):
    """The import cannot run (unknown tenant or timezone, broker unreachable); nothing more is sent."""


@dataclass(frozen=True)
class Request:
    source: str
    paths: list[Path]
    tenant: str
    dry_run: bool = False
    rep_map: Path | None = None
    timezone: str | None = None
    day_first: bool = False
    encoding: str | None = None


@dataclass
class FileTally:
    path: Path
    export: str
    total: int  # rows in the file, blank ones included
    rows: int = 0
    imported: int = 0
    duplicate: int = 0
    skipped: int = 0
    events: int = 0


@dataclass
class Outcome:
    files: list[FileTally]
    problems: list[Problem]
    owners: Owners
    dry_run: bool
    events: int = 0  # sent, or that would be sent in a dry run
    duplicates: int = 0  # events left out as already known


class _Checked(NamedTuple):
    number: int
    events: list[tuple[Draft, CheckedEvent]]


Progress = Callable[[int, int], None]  # (file index, rows done)


def prepare(request: Request) -> list[Loaded]:
    """Read and recognise every file: FileRefused (or RepMapError) before anything is sent."""
    loaded = load(request.source, request.paths, request.encoding)
    if request.rep_map is not None:
        read_rep_map(request.rep_map)
    return loaded


def tallies(loaded: list[Loaded]) -> list[FileTally]:
    return [
        FileTally(item.path, item.kind.name if isinstance(item, CsvExport) else "jsonl", _size(item))
        for item in loaded
    ]


async def run(
    database: known.Database | AsyncEngine,
    request: Request,
    loaded: list[Loaded],
    sender: Sender | None,
    progress: Progress = lambda _i, _n: None,
) -> Outcome:
    """Import `loaded` (from `prepare`); `sender` None is a dry run."""
    db = known.database(database)
    ctx = await _context(db, request)
    tenant = request.tenant
    outcome = Outcome(tallies(loaded), [], ctx.owners, dry_run=sender is None)
    index(loaded, ctx)
    seen: set[str] = set()
    messages = Records(tenant, ctx.now)
    for position, (item, tally) in enumerate(zip(loaded, outcome.files, strict=True)):
        for start in range(0, tally.total, CHUNK_ROWS):
            drafts = mapped(item, start, start + CHUNK_ROWS, ctx)
            rows = _checked(drafts, ctx, tally, outcome.problems, isinstance(item, JsonLines))
            new = await _new(db, tenant, rows, seen, tally)
            outcome.duplicates += sum(len(r.events) for r in rows) - len(new)
            if sender is not None:
                await sender.send([messages.record(ev, d.source, d.rep_alias) for d, ev in new])
            tally.events += len(new)
            outcome.events += len(new)
            progress(position, min(start + CHUNK_ROWS, tally.total))
    if sender is not None:
        await sender.flush()
    return outcome


async def _context(db: known.Database, request: Request) -> Context:
    info = await known.tenant(db, request.tenant)
    if info is None:
        raise ImportFailed(f"unknown tenant {request.tenant!r}: create it with salesloop tenants create")
    currency, timezone = info
    zone = request.timezone or timezone
    if zone not in _iana_names():  # as services.core.tenancy.validate_timezone says it
        raise ImportFailed(f"unknown IANA timezone {zone!r}")
    rep_map = read_rep_map(request.rep_map) if request.rep_map is not None else {}
    owners = Owners(rep_map, await known.aliases(db, request.tenant))
    terms = await known.terms(db, request.tenant)
    return Context(ZoneInfo(zone), datetime.now(UTC), currency, owners, terms, request.day_first)


@functools.cache
def _iana_names() -> frozenset[str]:
    # services.core.tenancy's: the IANA names of Python's timezone database, not `localtime`.
    return frozenset(available_timezones() - {"localtime"})


def index(loaded: list[Loaded], ctx: Context) -> None:
    """What rows of one file need of others, before any row is mapped: an opportunity's owner for its
    history rows, its history for the time it closed."""
    for item in loaded:
        if isinstance(item, CsvExport) and item.kind.name in _INDEXES:
            for number, cells in enumerate(item.rows, start=FIRST_ROW):
                if cells:
                    _INDEXES[item.kind.name](Row(cells, item.layout, number, ctx), ctx)


def mapped(item: Loaded, start: int, stop: int, ctx: Context) -> Iterator[tuple[int, list[Draft] | Skip]]:
    """(row number, the row's draft events or why it is skipped) for rows [start, stop) of `item`."""
    if isinstance(item, JsonLines):
        for number, got in json_drafts(item.lines, start, stop):
            if got is not None:
                yield number, got if isinstance(got, Skip) else [got]
        return
    rows, layout, map_row = item.rows, item.layout, item.kind.map_row
    for i in range(start, min(stop, len(rows))):
        cells = rows[i]
        if not cells:
            continue
        row = Row(cells, layout, i + FIRST_ROW, ctx)
        try:
            yield row.number, map_row(row, ctx)
        except Skip as exc:
            yield row.number, exc


def _checked(
    drafts: Iterator[tuple[int, list[Draft] | Skip]],
    ctx: Context,
    tally: FileTally,
    problems: list[Problem],
    clients: bool,
) -> list[_Checked]:
    """Each row's events as the wire format accepts them; a row with any refused event is skipped.

    `clients`: the events are a client's JSON, whose attributes may nest or hold NUL; a CSV row's
    attributes are flat text from a file that has no NUL (csvfile.read_text), so those walks are spared.
    """
    out = []
    name = str(tally.path)
    now, currency = ctx.now, ctx.currency
    for number, got in drafts:
        tally.rows += 1
        if isinstance(got, Skip):
            tally.skipped += 1
            problems.append(Problem(name, number, got.column, got.reason))
            continue
        row = _Checked(number, [])
        for d in got:
            result = check_event(d.body, now=now, currency=currency, nul=clients, deep=clients)
            if isinstance(result, list):
                bad = result[0]
                column = d.columns.get((bad.field or "").split(".")[0]) or bad.field
                tally.skipped += 1
                problems.append(Problem(name, number, column, f"{bad.field or 'event'} {bad.reason}"))
                break
            row.events.append((d, result))
        else:
            out.append(row)
    return out


async def _new(
    db: known.Database, tenant: str, rows: list[_Checked], seen: set[str], tally: FileTally
) -> list[tuple[Draft, CheckedEvent]]:
    """The rows' events the tenant does not have yet; tallies each row imported or duplicate."""
    candidates = [(d, ev) for r in rows for d, ev in r.events]
    ids = {d.body["event_id"] for d, _ in candidates}
    known_ids = await known.known_ids(db, tenant, ids)
    facts = await known.known_facts(db, tenant, [d.fact for d, _ in candidates if d.fact is not None])
    new = []
    for r in rows:
        fresh = 0
        for d, ev in r.events:
            event_id = d.body["event_id"]  # text: the wire check says so
            if event_id in seen or event_id in known_ids or d.fact in facts:
                continue
            seen.add(event_id)
            new.append((d, ev))
            fresh += 1
        if fresh or not r.events:
            tally.imported += 1
        else:
            tally.duplicate += 1
    return new


def _size(item: Loaded) -> int:
    return len(item.lines) if isinstance(item, JsonLines) else len(item.rows)
