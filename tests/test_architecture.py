"""The code's shape, read from the source: which package may import which, and how large a piece may grow.

The services meet only through Kafka and Postgres, so none imports another; `services.core` is what
they share and imports none of them; the dev stack and demo (`devstack`) are tooling that no service
imports. Modules stay under 400 lines and functions under 60, but for the hot rollup fold, whose
single loop is kept whole on purpose (it says why).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ROOT / "services"

# importer package -> packages it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "services.core": (
        "services.aggregator",
        "services.api",
        "services.ingest",
        "services.importer",
        "services.cli",
        "devstack",
    ),
    "services.aggregator": ("services.api", "services.ingest", "devstack"),
    "services.api": ("services.aggregator", "services.ingest", "devstack"),
    "services.ingest": ("services.aggregator", "services.api", "devstack"),
    "services.importer": ("services.aggregator", "services.api", "services.ingest", "devstack"),
}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
LONG_FUNCTIONS_ALLOWED = {("services/aggregator/fold.py", "fold")}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the imported module, dotted
    line: int


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path) -> Iterator[Import]:
    """Every module `path` imports, at any depth of its code (lazy imports inside functions too)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            yield Import(name, base, node.lineno)
            # `from services import api` imports the package services.api
            for alias in node.names:
                yield Import(name, f"{base}.{alias.name}", node.lineno)


def violations(paths: list[Path], root: Path = ROOT) -> list[str]:
    found = []
    for path in paths:
        for imp in imports_of(path, root):
            for importer, banned in FORBIDDEN.items():
                if not _within(imp.module, importer):
                    continue
                for target in banned:
                    if _within(imp.target, target):
                        where = f"{path.relative_to(root)}:{imp.line}"
                        found.append(f"{where}: {imp.module} imports {imp.target} ({importer} -/-> {target})")
    return sorted(set(found))


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def service_modules() -> list[Path]:
    return sorted(SERVICES.rglob("*.py"))


def test_services_meet_only_through_kafka_and_postgres() -> None:
    assert violations(service_modules()) == []


def test_a_forbidden_import_is_found(tmp_path: Path) -> None:
    """The check itself: a module of each service that imports a forbidden one is reported."""
    cases = {
        "services/aggregator/bad.py": "from services.api.demand import service\n",
        "services/api/bad.py": "def f():\n    import services.aggregator.store\n",
        "services/ingest/bad.py": "from services.aggregator import fold\n",
        "services/core/bad.py": "from ..api.kit import windows\n",
        "services/api/ok.py": "from services.core import events\n",
    }
    paths = []
    for rel, text in cases.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        paths.append(path)
    found = violations(paths, tmp_path)
    assert sorted({line.split(":")[0] for line in found}) == [
        "services/aggregator/bad.py",
        "services/api/bad.py",
        "services/core/bad.py",
        "services/ingest/bad.py",
    ]


def test_modules_stay_small() -> None:
    large = {
        str(p.relative_to(ROOT)): n
        for p in service_modules()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert large == {}


def _functions(path: Path) -> Iterator[tuple[str, int]]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            assert node.end_lineno is not None
            yield node.name, node.end_lineno - first + 1


@pytest.mark.parametrize("package", ["services", "devstack"])
def test_functions_stay_short(package: str) -> None:
    root = ROOT / package
    if not root.is_dir():
        pytest.skip(f"no {package} package")
    long = {
        f"{p.relative_to(ROOT)}:{name}": n
        for p in sorted(root.rglob("*.py"))
        for name, n in _functions(p)
        if n > MAX_FUNCTION_LINES and (str(p.relative_to(ROOT)), name) not in LONG_FUNCTIONS_ALLOWED
    }
    assert long == {}
