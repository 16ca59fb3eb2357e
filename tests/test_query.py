"""`who-can` and `explain` on the clean agency: routes with chain, grant and credential; CAN / CANNOT."""

from __future__ import annotations

import pytest
from conftest import FIXTURES, run_cli

from analyzer import query
from analyzer.loader import load


@pytest.fixture(scope="module")
def agency():
    return load(str(FIXTURES / "agency"))


@pytest.fixture(scope="module")
def web_search_text():
    code, out, err = run_cli("who-can", "fixtures/agency", "--tool", "web-search")
    assert code == 0, err
    return out


def test_who_can_lists_every_agent_with_its_routes(agency):
    accesses = query.who_can(agency, "web-search")
    assert sorted({a.agent for a in accesses}) == ["research-agent", "sales-agent", "support-agent"]
    delegated = [r for a in accesses if a.agent == "research-agent" for r in a.routes]
    assert {r.chain for r in delegated} == {("sales-agent", "research-agent"), ("support-agent", "research-agent")}
    assert {r.credential.id for r in delegated} == {"research-search"}
    assert all(r.grant.owner == "research" for r in delegated)


def test_who_can_text_shows_chain_role_grant_and_credential(web_search_text):
    assert "3 agent(s) can call web-search" in web_search_text
    assert "research-agent can call web-search.search" in web_search_text
    assert "chain sales-agent -> research-agent" in web_search_text
    assert "role research, grant #1 (fixtures/agency/roles.yaml:" in web_search_text
    assert "credential research-search (fixtures/agency/credentials.yaml:" in web_search_text


def test_who_can_says_conditions_are_not_evaluated(web_search_text):
    assert web_search_text.startswith(query.CONDITIONS_NOTE)
    assert "not evaluated" in web_search_text


def test_who_can_shows_conditions_and_approvals_it_does_not_evaluate():
    code, out, _ = run_cli("who-can", "fixtures/agency", "--tool", "billing", "--operation", "refund")
    assert code == 0
    assert "when params.amount <= 50" in out
    assert "with approval through finance-approval" in out
    assert "except when params.amount > 5000 (guardrail #1, fixtures/agency/guardrails.yaml:" in out


def test_who_can_tenant_filters_routes(agency):
    everywhere = query.who_can(agency, "billing", "refund")
    globex = query.who_can(agency, "billing", "refund", tenant="globex")
    acme = query.who_can(agency, "billing", "refund", tenant="acme")
    assert {r.workflow.tenant for a in everywhere for r in a.routes} >= {"globex", "umbrella"}
    assert globex and all("globex" in r.tenants for a in globex for r in a.routes)
    assert {r.workflow.id for a in globex for r in a.routes} == {"globex-invoicing", "globex-support-desk"}
    assert acme == []


def test_who_can_tenant_filter_through_the_cli():
    code, out, _ = run_cli("who-can", "fixtures/agency", "--tool", "billing", "--operation", "refund",
                           "--tenant", "acme")
    assert code == 0
    assert "no agent can call billing.refund on tenant acme" in out
    code, out, _ = run_cli("who-can", "fixtures/agency", "--tool", "billing", "--operation", "refund",
                           "--tenant", "globex")
    assert code == 0
    assert "on tenant globex" in out and "umbrella" not in out


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


def test_explain_cannot_names_missing_grant_and_credential():
    code, out, err = run_cli("explain", "fixtures/agency", "--agent", "research-agent", "--tool", "billing",
                             "--operation", "refund")
    assert code == 0, err
    assert "research-agent CANNOT call billing.refund:" in out
    assert "no role of research-agent (research) grants billing.refund" in out
    assert "research-agent holds no credential covering billing" in out
    assert "CAN call" not in out.replace("CANNOT call", "")


def test_explain_can_through_delegation_only():
    code, out, _ = run_cli("explain", "fixtures/agency", "--agent", "research-agent", "--tool", "crm",
                           "--operation", "search_accounts")
    assert code == 0
    assert "research-agent CAN call crm.search_accounts" in out
    assert "chain sales-agent -> research-agent" in out


@pytest.mark.parametrize("args, word", [
    (["who-can", "fixtures/agency", "--tool", "crmm"], "unknown tool 'crmm'"),
    (["who-can", "fixtures/agency", "--tool", "crm", "--tenant", "nobody"], "unknown tenant"),
    (["explain", "fixtures/agency", "--agent", "nobody", "--tool", "crm"], "unknown agent"),
    (["explain", "fixtures/agency", "--agent", "sales-agent", "--tool", "crm", "--operation", "nope"],
     "unknown operation"),
])
def test_unknown_ids_are_usage_errors(args, word):
    code, out, err = run_cli(*args)
    assert code == 2
    assert word in err and "Traceback" not in err
