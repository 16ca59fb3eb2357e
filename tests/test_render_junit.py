"""JUnit XML: parses, counts agree with the test cases, one case per invariant and rule, escaping, goldens."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from golden_files import DEPLOYMENTS, assert_golden, catalogue, check_result, diff_result, fresh_goldens

from analyzer.diff import DiffResult
from analyzer.errors import Loc
from analyzer.findings import CheckResult, Finding, InvariantResult, Suppression
from analyzer.render import junit

MARKUP = '</failure><script>alert("x")</script> & \'quotes\' ]]> \x01'


@pytest.mark.parametrize("fixture", DEPLOYMENTS)
def test_golden(fixture):
    name = f"{fixture}.junit.xml"
    assert_golden(name, fresh_goldens()[name])


def test_diff_golden():
    assert_golden("diff-threshold-gap.junit.xml", fresh_goldens()["diff-threshold-gap.junit.xml"])


def _suite(xml: str) -> ET.Element:
    root = ET.fromstring(xml.encode("utf-8"))
    assert root.tag == "testsuites"
    [suite] = root.findall("testsuite")
    assert suite.get("name") in ("agentperm", "agentperm-diff")
    for key in ("tests", "failures", "errors", "skipped"):
        assert root.get(key) == suite.get(key)
    cases = suite.findall("testcase")
    assert int(suite.get("tests")) == len(cases)
    assert int(suite.get("failures")) == sum(1 for c in cases if c.find("failure") is not None)
    assert int(suite.get("errors")) == sum(1 for c in cases if c.find("error") is not None)
    return suite


@pytest.mark.parametrize("fixture", DEPLOYMENTS)
def test_parses_and_counts_match(fixture):
    result = check_result(fixture)
    suite = _suite(junit.render_check(result, catalogue()))
    cases = {(c.get("classname"), c.get("name")): c for c in suite.findall("testcase")}
    assert {name for _, name in cases} == set(result.rules_run)
    invariants = {name for cls, name in cases if cls == "invariants"}
    assert invariants == {inv.id for inv in result.invariants}
    for (cls, name), case in cases.items():
        if cls != "invariants":
            assert cls == f"rules.{catalogue()[name].category}"
        active = [f for f in result.active() if f.rule == name]
        failure = case.find("failure")
        assert (failure is not None) == bool(active), name
        if failure is not None:
            lines = [line for line in failure.text.splitlines() if not line.startswith(("    call: ", "    fix: "))]
            assert lines == [f"{f.location}: {f.message}" for f in active]
    assert "timestamp" not in suite.attrib


def test_violated_invariant_lists_its_witness_calls():
    suite = _suite(junit.render_check(check_result("flawed-agency"), catalogue()))
    case = next(c for c in suite.findall("testcase") if c.get("name") == "no-cross-tenant-reach")
    failure = case.find("failure")
    assert failure.get("message").startswith("violated: ")
    assert failure.text.count("    call: {") == sum(1 for f in check_result("flawed-agency").active()
                                                   if f.rule == "no-cross-tenant-reach")


def test_unknown_is_an_error_with_the_reason_and_suppressed_findings_are_not_failures():
    entry = Suppression("wildcard-grant", "role:r", "accepted in SEC-9", None, Loc("s.yaml", 2, 5))
    result = CheckResult(
        ("d",), "sha256:0",
        (InvariantResult("no-cross-tenant-reach", "unknown", reason="solver timeout"),),
        (Finding("wildcard-grant", "high", "role r grant #1 is a wildcard", ("role:r",), Loc("r.yaml", 3, 9),
                 suppressed=entry),),
        ("no-cross-tenant-reach", "wildcard-grant"))
    suite = _suite(junit.render_check(result, catalogue(), timestamp="2025-01-01T00:00:00"))
    assert suite.get("timestamp") == "2025-01-01T00:00:00"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    error = cases["no-cross-tenant-reach"].find("error")
    assert error is not None and "solver timeout" in error.get("message")
    assert cases["wildcard-grant"].find("failure") is None
    assert "[suppressed: accepted in SEC-9]" in cases["wildcard-grant"].find("system-out").text
    assert suite.get("failures") == "0" and suite.get("errors") == "1"


def test_markup_and_control_characters_are_escaped():
    finding = Finding("wildcard-grant", "high", MARKUP, ("role:r",), Loc('x<y>&"z.yaml', 3, 9))
    result = CheckResult(("d<b>",), "sha256:0", (), (finding,), ("wildcard-grant",))
    xml = junit.render_check(result, catalogue())
    assert "<script>" not in xml and "\x01" not in xml
    suite = _suite(xml)
    failure = suite.find("testcase/failure")
    assert failure.text == f'x<y>&"z.yaml:3:9: {MARKUP}'.replace("\x01", "\ufffd")
    assert suite.find("properties/property").get("value") == "d<b>"


def test_diff_one_case_per_new_access_class():
    result = diff_result()
    suite = _suite(junit.render_diff(result))
    cases = suite.findall("testcase")
    assert len(cases) == len(result.new_access) > 0
    assert all(c.get("classname") == "new-access" and c.find("failure") is not None for c in cases)
    clean = DiffResult(("a",), ("a",), "sha256:0", "sha256:0", (), ("w/a/t/o/x: solver timeout",))
    suite = _suite(junit.render_diff(clean))
    assert [c.find("error").get("message") for c in suite.findall("testcase")] == ["w/a/t/o/x: solver timeout"]
