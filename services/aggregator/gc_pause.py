"""Python's cyclic garbage collector paused while a batch transaction is open.

A batch transaction allocates tens of thousands of containers (asyncpg records, row tuples, the folds'
per-key state) that live until it ends and are then freed by reference counting. The cyclic collector,
triggered by allocation counts, would traverse them, and every few batches every object of the
process, to find no garbage: a fifth of the aggregator's Python CPU on an import's events
(bench/import_fold.py). Paused for the transaction, it runs again once it ends, and then finds the
batch's objects gone. Cycles made meanwhile wait for that next collection, one batch at most.

Nested and concurrent transactions (a pool of several connections) share one pause: the collector
runs again when the last one ends, and only if it was running when the first began.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_open = 0
_resume = False


@contextmanager
def paused() -> Iterator[None]:
    global _open, _resume
    if _open == 0:
        _resume = gc.isenabled()
        gc.disable()
    _open += 1
    try:
        yield
    finally:
        _open -= 1
        if _open == 0 and _resume:
            gc.enable()
