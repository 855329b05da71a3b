"""Paths of the deploy files and the Prometheus binaries the deploy tests run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "salesloop.yml"
DASHBOARD_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "salesloop.yml"
# The runbooks: one heading per alert.
RUNBOOKS = ROOT / "docs" / "alerts.md"


def require_binary(name: str) -> str:
    """The path of `name` (from Debian's `prometheus` package, which .ci/run installs).

    In CI a missing binary fails the test: the checks must not silently stop running there.
    """
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} is not installed (apt-get install prometheus provides prometheus and promtool)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
