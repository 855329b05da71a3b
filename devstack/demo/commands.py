"""What `salesloop demo` and `salesloop report` do, behind the thin typer functions in services/cli.py.

Both read their addresses and keys from the options, else the environment, else the `dev.env` file
that `salesloop dev` writes, so that right after `salesloop dev` they need no arguments at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console

from devstack.demo.options import REQUIRED_ENV, DemoOptions, Endpoints
from devstack.state import parse_env
from services.core.settings import Settings

DEV_ENV = Path(".salesloop/dev.env")


def config(env_file: Path, overrides: Mapping[str, str | None]) -> dict[str, str]:
    """SALESLOOP_* values: `overrides` (non-None), then the environment, then `env_file`."""
    values = parse_env(env_file.read_text()) if env_file.is_file() else {}
    values.update({k: v for k, v in os.environ.items() if k.startswith("SALESLOOP_")})
    values.update({k: v for k, v in overrides.items() if v is not None})
    return values


def settings_from(env_file: Path) -> Settings | None:
    """Database settings for setting vendor secrets, or None when they are not configured."""
    try:
        # The environment wins over the file, as everywhere else.
        return Settings(_env_file=env_file if env_file.is_file() else None)
    except (ValidationError, ValueError):
        return None


def demo(options: DemoOptions, *, env_file: Path, overrides: Mapping[str, str | None]) -> int:
    from devstack.demo import DemoError, load

    console = Console(stderr=True)
    values = config(env_file, overrides)
    missing = [name for name in REQUIRED_ENV if not values.get(name)]
    if missing:
        console.print(f"[red]error:[/] set {', '.join(missing)} (`salesloop dev` writes them to {DEV_ENV})")
        return 2
    settings = settings_from(env_file) if values.get("SALESLOOP_DATABASE_URL") else None
    try:
        summary = load(Endpoints.from_env(values), options, settings=settings, console=console)
    except (DemoError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 1
    if summary.rejected:
        return 1
    console.print("now try: [bold]salesloop report[/]")
    return 0


def report(
    *,
    tenant: str | None,
    window: Mapping[str, str],
    env_file: Path,
    overrides: Mapping[str, str | None],
) -> int:
    from devstack.demo.report import ReportError, print_report

    console = Console()
    errors = Console(stderr=True)
    values = config(env_file, overrides)
    api_url, api_key = values.get("SALESLOOP_API_URL"), values.get("SALESLOOP_API_KEY")
    if not api_url or not api_key:
        needed = "SALESLOOP_API_URL and SALESLOOP_API_KEY"
        errors.print(f"[red]error:[/] set {needed} (`salesloop dev` writes them to {DEV_ENV})")
        return 2
    try:
        return print_report(console, errors, api_url, api_key, tenant=tenant, window=window)
    except ReportError as exc:
        errors.print(f"[red]error:[/] {exc}", highlight=False)
        return 1
