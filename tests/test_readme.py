"""Every shell block of README.md and docs/ runs, unchanged, against a real `salesloop dev`, as shown.

The blocks run file by file in the order of `DOCS`, and in each file from top to bottom, one `bash` each
(`set -euo pipefail`), all in one terminal: what a block sets (the virtualenv, the variables of `dev.env`,
a key it created) is there for the next one, in the same file or the next. The working folder holds
`.salesloop/` (the state folder of the `salesloop dev` this test starts on free ports) and `.venv` (this
virtualenv), so `. .salesloop/dev.env` and `salesloop demo` find the test's stack exactly as they find
the one `make run` starts in the repository. Nothing of a block is rewritten; a failing one is named by
its file and line.

A block must exit 0. When its shown output follows it directly, the real output must have that shape:
```json - it parses, and every key the shown document has at its top level is there (`"..."` marks what
the file trims); ```text - every shown line, numbers and `…` standing for any value, is a line of the
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
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.system.test_dev import free_ports, running_dev

ROOT = Path(__file__).resolve().parents[1]
# The files whose shell blocks run, in this order: the README's demo loads the data docs/api.md reads,
# docs/commands.md creates the tenant `acme` the vendor pages and docs/operations.md go on with. A pattern
# stands for its files in name order; a file runs once, at its first place.
DOCS = (
    "README.md",
    "docs/api.md",
    "docs/commands.md",
    "docs/vendors/README.md",
    "docs/vendors/*.md",
    "docs/operations.md",
    "docs/*.md",
)
SKIPPED = {
    "make": "make run is what this test does with salesloop dev; make test runs this test",
    "docker": "needs Docker and the compose stack",
}
BLOCK_TIMEOUT_S = 60.0
# Rich wraps at the terminal's width; a wide one keeps each line of the shown outputs on one line.
COLUMNS = "160"

FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.+)$", re.M)
BOX = re.compile(r"[\u2500-\u259f]")
NUMBER = re.compile(r"\d(?:[\d,.]*\d)?")


@dataclass(frozen=True)
class Block:
    path: str  # relative to the repository, as error locations name it
    line: int
    markers: tuple[str, ...]
    code: str
    output_kind: str | None = None  # "json" or "text": the shown output that directly follows
    output: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def doc_files() -> list[Path]:
    """The files of `DOCS`, in the order their blocks run."""
    files: list[Path] = []
    for pattern in DOCS:
        files += [f for f in sorted(ROOT.glob(pattern)) if f not in files]
    return files


def doc_blocks() -> list[Block]:
    """The shell blocks of every file of `DOCS`, in the order they run."""
    return [b for f in doc_files() for b in shell_blocks(f.read_text(), str(f.relative_to(ROOT)))]


def shell_blocks(text: str, path: str) -> list[Block]:
    """The ```sh blocks of `text`, each with the ```json or ```text block right after it, if any."""
    fences = list(FENCE.finditer(text))
    blocks = []
    for i, fence in enumerate(fences):
        lang, *markers = fence.group(1).split() or [""]
        if lang != "sh":
            continue
        block = Block(path, text.count("\n", 0, fence.start()) + 1, tuple(markers), fence.group(2))
        after = fences[i + 1] if i + 1 < len(fences) else None
        if after is not None and not text[fence.end() : after.start()].strip():
            kind = (after.group(1).split() or [""])[0]
            if kind in ("json", "text"):
                block = replace(block, output_kind=kind, output=after.group(2))
        blocks.append(block)
    return blocks


def runnable(blocks: list[Block]) -> list[Block]:
    unknown = [f"{b.where}: {m}" for b in blocks for m in b.markers if m not in SKIPPED]
    assert not unknown, f"unknown fence markers (known: {', '.join(SKIPPED)}): {unknown}"
    return [b for b in blocks if not b.markers]


def anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def prose(path: Path) -> str:
    """The text of `path` without its code blocks."""
    return FENCE.sub("", path.read_text())


def broken_links(path: Path) -> list[str]:
    """The relative links of `path` (outside code blocks) that lead to no file, or to no heading of it."""
    problems = []
    for target in LINK.findall(prose(path)):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        name, _, fragment = target.partition("#")
        linked = (path.parent / name).resolve() if name else path
        linked = linked / "README.md" if linked.is_dir() else linked
        if not linked.is_file():
            problems.append(f"{target}: no such file")
        elif fragment and fragment not in {anchor(h) for h in HEADING.findall(prose(linked))}:
            problems.append(f"{target}: no such heading")
    return problems


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
    blocks = shell_blocks(text, "docs/x.md")
    assert [(b.where, b.markers, b.output_kind) for b in blocks] == [
        ("docs/x.md:1", ("make",), None),
        ("docs/x.md:5", (), "json"),
        ("docs/x.md:13", (), None),
    ]
    assert [b.code for b in runnable(blocks)] == ["echo '{\"a\": 1}'\n", "echo hi\n"]
    with pytest.raises(AssertionError, match=r"unknown fence markers.*docs/y\.md:1: dokcer"):
        runnable(shell_blocks("```sh dokcer\ndocker compose up\n```\n", "docs/y.md"))


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
        block = Block("x.md", 1, (), code)
        done = run_block(block, tmp_path, env, state)
        assert block_problems(block, done) == [f"exit code {done.returncode}"], code
    assigned = Block("x.md", 1, (), "GREETING=hello\n")
    assert block_problems(assigned, run_block(assigned, tmp_path, env, state)) == []
    shown = Block(
        "x.md", 2, (), 'echo "{\\"greeting\\": \\"$GREETING\\"}"\n', "json", '{"greeting": "hello"}'
    )
    done = run_block(shown, tmp_path, env, state)
    assert block_problems(shown, done) == [], done.stderr
    assert json.loads(done.stdout) == {"greeting": "hello"}


def test_the_link_check_catches_a_missing_file_or_heading(tmp_path: Path) -> None:
    assert anchor("Reps: `PUT /v1/reps/{rep_id}`, `GET /v1/reps`") == "reps-put-v1repsrep_id-get-v1reps"
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "README.md").write_text("# Sub\n\n## Try it by hand\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n[a](sub/README.md#try-it-by-hand) [b](sub/) [c](#page) [d](https://example.com/x.md)\n"
        "[e](gone.md) [f](sub/#try-it) [g](#nothing)\n```sh\necho '[h](in-a-block.md)'\n```\n"
    )
    assert broken_links(page) == [
        "gone.md: no such file",
        "sub/#try-it: no such heading",
        "#nothing: no such heading",
    ]


# --- the docs themselves -------------------------------------------------------------------------


def test_every_doc_runs_in_a_fixed_place() -> None:
    assert [p for p in DOCS if "*" not in p and not (ROOT / p).is_file()] == [], "a file of DOCS is missing"
    assert set(ROOT.glob("docs/**/*.md")) <= set(doc_files()), "a docs/ file outside DOCS would never run"


def test_the_docs_have_runnable_blocks_and_show_what_the_api_answers() -> None:
    run = runnable(doc_blocks())
    assert len(run) >= 15
    undocumented = [b.where for b in run if "curl" in b.code and b.output_kind != "json"]
    assert undocumented == [], "every API call in the docs shows its answer"


def test_links_between_the_docs_lead_to_a_file_and_heading() -> None:
    broken = {str(f.relative_to(ROOT)): broken_links(f) for f in doc_files()}
    assert {name: links for name, links in broken.items() if links} == {}


@pytest.mark.slow
def test_every_shell_block_of_the_docs_runs_against_salesloop_dev(tmp_path: Path) -> None:
    venv = Path(sys.prefix)
    assert (venv / "bin" / "activate").exists(), "run the tests in the project's virtualenv (make test)"
    assert shutil.which("curl"), "the docs' examples use curl; install it"
    (tmp_path / ".venv").symlink_to(venv)
    state = tmp_path / "terminal.sh"
    state.write_text("")
    env = terminal_env(venv / "bin")
    blocks = runnable(doc_blocks())
    with running_dev(tmp_path, tmp_path / ".salesloop", free_ports(), "dev") as dev:
        dev.wait_ready()
        for block in blocks:
            done = run_block(block, tmp_path, env, state)
            problems = block_problems(block, done)
            assert not problems, report(block, done, problems)
        assert dev.proc.poll() is None, f"salesloop dev stopped:\n{dev.output()}"
