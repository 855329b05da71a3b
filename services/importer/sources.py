"""The SOURCE argument and the files it names: which export each file is, checked before anything is sent.

`hubspot` and `salesforce` recognise each file's export by its header row (so one command imports a
whole Salesforce export: opportunities with their history, leads, tasks, events); a specific source
(`hubspot-deals`, `salesforce-tasks`, ...) insists on its export and refuses a file without its
columns; `jsonl` is canonical BuyerEvents, one JSON object per line (SPEC 1).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from services.core.events import Source
from services.importer import activities, hubspot, salesforce
from services.importer.csvfile import FileRefused, read_csv, read_text
from services.importer.model import Draft, Kind, Layout, Skip

_HUBSPOT = (hubspot.DEALS, hubspot.CONTACTS)
# Most specific first: a history export also has an opportunity's columns, an event a task's.
_SALESFORCE = (
    salesforce.HISTORY,
    salesforce.OPPORTUNITIES,
    activities.EVENTS,
    activities.TASKS,
    salesforce.LEADS,
)
JSONL = "jsonl"
SOURCES: dict[str, tuple[Kind, ...]] = {
    "hubspot": _HUBSPOT,
    "salesforce": _SALESFORCE,
    **{kind.name: (kind,) for kind in (*_HUBSPOT, *_SALESFORCE)},
    "salesforce-opportunities": (salesforce.HISTORY, salesforce.OPPORTUNITIES),
    JSONL: (),
}


@dataclass(frozen=True)
class CsvExport:
    path: Path
    layout: Layout
    rows: list[list[str]]
    delimiter: str
    encoding: str

    @property
    def kind(self) -> Kind:
        return self.layout.kind


@dataclass(frozen=True)
class JsonLines:
    path: Path
    lines: list[str]
    encoding: str


Loaded = CsvExport | JsonLines


class UnknownSource(ValueError):
    pass


def load(source: str, paths: list[Path], encoding: str | None = None) -> list[Loaded]:
    """Every file read and recognised, or FileRefused for the first that is not what `source` says."""
    if source not in SOURCES:
        raise UnknownSource(f"unknown source {source!r}; sources: {', '.join(SOURCES)}")
    if source == JSONL:
        return [_json_lines(path, encoding) for path in paths]
    return [_csv_export(path, SOURCES[source], encoding) for path in paths]


def _csv_export(path: Path, candidates: tuple[Kind, ...], encoding: str | None) -> CsvExport:
    export = read_csv(path, encoding)
    layouts = [kind.layout(export.header) for kind in candidates]
    for layout in layouts:
        if layout.matches():
            return CsvExport(path, layout, export.rows, export.delimiter, export.encoding)
    shown = ", ".join(repr(h) for h in export.header[:8]) + (", ..." if len(export.header) > 8 else "")
    needs = "; ".join(f"a {lay.kind.title} needs {', '.join(lay.missing())}" for lay in layouts)
    what = f"a {layouts[0].kind.title}" if len(layouts) == 1 else "an export this source reads"
    raise FileRefused(path, f"is not {what}: {needs}. Its header has {shown}")


def _json_lines(path: Path, encoding: str | None) -> JsonLines:
    text, used = read_text(path, encoding)
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    try:
        parsed = orjson.loads(first)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise FileRefused(path, "is not JSON lines: its first line is not a JSON object (one BuyerEvent)")
    return JsonLines(path, lines, used)


def json_drafts(lines: list[str], start: int, stop: int) -> Iterator[tuple[int, Draft | Skip | None]]:
    """(line number, the line's event or why it is none) for lines[start:stop]; blank lines give None."""
    for i in range(start, min(stop, len(lines))):
        line = lines[i]
        if not line.strip():
            yield i + 1, None
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield i + 1, Skip(None, f"is not JSON: {exc}")
            continue
        if not isinstance(obj, dict):
            yield i + 1, Skip(None, "is not a JSON object: one BuyerEvent per line")
            continue
        yield i + 1, Draft(obj, Source.API)
