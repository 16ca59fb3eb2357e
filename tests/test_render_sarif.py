"""SARIF 2.1.0: the official schema, what GitHub code scanning reads, stable fingerprints, goldens."""

from __future__ import annotations

import json
import shutil

import jsonschema
import pytest
from conftest import invoke_cli
from golden_files import (
    DEPLOYMENTS,
    DIFF_NEW,
    DIFF_OLD,
    REPO_ROOT,
    SARIF_SCHEMA,
    assert_golden,
    catalogue,
    check_result,
    diff_result,
    fresh_goldens,
    in_repo,
)

from analyzer.analysis import analyze
from analyzer.errors import Loc
from analyzer.findings import CheckResult, Finding, InvariantResult, Suppression
from analyzer.loader import load
from analyzer.render import sarif

LEVELS = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}


@pytest.fixture(scope="module")
def validator():
    if not SARIF_SCHEMA.exists():
        pytest.skip(f"the official SARIF schema is not at {SARIF_SCHEMA} (../shared is absent); "
                    "schema validation skipped")
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)  # the schema names draft-04 in its $schema
    cls.check_schema(schema)
    return cls(schema)


def assert_valid(validator, document: dict) -> None:
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])


def sarif_of(fixture: str) -> dict:
    return in_repo(sarif.check_document, check_result(fixture), catalogue())


@pytest.mark.parametrize("fixture", DEPLOYMENTS)
def test_golden(fixture):
    name = f"{fixture}.sarif"
    assert_golden(name, fresh_goldens()[name])


def test_diff_golden():
    assert_golden("diff-threshold-gap.sarif", fresh_goldens()["diff-threshold-gap.sarif"])


@pytest.mark.parametrize("fixture", DEPLOYMENTS)
def test_check_sarif_is_valid_against_the_official_schema(validator, fixture):
    assert_valid(validator, sarif_of(fixture))


def test_diff_sarif_is_valid_against_the_official_schema(validator):
    document = in_repo(sarif.diff_document, diff_result())
    assert_valid(validator, document)
    results = document["runs"][0]["results"]
    assert results and {r["ruleId"] for r in results} == {"new-access"}
    assert all(r["properties"]["witness"]["tool"] == "billing" for r in results)


def test_driver_rules_carry_what_github_reads():
    document = sarif_of("flawed-agency")
    run = document["runs"][0]
    assert document["version"] == "2.1.0" and len(document["runs"]) == 1
    driver = run["tool"]["driver"]
    from analyzer import __version__
    assert driver["name"] == "agentperm" and driver["version"] == __version__ and driver["informationUri"]
    result = check_result("flawed-agency")
    assert [r["id"] for r in driver["rules"]] == sorted(result.rules_run)
    for rule in driver["rules"]:
        meta = catalogue()[rule["id"]]
        assert rule["shortDescription"]["text"] == meta.title
        assert rule["fullDescription"]["text"] == meta.description
        assert meta.rationale in rule["help"]["text"] and meta.remediation in rule["help"]["markdown"]
        assert all(ref in rule["help"]["markdown"] for ref in meta.references)
        props = rule["properties"]
        assert props["tags"] == [meta.category, "security"]
        assert isinstance(props["security-severity"], str) and 0 < float(props["security-severity"]) <= 10
        assert props["precision"] in ("very-high", "high")


def test_results_point_at_repo_relative_files_with_one_based_positions():
    document = sarif_of("flawed-agency")
    run = document["runs"][0]
    result = check_result("flawed-agency")
    rules = run["tool"]["driver"]["rules"]
    assert len(run["results"]) == len(result.findings)
    for item, finding in zip(run["results"], result.findings, strict=True):
        assert rules[item["ruleIndex"]]["id"] == item["ruleId"] == finding.rule
        assert item["level"] == LEVELS[finding.severity]
        assert item["message"]["text"] == finding.message
        physical = item["locations"][0]["physicalLocation"]
        uri = physical["artifactLocation"]["uri"]
        assert physical["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        assert uri == finding.location.file and uri.startswith("fixtures/flawed-agency/")
        assert physical["region"] == {"startLine": finding.location.line, "startColumn": finding.location.column}
        assert physical["region"]["startLine"] >= 1 and physical["region"]["startColumn"] >= 1
        if finding.path:
            steps = item["codeFlows"][0]["threadFlows"][0]["locations"]
            assert [s["location"]["message"]["text"] for s in steps] == [s.reason for s in finding.path]
            assert item["relatedLocations"]
        if isinstance(finding.witness, dict):
            assert item["properties"]["witness"] == finding.witness["call"]
        assert "suppressions" not in item


def test_uri_is_relative_to_the_given_root_and_absolute_outside_it(tmp_path):
    inside = sarif.artifact_location("fixtures/agency/roles.yaml", str(REPO_ROOT / "fixtures"))
    assert inside == {"uri": "agency/roles.yaml", "uriBaseId": "%SRCROOT%"}
    outside = sarif.artifact_location(str(tmp_path / "a b.yaml"), str(REPO_ROOT))
    assert outside["uri"].startswith("file:///") and outside["uri"].endswith("/a%20b.yaml")
    assert "uriBaseId" not in outside


def test_output_is_deterministic_and_has_no_clock():
    first = in_repo(sarif.render_check, check_result("flawed-agency"), catalogue())
    again = in_repo(sarif.render_check, check_result("flawed-agency"), catalogue())
    assert first == again

    def keys(value):
        if isinstance(value, dict):
            for key, item in value.items():
                yield key
                yield from keys(item)
        elif isinstance(value, list):
            for item in value:
                yield from keys(item)

    assert not [k for k in keys(json.loads(first)) if "time" in k.lower()]  # startTimeUtc, endTimeUtc, ...


def test_fingerprints_are_unique():
    prints = sarif.fingerprints(check_result("flawed-agency").findings)
    assert len(set(prints)) == len(prints)


def _fingerprints_by_identity(result: CheckResult) -> dict:
    prints = sarif.fingerprints(result.findings)
    return {(f.rule, f.message): fp for f, fp in zip(result.findings, prints, strict=True)}


def test_fingerprints_survive_unrelated_edits(tmp_path):
    copy = tmp_path / "flawed-agency"
    shutil.copytree(REPO_ROOT / "fixtures" / "flawed-agency", copy)
    for path in sorted(copy.glob("*.yaml")):
        path.write_text("# reviewed 2025-01-01\n# owner: platform team\n\n" + path.read_text(encoding="utf-8"),
                        encoding="utf-8")
    tenants = copy / "tenants.yaml"
    tenants.write_text(tenants.read_text(encoding="utf-8").replace(
        "tenants:\n", "tenants:\n  newco:\n    name: NewCo\n    attributes: {domain: newco.example}\n", 1),
        encoding="utf-8")
    original = check_result("flawed-agency")
    edited = analyze(load(str(copy)), catalogue())
    moved = {f.location.line for f in original.findings} != {f.location.line for f in edited.findings}
    assert moved, "the edit should move the findings' lines, or the test proves nothing"
    before = set(sarif.fingerprints(original.findings))
    after = set(sarif.fingerprints(edited.findings))
    lost = before - after
    assert not lost, f"{len(lost)} of {len(before)} fingerprints changed after an unrelated edit"
    # the same findings, identified by rule and message, keep the same fingerprint
    old, new = _fingerprints_by_identity(original), _fingerprints_by_identity(edited)
    assert all(new[key] == fp for key, fp in old.items() if key in new)


def test_fingerprints_tell_apart_findings_that_share_rule_and_subjects():
    loc = Loc("roles.yaml", 3, 9)
    a = Finding("wildcard-grant", "high", "role r grant #1 ...", ("role:r",), loc)
    b = Finding("wildcard-grant", "high", "role r grant #2 ...", ("role:r",), Loc("roles.yaml", 5, 9))
    first = sarif.fingerprints([a, b])
    assert first[0] != first[1]
    shifted = [Finding(f.rule, f.severity, f.message, f.subjects, Loc(f.location.file, f.location.line + 7, 9))
               for f in (a, b)]
    assert sarif.fingerprints(shifted) == first


def _synthetic(**kwargs) -> CheckResult:
    defaults = {"deployment_paths": ("d",), "digest": "sha256:0", "invariants": (), "findings": (),
                "rules_run": ("no-cross-tenant-reach", "wildcard-grant")}
    defaults.update(kwargs)
    return CheckResult(**defaults)


def test_unknown_invariants_are_tool_notifications(validator):
    result = _synthetic(invariants=(InvariantResult("no-cross-tenant-reach", "unknown",
                                                    reason="solver timeout after 10000 ms"),))
    document = sarif.check_document(result, catalogue())
    assert_valid(validator, document)
    invocation = document["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is True
    [note] = invocation["toolExecutionNotifications"]
    assert "solver timeout after 10000 ms" in note["message"]["text"]
    assert note["associatedRule"]["id"] == "no-cross-tenant-reach"


def test_suppressed_findings_carry_an_external_suppression(validator):
    entry = Suppression("wildcard-grant", "role:r", "reviewed in SEC-7 <b>", "2030-01-01", Loc("s.yaml", 2, 5))
    finding = Finding("wildcard-grant", "high", "role r grant #1 uses tool \"*\"", ("role:r",),
                      Loc("roles.yaml", 3, 9), suppressed=entry)
    document = sarif.check_document(_synthetic(findings=(finding,)), catalogue())
    assert_valid(validator, document)
    [result] = document["runs"][0]["results"]
    [suppression] = result["suppressions"]
    assert suppression["kind"] == "external"
    assert suppression["justification"] == "reviewed in SEC-7 <b>"
    assert suppression["properties"] == {"expires": "2030-01-01"}


@pytest.mark.parametrize("fmt, start", [("sarif", "{"), ("junit", "<?xml"), ("markdown", "## ❌")])
def test_check_and_diff_accept_every_format_on_the_command_line(fmt, start):
    code, out, err = invoke_cli("diff", DIFF_OLD, DIFF_NEW, "--format", fmt)
    assert code == 1, err
    assert out.startswith(start)
    code, out, err = invoke_cli("check", "fixtures/flawed-agency", "--format", fmt, "--date", "2025-01-01")
    assert code == 1, err
    assert out.startswith(start)
    if fmt == "sarif":
        assert {r["ruleId"] for r in json.loads(out)["runs"][0]["results"]} >= {"no-cross-tenant-reach"}
