"""Decision test suites (analyzer/suites.py, `agentperm test`)."""

from __future__ import annotations

import textwrap
from xml.etree import ElementTree as ET

import faulty_servers_for_suites as faulty
import pytest
from conftest import FIXTURES, invoke_cli, run_cli

from analyzer import suites
from analyzer.decide import Decider, parse_request
from analyzer.errors import InputError
from analyzer.loader import load
from analyzer.server import ServerThread, make_app

AGENCY = FIXTURES / "agency"
AGENCY_SUITE = FIXTURES / "agency.tests" / "agency.yaml"


@pytest.fixture(scope="module")
def agency():
    return load(str(AGENCY))


def _suite(tmp_path, text: str, name: str = "suite.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def test_suites_live_beside_the_deployment():
    assert suites.default_glob("fixtures/agency") == "fixtures/agency.tests/*.y*ml"
    assert suites.default_glob("fixtures/agency/") == "fixtures/agency.tests/*.y*ml"
    assert suites.default_glob("prod.yaml") == "prod.tests/*.y*ml"
    assert suites.find_suites(suites.default_glob(str(AGENCY))) == [str(AGENCY_SUITE)]
    load(str(AGENCY))  # the sibling folder is not part of the deployment


def test_the_agency_suite_passes_against_decide_with_its_coverage(agency):
    result = suites.run(agency, suites.load_cases([str(AGENCY_SUITE)]))
    assert result.failed == [], suites.render_text(result)
    assert len(result.outcomes) >= 50
    # every grant and the refund ceiling decide a case; three rules can decide no call at all
    assert {r.label for r in result.uncovered} == {"sales deny #1", "guardrail #2", "guardrail #3"}
    assert result.coverage == pytest.approx(36 / 39)
    text = suites.render_text(result)
    assert "coverage: 36/39 rules" in text and "not covered: sales deny #1" in text


def test_the_agency_suite_passes_against_the_live_server(agency):
    server = ServerThread(make_app(agency)).start()
    try:
        result = suites.run(agency, suites.load_cases([str(AGENCY_SUITE)]), server.url)
    finally:
        server.stop()
    assert result.failed == [], suites.render_text(result)
    assert all(o.observed is not None for o in result.outcomes)


def test_a_case_fails_on_decide_or_on_the_endpoint(agency, tmp_path):
    path = _suite(tmp_path, """\
        cases:
          - name: wrong expectation
            call: {workflow: acme-lead-followup, chain: [sales-agent], tool: crm, operation: read_contacts, tenant: acme}
            expect: deny
          - name: wrong reason
            call: {workflow: acme-lead-followup, chain: [sales-agent], tool: crm, operation: read_contacts, tenant: acme}
            expect: allow
            reason: reporting grant
          - name: cross tenant
            call: {workflow: acme-lead-followup, chain: [sales-agent], tool: crm, operation: read_contacts, tenant: initech}
            expect: deny
        """)
    result = suites.run(agency, suites.load_cases([path]), faulty.tenant_blind)
    problems = {o.case.name: o.problems for o in result.outcomes}
    assert problems["wrong expectation"][0].startswith("decide: allow")
    assert "does not contain 'reporting grant'" in problems["wrong reason"][0]
    (problem,) = problems["cross tenant"]
    assert problem.startswith("endpoint: allow: true (") and problem.endswith("), expected deny")
    junit = ET.fromstring(suites.render_junit(result))
    assert junit.get("failures") == "3" and len(junit.findall(".//failure")) == 3


def test_deny_coverage_comes_from_the_deny_that_fired(agency):
    decider = Decider(agency)
    call = parse_request({"workflow": "umbrella-support-desk", "chain": ["support-agent"], "tool": "billing",
                          "operation": "refund", "tenant": "umbrella", "params": {"amount": 5001},
                          "approval": {"gate": "finance-approval", "by": "priya"}}, agency)
    decision = decider.decide(call)
    assert not decision.allow and decision.deny is agency.guardrails[0]
    assert decision.grant is not None  # the grant that matched before the guardrail refused


def test_invalid_suites_list_every_problem_with_a_position(tmp_path):
    path = _suite(tmp_path, """\
        cases:
          - name: a
            expect: maybe
          - name: a
            call: {}
            expect: allow
            extra: 1
          - just a string
        """)
    with pytest.raises(InputError) as raised:
        suites.load_cases([path])
    rendered = [d.render() for d in raised.value.diagnostics]
    assert any("needs a `call`" in r for r in rendered)
    assert any("expect must be allow or deny" in r and ":3:" in r for r in rendered)
    assert any("duplicate case name 'a'" in r for r in rendered)
    assert any("unknown key 'extra'" in r for r in rendered)
    assert any("a case is a mapping" in r for r in rendered)


def test_a_plain_list_is_a_suite_too(agency, tmp_path):
    path = _suite(tmp_path, """\
        - name: sales reads
          call: {workflow: acme-lead-followup, chain: [sales-agent], tool: crm, operation: read_contacts, tenant: acme}
          expect: allow
        """)
    assert suites.run(agency, suites.load_cases([path])).failed == []


@pytest.mark.parametrize("text, value", [("80", 0.8), ("92.5%", 0.925), ("0", 0.0), ("100", 1.0)])
def test_parse_percent(text, value):
    assert suites.parse_percent(text) == pytest.approx(value)


def test_the_test_command():
    code, out, err = run_cli("test", "fixtures/agency")
    assert code == 0, err
    assert "59/59 case(s) passed against decide" in out
    assert "coverage: 36/39" in out
    code, out, err = invoke_cli("test", "fixtures/agency", "--min-coverage", "95")
    assert code == 1 and "below --min-coverage 95.0%" in err
    code, out, _ = invoke_cli("test", "fixtures/agency", "--min-coverage", "90", "--format", "junit")
    assert code == 0 and ET.fromstring(out).get("failures") == "0"


def test_the_test_command_against_a_target():
    code, out, err = invoke_cli("test", "fixtures/agency", "--target", "faulty_servers_for_suites:reference")
    assert code == 0, out + err
    assert "against decide and faulty_servers_for_suites:reference" in out
    code, out, _ = invoke_cli("test", "fixtures/agency", "--target", "faulty_servers_for_suites:tenant_blind")
    assert code == 1 and "endpoint: allow: true (" in out and "FAIL sales cannot reach another client" in out


def test_the_test_command_usage_errors(tmp_path):
    code, _, err = invoke_cli("test", "fixtures/agency", "--tests", str(tmp_path / "*.yaml"))
    assert code == 2 and "no decision test suites match" in err
    code, _, err = invoke_cli("test", "fixtures/agency", "--min-coverage", "lots")
    assert code == 2
    bad = _suite(tmp_path, "cases: {}\n")
    code, _, err = invoke_cli("test", "fixtures/agency", "--tests", bad)
    assert code == 2 and "suite.yaml:1:" in err
