"""`agentperm diff`: exactly the access a change adds, nothing when access is only removed."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

from analyzer import diff, loader
from analyzer.decide import Decider, parse_request

REPO = Path(__file__).resolve().parent.parent
AGENCY = REPO / "fixtures" / "agency"
SUPPORT_REFUND = '- {tool: billing, operations: [refund], when: "params.amount <= 50"}'


def _version(tmp_path: Path, name: str, edits: dict[str, tuple[str, str]]) -> Path:
    """A copy of the agency with textual edits: {file: (old, new)}."""
    target = tmp_path / name
    shutil.copytree(AGENCY, target)
    for file, (old, new) in edits.items():
        path = target / file
        text = path.read_text()
        assert old in text, f"{old!r} not in {file}"
        path.write_text(text.replace(old, new, 1))
    return target


def _diff(old: Path, new: Path) -> diff.DiffResult:
    return diff.diff(loader.load([str(old)]), loader.load([str(new)]))


def test_identical_versions_have_no_new_access():
    result = _diff(AGENCY, AGENCY)
    assert result.new_access == () and result.unknown == ()
    assert result.exit_code() == 0


def test_a_raised_refund_limit_is_new_access_exactly_above_the_old_limit(tmp_path):
    new = _version(tmp_path, "new", {"roles.yaml": (SUPPORT_REFUND, SUPPORT_REFUND.replace("<= 50", "<= 80"))})
    result = _diff(AGENCY, new)
    assert result.exit_code() == 1
    classes = {(a["class"]["agent"], a["class"]["tool"], a["class"]["operation"]) for a in result.new_access}
    assert classes == {("support-agent", "billing", "refund")}
    new_model, old_model = loader.load([str(new)]), loader.load([str(AGENCY)])
    for access in result.new_access:
        assert access["region"] == "51 <= amount <= 80", access["region"]
        assert 51 <= access["call"]["params"]["amount"] <= 80
        # the witness replays: NEW allows it, OLD refuses it
        assert Decider(new_model).decide(parse_request(access["call"], new_model)).allow
        assert not Decider(old_model).decide(parse_request(access["call"], old_model)).allow


def test_a_lowered_limit_only_removes_access(tmp_path):
    new = _version(tmp_path, "new", {"roles.yaml": (SUPPORT_REFUND, SUPPORT_REFUND.replace("<= 50", "<= 20"))})
    result = _diff(AGENCY, new)
    assert result.new_access == ()
    assert result.exit_code() == 0
    # and the other way round, the same change is new access
    assert _diff(new, AGENCY).new_access


def test_a_widened_static_credential_makes_another_tenant_reachable(tmp_path):
    old_block = "  support-billing:\n    tools: [billing]\n    tenants: [globex, umbrella]\n    issued: per-workflow\n"
    new_block = "  support-billing:\n    tools: [billing]\n    tenants: [globex, umbrella, acme]\n    issued: static\n"
    new = _version(tmp_path, "new", {"credentials.yaml": (old_block, new_block)})
    result = _diff(AGENCY, new)
    reached = {(a["class"]["workflow"], a["class"]["tenant"]) for a in result.new_access}
    assert reached, "widening a credential to static multi-tenant must add access"
    for access in result.new_access:
        assert access["class"]["agent"] == "support-agent"
        assert access["class"]["tool"] == "billing"
        home = loader.load([str(new)]).workflows[access["class"]["workflow"]].tenant
        assert access["class"]["tenant"] != home, "only other tenants are new"
    assert any(t == "acme" for _, t in reached)


def test_removing_a_grant_is_not_new_access(tmp_path):
    new = _version(tmp_path, "new", {"roles.yaml": ("      " + SUPPORT_REFUND + "\n", "")})
    assert _diff(AGENCY, new).new_access == ()


def test_cli_json_shape_and_exit_codes(tmp_path):
    new = _version(tmp_path, "new", {"roles.yaml": (SUPPORT_REFUND, SUPPORT_REFUND.replace("<= 50", "<= 80"))})
    code, out, err = run_cli("diff", str(AGENCY), str(new), "--format", "json")
    assert code == 1, err
    document = json.loads(out)
    assert document["format"] == "agentperm-diff/1"
    assert document["summary"]["new_access"] == len(document["new_access"]) > 0
    for access in document["new_access"]:
        assert set(access) >= {"call", "path", "class", "region"}
        assert all(step["reason"] for step in access["path"])
    code, out, _ = run_cli("diff", str(new), str(AGENCY))
    assert code == 0 and "no new access" in out


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_cli_no_change_exit_zero(fmt):
    code, _, err = run_cli("diff", str(AGENCY), str(AGENCY), "--format", fmt)
    assert code == 0, err


# ---------------------------------------------------------------------------------------------- incremental diff

_SUPPORT_AGENT = "credentials: [support-helpdesk, support-crm, support-billing]\n    delegates_to: [research-agent]\n"
_GATE_GRANT = "      - {tool: analytics-db, operations: [query]}\n"
_GATE_GRANT_NEW = (_GATE_GRANT + "      - {tool: analytics-db, operations: [write_rows], "
                   "when: 'call.gate in [\"ops-change\", \"extra-review\"]'}\n")
INCREMENTAL_EDITS = {
    "raised-limit": {"roles.yaml": (SUPPORT_REFUND, SUPPORT_REFUND.replace("<= 50", "<= 80"))},
    "widened-credential": {"credentials.yaml": (
        "  support-billing:\n    tools: [billing]\n    tenants: [globex, umbrella]\n    issued: per-workflow\n",
        "  support-billing:\n    tools: [billing]\n    tenants: [globex, umbrella, acme]\n    issued: static\n")},
    "new-delegation": {"agents.yaml": (_SUPPORT_AGENT, _SUPPORT_AGENT.replace("[research-agent]",
                                                                             "[research-agent, billing-agent]"))},
    "new-agent": {"agents.yaml": ("    credentials: [sales-crm, sales-mail, sales-kb]\n    delegates_to: [research-agent]\n",
                                  ("    credentials: [sales-crm, sales-mail, sales-kb]\n"
                                  "    delegates_to: [research-agent, intern-agent]\n\n"
                                  "  intern-agent:\n    roles: [billing-clerk]\n    tenants: [acme, initech]\n"
                                  "    credentials: [reporting-mail]\n"))},
    "tenant-attribute": {"tenants.yaml": ("attributes: {domain: acme.com}", "attributes: {domain: acme.co}")},
    "guardrail-removed": {"guardrails.yaml": (
        '  - {tool: billing, operations: [refund], when: "params.amount > 5000"}\n', "")},
    "policy": {"deployment.yaml": ("require_approval: high", "require_approval: medium")},
    "gate-approvers": {"gates.yaml": ("approvers: [priya]", "approvers: [priya, dana]")},
    "operation-param": {"tools.yaml": ("create_invoice: {effect: write, params: {amount: int, currency: [USD, EUR, GBP]}}",
                                       ("create_invoice: {effect: write, params: {amount: int, currency: [USD, EUR, GBP, "
                                       "CHF]}}"))},
    "new-workflow": {"workflows.yaml": ("workflows:\n", ("workflows:\n  acme-billing:\n    tenant: acme\n"
                                        "    agent: reporting-agent\n    tools: [billing, email, crm]\n"))},
    "lines-moved": {"roles.yaml": ("roles:\n", "roles:\n\n\n# moved down\n"),
                    "agents.yaml": ("agents:\n", "agents:\n  # a comment\n\n"),
                    "tools.yaml": ("tools:\n", "tools:\n\n")},
}


@pytest.mark.parametrize("name", sorted(INCREMENTAL_EDITS))
def test_the_incremental_diff_finds_exactly_what_the_full_diff_finds(tmp_path, name):
    edited = _version(tmp_path, "edited", INCREMENTAL_EDITS[name])
    base, changed = loader.load([str(AGENCY)]), loader.load([str(edited)])
    for old, new in ((base, changed), (changed, base)):
        full = diff.diff(old, new, full=True)
        incremental = diff.diff(old, new)
        assert incremental.new_access == full.new_access
        assert incremental.unknown == full.unknown
    if name in ("raised-limit", "widened-credential", "new-delegation", "new-agent", "tenant-attribute",
                "guardrail-removed", "new-workflow"):
        assert diff.diff(base, changed).new_access, f"{name} should add access"


def test_the_incremental_diff_follows_the_gates_a_condition_reads(tmp_path):
    with_grant = _version(tmp_path, "old", {"roles.yaml": (_GATE_GRANT, _GATE_GRANT_NEW)})
    with_gate = tmp_path / "new"
    shutil.copytree(with_grant, with_gate)
    gates = with_gate / "gates.yaml"
    gates.write_text(gates.read_text() + "  extra-review:\n    approvers: [tomas]\n")
    old, new = loader.load([str(with_grant)]), loader.load([str(with_gate)])
    full, incremental = diff.diff(old, new, full=True), diff.diff(old, new)
    assert incremental.new_access == full.new_access
    assert {a["call"]["approval"]["gate"] for a in incremental.new_access} == {"extra-review"}


def test_moving_definitions_changes_nothing_to_compare(tmp_path):
    moved = _version(tmp_path, "moved", INCREMENTAL_EDITS["lines-moved"])
    base, shifted = loader.load([str(AGENCY)]), loader.load([str(moved)])
    assert base.roles["support"] != shifted.roles["support"]  # positions differ...
    assert diff.content_key(base.roles["support"]) == diff.content_key(shifted.roles["support"])  # ...content not
    changes = diff._changes(base, shifted)
    assert not (changes.everything or changes.tenants or changes.tools or changes.operations or changes.agents
                or changes.workflows or changes.gate_ids)


def test_content_key_sees_what_equality_does_not():
    base = loader.load([str(AGENCY)])
    tenant = base.tenants["acme"]
    other = dataclasses.replace(tenant, attributes={"domain": "acme.co"})
    assert other == tenant  # attributes are not compared by the dataclass
    assert diff.content_key(other) != diff.content_key(tenant)
    refund = base.tools["billing"].operations["refund"]
    assert diff.content_key(dataclasses.replace(refund, params={})) != diff.content_key(refund)
