"""The production stack files agree with the code: settings, commands, ports, mounts, image contents.

Each check returns the problems it finds, so the tests at the bottom can also prove that a broken
file (a misspelt variable, an unknown option, a bare depends_on) is caught.
"""

from __future__ import annotations

import copy
import fnmatch
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from pydantic import SecretStr
from typer.core import TyperGroup

from services.cli import app
from services.core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
Compose = dict[str, Any]

REQUIRED_SETTINGS = ("database_url", "kafka_bootstrap", "secret_key")
ONE_SHOT = {"migrate"}
# compose service -> (CLI command, the option that sets its HTTP port)
HTTP_SERVICES = {
    "ingest": ("ingest", "port"),
    "api": ("api", "port"),
    "aggregator": ("aggregator", "metrics_port"),
}
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


def load_compose() -> Compose:
    doc: Compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return doc


def cli() -> TyperGroup:
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    return group


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def salesloop_services(doc: Compose) -> dict[str, dict[str, Any]]:
    """Services that run the salesloop image (built from this repository)."""
    return {name: svc for name, svc in doc["services"].items() if "build" in svc}


def setting_name(variable: str) -> str | None:
    return variable.removeprefix("SALESLOOP_").lower() if variable.startswith("SALESLOOP_") else None


def unknown_setting_variables(doc: Compose) -> list[str]:
    names = {v for svc in doc["services"].values() for v in environment(svc)}
    names |= set(VARIABLE.findall(yaml.safe_dump(doc)))
    return sorted(
        n for n in names if (field := setting_name(n)) is not None and field not in Settings.model_fields
    )


def missing_required_settings(doc: Compose) -> list[str]:
    problems = []
    for name, svc in salesloop_services(doc).items():
        env = environment(svc)
        for field in REQUIRED_SETTINGS:
            if not env.get(f"SALESLOOP_{field.upper()}"):
                problems.append(f"{name}: SALESLOOP_{field.upper()} is not set")
        if not re.fullmatch(r"\$\{SALESLOOP_SECRET_KEY:\?[^}]+\}", env.get("SALESLOOP_SECRET_KEY", "")):
            problems.append(
                f"{name}: SALESLOOP_SECRET_KEY must come from a required variable (${{...:?...}})"
            )
        if env.get("SALESLOOP_ENV", "production") != "production":
            problems.append(f"{name}: SALESLOOP_ENV must be production")
    return problems


def invalid_commands(doc: Compose) -> list[str]:
    group = cli()
    problems = []
    for name, svc in salesloop_services(doc).items():
        args = command(svc)
        if not args or args[0] not in group.commands:
            problems.append(f"{name}: {args[:1]} is not a salesloop command")
            continue
        try:
            group.commands[args[0]].make_context(args[0], args[1:])
        except typer.TyperException as exc:
            problems.append(f"{name}: {shlex.join(args)}: {exc}")
    return problems


def bad_dependencies(doc: Compose) -> list[str]:
    services = doc["services"]
    problems = []
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        if not isinstance(deps, dict):
            problems.append(f"{name}: depends_on must name a condition for each dependency")
            continue
        for dep, spec in deps.items():
            wanted = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            condition = spec.get("condition") if isinstance(spec, dict) else None
            if condition != wanted:
                problems.append(f"{name}: depends on {dep} with {condition!r}, expected {wanted}")
            if wanted == "service_healthy" and "healthcheck" not in services.get(dep, {}):
                problems.append(f"{name}: waits for {dep} to be healthy, but {dep} has no healthcheck")
    for name in HTTP_SERVICES:
        if "migrate" not in services[name].get("depends_on", {}):
            problems.append(f"{name}: must wait for migrate")
    return problems


def port_mismatches(doc: Compose) -> list[str]:
    group = cli()
    problems = []
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        target
        for job in prometheus["scrape_configs"]
        if job.get("metrics_path", "/metrics") == "/metrics"
        for static in job["static_configs"]
        for target in static["targets"]
    }
    for name, (cmd_name, option) in HTTP_SERVICES.items():
        svc = doc["services"][name]
        params = {p.name: p for p in group.commands[cmd_name].params}
        default = str(params[option].default)
        ctx = group.commands[cmd_name].make_context(cmd_name, command(svc)[1:])
        if str(ctx.params[option]) != default:
            problems.append(f"{name}: listens on {ctx.params[option]}, the CLI default is {default}")
        if ctx.params.get("host") != "0.0.0.0":
            problems.append(f"{name}: must listen on 0.0.0.0 to be reachable on the compose network")
        if [str(p).rsplit(":", 1)[-1] for p in svc.get("ports", [])] != [default]:
            problems.append(f"{name}: publishes {svc.get('ports')}, expected container port {default}")
        if f":{default}/healthz" not in " ".join(svc["healthcheck"]["test"]):
            problems.append(f"{name}: healthcheck does not probe /healthz on {default}")
        if f"{name}:{default}" not in targets:
            problems.append(f"prometheus does not scrape {name}:{default}/metrics")
    return problems


def default_passwords(doc: Compose) -> list[str]:
    """Passwords a stack would start with when the operator sets none: each must be a required variable."""
    problems = []
    for name, variable in (("grafana", "GF_SECURITY_ADMIN_PASSWORD"), ("postgres", "POSTGRES_PASSWORD")):
        value = environment(doc["services"][name]).get(variable, "")
        if not re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value):
            problems.append(
                f"{name}: {variable} must come from a required variable (${{...:?...}}), not {value!r}"
            )
    return problems


def missing_mounts(doc: Compose) -> list[str]:
    problems = []
    for name, svc in doc["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith(".") and not (ROOT / source).exists():
                problems.append(f"{name}: mounts {source}, which does not exist")
    return problems


# --- the tests ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def doc() -> Compose:
    return load_compose()


def test_every_long_running_service_has_a_healthcheck(doc: Compose) -> None:
    for name, svc in doc["services"].items():
        if name in ONE_SHOT:
            assert svc.get("restart") == "no", f"{name} runs once"
            continue
        test = svc.get("healthcheck", {}).get("test") or ["NONE"]
        assert test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"


def test_salesloop_variables_are_settings_fields(doc: Compose) -> None:
    assert unknown_setting_variables(doc) == []


def test_a_misspelt_variable_is_caught(doc: Compose) -> None:
    broken = copy.deepcopy(doc)
    # The services share one environment mapping (a YAML anchor): give api its own.
    env = broken["services"]["api"]["environment"] = dict(broken["services"]["api"]["environment"])
    env["SALESLOOP_KAFKA_BOOTSTRAPS"] = env.pop("SALESLOOP_KAFKA_BOOTSTRAP")
    assert unknown_setting_variables(broken) == ["SALESLOOP_KAFKA_BOOTSTRAPS"]
    assert missing_required_settings(broken) == ["api: SALESLOOP_KAFKA_BOOTSTRAP is not set"]


def test_every_salesloop_service_gets_the_required_settings(doc: Compose) -> None:
    assert set(salesloop_services(doc)) == {"migrate", *HTTP_SERVICES}
    assert missing_required_settings(doc) == []


def test_the_stack_wires_services_to_its_own_broker_and_database(doc: Compose) -> None:
    services = doc["services"]
    kafka = environment(services["kafka"])
    postgres = environment(services["postgres"])
    for name, svc in salesloop_services(doc).items():
        env = environment(svc)
        assert f"PLAINTEXT://{env['SALESLOOP_KAFKA_BOOTSTRAP']}" in kafka["KAFKA_ADVERTISED_LISTENERS"], name
        url = env["SALESLOOP_DATABASE_URL"]
        assert url.startswith("postgresql://"), name
        for variable in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
            assert postgres[variable] in url, f"{name}: {variable} differs from the postgres service's"
        assert "@postgres:5432/" in url, name


def test_commands_are_salesloop_subcommands_with_valid_options(doc: Compose) -> None:
    assert invalid_commands(doc) == []


def test_an_unknown_option_is_caught(doc: Compose) -> None:
    broken = copy.deepcopy(doc)
    broken["services"]["aggregator"]["command"] = ["aggregator", "--port", "8003"]
    broken["services"]["migrate"]["command"] = ["migrations"]
    assert len(invalid_commands(broken)) == 2


def test_depends_on_waits_for_health_or_completion(doc: Compose) -> None:
    assert bad_dependencies(doc) == []
    assert set(doc["services"]["migrate"]["depends_on"]) == {"kafka", "postgres"}


def test_a_bare_depends_on_is_caught(doc: Compose) -> None:
    broken = copy.deepcopy(doc)
    broken["services"]["ingest"]["depends_on"] = ["migrate", "kafka"]
    assert bad_dependencies(broken) == ["ingest: depends_on must name a condition for each dependency"]


def test_ports_match_the_cli_defaults_and_the_scrape_config(doc: Compose) -> None:
    assert port_mismatches(doc) == []


def test_no_password_has_a_default(doc: Compose) -> None:
    assert default_passwords(doc) == []
    broken = copy.deepcopy(doc)
    broken["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] = (
        "${GRAFANA_ADMIN_PASSWORD:-admin}"
    )
    assert default_passwords(broken) == [
        "grafana: GF_SECURITY_ADMIN_PASSWORD must come from a required variable (${...:?...}),"
        " not '${GRAFANA_ADMIN_PASSWORD:-admin}'"
    ]


def test_monitoring_profile_mounts_files_that_exist(doc: Compose) -> None:
    monitoring = {n for n, s in doc["services"].items() if "monitoring" in s.get("profiles", [])}
    assert monitoring == {"prometheus", "grafana"}
    assert any(v.startswith("./deploy/prometheus:") for v in doc["services"]["prometheus"]["volumes"])
    grafana = doc["services"]["grafana"]["volumes"]
    assert any(v.startswith("./deploy/grafana/provisioning:") for v in grafana)
    assert any(v.startswith("./deploy/grafana/dashboards:") for v in grafana)
    assert missing_mounts(doc) == []


def test_the_image_holds_what_salesloop_migrate_reads() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[0].split()[:2] == ["FROM", "python:3.11-slim"]
    copied = {src for line in lines if line.startswith("COPY ") for src in line.split()[1:-1]}
    # services/core/migrate.py finds alembic.ini and migrations/ two folders above itself.
    assert {"pyproject.toml", "README.md", "alembic.ini", "migrations", "services"} <= copied
    assert any(re.search(r"pip install .*-e \.", line) for line in lines), "install must stay editable"
    user = [line.split()[1] for line in lines if line.startswith("USER ")] or ["root"]
    assert user[-1] not in ("root", "0"), "the image must run as a non-root user"
    assert 'ENTRYPOINT ["salesloop"]' in lines

    ignored = [
        p.strip()
        for p in (ROOT / ".dockerignore").read_text().splitlines()
        if p.strip() and not p.startswith("#")
    ]
    for needed in copied:
        assert not any(fnmatch.fnmatch(needed, p) for p in ignored), f".dockerignore drops {needed}"


def test_the_docs_document_every_setting_with_its_default() -> None:
    readme = (ROOT / "docs" / "commands.md").read_text()
    rows = {m[0]: m[1] for m in re.findall(r"^\| `SALESLOOP_([A-Z0-9_]+)` \|([^\n]*)$", readme, re.M)}
    for field, info in Settings.model_fields.items():
        name = field.upper()
        assert name in rows, f"docs/commands.md's configuration table lacks SALESLOOP_{name}"
        default = info.default
        if field == "secret_key":
            continue  # documented as required: the built-in value is refused in production
        if isinstance(default, SecretStr):
            default = default.get_secret_value()
        expected = "unset" if default is None else str(default)
        assert f"`{expected}`" in rows[name], (
            f"SALESLOOP_{name}: docs/commands.md does not give the default {expected}"
        )
    documented = set(re.findall(r"`SALESLOOP_([A-Z0-9_]+)`", readme))
    dev_env = {"INGEST_URL", "API_URL", "INGEST_KEY", "API_KEY", "WEBHOOK_SECRET"}
    assert {d.lower() for d in documented - dev_env} <= set(Settings.model_fields)
