"""The command line through the installed console script: exit codes, text, JSON, goldens, usage errors.

Golden files live in tests/golden/; regenerate them with
``AGENTPERM_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_cli.py`` and review the diff.
"""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import yaml
from conftest import FIXTURES, REPO_ROOT, hygienic_sections, run_cli, write_deployment
from golden_files import assert_golden

from analyzer.cli import main as cli_main
from analyzer.findings import SEVERITIES, SEVERITY_RANK

FLAWED = "fixtures/flawed-agency"

RESULT_KEYS = {"format", "deployment", "invariants", "findings", "summary"}
INVARIANT_KEYS = {"id", "status", "witnesses", "reason"}
WITNESS_KEYS = {"call", "path", "location"}
FINDING_KEYS = {"rule", "severity", "message", "subjects", "location", "witness", "suppressed"}
FINDING_EXTRA_KEYS = {"path", "root_cause"}  # the explaining path of edges: an optional addition FORMAT allows
CALL_KEYS = {"workflow", "chain", "tool", "operation", "tenant", "fields", "params", "approval"}


@pytest.fixture(scope="module")
def flawed_text():
    code, out, err = run_cli("check", FLAWED)
    assert code == 1, err
    return out


@pytest.fixture(scope="module")
def flawed_json_text():
    code, out, err = run_cli("check", FLAWED, "--format", "json", env={"PYTHONHASHSEED": "1"})
    assert code == 1, err
    return out


@pytest.fixture(scope="module")
def flawed_json(flawed_json_text):
    return json.loads(flawed_json_text)


def line_of(relative: str, needle: str) -> int:
    """The 1-based line of the first line of a fixture file containing `needle`."""
    for number, line in enumerate((REPO_ROOT / relative).read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {relative}")


# ---- exit codes ---------------------------------------------------------------------------

def test_check_clean_agency_exits_0():
    code, out, err = run_cli("check", "fixtures/agency")
    assert code == 0, out + err
    assert "0 finding(s)" in out


def test_check_flawed_agency_exits_1(flawed_text):
    assert "finding(s)" in flawed_text


@pytest.fixture(scope="module")
def one_high_finding(tmp_path_factory):
    """A clean deployment plus one high-severity mistake (a wildcard grant)."""
    roles = {"reader": {"grants": [{"tool": "crm", "operations": "*"}]}}
    return write_deployment(tmp_path_factory.mktemp("one-high"), **hygienic_sections(roles=roles))


@pytest.mark.parametrize("fail_on, code", [("high", 1), ("critical", 0)])
def test_fail_on_threshold(one_high_finding, fail_on, code):
    got, out, err = run_cli("check", one_high_finding, "--fail-on", fail_on)
    assert got == code, out + err


# ---- text --------------------------------------------------------------------------------

CLASSIC_MISTAKES = [
    # (rule, file, a text on the line the finding points at)
    ("shared-credential", "credentials.yaml", "agency-master-key:"),
    ("wildcard-grant", "roles.yaml", '{tool: "*", operations: "*"}'),
    ("wildcard-grant", "roles.yaml", '{tool: billing, operations: "*"}'),
    ("global-tool", "tools.yaml", "client-kb:"),
    ("prompt-only-enforcement", "tools.yaml", "enforced_by: prompt"),
    ("risk-downgraded", "tools.yaml", "purge_records:"),
    ("gate-without-approvers", "gates.yaml", "finance-approval:"),
    ("gate-without-approvers", "gates.yaml", "legal-review:"),
    ("no-audit-trail", "deployment.yaml", "format: agentperm/v1"),
]


@pytest.mark.parametrize("rule, file, needle", CLASSIC_MISTAKES,
                         ids=[f"{rule}@{file}:{needle}" for rule, file, needle in CLASSIC_MISTAKES])
def test_flawed_agency_text_shows_each_classic_mistake_with_file_and_line(flawed_text, rule, file, needle):
    relative = f"{FLAWED}/{file}"
    line = line_of(relative, needle)
    severity = "(critical|high|medium|low)"
    pattern = re.compile(rf"^{re.escape(relative)}:{line}:\d+: {severity} {re.escape(rule)}: ", re.MULTILINE)
    assert pattern.search(flawed_text), f"no {rule} finding at {relative}:{line}"


def test_text_groups_by_severity_and_ends_with_a_summary(flawed_text):
    headers = [line.split(" ")[0] for line in flawed_text.splitlines() if re.match(r"^[A-Z]+ \(\d+\)$", line)]
    assert headers == [s.upper() for s in SEVERITIES if s.upper() in headers]
    summary = r"^\d+ finding\(s\): \d+ critical, \d+ high, \d+ medium, \d+ low"
    assert re.search(summary, flawed_text, re.MULTILINE)


def test_text_golden(flawed_text):
    assert_golden("flawed-agency.txt", flawed_text)


# ---- JSON --------------------------------------------------------------------------------

def test_json_matches_the_documented_shape(flawed_json):
    doc = flawed_json
    assert set(doc) == RESULT_KEYS
    assert doc["format"] == "agentperm-result/1"
    assert set(doc["deployment"]) == {"paths", "digest"}
    assert doc["deployment"]["paths"] == [FLAWED]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", doc["deployment"]["digest"])
    assert isinstance(doc["summary"], dict)

    assert isinstance(doc["invariants"], list)
    for inv in doc["invariants"]:
        # witness_classes: the count of every class when violated (the witnesses are representatives)
        assert set(inv) - {"witnesses_omitted"} == \
            INVARIANT_KEYS | ({"witness_classes"} if inv["status"] == "violated" else set())
        assert inv["status"] in ("proved", "violated", "unknown")
        assert isinstance(inv["witnesses"], list)
        for witness in inv["witnesses"]:
            assert WITNESS_KEYS <= set(witness)
            assert set(witness["call"]) == CALL_KEYS
            assert isinstance(witness["path"], list)

    assert doc["findings"]
    for finding in doc["findings"]:
        assert FINDING_KEYS <= set(finding), finding
        assert set(finding) - FINDING_KEYS <= FINDING_EXTRA_KEYS, set(finding) - FINDING_KEYS
        assert finding["severity"] in SEVERITIES
        assert finding["message"] and isinstance(finding["message"], str)
        assert finding["subjects"] and all(re.fullmatch(r"[a-z]+:\S+", s) for s in finding["subjects"])
        assert set(finding["location"]) == {"file", "line", "column"}
        assert finding["location"]["file"].startswith(FLAWED + "/") and finding["location"]["line"] >= 1
        assert finding["suppressed"] is None


def test_json_findings_are_sorted_by_severity(flawed_json):
    ranks = [SEVERITY_RANK[f["severity"]] for f in flawed_json["findings"]]
    assert ranks == sorted(ranks, reverse=True)


def test_json_violated_invariants_are_also_findings(flawed_json):
    rules = {f["rule"] for f in flawed_json["findings"]}
    for inv in flawed_json["invariants"]:
        if inv["status"] == "violated":
            assert inv["witnesses"]
            assert inv["id"] in rules
            assert all(isinstance(f["witness"], dict) and "call" in f["witness"]
                       for f in flawed_json["findings"] if f["rule"] == inv["id"])


def test_json_summary_agrees_with_findings(flawed_json):
    summary = flawed_json["summary"]
    findings = flawed_json["findings"]
    assert summary["findings"] == len(findings)
    assert summary["by_severity"] == {s: sum(f["severity"] == s for f in findings) for s in SEVERITIES}


def test_json_flawed_agency_fires_every_planted_rule(flawed_json):
    readme = (FIXTURES / "flawed-agency" / "README.md").read_text(encoding="utf-8")
    listed = readme.split("Distinct rules expected:", 1)[1].split("\n\n", 1)[0]
    expected = set(re.findall(r"`([a-z-]+)`", listed))
    assert len(expected) >= 20
    missing = expected - {f["rule"] for f in flawed_json["findings"]}
    assert not missing, f"planted mistakes not caught: {sorted(missing)}"


def test_json_output_file_is_byte_identical_across_runs(tmp_path, flawed_json_text):
    out_file = tmp_path / "result.json"
    code, out, err = run_cli("check", FLAWED, "--format", "json", "--output", out_file,
                             env={"PYTHONHASHSEED": "2"})
    assert code == 1, err
    assert out == ""
    assert out_file.read_bytes() == flawed_json_text.encode("utf-8")


def test_text_output_file_and_fail_on_critical_with_a_critical_finding(tmp_path, flawed_text):
    assert re.search(r"^CRITICAL \(\d+\)$", flawed_text, re.MULTILINE)
    out_file = tmp_path / "result.txt"
    code, out, _ = run_cli("check", FLAWED, "-o", out_file, "--fail-on", "critical")
    assert code == 1
    assert out == ""
    assert out_file.read_text(encoding="utf-8") == flawed_text


def test_json_golden(flawed_json_text):
    assert_golden("flawed-agency.json", flawed_json_text)


# ---- usage and input errors --------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["check", "fixtures/agency", "--bogus"], "No such option"),
    (["check"], "Missing argument"),
    (["check", "fixtures/agency", "--fail-on", "urgent"], "Invalid value"),
    (["check", "fixtures/agency", "--format", "yaml"], "Invalid value"),
    (["who-can", "fixtures/agency", "--tool", "no-such-tool"], "unknown tool 'no-such-tool'"),
    (["who-can", "fixtures/agency"], "Missing option"),
    (["no-such-command"], "No such command"),
    (["check", "fixtures/does-not-exist"], "no such file or directory"),
])
def test_usage_and_input_errors_exit_2_without_traceback(args, message):
    code, out, err = run_cli(*args)
    assert code == 2, out + err
    assert message in err
    assert "Traceback" not in out + err


def test_an_invalid_deployment_exits_2_with_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: agentperm/v1\ntenants:\n  acme: {}\nagents:\n  a: {tenants: [globex]}\n",
                   encoding="utf-8")
    code, _out, err = run_cli("check", bad)
    assert code == 2
    assert re.search(r"bad\.yaml:5:\d+: error: .*globex", err), err
    assert "Traceback" not in err


# ---- schema and help ---------------------------------------------------------------------

def test_schema_prints_a_valid_json_schema_that_accepts_the_fixtures():
    code, out, err = run_cli("schema")
    assert code == 0, err
    schema = json.loads(out)
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    for path in sorted((FIXTURES / "agency").glob("*.yaml")):
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text(encoding="utf-8")))]
        assert not errors, f"{path.name}: {errors[:3]}"
    assert list(validator.iter_errors({"format": "agentperm/v1", "no-such-section": {}}))


def test_top_level_help_lists_every_command():
    code, out, _ = run_cli("--help")
    assert code == 0
    for name in cli_main.commands:
        assert name in out


@pytest.mark.parametrize("command", sorted(cli_main.commands))
def test_help_for_each_command(command):
    code, out, err = run_cli(command, "--help")
    assert code == 0, err
    assert out.startswith(f"Usage: agentperm {command}")
    assert "--help" in out
