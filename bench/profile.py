"""Sampling profiles of a running service with py-spy (from bench/.venv), summarised as text.

py-spy attaches to the process id without restarting it, samples only threads that are running
(not waiting on I/O), and writes collapsed stacks; the summary lists where the CPU time went.
"""

from __future__ import annotations

import re
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

RAW = ("--format", "raw", "--output")
WRAPPER_SHARE = 0.95
_LINE = re.compile(r" \(([^()]*):\d+\)$")


class Profiler:
    """`py-spy record` on `pid` from construction until `.stop()`; no-op when `py_spy` is None."""

    def __init__(self, py_spy: Path | None, pid: int, out: Path, rate: int = 100) -> None:
        self.out = out
        self.proc: subprocess.Popen[bytes] | None = None
        if py_spy is None:
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [str(py_spy), "record", "--pid", str(pid), "--rate", str(rate), "--nonblocking", *RAW, str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> dict[str, Any] | None:
        """Stops sampling; returns the summary (also written next to the raw stacks) or None."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if not self.out.exists():
            return None
        summary = summarise(self.out.read_text())
        self.out.with_suffix(".txt").write_text(render(summary))
        return summary


def _function(frame: str) -> str:
    """`fold (services/aggregator/fold.py:171)` -> `fold (services/aggregator/fold.py)`."""
    frame = frame.strip()
    m = _LINE.search(frame)
    if m is None:
        return frame
    path = m.group(1)
    for marker in ("site-packages/", "/work/main/", "/lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{frame[: m.start()]} ({path})"


def summarise(collapsed: str, top: int = 20) -> dict[str, Any]:
    """Collapsed stacks -> total samples, the top functions by own time and by inclusive time."""
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_function(f) for f in stack.split(";") if f.strip()]
        # py-spy prefixes the thread or process; frames without a file are not Python functions.
        frames = [f for f in frames if f.endswith(")")]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        packages[_package(frames[-1])] += n
        for f in set(frames):
            inclusive[f] += n

    def share(counter: Counter[str]) -> list[list[Any]]:
        # Frames on (nearly) every stack are the entry point and the event loop: they say nothing.
        ranked = [(name, n) for name, n in counter.most_common() if n < WRAPPER_SHARE * total]
        return [[name, round(100 * n / total, 1)] for name, n in ranked[:top]]

    return {
        "samples": total,
        "own_pct": share(own),
        "own_by_package_pct": share(packages),
        "inclusive_pct": share(inclusive),
    }


def _package(function: str) -> str:
    """`fold (services/aggregator/fold.py)` -> `services/aggregator`; `x (asyncpg/pool.py)` -> `asyncpg`."""
    path = function.rsplit("(", 1)[-1].rstrip(")")
    parts = path.split("/")
    if parts[0] == "services" and len(parts) > 2:
        return "/".join(parts[:2])
    return parts[0] if len(parts) > 1 else "stdlib"


def render(summary: dict[str, Any]) -> str:
    lines = [f"samples: {summary['samples']}", "", "own time %:"]
    lines += [f"  {pct:5.1f}  {name}" for name, pct in summary["own_pct"]]
    lines += ["", "own time by package %:"]
    lines += [f"  {pct:5.1f}  {name}" for name, pct in summary["own_by_package_pct"]]
    lines += ["", "inclusive time % (py-spy truncates deep coroutine stacks: a lower bound):"]
    lines += [f"  {pct:5.1f}  {name}" for name, pct in summary["inclusive_pct"]]
    return "\n".join(lines) + "\n"
