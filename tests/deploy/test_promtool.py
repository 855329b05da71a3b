"""promtool accepts the Prometheus config and the alert rules, and the rules fire when they should."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tooling import ALERTS, PROMETHEUS_CONFIG, RUNBOOKS, require_binary

UNIT_TESTS = Path(__file__).with_name("alerts_test.yml")


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("promtool"), *args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_config_with_its_rule_file_is_valid() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["rule_files"] == ["alerts.yml"]
    done = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rule files found" in done.stdout + done.stderr


def test_alert_rules_are_valid() -> None:
    done = promtool("check", "rules", str(ALERTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in done.stdout


def test_alerts_fire_exactly_when_their_unit_tests_expect(tmp_path: Path) -> None:
    # promtool compares annotations verbatim; the cases are about labels and timing only.
    doc = yaml.safe_load(ALERTS.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    done = promtool("test", "rules", UNIT_TESTS.name, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    tested = set(re.findall(r"alertname: (\w+)", UNIT_TESTS.read_text()))
    assert tested == {rule["alert"] for rule in alert_rules()}, "every alert needs unit tests"


def test_every_alert_explains_itself_and_points_to_its_runbook() -> None:
    headings = re.findall(r"^#{2,4} (.+)$", RUNBOOKS.read_text(), re.M)
    anchors = {github_anchor(h) for h in headings}
    rules = alert_rules()
    assert len(rules) >= 8
    for rule in rules:
        notes = rule.get("annotations", {})
        assert notes.get("summary"), rule["alert"]
        assert notes.get("description"), rule["alert"]
        assert rule.get("labels", {}).get("severity") in ("critical", "warning"), rule["alert"]
        runbook = notes.get("runbook", "")
        assert runbook == f"docs/alerts.md#{rule['alert'].lower()}", f"{rule['alert']}: runbook {runbook!r}"
        assert runbook.split("#", 1)[1] in anchors, f"{rule['alert']}: no heading in {RUNBOOKS.name}"


def test_a_missing_binary_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install prometheus"):
        require_binary("promtool-that-is-not-installed")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        require_binary("promtool-that-is-not-installed")
