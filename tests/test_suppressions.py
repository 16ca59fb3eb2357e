"""Suppressions: loading (with file:line:col errors), matching, expiry, unused entries, and the CLI wiring."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from conftest import FIXTURES, hygienic_sections, invoke_cli, write_deployment
from golden_files import assert_golden, catalogue, fresh_goldens

from analyzer import suppressions
from analyzer.analysis import analyze, with_suppressions
from analyzer.errors import InputError, Loc
from analyzer.findings import Finding, Suppression
from analyzer.loader import load

TODAY = dt.date(2025, 6, 1)
WILDCARD_ROLES = {"reader": {"grants": [{"tool": "crm", "operations": "*"}]}}


def write(tmp_path, text: str, name: str = "agentperm-suppressions.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def load_error(tmp_path, text: str) -> list:
    with pytest.raises(InputError) as caught:
        suppressions.load(write(tmp_path, text))
    return caught.value.diagnostics


# ---- loading -------------------------------------------------------------------------------

def test_load_a_mapping_or_a_bare_list(tmp_path):
    entry = ("  - rule: wildcard-grant\n    subject: role:reader\n    justification: read-only CRM (SEC-1)\n"
             "    expires: 2025-12-31\n")
    [first] = suppressions.load(write(tmp_path, "suppressions:\n" + entry))
    assert (first.rule, first.subject, first.justification, first.expires) == \
        ("wildcard-grant", "role:reader", "read-only CRM (SEC-1)", "2025-12-31")
    assert first.loc.file.endswith("agentperm-suppressions.yaml") and first.loc.line == 2
    [again] = suppressions.load(write(tmp_path, entry.replace("  - ", "- ", 1).replace("\n    ", "\n  "),
                                      "list.yaml"))
    assert again.rule == "wildcard-grant" and again.expires == "2025-12-31"
    assert suppressions.load(write(tmp_path, "", "empty.yaml")) == ()


@pytest.mark.parametrize("text, line, column, message", [
    ("- {rule: wildcard-grant, subject: role:r}\n", 1, 3, "missing required key 'justification'"),
    ("- rule: wildcard-grant\n  subject: role:r\n  justification: '  '\n", 3, 3, "justification"),
    ("- rule: wildcard-grant\n  subject: role:r\n  justification: ok\n  reason: typo\n", 4, 3, "unknown key 'reason'"),
    ("- rule: wildcard-grant\n  subject: role:r\n  justification: ok\n  expires: 2025-02-30\n", 4, 3,
     "not a date YYYY-MM-DD"),
    ("- rule: wildcard-grant\n  subject: role:r\n  justification: ok\n  expires: next week\n", 4, 3, "not a date"),
    ("- rule: wildcard-grant\n  subject: r\n  justification: ok\n", 2, 3, "not kind:id"),
    ("- {rule: a, subject: role:r, justification: ok}\n- {rule: a, subject: role:r, justification: ok}\n",
     2, 3, "listed twice"),
    ("suppressions: {rule: a}\n", 1, 1, "is a list"),
    ("version: 2\nsuppressions: []\n", 1, 1, "unknown key 'version'"),
    ("- rule: [unclosed\n", 2, 1, "YAML"),
])
def test_load_errors_name_file_line_and_column(tmp_path, text, line, column, message):
    diagnostics = load_error(tmp_path, text)
    assert any(d.loc.file.endswith("agentperm-suppressions.yaml") and d.loc.line == line and
               d.loc.column == column and message in d.message for d in diagnostics), \
        [d.render() for d in diagnostics]


# ---- matching ------------------------------------------------------------------------------

def finding(rule="wildcard-grant", subjects=("role:reader",), message="role reader grant #1 uses \"*\""):
    return Finding(rule, "high", message, subjects, Loc("roles.yaml", 3, 9))


def entry(rule="wildcard-grant", subject="role:reader", expires=None, line=2):
    return Suppression(rule, subject, "accepted in SEC-1", expires, Loc("s.yaml", line, 3))


def test_a_finding_is_suppressed_when_rule_and_one_subject_match():
    found = [finding(subjects=("credential:k", "agent:a")), finding(rule="shared-credential",
                                                                    subjects=("credential:k",))]
    [shared, wildcard] = suppressions.apply(found, [entry(subject="agent:a")], TODAY)
    assert wildcard.suppressed == entry(subject="agent:a")
    assert shared.suppressed is None  # same subject, other rule


def test_no_match_on_another_subject():
    [result, unused] = suppressions.apply([finding()], [entry(subject="role:editor")], TODAY)
    assert result.suppressed is None
    assert unused.rule == "unused-suppression" and unused.severity == "low"


def test_an_entry_still_suppresses_on_its_expiry_day_and_not_after():
    [kept] = suppressions.apply([finding()], [entry(expires="2025-06-01")], TODAY)
    assert kept.suppressed is not None
    [fired] = suppressions.apply([finding()], [entry(expires="2025-05-31")], TODAY)
    assert fired.suppressed is None
    assert fired.message == 'role reader grant #1 uses "*" (suppression expired on 2025-05-31: accepted in SEC-1)'


def test_a_live_entry_wins_over_an_expired_one_and_both_count_as_used():
    entries = [entry(subject="role:reader", expires="2020-01-01"), entry(subject="agent:a", line=7)]
    [result] = suppressions.apply([finding(subjects=("role:reader", "agent:a"))], entries, TODAY)
    assert result.suppressed == entries[1]


def test_an_unused_entry_is_a_low_finding_at_the_entry():
    [original, unused] = suppressions.apply([finding()], [entry(rule="shared-credential", subject="credential:k",
                                                                expires="2020-01-01", line=9)], TODAY)
    assert original.suppressed is None
    assert unused.location == Loc("s.yaml", 9, 3)
    assert unused.subjects == ("rule:shared-credential", "credential:k")
    assert "matches nothing" in unused.message and "expired on 2020-01-01" in unused.message
    assert suppressions.apply([finding()], [entry(subject="role:x")], TODAY, unused_severity=None) == [finding()]


def test_with_suppressions_follows_the_catalogue_entry_of_unused_suppression(tmp_path):
    deployment = load(str(write_deployment(tmp_path, **hygienic_sections())))
    result = analyze(deployment, catalogue())
    rules = dict(catalogue())
    assert [f.rule for f in with_suppressions(result, [entry()], TODAY, rules).findings] == ["unused-suppression"]
    from dataclasses import replace
    rules["unused-suppression"] = replace(rules["unused-suppression"], severity="medium")
    assert with_suppressions(result, [entry()], TODAY, rules).findings[0].severity == "medium"
    rules["unused-suppression"] = replace(rules["unused-suppression"], enabled=False)
    assert with_suppressions(result, [entry()], TODAY, rules).findings == ()


def test_the_loader_skips_the_suppressions_file_inside_a_deployment_folder():
    folder = FIXTURES / "rules" / "unused-suppression" / "firing"
    assert (folder / suppressions.DEFAULT_FILE).exists()
    deployment = load(str(folder))
    assert deployment.files and not [p for p in deployment.files if p.endswith(suppressions.DEFAULT_FILE)]


def test_default_path_is_inside_a_folder_and_beside_a_file(tmp_path):
    (tmp_path / "dep").mkdir()
    (tmp_path / "one.yaml").write_text("format: agentperm/v1\n", encoding="utf-8")
    assert suppressions.default_path([str(tmp_path / "dep")]) == str(tmp_path / "dep" / suppressions.DEFAULT_FILE)
    assert suppressions.default_path([str(tmp_path / "one.yaml")]) == str(tmp_path / suppressions.DEFAULT_FILE)


# ---- the command line ----------------------------------------------------------------------

@pytest.fixture
def one_wildcard(tmp_path):
    """A clean deployment folder plus exactly one finding: a wildcard grant of role reader."""
    folder = tmp_path / "deployment"
    write_deployment(folder, **hygienic_sections(roles=WILDCARD_ROLES))
    return folder


ACCEPTED = ("suppressions:\n  - rule: wildcard-grant\n    subject: role:reader\n"
            "    justification: the crm has only a read operation (SEC-1)\n    expires: 2025-12-31\n")


def test_cli_default_file_suppresses_and_the_exit_code_follows(one_wildcard):
    code, out, err = invoke_cli("check", one_wildcard, "--date", "2025-06-01")
    assert code == 1, out + err
    (one_wildcard / suppressions.DEFAULT_FILE).write_text(ACCEPTED, encoding="utf-8")
    code, out, err = invoke_cli("check", one_wildcard, "--date", "2025-06-01")
    assert code == 0, out + err
    assert "[suppressed: the crm has only a read operation (SEC-1), expires 2025-12-31]" in out
    assert "0 finding(s)" in out and "1 suppressed" in out
    code, out, _ = invoke_cli("check", one_wildcard, "--date", "2025-06-01", "--format", "json")
    [found] = [f for f in json.loads(out)["findings"] if f["rule"] == "wildcard-grant"]
    assert found["suppressed"] == {"justification": "the crm has only a read operation (SEC-1)",
                                   "expires": "2025-12-31"}


def test_cli_expired_entry_fires_again(one_wildcard):
    (one_wildcard / suppressions.DEFAULT_FILE).write_text(ACCEPTED, encoding="utf-8")
    code, out, err = invoke_cli("check", one_wildcard, "--date", "2026-01-01")
    assert code == 1, out + err
    assert "(suppression expired on 2025-12-31: the crm has only a read operation (SEC-1))" in out


def test_cli_explicit_file_beside_a_deployment_file(tmp_path):
    path = write_deployment(tmp_path / "d", **hygienic_sections(roles=WILDCARD_ROLES))
    (tmp_path / "d" / suppressions.DEFAULT_FILE).write_text(ACCEPTED, encoding="utf-8")
    code, out, err = invoke_cli("check", path, "--date", "2025-06-01")
    assert code == 0, out + err
    other = tmp_path / "other.yaml"
    other.write_text(ACCEPTED.replace("role:reader", "role:nobody"), encoding="utf-8")
    code, out, err = invoke_cli("check", path, "--date", "2025-06-01", "--suppressions", other)
    assert code == 1, out + err
    assert "unused-suppression" in out and "wildcard-grant" in out


@pytest.mark.parametrize("args, message", [
    (["--suppressions", "no-such-file.yaml"], "no such suppressions file"),
    (["--date", "2025-13-01"], "is not a date YYYY-MM-DD"),
])
def test_cli_usage_errors_exit_2(one_wildcard, args, message):
    code, out, err = invoke_cli("check", one_wildcard, *args)
    assert code == 2, out + err
    assert message in err


def test_cli_a_bad_suppressions_file_exits_2_with_file_line_column(one_wildcard):
    (one_wildcard / suppressions.DEFAULT_FILE).write_text(
        "- rule: wildcard-grant\n  subject: role:reader\n", encoding="utf-8")
    code, out, err = invoke_cli("check", one_wildcard)
    assert code == 2, out + err
    assert f"{suppressions.DEFAULT_FILE}:1:3: error: suppression is missing required key 'justification'" in err


GOLDEN_FORMATS = ("txt", "json", "sarif", "junit.xml", "md")


@pytest.mark.parametrize("suffix", GOLDEN_FORMATS)
def test_suppressed_outputs_golden(suffix):
    """Every format of flawed-agency with a live, an expired and an unused entry, byte for byte."""
    name = f"suppressed/flawed-agency.{suffix}"
    assert_golden(name, fresh_goldens()[name])


def test_suppressed_outputs_show_each_kind_of_entry():
    text = fresh_goldens()["suppressed/flawed-agency.txt"]
    assert "[suppressed: one broker key until the vault migration (SEC-142), expires 2025-09-30]" in text
    assert "no-audit-trail: the deployment has no audit section: no record of who did what, for which tenant " \
           "(suppression expired on 2024-12-31: audit lands with the SIEM project)" in text
    assert re.search(r"^tests/golden/suppressed/agentperm-suppressions\.yaml:12:5: low unused-suppression: "
                     r"suppression of wildcard-grant for role:nobody matches nothing", text, re.MULTILINE)
    document = json.loads(fresh_goldens()["suppressed/flawed-agency.json"])
    [shared] = [f for f in document["findings"] if f["rule"] == "shared-credential"]
    assert shared["suppressed"] == {"justification": "one broker key until the vault migration (SEC-142)",
                                    "expires": "2025-09-30"}
    assert document["summary"]["suppressed"] == 1
    sarif_results = json.loads(fresh_goldens()["suppressed/flawed-agency.sarif"])["runs"][0]["results"]
    assert [r["ruleId"] for r in sarif_results if r.get("suppressions")] == ["shared-credential"]
