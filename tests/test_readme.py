"""Every shell block of README.md runs, unchanged, against a real `salesloop dev`, and answers as shown.

The blocks run in README order, one `bash` each (`set -euo pipefail`), as in one terminal: what a block
sets (the virtualenv, the variables of `dev.env`, a key it created) is there for the next one. The
working folder holds `.salesloop/` (the state folder of the `salesloop dev` this test starts on free
ports) and `.venv` (this virtualenv), so `. .salesloop/dev.env` and `salesloop demo` find the test's
stack exactly as they find the one `make run` starts in the repository. Nothing of a block is rewritten.

A block must exit 0. When its shown output follows it directly, the real output must have that shape:
```json - it parses, and every key the shown document has at its top level is there (`"..."` marks what
the README trims); ```text - every shown line, numbers and `…` standing for any value, is a line of the
output (lines of tables, drawn with box characters, hold data and are not compared).

Not executed, each by its fence marker: ```sh make (`make run` is what this test does with `salesloop
dev`, `make test` runs this test) and ```sh docker (needs Docker and the compose stack). Any other marker
fails the test, so a block cannot drop out of it by a typo.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.system.test_dev import free_ports, running_dev

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SKIPPED = {
    "make": "make run is what this test does with salesloop dev; make test runs this test",
    "docker": "needs Docker and the compose stack",
}
BLOCK_TIMEOUT_S = 60.0
# Rich wraps at the terminal's width; a wide one keeps each line of the shown outputs on one line.
COLUMNS = "160"

FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)
BOX = re.compile(r"[\u2500-\u259f]")
NUMBER = re.compile(r"\d(?:[\d,.]*\d)?")


@dataclass(frozen=True)
class Block:
    line: int
    markers: tuple[str, ...]
    code: str
    output_kind: str | None = None  # "json" or "text": the shown output that directly follows
    output: str | None = None

    @property
    def where(self) -> str:
        return f"README.md:{self.line}"


def shell_blocks(text: str) -> list[Block]:
    """The ```sh blocks of `text`, each with the ```json or ```text block right after it, if any."""
    fences = list(FENCE.finditer(text))
    blocks = []
    for i, fence in enumerate(fences):
        lang, *markers = fence.group(1).split() or [""]
        if lang != "sh":
            continue
        block = Block(text.count("\n", 0, fence.start()) + 1, tuple(markers), fence.group(2))
        after = fences[i + 1] if i + 1 < len(fences) else None
        if after is not None and not text[fence.end() : after.start()].strip():
            kind = (after.group(1).split() or [""])[0]
            if kind in ("json", "text"):
                block = Block(block.line, block.markers, block.code, kind, after.group(2))
        blocks.append(block)
    return blocks


def runnable(blocks: list[Block]) -> list[Block]:
    unknown = [f"{b.where}: {m}" for b in blocks for m in b.markers if m not in SKIPPED]
    assert not unknown, f"unknown fence markers (known: {', '.join(SKIPPED)}): {unknown}"
    return [b for b in blocks if not b.markers]


def json_problems(shown: str, stdout: str) -> list[str]:
    """Whether `stdout` is one JSON document with every top-level key of the `shown` one."""
    expected = json.loads(shown)
    try:
        actual = json.loads(stdout)
    except json.JSONDecodeError as exc:
        return [f"the output is not JSON ({exc}): {stdout[:500]!r}"]
    if not isinstance(expected, dict):
        return [] if type(actual) is type(expected) else [f"expected a {type(expected).__name__}"]
    if not isinstance(actual, dict):
        return [f"expected an object, got {stdout[:500]!r}"]
    problems = []
    for key, value in expected.items():
        if key == "...":
            continue
        if key not in actual:
            problems.append(f"no {key!r} in {stdout[:500]!r}")
        elif isinstance(value, dict | list) and type(actual[key]) is not type(value):
            problems.append(f"{key!r} is not a {type(value).__name__}: {actual[key]!r}")
    return problems


def line_pattern(shown: str) -> re.Pattern[str]:
    parts = []
    for piece in re.split(r"(…|\d(?:[\d,.]*\d)?)", shown):
        if piece == "…":
            parts.append(".*")
        elif NUMBER.fullmatch(piece):
            parts.append(NUMBER.pattern)
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts))


def text_problems(shown: str, output: str) -> list[str]:
    """Whether every shown line (tables aside) is a line of `output`, up to numbers and `…`."""
    lines = [line.strip() for line in output.splitlines()]
    problems = []
    for wanted in (line.strip() for line in shown.splitlines()):
        if wanted and not BOX.search(wanted):
            pattern = line_pattern(wanted)
            if not any(pattern.fullmatch(line) for line in lines):
                problems.append(f"no line like {wanted!r}")
    return problems


def run_block(block: Block, cwd: Path, env: dict[str, str], state: Path) -> subprocess.CompletedProcess[str]:
    """Run `block` in bash in the terminal state `state` left by the blocks before it, then save it."""
    saved = shlex.quote(str(state))
    # allexport: the variables a block sets are saved with the exported ones, as a terminal keeps them.
    script = f"set -euo pipefail -o allexport\n. {saved}\n{block.code}\nexport -p > {saved}\n"
    return subprocess.run(
        ["bash", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
        check=False,
    )


def block_problems(block: Block, done: subprocess.CompletedProcess[str]) -> list[str]:
    if done.returncode != 0:
        return [f"exit code {done.returncode}"]
    if block.output is None:
        return []
    if block.output_kind == "json":
        return json_problems(block.output, done.stdout)
    return text_problems(block.output, done.stdout + done.stderr)


def terminal_env(venv_bin: Path) -> dict[str, str]:
    """The environment of a fresh terminal: no SALESLOOP_* settings, no virtualenv on the PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SALESLOOP_", "VIRTUAL_ENV"))}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p).resolve() != venv_bin.resolve()]
    return {**env, "PATH": os.pathsep.join(path), "COLUMNS": COLUMNS}


def report(block: Block, done: subprocess.CompletedProcess[str], problems: list[str]) -> str:
    return (
        f"{block.where}: {'; '.join(problems)}\n--- block\n{block.code}--- stdout\n{done.stdout[-3000:]}"
        f"--- stderr\n{done.stderr[-3000:]}"
    )


# --- the checks themselves -----------------------------------------------------------------------


def test_blocks_are_found_with_their_outputs_and_markers() -> None:
    text = (
        '```sh make\nmake run\n```\n\n```sh\necho \'{"a": 1}\'\n```\n\n```json\n{"a": 1}\n```\n'
        "prose\n```sh\necho hi\n```\nprose\n```text\nhi\n```\n```mermaid\nflowchart LR\n```\n"
    )
    blocks = shell_blocks(text)
    assert [(b.line, b.markers, b.output_kind) for b in blocks] == [
        (1, ("make",), None),
        (5, (), "json"),
        (13, (), None),
    ]
    assert [b.code for b in runnable(blocks)] == ["echo '{\"a\": 1}'\n", "echo hi\n"]
    with pytest.raises(AssertionError, match="unknown fence markers"):
        runnable(shell_blocks("```sh dokcer\ndocker compose up\n```\n"))


def test_the_output_checks_catch_a_changed_shape() -> None:
    shown = '{"rep_id": "r1", "metrics": {"dials": 3, "...": "..."}, "...": "..."}'
    assert json_problems(shown, '{"rep_id": "r2", "metrics": {}, "as_of": null}') == []
    assert json_problems(shown, '{"rep_id": "r1", "metrics": []}') == ["'metrics' is not a dict: []"]
    assert json_problems(shown, '{"error": {"code": "not_found"}}')[0].startswith("no 'rep_id'")
    assert json_problems(shown, "Internal Server Error")[0].startswith("the output is not JSON")
    text = "replayed 12 (3 new to the rollups), still failing 0\nsl_…\n┃ rep ┃ focus ┃"
    assert text_problems(text, "replayed 1,200 (0 new to the rollups), still failing 7\nsl_ab12_x\n") == []
    assert text_problems(text, "replayed 5, still failing 0\nsl_x\n") == [
        f"no line like {text.splitlines()[0]!r}"
    ]


def test_a_failing_block_fails(tmp_path: Path) -> None:
    state = tmp_path / "state.sh"
    state.write_text("")
    env = {"PATH": os.environ.get("PATH", "")}
    for code in ("false\necho after\n", "cat /nonexistent | cat\n", "echo $UNSET_VARIABLE\n"):
        block = Block(1, (), code)
        done = run_block(block, tmp_path, env, state)
        assert block_problems(block, done) == [f"exit code {done.returncode}"], code
    assigned = Block(1, (), "GREETING=hello\n")
    assert block_problems(assigned, run_block(assigned, tmp_path, env, state)) == []
    shown = Block(2, (), 'echo "{\\"greeting\\": \\"$GREETING\\"}"\n', "json", '{"greeting": "hello"}')
    done = run_block(shown, tmp_path, env, state)
    assert block_problems(shown, done) == [], done.stderr
    assert json.loads(done.stdout) == {"greeting": "hello"}


def test_the_readme_has_runnable_blocks_and_shows_what_the_api_answers() -> None:
    blocks = shell_blocks(README.read_text())
    run = runnable(blocks)
    assert len(run) >= 15
    undocumented = [b.where for b in run if "curl" in b.code and b.output_kind != "json"]
    assert undocumented == [], "every API call in the README shows its answer"


# --- the README itself ---------------------------------------------------------------------------


@pytest.mark.slow
def test_every_shell_block_of_the_readme_runs_against_salesloop_dev(tmp_path: Path) -> None:
    venv = Path(sys.prefix)
    assert (venv / "bin" / "activate").exists(), "run the tests in the project's virtualenv (make test)"
    assert shutil.which("curl"), "the README's examples use curl; install it"
    (tmp_path / ".venv").symlink_to(venv)
    state = tmp_path / "terminal.sh"
    state.write_text("")
    env = terminal_env(venv / "bin")
    blocks = runnable(shell_blocks(README.read_text()))
    with running_dev(tmp_path, tmp_path / ".salesloop", free_ports(), "dev") as dev:
        dev.wait_ready()
        for block in blocks:
            done = run_block(block, tmp_path, env, state)
            problems = block_problems(block, done)
            assert not problems, report(block, done, problems)
        assert dev.proc.poll() is None, f"salesloop dev stopped:\n{dev.output()}"
