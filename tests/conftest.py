"""Shared test helpers: run the installed console script, and build small deployments by name.

Test modules import these directly (``from conftest import run_cli, build_deployment``);
pytest puts this directory on ``sys.path`` because ``tests/`` is not a package.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import yaml

from analyzer import model
from analyzer.loader import load_text

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT / "fixtures"
AGENTPERM = Path(sys.executable).parent / "agentperm"


def run_cli(*args: str, env: dict | None = None) -> tuple[int, str, str]:
    """Run the installed `agentperm` console script from the repo root: (exit code, stdout, stderr)."""
    completed = subprocess.run([str(AGENTPERM), *map(str, args)], check=False, cwd=REPO_ROOT,
                               capture_output=True, text=True, encoding="utf-8", timeout=120,
                               env={**os.environ, **(env or {})})
    return completed.returncode, completed.stdout, completed.stderr


def invoke_cli(*args: str) -> tuple[int, str, str]:
    """The same as :func:`run_cli`, in-process (no interpreter start-up) for tests that need not
    exercise the console script itself. An exception escaping the CLI fails the test."""
    from click.testing import CliRunner

    from analyzer.cli import main

    with contextlib.chdir(REPO_ROOT):
        result = CliRunner().invoke(main, [str(a) for a in args], prog_name="agentperm")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _ids(section):
    """Let a test write `tenants=["acme"]` for definitions that need no fields."""
    if isinstance(section, (list, tuple)):
        return {ident: {} for ident in section}
    return section


def deployment_yaml(*, tenants=None, people=None, tools=None, roles=None, agents=None, credentials=None,
                    gates=None, workflows=None, guardrails=None, policy=None, audit=None) -> str:
    """The YAML text of a one-file deployment; every section is optional, given as plain data."""
    document: dict = {"format": "agentperm/v1"}
    sections = {"tenants": _ids(tenants), "people": _ids(people), "tools": tools, "roles": roles,
                "agents": agents, "credentials": credentials, "gates": gates, "workflows": workflows,
                "guardrails": guardrails, "policy": policy, "audit": audit}
    document.update({key: value for key, value in sections.items() if value is not None})
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def build_deployment(**sections) -> model.Deployment:
    """Load a deployment built from keyword sections (see :func:`deployment_yaml`)."""
    return load_text(deployment_yaml(**sections))


def write_deployment(folder: Path, name: str = "deployment.yaml", **sections) -> Path:
    """Write a deployment built from keyword sections to ``folder/name``; returns the file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(deployment_yaml(**sections), encoding="utf-8")
    return path


# A deployment with nothing wrong in it, for tests that add exactly one mistake on top.
HYGIENIC_CREDENTIAL = {"tools": ["crm"], "tenants": ["acme"], "issued": "per-workflow", "store": "vault",
                       "ttl": "15m", "rotation": "30d"}
FULL_AUDIT = {"sink": "append-only", "covers": "*", "records": ["who", "what", "when", "outcome"]}


def hygienic_sections(**overrides) -> dict:
    """Sections of a clean one-tenant, one-agent deployment; keyword arguments replace sections."""
    sections = {
        "tenants": ["acme"],
        "tools": {"crm": {"operations": {"read": {"effect": "read"}}}},
        "roles": {"reader": {"grants": [{"tool": "crm", "operations": ["read"]}]}},
        "agents": {"a": {"roles": ["reader"], "tenants": ["acme"], "credentials": ["k"]}},
        "credentials": {"k": dict(HYGIENIC_CREDENTIAL)},
        "workflows": {"w": {"tenant": "acme", "agent": "a"}},
        "audit": dict(FULL_AUDIT),
    }
    sections.update(overrides)
    return sections


def bench_generator():
    """bench/generate.py, the synthetic agency of the scale benchmark, as a module."""
    import importlib.util

    if "bench_generate" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bench_generate", REPO_ROOT / "bench" / "generate.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_generate"] = module  # its dataclasses look their module up while it loads
        spec.loader.exec_module(module)
    return sys.modules["bench_generate"]
