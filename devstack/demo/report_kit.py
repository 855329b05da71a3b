"""What the pipeline and unit-economics sections of `salesloop report` share: an API answer that is a
body or a problem to show, the table layout, the placeholder of a table that cannot be shown, and
the number formats."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from devstack.demo.send import error_message


@dataclass
class Answer:
    body: dict[str, Any] | None = None
    problem: str | None = None
    missing_scope: bool = False


async def get(
    client: httpx.AsyncClient, path: str, query: Mapping[str, str], gate: asyncio.Semaphore | None = None
) -> Answer:
    """GET `path`: its body when 200, else what to say instead (a 403 is a scope the key lacks, a 404
    an API that does not serve the path). `gate` bounds the requests in flight."""
    try:
        if gate is None:
            response = await client.get(path, params=dict(query))
        else:
            async with gate:
                response = await client.get(path, params=dict(query))
    except httpx.HTTPError as exc:
        return Answer(problem=f"cannot reach the API: {type(exc).__name__}")
    if response.status_code == 200:
        return Answer(body=response.json())
    if response.status_code == 404:
        return Answer(problem=f"this API does not serve {path}")
    return Answer(problem=error_message(response), missing_scope=response.status_code == 403)


def missing_scopes(section: str, answers: Iterable[Answer]) -> list[str]:
    """The problems of the answers refused for a scope the key lacks, once each, named by section."""
    found = {a.problem for a in answers if a.missing_scope and a.problem}
    return [f"{section}: {p}" for p in sorted(found)]


def print_renderables(console: Console, renderables: Iterable[RenderableType]) -> None:
    for renderable in renderables:
        console.print(renderable)
        console.print()


def unavailable(title: str, answer: Answer) -> RenderableType:
    return Group(Text(title, style="italic"), Text(f"  not available: {answer.problem}", style="yellow"))


def table(title: str, columns: Sequence[str], left: Collection[str]) -> Table:
    """A table of `columns`: the first and those in `left` aligned left, numbers to the right."""
    out = Table(title=title, title_justify="left", caption_justify="left")
    for i, column in enumerate(columns):
        out.add_column(column, justify="right" if i and column not in left else "left")
    return out


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def money(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:,.0f}"
