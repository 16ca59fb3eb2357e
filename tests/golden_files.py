"""Golden files and cached analyses shared by the renderer tests.

Golden files live in tests/golden/; regenerate them with
``AGENTPERM_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_render_*.py tests/test_suppressions.py``
and review the diff. Golden outputs are rendered in one fresh interpreter
(:func:`fresh_goldens`); the cached in-process analyses serve the structural tests. Both run
from the repository root, so locations are repo-relative as on the command line.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

from analyzer import diff as diff_module
from analyzer.analysis import analyze
from analyzer.findings import CheckResult
from analyzer.loader import load
from analyzer.rules import load_rules

REPO_ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE_GOLDEN = os.environ.get("AGENTPERM_UPDATE_GOLDEN") == "1"
SARIF_SCHEMA = REPO_ROOT.parent / "shared" / "data" / "sarif-schema-2.1.0.json"
DEPLOYMENTS = ("agency", "flawed-agency")
DIFF_OLD = "fixtures/conditions/threshold-gap-fixed/deployment.yaml"
DIFF_NEW = "fixtures/conditions/threshold-gap/deployment.yaml"


def assert_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8", newline="\n")
    assert path.exists(), f"missing golden file {path}; run with AGENTPERM_UPDATE_GOLDEN=1"
    assert actual == path.read_text(encoding="utf-8"), \
        f"{name} differs from the golden file; if intended, regenerate with AGENTPERM_UPDATE_GOLDEN=1"


@functools.cache
def catalogue() -> dict:
    return load_rules()


@functools.cache
def check_result(fixture: str) -> CheckResult:
    """The analysis of ``fixtures/<fixture>``, with file names relative to the repository root."""
    with contextlib.chdir(REPO_ROOT):
        return analyze(load(f"fixtures/{fixture}"), catalogue())


@functools.cache
def diff_result():
    """A diff that grants new access: a refund threshold raised from 100 to 500."""
    with contextlib.chdir(REPO_ROOT):
        return diff_module.diff(load(DIFF_OLD), load(DIFF_NEW))


def in_repo(render, *args, **kwargs):
    """Call a renderer from the repository root, where the analysed file names are relative."""
    with contextlib.chdir(REPO_ROOT):
        return render(*args, **kwargs)


@functools.cache
def fresh_goldens() -> dict[str, str]:
    """Every golden output, rendered in fresh interpreters (see tests/golden_render.py for why)."""
    script = str(Path(__file__).resolve().parent / "golden_render.py")
    runs = [subprocess.Popen([sys.executable, script, part], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, encoding="utf-8",
                             env={**os.environ, "PYTHONHASHSEED": "0"}) for part in ("check", "diff")]
    outputs: dict[str, str] = {}
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
        outputs.update(json.loads(out))
    return outputs
