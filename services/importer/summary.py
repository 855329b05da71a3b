"""What an import tells the operator: per file, rows imported / duplicate / skipped and the events sent;
the first skipped rows with their reason (all of them in `--report FILE`); the owners no rep has."""

from __future__ import annotations

import csv
from pathlib import Path

from rich.console import Console
from rich.table import Table

from services.importer.model import Problem
from services.importer.run import Outcome

SHOWN = 20


def render(console: Console, outcome: Outcome, report: Path | None) -> None:
    console.print(_files(outcome))
    if outcome.problems:
        console.print(_problems(outcome.problems, report))
    owners = outcome.owners
    if owners.unresolved:
        table = Table(
            title="Owners that are no rep yet (their events count as unassigned)", title_justify="left"
        )
        table.add_column("owner")
        table.add_column("rows", justify="right")
        for owner, rows in owners.unresolved.most_common(SHOWN):
            table.add_row(owner, str(rows))
        console.print(table)
        console.print(
            "Map owner names with --rep-map FILE (CSV owner,rep_id); give reps their vendor ids as aliases"
            " (PUT /v1/reps/{rep_id}) and run `salesloop rebuild` to attribute what was imported."
        )
    if outcome.dry_run:
        console.print(f"[bold]Dry run:[/] nothing was sent; {outcome.events} events would be.")
    else:
        console.print(
            f"[bold]Sent {outcome.events} events[/] ({outcome.duplicates} left out as already known);"
            " they count once the aggregator has folded them."
        )


def write_report(path: Path, problems: list[Problem]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["file", "row", "column", "reason"])
        out.writerows([p.file, p.row, p.column or "", p.reason] for p in problems)


def _files(outcome: Outcome) -> Table:
    table = Table(title="Import" + (" (dry run)" if outcome.dry_run else ""), title_justify="left")
    for name in ("file", "export", "rows", "imported", "duplicate", "skipped", "events"):
        table.add_column(name, justify="left" if name in ("file", "export") else "right", overflow="fold")
    for f in outcome.files:
        table.add_row(
            f.path.name, f.export, *(str(n) for n in (f.rows, f.imported, f.duplicate, f.skipped, f.events))
        )
    return table


def _problems(problems: list[Problem], report: Path | None) -> Table:
    shown = "" if len(problems) <= SHOWN else f" (first {SHOWN} of {len(problems)}"
    shown += "" if not shown else (f"; all in {report})" if report else "; all with --report FILE)")
    table = Table(title=f"Skipped rows{shown}", title_justify="left")
    for name in ("file", "row", "column", "reason"):
        table.add_column(name, justify="right" if name == "row" else "left", overflow="fold")
    for p in problems[:SHOWN]:
        table.add_row(Path(p.file).name, str(p.row), p.column or "", p.reason)
    return table
