"""Defaults of check and report from agentperm.yaml beside the deployment or [tool.agentperm] in
pyproject.toml (analyzer/config.py); flags win; bad settings stop the run at their file:line:column."""

from __future__ import annotations

import contextlib
import json
import shutil

import pytest
from click.testing import CliRunner
from conftest import FIXTURES

from analyzer import config
from analyzer.errors import InputError
from analyzer.loader import load

HIGH_ONLY = FIXTURES / "conditions" / "threshold-gap"  # one violated high invariant, nothing critical


def run_in(folder, *args):
    from analyzer.cli import main

    with contextlib.chdir(folder):
        result = CliRunner().invoke(main, [str(a) for a in args], prog_name="agentperm")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def deployment(tmp_path):
    folder = tmp_path / "deployment"
    shutil.copytree(HIGH_ONLY, folder)
    (folder / "expected.yaml").unlink()
    return folder


def test_agentperm_yaml_sets_defaults_and_flags_win(deployment, tmp_path):
    assert run_in(tmp_path, "check", deployment)[0] == 1
    (deployment / "agentperm.yaml").write_text("fail-on: critical\nformat: json\n", encoding="utf-8")
    code, out, _ = run_in(tmp_path, "check", deployment)
    assert code == 0 and json.loads(out)["format"] == "agentperm-result/1"
    code, out, _ = run_in(tmp_path, "check", deployment, "--fail-on", "high", "--format", "text")
    assert code == 1 and not out.startswith("{")


def test_agentperm_yaml_is_not_part_of_the_deployment(deployment):
    (deployment / "agentperm.yaml").write_text("fail_on: high\n", encoding="utf-8")
    loaded = load([str(deployment)])  # loads: the settings file, not a deployment file, is skipped
    assert loaded.files and not [f for f in loaded.files if f.endswith("agentperm.yaml")]
    assert config.find([str(deployment)]).fail_on == "high"


def test_pyproject_table_from_the_working_directory_upward(deployment, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.agentperm]\nfail-on = "critical"\n',
                                             encoding="utf-8")
    inner = tmp_path / "sub"
    inner.mkdir()
    assert run_in(inner, "check", deployment)[0] == 0
    assert run_in(inner, "check", deployment, "--fail-on", "low")[0] == 1


def test_rules_and_suppressions_are_relative_to_the_config_file(deployment, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "no-ungated-high-risk.yaml").write_text("id: no-ungated-high-risk\nenabled: false\n", encoding="utf-8")
    (tmp_path / "agentperm.yaml").write_text("rules: [rules]\n", encoding="utf-8")
    found = config._from_yaml(str(tmp_path / "agentperm.yaml"))
    assert found.rules == (str(rules),)
    (deployment / "agentperm.yaml").write_text(f"rules: [{rules}]\n", encoding="utf-8")
    assert run_in(tmp_path, "check", deployment)[0] == 0  # the only violated rule is disabled


@pytest.mark.parametrize("text, where, message", [
    ("fail-on: high\nformt: json\n", ":2:1:", "unknown setting 'formt'"),
    ("fail-on: severe\n", ":1:", "fail-on must be one of"),
    ("rules: plain\n", ":1:", "rules must be a list"),
    ("- a\n", ":1:1:", "must be a mapping"),
])
def test_bad_yaml_settings_are_input_errors_with_locations(deployment, tmp_path, text, where, message):
    (deployment / "agentperm.yaml").write_text(text, encoding="utf-8")
    code, _out, err = run_in(tmp_path, "check", deployment)
    assert code == 2 and "agentperm.yaml" + where in err and message in err, err
    assert "Traceback" not in err


def test_bad_pyproject_settings_are_input_errors_with_locations(deployment, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.agentperm]\nfail-on = "low"\n  colour = "red"\n', encoding="utf-8")
    with pytest.raises(InputError) as caught:
        config.find([str(deployment)], cwd=str(tmp_path))
    assert "pyproject.toml:3:3: error: unknown setting 'colour'" in str(caught.value)
    code, _out, err = run_in(tmp_path, "report", deployment, "-o", tmp_path / "r.html")
    assert code == 2 and "colour" in err
