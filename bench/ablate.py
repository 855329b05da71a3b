"""Diagnostics for profiles: the real `salesloop aggregator` with some stateful folds switched off.

    python -m bench.ablate leads,crm aggregator --metrics-port 8003

Measuring the same backlog with and without a fold shows what that fold costs in events/s, which a
sampling profile cannot: most of a fold's cost is Postgres time, not Python time. Never used for the
headline numbers.
"""

from __future__ import annotations

import sys

from services.aggregator import folds


def main() -> None:
    without = set(sys.argv[1].split(","))
    registry = getattr(folds, "FOLDS")  # noqa: B009 (a module global, patched below)
    known = {fold.name for fold in registry if fold.name != "rollups"}
    if not without <= known | {"all"}:
        raise SystemExit(f"unknown folds {sorted(without - known)}; known: {sorted(known)} or all")
    # The batch transaction reads this module global on every batch; the rollup fold always runs.
    kept = tuple(
        f for f in registry if f.name == "rollups" or ("all" not in without and f.name not in without)
    )
    setattr(folds, "FOLDS", kept)  # noqa: B010
    sys.argv = [sys.argv[0], *sys.argv[2:]]
    from services.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
