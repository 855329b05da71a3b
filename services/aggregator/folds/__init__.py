"""The registry of folds: every table the aggregator derives from the archive, and in which order.

A fold turns the batch's new events and CRM updates (`FoldInput`: archived by this transaction, so
distinct and never folded before) into rows of its own tables and, optionally, rollup deltas (the CRM
fold's revenue re-attributed when a deal's amount arrives after its win). It is two modules: the pure
function of events and prior state (`<name>.py`; for the rollups, services/aggregator/fold.py) and its
one SQL module (`<name>_sql.py`: its statements and the `apply` that reads prior state, calls the pure
part and writes). A fold must give the same result whatever order the events arrive in and however
the stream is cut into batches.

`FOLDS` is the one list the live batch transaction and `salesloop rebuild` both run, through
`commit.fold_archived`; a rebuild empties every table named here first. Adding a fold is one pair of
modules and one entry.

The order is the lock order: the state tables are locked data_quality, crm_entities (and their
deal_facts), leads, call_analyses (and conversation_rollups), pipeline_deals (and the other deal
history tables), subscription_accounts (and mrr_movements), and the leads fold reads the contacts'
CRM channels the CRM fold has just brought up to date. The rollup rows are written after all of them
(commit.py, Step 7).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from services.aggregator.fold import Deltas, FoldInput
from services.aggregator.folds import (
    certifications_sql,
    conversations_sql,
    crm_sql,
    data_quality_sql,
    deals_sql,
    leads_sql,
    pipeline_sql,
    rollups_sql,
    subscriptions_sql,
)


@dataclass(frozen=True)
class Fold:
    name: str
    tables: tuple[str, ...]  # what it writes, per tenant: a rebuild empties them first
    apply: Callable[[asyncpg.Connection, FoldInput], Awaitable[Deltas | None]]


FOLDS: tuple[Fold, ...] = (
    Fold("rollups", rollups_sql.TABLES, rollups_sql.apply),
    Fold("deals", deals_sql.TABLES, deals_sql.apply),
    Fold("certifications", certifications_sql.TABLES, certifications_sql.apply),
    Fold("data_quality", data_quality_sql.TABLES, data_quality_sql.apply),
    Fold("crm", crm_sql.TABLES, crm_sql.apply),
    Fold("leads", leads_sql.TABLES, leads_sql.apply),
    Fold("conversations", conversations_sql.TABLES, conversations_sql.apply),
    Fold("pipeline", pipeline_sql.TABLES, pipeline_sql.apply),
    Fold("subscriptions", subscriptions_sql.TABLES, subscriptions_sql.apply),
)

# Every table the folds derive from the archive, each once.
DERIVED_TABLES: tuple[str, ...] = tuple(dict.fromkeys(t for fold in FOLDS for t in fold.tables))
