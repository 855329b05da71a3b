"""What an import tells the operator: per file, rows imported / duplicate / skipped and the events sent;
the first skipped rows with their reason (all of them in `--report FILE`); the owners no rep has."""

from __future__ import annotations

import csv
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from services.importer.model import Problem
from services.importer.run import Outcome

SHOWN = 20


def render(console: Console, outcome: Outcome, report: Path | None) -> None:
    console.print(_files(outcome))
    if outcome.problems:
        console.print(_problems(outcome.problems, report))
    owners = outcome.owners
    if owners.unresolved:
        table = _table("Owners that are no rep yet")
        table.add_column("owner")
        table.add_column("rows", justify="right")
        for owner, rows in owners.unresolved.most_common(SHOWN):
            table.add_row(Text(owner), str(rows))
        console.print(table)
        console.print(
            "Their events count as unassigned. Map names with --rep-map FILE (owner,rep_id); for ids, add"
            " them to the reps' aliases (PUT /v1/reps/{rep_id}) and run `salesloop rebuild`."
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
    table = _table("Import" + (" (dry run)" if outcome.dry_run else ""))
    for name in ("file", "export", "rows", "imported", "duplicate", "skipped", "events"):
        table.add_column(name, justify="left" if name in ("file", "export") else "right", overflow="fold")
    for f in outcome.files:
        counts = (f.rows, f.imported, f.duplicate, f.skipped, f.events)
        table.add_row(Text(f.path.name), f.export, *(str(n) for n in counts))
    return table


def _problems(problems: list[Problem], report: Path | None) -> Table:
    shown = "" if len(problems) <= SHOWN else f" (first {SHOWN} of {len(problems)}"
    shown += "" if not shown else (f"; all in {report})" if report else "; all with --report FILE)")
    table = _table(f"Skipped rows{shown}")
    for name in ("file", "row", "column", "reason"):
        table.add_column(name, justify="right" if name == "row" else "left", overflow="fold")
    for p in problems[:SHOWN]:
        # Cells as text, not markup: names and values from the files may hold brackets.
        table.add_row(Text(Path(p.file).name), str(p.row), Text(p.column or ""), Text(p.reason))
    return table


def _table(title: str) -> Table:
    # As wide as its title at least: a title wider than its table would wrap.
    return Table(title=title, title_justify="left", min_width=len(title) + 2)
