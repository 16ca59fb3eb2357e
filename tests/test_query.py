"""`who-can` and `explain` on the clean agency: routes with chain, grant and credential; CAN / CANNOT."""

from __future__ import annotations

import re

import pytest
from conftest import FIXTURES, invoke_cli

from analyzer import query
from analyzer.loader import load


@pytest.fixture(scope="module")
def agency():
    return load(str(FIXTURES / "agency"))


@pytest.fixture(scope="module")
def web_search_text():
    code, out, err = invoke_cli("who-can", "fixtures/agency", "--tool", "web-search")
    assert code == 0, err
    return out


def test_who_can_lists_every_agent_with_its_routes(agency):
    accesses = query.who_can(agency, "web-search")
    assert sorted({a.agent for a in accesses}) == ["research-agent", "sales-agent", "support-agent"]
    delegated = [r for a in accesses if a.agent == "research-agent" for r in a.routes]
    assert {r.chain for r in delegated} == {("sales-agent", "research-agent"),
                                            ("support-agent", "research-agent")}
    assert {r.credential.id for r in delegated} == {"research-search"}
    assert all(r.grant.owner == "research" for r in delegated)


def test_who_can_text_shows_chain_role_grant_and_credential(web_search_text):
    assert re.search(r"^3 agent\(s\) (can|may) call web-search:$", web_search_text, re.MULTILINE)
    assert re.search(r"^research-agent\b.*web-search\.search", web_search_text, re.MULTILINE)
    assert "chain sales-agent -> research-agent" in web_search_text
    assert "role research, grant #1 (fixtures/agency/roles.yaml:" in web_search_text
    assert "credential research-search (fixtures/agency/credentials.yaml:" in web_search_text


def test_who_can_says_how_conditions_are_treated(web_search_text):
    # The first line tells the reader whether `when` conditions were evaluated (now: by the solver,
    # with the allowed parameters per route; before: "shown but not evaluated").
    assert web_search_text.startswith(query.CONDITIONS_NOTE)
    assert "conditions" in query.CONDITIONS_NOTE and "evaluated" in query.CONDITIONS_NOTE


def test_who_can_shows_conditions_approvals_and_guardrails():
    code, out, _ = invoke_cli("who-can", "fixtures/agency", "--tool", "billing", "--operation", "refund")
    assert code == 0
    assert "when params.amount <= 50" in out
    assert "with approval through finance-approval" in out
    assert "except when params.amount > 5000 (guardrail #1, fixtures/agency/guardrails.yaml:" in out
    if "not evaluated" not in query.CONDITIONS_NOTE:
        # conditions are evaluated: every route says which parameters it allows
        routes = out.count("\n  in workflow ")
        assert routes and out.count("allowed for: ") == routes
        assert "allowed for: amount <= 50" in out


def test_who_can_tenant_filters_routes(agency):
    everywhere = query.who_can(agency, "billing", "refund")
    globex = query.who_can(agency, "billing", "refund", tenant="globex")
    acme = query.who_can(agency, "billing", "refund", tenant="acme")
    assert {r.workflow.tenant for a in everywhere for r in a.routes} >= {"globex", "umbrella"}
    assert globex and all("globex" in r.tenants for a in globex for r in a.routes)
    assert {r.workflow.id for a in globex for r in a.routes} == {"globex-invoicing", "globex-support-desk"}
    assert acme == []


def test_who_can_tenant_filter_through_the_cli():
    code, out, _ = invoke_cli("who-can", "fixtures/agency", "--tool", "billing", "--operation", "refund",
                           "--tenant", "globex")
    assert code == 0
    assert "on tenant globex" in out and "umbrella" not in out


def test_who_can_nobody_on_a_tenant(agency):
    text = query.render_who_can(agency, query.who_can(agency, "billing", "refund", tenant="acme"), "billing",
                                "refund", "acme")
    assert "no agent can call billing.refund on tenant acme" in text


def test_who_can_respects_unconditional_denies(agency):
    # sales denies crm.delete_contact; only ops-agent (behind privacy-review) may delete
    accesses = query.who_can(agency, "crm", "delete_contact")
    assert [a.agent for a in accesses] == ["ops-agent"]


def test_explain_prints_can_and_cannot_with_reasons(agency):
    text = query.explain(agency, "sales-agent", "crm")
    assert "sales-agent CAN call crm.read_contacts" in text
    assert "sales-agent CANNOT call crm.delete_contact:" in text
    assert "sales deny #1 denies it (fixtures/agency/roles.yaml:" in text
    assert "on fields stage, notes, close_date" in text


def test_explain_cannot_names_missing_grant_and_credential(agency):
    out = query.explain(agency, "research-agent", "billing", "refund")
    assert "research-agent CANNOT call billing.refund:" in out
    assert "no role of research-agent (research) grants billing.refund" in out
    assert "research-agent holds no credential covering billing" in out
    assert "CAN call" not in out.replace("CANNOT call", "")


def test_explain_through_the_cli_can_through_delegation_only():
    code, out, err = invoke_cli("explain", "fixtures/agency", "--agent", "research-agent", "--tool", "crm",
                             "--operation", "search_accounts")
    assert code == 0, err
    assert "research-agent CAN call crm.search_accounts" in out
    assert "chain sales-agent -> research-agent" in out


@pytest.mark.parametrize("args, word", [
    (["who-can", "fixtures/agency", "--tool", "crm", "--tenant", "nobody"], "unknown tenant"),
    (["explain", "fixtures/agency", "--agent", "nobody", "--tool", "crm"], "unknown agent"),
    (["explain", "fixtures/agency", "--agent", "sales-agent", "--tool", "crm", "--operation", "nope"],
     "unknown operation"),
])
def test_unknown_ids_are_usage_errors(args, word):
    code, _out, err = invoke_cli(*args)
    assert code == 2
    assert word in err and "Traceback" not in err
