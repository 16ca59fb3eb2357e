"""The rule catalogue: complete rule files, a registry that matches them, and user overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import FIXTURES, REPO_ROOT, hygienic_sections, invoke_cli, write_deployment

from analyzer.analysis import analyze
from analyzer.checks import AUDIT_CHECKS, INVARIANT_CHECKS, STRUCTURAL_CHECKS
from analyzer.errors import InputError
from analyzer.findings import SEVERITIES
from analyzer.loader import load
from analyzer.rules import CATEGORIES, load_rules

RULE_FILES = sorted((REPO_ROOT / "rules").glob("*.yaml"))
TEXT_KEYS = ("title", "description", "rationale", "remediation")


@pytest.fixture(scope="module")
def catalogue():
    return load_rules()


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.stem)
def test_rule_file_is_complete(path: Path):
    rule = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert rule["id"] == path.stem
    assert rule["severity"] in SEVERITIES
    assert rule["category"] in CATEGORIES
    for key in TEXT_KEYS:
        assert isinstance(rule.get(key), str) and rule[key].strip(), f"{path.name}: empty {key}"
    references = rule.get("references")
    assert isinstance(references, list) and references, f"{path.name}: no references"
    assert all(isinstance(r, str) and r.strip() for r in references)
    assert ("check" in rule) != ("never" in rule), f"{path.name}: needs exactly one of check: / never:"


def test_the_catalogue_loads_every_rule_file(catalogue):
    assert set(catalogue) == {p.stem for p in RULE_FILES}
    assert all(rule.enabled for rule in catalogue.values())


def test_every_registered_check_has_a_rule_file_and_every_rule_check_exists():
    by_check = {}
    for path in RULE_FILES:
        rule = yaml.safe_load(path.read_text(encoding="utf-8"))
        if "check" in rule:
            by_check[rule["check"]] = rule["id"]
    builtin = set(STRUCTURAL_CHECKS) | set(INVARIANT_CHECKS) | set(AUDIT_CHECKS)
    assert set(by_check) <= builtin, f"rule files naming unknown checks: {sorted(set(by_check) - builtin)}"
    assert builtin <= set(by_check), f"checks with no rule file: {sorted(builtin - set(by_check))}"
    assert all(by_check[name] == name for name in builtin), "a built-in rule's id should equal its check"


@pytest.mark.parametrize("text, lines", [
    ("id: my-rule\ntitle: Mine\nseverity: urgent\n", {3}),
    ("id: my-rule\ntitle: [unclosed\n", {2, 3}),  # PyYAML notices the missing "]" at the end of the stream
    ("id: wildcard-grant\ncategory: vibes\n", {2}),
    ("id: my-rule\ntitle: Mine\ncheck: no-such-check\n", {3}),
    ("id: my-rule\nid: other\n", {2}),
])
def test_a_malformed_rule_file_is_an_input_error_with_file_and_line(tmp_path, text, lines):
    (tmp_path / "bad.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_rules([str(tmp_path)])
    diagnostics = caught.value.diagnostics
    assert any(d.loc.file.endswith("bad.yaml") and d.loc.line in lines for d in diagnostics), \
        [d.render() for d in diagnostics]


def test_a_malformed_rule_file_exits_2_through_the_cli(tmp_path):
    (tmp_path / "bad.yaml").write_text("id: my-rule\ntitle: Mine\nseverity: urgent\n", encoding="utf-8")
    code, _out, err = invoke_cli("check", "fixtures/agency", "--rules", tmp_path)
    assert code == 2
    assert "bad.yaml:3:" in err and "Traceback" not in err


def test_a_new_rule_without_its_fields_is_an_input_error(tmp_path):
    (tmp_path / "new.yaml").write_text("id: my-rule\nseverity: high\ncheck: wildcard-grant\n",
                                       encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_rules([str(tmp_path)])
    assert any("new.yaml" in d.loc.file and "missing" in d.message for d in caught.value.diagnostics)


def test_an_override_file_changes_severity(tmp_path, catalogue):
    (tmp_path / "wildcard-grant.yaml").write_text("id: wildcard-grant\nseverity: low\n", encoding="utf-8")
    rules = load_rules([str(tmp_path)])
    assert rules["wildcard-grant"].severity == "low"
    assert catalogue["wildcard-grant"].severity == "high"
    assert rules["wildcard-grant"].rationale == catalogue["wildcard-grant"].rationale
    deployment = load(str(FIXTURES / "rules" / "wildcard-grant" / "firing"))
    found = [f for f in analyze(deployment, {"wildcard-grant": rules["wildcard-grant"]}).findings]
    assert found and {f.severity for f in found} == {"low"}


def test_enabled_false_disables_a_rule(tmp_path):
    (tmp_path / "off.yaml").write_text("id: wildcard-grant\nenabled: false\n", encoding="utf-8")
    rules = load_rules([str(tmp_path)])
    assert rules["wildcard-grant"].enabled is False
    deployment = load(str(FIXTURES / "rules" / "wildcard-grant" / "firing"))
    result = analyze(deployment, rules)
    assert "wildcard-grant" not in result.rules_run
    assert not [f for f in result.findings if f.rule == "wildcard-grant"]


def test_enabled_false_changes_the_cli_exit_code(tmp_path):
    # a clean deployment plus exactly one mistake: a wildcard grant
    roles = {"reader": {"grants": [{"tool": "crm", "operations": "*"}]}}
    path = write_deployment(tmp_path / "deployment", **hygienic_sections(roles=roles))
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "off.yaml").write_text("id: wildcard-grant\nenabled: false\n", encoding="utf-8")
    code, out, err = invoke_cli("check", path)
    assert code == 1, out + err
    assert "wildcard-grant" in out
    code, out, err = invoke_cli("check", path, "--rules", rules_dir)
    assert code == 0, out + err
    assert "wildcard-grant" not in out
