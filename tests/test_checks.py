"""Structural checks: every rule's fixture pair, then the semantics that are easy to get wrong.

The per-rule fixtures are discovered from ``fixtures/rules/*/expected.yaml`` (never listed
here); every miss across every rule is collected and reported in one failure.
"""

from __future__ import annotations

import datetime

import pytest
import yaml
from conftest import FIXTURES, build_deployment, deployment_yaml, hygienic_sections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import deployment_sections

from analyzer import checks, suppressions
from analyzer.analysis import analyze, with_suppressions
from analyzer.checks import STRUCTURAL_CHECKS
from analyzer.findings import Hit
from analyzer.graph import PermissionGraph
from analyzer.loader import load, load_text
from analyzer.rules import load_rules

RULE_FIXTURES = sorted((FIXTURES / "rules").glob("*/expected.yaml"))
FIXTURE_DAY = datetime.date(2025, 1, 1)  # "today" for fixture suppressions: outputs never read the clock


@pytest.fixture(scope="module")
def catalogue():
    return load_rules()


@pytest.fixture(scope="module")
def fixture_results(catalogue):
    """One analysis per fixture folder: {(folder name, "firing" | "clean"): CheckResult}.

    A side folder holding an ``agentperm-suppressions.yaml`` has it applied (on a fixed date),
    as ``agentperm check`` does, so ``unused-suppression`` is tested like every other rule.
    """
    results = {}
    for expected_path in RULE_FIXTURES:
        folder = expected_path.parent
        for side in ("firing", "clean"):
            result = analyze(load(str(folder / side)), catalogue)
            entries = folder / side / suppressions.DEFAULT_FILE
            if entries.exists():
                result = with_suppressions(result, suppressions.load(str(entries)), FIXTURE_DAY, catalogue)
            results[(folder.name, side)] = result
    return results


def _expected(path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _misses(expected_path, results, catalogue) -> list[str]:
    """Everything wrong with one rule's fixture pair, as readable lines."""
    folder = expected_path.parent.name
    expected = _expected(expected_path)
    rule = expected.get("rule")
    misses = []
    if rule != folder:
        misses.append(f"{folder}: expected.yaml names rule {rule!r}, not the folder's name")
    if rule not in catalogue:
        return misses + [f"{folder}: rule {rule!r} is not in the catalogue"]
    for side in ("firing", "clean"):
        found = [f for f in results[(folder, side)].active() if f.rule == rule]
        want = expected[side]["count"]
        if len(found) != want:
            shown = "; ".join(f"{f.location}: {f.message}" for f in found) or "nothing"
            misses.append(f"{rule} {side}: {len(found)} finding(s), expected {want} (found: {shown})")
        if side == "firing" and "subjects" in expected[side]:
            got = {s for f in found for s in f.subjects}
            want_subjects = set(expected[side]["subjects"])
            if got != want_subjects:
                misses.append(f"{rule} firing: subjects missing {sorted(want_subjects - got)}, "
                              f"unexpected {sorted(got - want_subjects)}")
        for f in found:
            if f.location.line < 1 or not f.location.file.endswith((".yaml", ".yml")):
                misses.append(f"{rule} {side}: finding without a file:line location ({f.location})")
    return misses


def test_rule_fixtures_are_discovered():
    assert len(RULE_FIXTURES) >= 20


def test_every_structural_rule_fires_on_its_fixture_and_is_quiet_on_its_twin(fixture_results, catalogue):
    misses = []
    for expected_path in RULE_FIXTURES:
        rule = _expected(expected_path).get("rule")
        if rule in catalogue and catalogue[rule].is_invariant:
            continue
        misses.extend(_misses(expected_path, fixture_results, catalogue))
    assert not misses, f"{len(misses)} miss(es) in rule fixtures:\n" + "\n".join(misses)


def test_every_invariant_rule_fires_on_its_fixture_and_is_quiet_on_its_twin(fixture_results, catalogue):
    misses, not_run = [], []
    for expected_path in RULE_FIXTURES:
        rule = _expected(expected_path).get("rule")
        if rule not in catalogue or not catalogue[rule].is_invariant:
            continue
        folder = expected_path.parent.name
        if not any(inv.id == rule for inv in fixture_results[(folder, "firing")].invariants):
            not_run.append(rule)
            continue
        misses.extend(_misses(expected_path, fixture_results, catalogue))
    assert not misses, f"{len(misses)} miss(es) in invariant fixtures:\n" + "\n".join(misses)
    if not_run:
        pytest.skip(f"the prover is not wired into analyze() yet; not checked: {', '.join(not_run)}")


def test_every_catalogue_rule_with_a_structural_check_has_a_fixture_folder(catalogue):
    folders = {path.parent.name for path in RULE_FIXTURES}
    missing = sorted(r.id for r in catalogue.values() if r.check in STRUCTURAL_CHECKS and r.id not in folders)
    assert not missing, f"rules without fixtures/rules/<id>/: {missing}"


def test_every_fixture_folder_has_firing_clean_and_expected():
    problems = []
    for folder in sorted(p for p in (FIXTURES / "rules").iterdir() if p.is_dir()):
        for part in ("firing", "clean", "expected.yaml"):
            if not (folder / part).exists():
                problems.append(f"{folder.name}/{part}")
    assert not problems, f"incomplete rule fixture folders: {problems}"


def test_no_enabled_rule_is_silently_skipped(catalogue):
    """Fail closed: an enabled rule either ran as a check or reports an invariant status."""
    result = analyze(load(str(FIXTURES / "agency")), catalogue)
    reported = {inv.id for inv in result.invariants}
    skipped = sorted(r.id for r in catalogue.values()
                     if r.enabled and r.is_invariant and r.id not in reported)
    assert not skipped, f"invariant rules run but with no proved/violated/unknown status: {skipped}"


# ---- unit tests for tricky semantics --------------------------------------------------------

def run_rule(catalogue, deployment, rule_id):
    """The active findings of one rule on a deployment."""
    result = analyze(deployment, {rule_id: catalogue[rule_id]})
    return [f for f in result.active() if f.rule == rule_id]


def _agents_with(delegations: dict[str, list[str]]) -> dict:
    return {name: {"roles": ["reader"], "tenants": ["acme"], "credentials": ["k"], "delegates_to": others}
            for name, others in delegations.items()}


def test_delegation_cycle_one_finding_per_elementary_cycle_including_self_delegation(catalogue):
    # a<->b, a->b->c->a, and d->d: three elementary cycles
    agents = _agents_with({"a": ["b"], "b": ["a", "c"], "c": ["a"], "d": ["d"]})
    deployment = build_deployment(**hygienic_sections(agents=agents))
    found = run_rule(catalogue, deployment, "delegation-cycle")
    assert sorted(tuple(sorted(f.subjects)) for f in found) == [
        ("agent:a", "agent:b"), ("agent:a", "agent:b", "agent:c"), ("agent:d",)]
    self_loop = next(f for f in found if f.subjects == ("agent:d",))
    assert self_loop.location == deployment.agents["d"].item_locs[("delegates_to", 0)]
    assert all(f.severity == "medium" for f in found)


def test_delegation_cycle_is_quiet_on_a_diamond(catalogue):
    agents = _agents_with({"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []})
    deployment = build_deployment(**hygienic_sections(agents=agents))
    assert run_rule(catalogue, deployment, "delegation-cycle") == []


def trifecta_sections(*, untrusted=True, private_data=("pii",), external=True, effect="send", approval=None,
                      deny=None):
    """browser (untrusted input) delegates to assistant, which reads crm and sends email."""
    send_grant = {"tool": "email", "operations": ["send"]}
    if approval:
        send_grant["approval"] = approval
    assisting = {"grants": [{"tool": "crm", "operations": ["read_contacts"]}, send_grant]}
    if deny:
        assisting["denies"] = [deny]
    return hygienic_sections(
        people=["dana"],
        tools={
            "web": {"tenancy": "none", "operations": {"fetch": {"effect": "read"}}},
            "crm": {"operations": {"read_contacts": {"effect": "read", "data": list(private_data)}}},
            "email": {"operations": {"send": {"effect": effect, "external": external,
                                              "params": {"to": "string"}}}},
        },
        roles={"browsing": {"grants": [{"tool": "web", "operations": ["fetch"]}]}, "assisting": assisting},
        agents={
            "browser": {"roles": ["browsing"], "tenants": ["acme"], "delegates_to": ["assistant"],
                        "untrusted_input": untrusted},
            "assistant": {"roles": ["assisting"], "tenants": ["acme"], "credentials": ["k"]},
        },
        credentials={"k": {"tools": ["web", "crm", "email"], "tenants": ["acme"], "issued": "per-workflow",
                           "store": "vault", "ttl": "15m", "rotation": "30d"}},
        gates={"human": {"approvers": ["dana"]}, "robot": {"approvers": ["assistant"]}},
        workflows={"w": {"tenant": "acme", "agent": "browser"}},
    )


def test_lethal_trifecta_fires_with_all_three_legs_across_delegation(catalogue):
    found = run_rule(catalogue, build_deployment(**trifecta_sections()), "lethal-trifecta")
    assert len(found) == 1
    assert set(found[0].subjects) == {"agent:browser", "agent:assistant"}
    assert found[0].severity == "critical"


@pytest.mark.parametrize("missing_leg", [
    {"untrusted": False},
    {"private_data": ()},
    {"private_data": ("public",)},
    {"external": False},
])
def test_lethal_trifecta_needs_all_three_legs(catalogue, missing_leg):
    assert run_rule(catalogue, build_deployment(**trifecta_sections(**missing_leg)), "lethal-trifecta") == []


def test_lethal_trifecta_is_silenced_by_approval_through_a_real_gate(catalogue):
    deployment = build_deployment(**trifecta_sections(approval="human"))
    assert run_rule(catalogue, deployment, "lethal-trifecta") == []


def test_lethal_trifecta_is_not_silenced_by_a_gate_with_no_person(catalogue):
    found = run_rule(catalogue, build_deployment(**trifecta_sections(approval="robot")), "lethal-trifecta")
    assert len(found) == 1


def test_lethal_trifecta_counts_publish_as_external(catalogue):
    deployment = build_deployment(**trifecta_sections(effect="publish", external=False))
    assert len(run_rule(catalogue, deployment, "lethal-trifecta")) == 1


def test_lethal_trifecta_unconditional_deny_silences_a_conditional_one_does_not(catalogue):
    unconditional = {"tool": "email", "operations": ["send"]}
    conditional = {**unconditional, "when": 'params.to.endsWith("@evil.example")'}
    silenced = build_deployment(**trifecta_sections(deny=unconditional))
    still_open = build_deployment(**trifecta_sections(deny=conditional))
    assert run_rule(catalogue, silenced, "lethal-trifecta") == []
    assert len(run_rule(catalogue, still_open, "lethal-trifecta")) == 1


def _two_tools(**overrides):
    return hygienic_sections(tools={"crm": {"operations": {"read": {"effect": "read"}}},
                                    "email": {"operations": {"send": {"effect": "send"}}}}, **overrides)


def test_unaudited_tool_silent_when_audit_covers_everything(catalogue):
    deployment = build_deployment(**_two_tools(audit={"sink": "append-only", "covers": "*",
                                                      "records": ["who", "what", "when", "outcome"]}))
    assert run_rule(catalogue, deployment, "unaudited-tool") == []


def test_unaudited_tool_one_finding_per_tool_missing_from_covers(catalogue):
    deployment = build_deployment(**_two_tools(audit={"sink": "append-only", "covers": ["crm"],
                                                      "records": ["who", "what", "when", "outcome"]}))
    found = run_rule(catalogue, deployment, "unaudited-tool")
    assert [f.subjects for f in found] == [("tool:email",)]
    assert found[0].location == deployment.tools["email"].loc


@pytest.mark.parametrize("ttl, fires", [("1h", False), ("60m", False), ("3600s", False), ("15m", False),
                                        ("61m", True), ("2h", True), ("never", True)])
def test_long_lived_token_equal_to_the_limit_is_fine(catalogue, ttl, fires):
    credential = {**hygienic_sections()["credentials"]["k"], "ttl": ttl}
    deployment = build_deployment(**hygienic_sections(credentials={"k": credential},
                                                      policy={"max_token_ttl": "1h"}))
    assert len(run_rule(catalogue, deployment, "long-lived-token")) == (1 if fires else 0)


def test_long_lived_token_absent_ttl_means_never_and_points_at_the_credential(catalogue):
    credential = {k: v for k, v in hygienic_sections()["credentials"]["k"].items() if k != "ttl"}
    deployment = build_deployment(**hygienic_sections(credentials={"k": credential}))
    found = run_rule(catalogue, deployment, "long-lived-token")
    assert [f.subjects for f in found] == [("credential:k",)]
    assert found[0].location == deployment.credentials["k"].loc


def test_no_rotation_equal_to_the_limit_is_fine(catalogue):
    credential = {**hygienic_sections()["credentials"]["k"], "rotation": "90d"}
    deployment = build_deployment(**hygienic_sections(credentials={"k": credential}))
    assert run_rule(catalogue, deployment, "no-rotation") == []


@pytest.mark.parametrize("store, severity", [("prompt", "critical"), ("env", "high"), ("inline", "high"),
                                             ("vault", None)])
def test_unsafe_secret_store_is_critical_for_prompt(catalogue, store, severity):
    credential = {**hygienic_sections()["credentials"]["k"], "store": store}
    deployment = build_deployment(**hygienic_sections(credentials={"k": credential}))
    found = run_rule(catalogue, deployment, "unsafe-secret-store")
    assert [f.severity for f in found] == ([severity] if severity else [])
    if found:
        assert found[0].location == deployment.credentials["k"].locs["store"]


def test_unsafe_secret_store_follows_policy_safe_stores(catalogue):
    credential = {**hygienic_sections()["credentials"]["k"], "store": "env"}
    deployment = build_deployment(**hygienic_sections(credentials={"k": credential},
                                                      policy={"safe_secret_stores": ["vault", "env"]}))
    assert run_rule(catalogue, deployment, "unsafe-secret-store") == []


def _boom(pg):
    raise RuntimeError("boom")


def _boom_after_one(pg):
    yield Hit("partial", ("role:reader",), pg.deployment.format_loc)
    raise ValueError("half way")


@pytest.mark.parametrize("broken, text", [(_boom, "RuntimeError: boom"),
                                          (_boom_after_one, "ValueError: half way")])
def test_a_check_that_raises_is_unknown_never_silence(catalogue, monkeypatch, broken, text):
    monkeypatch.setitem(checks.STRUCTURAL_CHECKS, "wildcard-grant", broken)
    result = analyze(build_deployment(**hygienic_sections()), catalogue)
    unknown = [inv for inv in result.invariants if inv.id == "wildcard-grant"]
    assert len(unknown) == 1 and unknown[0].status == "unknown"
    assert text in unknown[0].reason
    assert result.summary()["invariants"]["unknown"] >= 1
    assert result.exit_code() != 0


# ---- what is worked out per role and per tuple of roles equals what each agent's own grants say ----
@st.composite
def _trifecta_deployments(draw):
    """Random deployments whose operations carry data classes and whose agents may read untrusted input."""
    sections = draw(deployment_sections())
    for tool in sections["tools"].values():
        for op in tool["operations"].values():
            data = draw(st.lists(st.sampled_from(["pii", "public", "financial"]), unique=True, max_size=2))
            if data:
                op["data"] = data
    for agent in sections["agents"].values():
        agent["untrusted_input"] = draw(st.booleans())
    return load_text(deployment_yaml(**sections))


def _reference_effective(d, agent_id):
    granted = set()
    for role_id in d.agents[agent_id].roles:
        granted |= {(t.id, o.id) for g in d.roles[role_id].grants for t, o in d.operations_of(g)}
    for role_id in d.agents[agent_id].roles:
        granted -= {(t.id, o.id) for x in d.roles[role_id].denies if x.when is None for t, o in d.operations_of(x)}
    return frozenset(granted)


def _reference_legs(d, agent_id):
    effective = _reference_effective(d, agent_id)
    reads = next(((t, o) for t, o in sorted(effective) if d.tools[t].operations[o].effect in ("read", "export")
                  and set(d.tools[t].operations[o].data) & set(d.policy.private_data)), None)
    sends = None
    for role_id in d.agents[agent_id].roles:
        for grant in d.roles[role_id].grants:
            if grant.approval is not None and d.is_real_gate(grant.approval):
                continue
            for tool, op in d.operations_of(grant):
                if ((op.effect == "send" and op.external) or op.effect == "publish") and (tool.id, op.id) in effective:
                    sends = sends or (tool.id, op.id)
    return reads, sends


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_trifecta_deployments())
def test_per_role_work_equals_per_agent_work(d):
    pg = PermissionGraph(d)
    legs = checks._OwnLegs(pg)
    for agent in d.agents.values():
        assert pg.effective_pairs(agent.id) == _reference_effective(d, agent.id)
        assert legs.of(agent.roles) == _reference_legs(d, agent.id)
    for name in ("lethal-trifecta", "delegation-escalation"):  # and a fresh graph says the same again
        assert list(STRUCTURAL_CHECKS[name](pg)) == list(STRUCTURAL_CHECKS[name](PermissionGraph(d)))


def test_lethal_trifecta_legs_are_shared_by_agents_with_the_same_roles():
    d = load(str(FIXTURES / "flawed-agency"))
    pg = PermissionGraph(d)
    legs = checks._OwnLegs(pg)
    for agent in d.agents.values():
        assert legs.of(agent.roles) == _reference_legs(d, agent.id)
    assert len(legs._legs) == len({a.roles for a in d.agents.values()})
