"""What the operator reads after an import: the table per file, the first skipped rows, every one of
them in --report, the owners that are no rep yet."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from rich.console import Console

from services.importer.command import _error
from services.importer.model import Problem
from services.importer.owners import Owners
from services.importer.run import FileTally, Outcome
from services.importer.summary import SHOWN, render, write_report


def _outcome(problems: int, dry_run: bool = False) -> Outcome:
    tally = FileTally(Path("/exports/Task.csv"), "salesforce-tasks", 60, 60, 30, 5, problems, 30)
    skipped = [
        Problem("/exports/Task.csv", n + 2, "Status", f"is 'Open' [row {n + 2}]") for n in range(problems)
    ]
    owners = Owners(unresolved=Counter({"0055e000003QwEtAAK": 4, "[Queue] Inbound": 2}))
    return Outcome([tally], skipped, owners, dry_run, events=30, duplicates=5)


def test_the_summary_shows_counts_the_first_skipped_rows_and_unknown_owners() -> None:
    console = Console(record=True, width=160)
    render(console, _outcome(25), Path("skipped.csv"))
    text = console.export_text()
    assert "│ Task.csv │ salesforce-tasks │   60 │       30 │         5 │      25 │     30 │" in text
    assert f"Skipped rows (first {SHOWN} of 25; all in skipped.csv)" in text
    assert "is 'Open' [row 21]" in text  # cell values are text, not markup
    assert "is 'Open' [row 22]" not in text
    assert "[Queue] Inbound" in text
    assert "Sent 30 events (5 left out as already known)" in text


def test_a_dry_run_says_nothing_was_sent() -> None:
    console = Console(record=True, width=160)
    render(console, _outcome(0, dry_run=True), None)
    text = console.export_text()
    assert "Import (dry run)" in text
    assert "Dry run: nothing was sent; 30 events would be." in text
    assert "Skipped rows" not in text


def test_the_report_holds_every_skipped_row(tmp_path: Path) -> None:
    path = tmp_path / "skipped.csv"
    write_report(path, _outcome(25).problems)
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["file", "row", "column", "reason"]
    assert len(rows) == 26
    assert rows[25] == ["/exports/Task.csv", "26", "Status", "is 'Open' [row 26]"]


def test_a_refusal_is_printed_whole_on_a_narrow_terminal() -> None:
    """A long path is not broken by a line end inside it: the terminal wraps it, and a copy stays whole."""
    console = Console(record=True, width=40)
    message = "/tmp/a/rather/long/directory/of/exports/deals.csv: row 3 has a value in column 4"
    _error(console, ValueError(message))
    assert console.export_text() == f"error: {message}\n"
