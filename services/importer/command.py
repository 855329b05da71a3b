"""`salesloop import`: read, map, check and send, with a progress bar and a summary on standard error.

Exit status: 0 once the import ran (skipped rows are listed, not fatal); 2 when the source is
unknown, a file is not the export it should be or the rep map cannot be read, before anything is
sent; 1 when the import cannot run (unknown tenant or timezone, broker unreachable or stopping).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from services.core.db import asyncpg_dsn
from services.core.kafka import BrokerUnavailable
from services.core.settings import Settings
from services.importer.csvfile import FileRefused
from services.importer.known import Connection
from services.importer.owners import RepMapError
from services.importer.run import ImportFailed, Outcome, Request, prepare, run, tallies
from services.importer.send import Sender
from services.importer.sources import Loaded, UnknownSource
from services.importer.summary import render, write_report

REFUSED = 2
FAILED = 1
GC_THRESHOLD = 100_000


def main(settings: Settings, request: Request, report: Path | None, console: Console | None = None) -> int:
    console = console or Console(stderr=True)
    # A broker without idempotent producers (Tansu) makes aiokafka log an error the producer recovers
    # from, and the producer a warning meant for the services' logs: neither is the operator's business.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("services.core.kafka").setLevel(logging.ERROR)
    # Mapping allocates a chunk's rows, drafts and events, which live until the chunk is done and are
    # then freed by their reference counts: with the default threshold (700 allocations) the collector
    # walks and promotes them again and again, for a fifth of the mapping's time. It still runs.
    gc.set_threshold(GC_THRESHOLD)
    try:
        loaded = prepare(request)
    except (FileRefused, RepMapError, UnknownSource) as exc:
        _error(console, exc)
        console.print("Nothing was sent.")
        return REFUSED
    # The files' rows stay in memory to the end: out of the collector's sight, the full collections the
    # mapping's allocations trigger do not walk them again and again.
    gc.freeze()
    try:
        outcome = asyncio.run(_import(settings, request, loaded, console))
    except (ImportFailed, BrokerUnavailable) as exc:
        _error(console, exc)
        return FAILED
    render(console, outcome, report)
    if report is not None:
        write_report(report, outcome.problems)
    return 0


async def _import(settings: Settings, request: Request, loaded: list[Loaded], console: Console) -> Outcome:
    db = await Connection.open(asyncpg_dsn(settings.database_url.get_secret_value()), "salesloop-import")
    sender = None if request.dry_run else Sender(settings)
    try:
        if sender is not None:
            await sender.start()
        with _progress(console) as bar:
            tasks = [bar.add_task(t.path.name, total=t.total) for t in tallies(loaded)]
            return await run(
                db, request, loaded, sender, lambda i, done: bar.update(tasks[i], completed=done)
            )
    finally:
        if sender is not None:
            await sender.stop()
        await db.close()


def _error(console: Console, exc: Exception) -> None:
    # As text, not markup: file names and cell values may hold brackets. Not wrapped by rich, which
    # would break a long path inside a word: the terminal wraps it and a copied path stays whole.
    console.print(Text.assemble(("error:", "red"), f" {exc}"), highlight=False, soft_wrap=True)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
