"""The pre-commit hook (.pre-commit-hooks.yaml) and the GitHub Action (action.yml): their structure,
and their commands run here as pre-commit and a composite action's runner would run them."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import FIXTURES, REPO_ROOT

BIN = Path(sys.executable).parent  # the environment's agentperm console script


def _env() -> dict:
    return {**os.environ, "PATH": str(BIN) + os.pathsep + os.environ.get("PATH", "")}


# ---- pre-commit ------------------------------------------------------------------------------------

def test_the_pre_commit_hook_is_defined():
    (hook,) = yaml.safe_load((REPO_ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert hook["id"] == "agentperm-check" and hook["language"] == "python"
    assert hook["entry"].split()[:2] == ["agentperm", "check"]
    assert hook["pass_filenames"] is False  # a deployment's files merge: never check them one by one
    assert re.search(hook["files"], "deploy/roles.yaml") and re.search(hook["files"], "a.yml")
    assert not re.search(hook["files"], "README.md")


@pytest.mark.parametrize("fixture, expected", [("agency", 0), ("flawed-agency", 1)])
def test_the_hook_entry_runs_as_pre_commit_would(tmp_path, fixture, expected):
    """pre-commit runs `entry + args` from the repository root; here the root is a copy of a fixture."""
    if shutil.which("agentperm", path=str(BIN)) is None:
        pytest.skip("the agentperm console script is not installed beside this interpreter")
    (hook,) = yaml.safe_load((REPO_ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / fixture, repo)
    command = shlex.split(hook["entry"]) + list(hook.get("args", []))
    done = subprocess.run(command, cwd=repo, env=_env(), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == expected, done.stdout + done.stderr
    # it checked the copy as one deployment (the root), with positions relative to it
    verdict = "PROVED" if expected == 0 else "VIOLATED"
    assert f"invariant no-ungated-high-risk: {verdict}" in done.stdout
    assert "invariants: 2 proved" in done.stdout if expected == 0 else "\nroles.yaml:" in done.stdout


# ---- the GitHub Action -----------------------------------------------------------------------------

def _action() -> dict:
    return yaml.safe_load((REPO_ROOT / "action.yml").read_text(encoding="utf-8"))


def test_the_action_is_a_composite_with_the_documented_inputs():
    action = _action()
    assert action["runs"]["using"] == "composite"
    assert {"path", "fail-on", "suppressions", "sarif-file"} <= set(action["inputs"])
    steps = action["runs"]["steps"]
    for step in steps:
        assert ("run" in step) != ("uses" in step), step
        if "run" in step:
            assert step.get("shell") == "bash", step
    names = [s.get("uses", s.get("name", "")) for s in steps]
    upload = next(i for i, n in enumerate(names) if n.startswith("github/codeql-action/upload-sarif"))
    summary = next(i for i, n in enumerate(names) if "Summary" in n)
    verdict = len(steps) - 1
    assert steps[upload]["with"]["sarif_file"] == "${{ inputs.sarif-file }}"
    assert summary < verdict and upload < verdict
    for index in (summary, upload, verdict):  # a failing check still uploads and summarises
        assert steps[index].get("if") == "always()"
    assert "exit" in steps[verdict]["run"]


def _substitute(text: str, inputs: dict, outputs: dict) -> str:
    text = re.sub(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", lambda m: inputs[m.group(1)], text)
    text = re.sub(r"\$\{\{\s*github\.action_path\s*\}\}", str(REPO_ROOT), text)
    return re.sub(r"\$\{\{\s*steps\.([\w-]+)\.outputs\.([\w-]+)\s*\}\}",
                  lambda m: outputs.get(m.group(1), {}).get(m.group(2), ""), text)


def run_action(workspace: Path, **given) -> tuple[int, Path, Path]:
    """The action's shell steps in order, as the runner would (uses: steps and the install skipped)."""
    action = _action()
    inputs = {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()}
    inputs.update({k.replace("_", "-"): v for k, v in given.items()})
    summary, outputs, last = workspace / "summary.md", {}, None
    for step in action["runs"]["steps"]:
        if "uses" in step or "pip install" in step["run"]:
            continue
        output_file = workspace / "github_output"
        output_file.write_text("", encoding="utf-8")
        env = {**_env(), "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(output_file)}
        env.update({k: _substitute(str(v), inputs, outputs) for k, v in step.get("env", {}).items()})
        script = _substitute(step["run"], inputs, outputs)
        last = subprocess.run(["bash", "-e", "-c", script], cwd=workspace, env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        if "id" in step:
            outputs[step["id"]] = dict(line.split("=", 1) for line in output_file.read_text().splitlines() if line)
    return last.returncode, workspace / inputs["sarif-file"], summary


@pytest.mark.parametrize("fixture, expected", [("agency", 0), ("flawed-agency", 1)])
def test_the_action_runs_its_steps_on_a_fixture(tmp_path, fixture, expected):
    if shutil.which("agentperm", path=str(BIN)) is None:
        pytest.skip("the agentperm console script is not installed beside this interpreter")
    shutil.copytree(FIXTURES / fixture, tmp_path / "deploy")
    code, sarif, summary = run_action(tmp_path, path="deploy")
    assert code == expected
    document = json.loads(sarif.read_text(encoding="utf-8"))
    assert document["version"] == "2.1.0" and "results" in document["runs"][0]
    assert bool(document["runs"][0]["results"]) == (expected == 1)
    assert summary.read_text(encoding="utf-8").strip()  # the Markdown summary was appended


def test_the_action_passes_fail_on_and_suppressions(tmp_path):
    if shutil.which("agentperm", path=str(BIN)) is None:
        pytest.skip("the agentperm console script is not installed beside this interpreter")
    shutil.copytree(FIXTURES / "conditions" / "threshold-gap", tmp_path / "deploy")
    (tmp_path / "deploy" / "expected.yaml").unlink()  # the fixture's expectations, not the deployment's
    assert run_action(tmp_path, path="deploy")[0] == 1
    assert run_action(tmp_path, path="deploy", fail_on="critical")[0] == 0
    (tmp_path / "missing-dir").mkdir()
    assert run_action(tmp_path, path="deploy", suppressions="missing-dir/none.yaml")[0] == 2
