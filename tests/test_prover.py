"""The prover against the concrete decision function.

1. Differential: on random small deployments and random calls, what the Z3 encoding says of a
   call (`Prover.symbolic_decision`) is exactly what `Decider.decide` says: allowed, and with
   which risk.
2. Soundness of the answers: a PROVED invariant has no violating call in an exhaustively
   sampled domain (decided by `Decider` alone); every VIOLATED witness replays through
   `parse_request` + `Decider.decide` as an allowed, violating call.
3. Fixtures, discovered from ``fixtures/conditions/*/``: statuses, regions, golden JSON; the
   agency fixtures; a custom `never:` rule through the command line.
4. Minimal disagreements found so far, each stated as the behaviour FORMAT.md requires.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import pytest
import strategies
import yaml
from conftest import FIXTURES, REPO_ROOT, build_deployment, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer import risk
from analyzer.decide import Call, Decider, parse_request
from analyzer.graph import PermissionGraph
from analyzer.loader import load, load_text
from analyzer.prover import Prover
from analyzer.rules import load_rules

CROSS_TENANT = "no-cross-tenant-reach"
UNGATED = "no-ungated-high-risk"
CONDITION_FIXTURES = sorted(p.parent for p in (FIXTURES / "conditions").glob("*/expected.yaml"))
GOLDEN = Path(__file__).resolve().parent / "golden" / "conditions"
UPDATE_GOLDEN = os.environ.get("AGENTPERM_UPDATE_GOLDEN") == "1"


@pytest.fixture(scope="module")
def catalogue():
    return load_rules()


def prover_for(deployment) -> Prover:
    return Prover(PermissionGraph(deployment))


def expected_decision(decider: Decider, call: Call) -> tuple[bool, str | None]:
    decision = decider.decide(call)
    return decision.allow, decision.risk if decision.allow else None


# ---------------------------------------------------------------------------------------------- 1. differential


@given(text=strategies.deployment_texts(), data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_z3_encoding_decides_every_call_like_the_decision_function(text, data):
    deployment = load_text(text)
    decider, prover = Decider(deployment), prover_for(deployment)
    routes = strategies.granted_routes(deployment)
    for _ in range(8):
        call = data.draw(strategies.calls(deployment, routes), label="call")
        decision = decider.decide(call)
        assert prover.symbolic_decision(call) == expected_decision(decider, call), decision.reason


# ---------------------------------------------------------------------------------------------- 2. proofs vs samples


def violates(deployment, decider: Decider, goal: str, call: Call) -> bool:
    """Whether the decision function alone says the call is allowed and breaks the invariant."""
    decision = decider.decide(call)
    if not decision.allow:
        return False
    if goal == CROSS_TENANT:
        return call.tenant != deployment.workflows[call.workflow].tenant
    return risk.needs_approval(decision.risk, deployment.policy) and not deployment.is_real_gate(call.gate)


def replayed_call(deployment, request: dict) -> Call:
    """The call a decision endpoint sees for a witness's request (FORMAT §7).

    One exception: a witness approved through a gate with no person among its approvers. FORMAT §4
    counts such a call (for `no-ungated-high-risk` its approval "counts as none"), but no §7
    request can carry that approval, since `by` must be a person on the gate; `parse_request`
    reads it as none. Such a witness is replayed as the abstract call through that gate.
    """
    call = parse_request(request, deployment)
    gate = (request.get("approval") or {}).get("gate")
    if gate is not None and not deployment.is_real_gate(gate):
        assert call.gate is None and request["approval"]["by"] not in deployment.people
        call = dataclasses.replace(call, gate=gate)
    return call


def check_witnesses(deployment, result, goal: str) -> None:
    """Every witness is a decision request that is allowed and violates the invariant."""
    decider = Decider(deployment)
    assert result.witnesses, result
    for witness in result.witnesses:
        request = json.loads(json.dumps(witness["call"]))   # exactly what a live endpoint would receive
        call = replayed_call(deployment, request)
        decision = decider.decide(call)
        assert decision.allow, (request, decision.reason)
        assert violates(deployment, decider, goal, call), (request, decision.risk)
        assert witness["class"] == {"agent": call.chain[-1], "tool": call.tool, "operation": call.operation,
                                    "tenant": call.tenant}
    # every class, not only the representatives: its solver call is allowed and violates too
    assert len(result.classes) >= len({json.dumps(w["class"], sort_keys=True) for w in result.witnesses})
    for record in result.classes:
        call = replayed_call(deployment, json.loads(json.dumps(record["call"])))
        assert decider.decide(call).allow and violates(deployment, decider, goal, call), record


@given(text=strategies.deployment_texts())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_proved_means_no_sampled_call_violates_and_witnesses_replay(text):
    deployment = load_text(text)
    rules = load_rules()
    prover, decider = prover_for(deployment), Decider(deployment)
    for goal in (CROSS_TENANT, UNGATED):
        result, findings = prover.prove(rules[goal])
        assert result.status in ("proved", "violated"), result.reason
        if result.status == "violated":
            check_witnesses(deployment, result, goal)
            # one finding per root cause; its representatives are the invariant's witnesses
            assert len(findings) == len({c for record in result.classes for c in record["causes"]})
            assert len(findings) == len(result.witnesses)  # each cause's first representative
            continue
        for call in strategies.sampled_domain(deployment, per_case=12):
            assert not violates(deployment, decider, goal, call), \
                (goal, call.to_request(deployment), decider.decide(call).reason)


# ---------------------------------------------------------------------------------------------- 3. fixtures


@pytest.fixture(scope="module")
def condition_results() -> dict[str, tuple[int, dict, str]]:
    """`agentperm check <fixture>/deployment.yaml --format json` once per fixture: (exit, document, text)."""
    results = {}
    for folder in CONDITION_FIXTURES:
        path = (folder / "deployment.yaml").relative_to(REPO_ROOT)
        code, out, err = run_cli("check", str(path), "--format", "json")
        assert code in (0, 1), (folder.name, code, err)
        results[folder.name] = (code, json.loads(out), out)
    return results


def _expected(folder: Path) -> dict:
    return yaml.safe_load((folder / "expected.yaml").read_text(encoding="utf-8"))


def test_the_conditions_fixtures_are_discovered():
    assert len(CONDITION_FIXTURES) >= 6
    for folder in CONDITION_FIXTURES:
        assert (folder / "deployment.yaml").is_file()
        assert _expected(folder)["invariants"]


@pytest.mark.parametrize("folder", CONDITION_FIXTURES, ids=lambda p: p.name)
def test_conditions_fixture_statuses(folder, condition_results):
    code, document, _ = condition_results[folder.name]
    got = {inv["id"]: inv["status"] for inv in document["invariants"]}
    expected = _expected(folder)["invariants"]
    assert {k: got.get(k) for k in expected} == expected
    assert code == (1 if "violated" in expected.values() else 0)


def _threshold_region(expected: dict) -> str | None:
    """`101 <= amount <= 500` for a fixture whose expected region reads `100 < params.amount <= 500`."""
    found = re.match(r"\s*(-?\d+) < params\.(\w+) <= (-?\d+)", str(expected.get("region", "")))
    return f"{int(found[1]) + 1} <= {found[2]} <= {found[3]}" if found else None


THRESHOLD_FIXTURES = [f for f in CONDITION_FIXTURES if _threshold_region(_expected(f))]


def test_there_are_threshold_gap_fixtures():
    assert {"threshold-gap", "guardrail-closes-gap-open"} <= {f.name for f in THRESHOLD_FIXTURES}


@pytest.mark.parametrize("folder", THRESHOLD_FIXTURES, ids=lambda p: p.name)
def test_a_threshold_gap_witness_names_the_whole_region(folder, condition_results):
    _, document, _ = condition_results[folder.name]
    (ungated,) = [inv for inv in document["invariants"] if inv["id"] == UNGATED]
    assert ungated["status"] == "violated"
    region = _threshold_region(_expected(folder))
    for witness in ungated["witnesses"]:
        assert witness["region"] == region
        amount = witness["call"]["params"]["amount"]
        assert 101 <= amount <= 500
        assert witness["call"]["approval"] is None
    for finding in document["findings"]:
        if finding["rule"] == UNGATED:
            assert region in finding["message"]


@pytest.mark.parametrize("folder", CONDITION_FIXTURES, ids=lambda p: p.name)
def test_conditions_fixture_witnesses_replay(folder, catalogue):
    deployment = load(str(folder / "deployment.yaml"))
    prover = prover_for(deployment)
    for goal in (CROSS_TENANT, UNGATED):
        result, _ = prover.prove(catalogue[goal])
        if result.status == "violated":
            check_witnesses(deployment, result, goal)


@pytest.mark.parametrize("folder", CONDITION_FIXTURES, ids=lambda p: p.name)
def test_conditions_fixture_golden_json(folder, condition_results):
    _, _, text = condition_results[folder.name]
    golden = GOLDEN / f"{folder.name}.json"
    if UPDATE_GOLDEN:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert golden.is_file(), f"missing {golden}; run with AGENTPERM_UPDATE_GOLDEN=1 to create it"
    assert text == golden.read_text(encoding="utf-8"), \
        f"{folder.name}: output differs from {golden.name}; if intended, rerun with AGENTPERM_UPDATE_GOLDEN=1"


def test_the_agency_proves_both_invariants(catalogue):
    prover = prover_for(load(str(FIXTURES / "agency")))
    for goal in (CROSS_TENANT, UNGATED):
        result, findings = prover.prove(catalogue[goal])
        assert (result.status, findings) == ("proved", []), result.reason


def test_the_flawed_agency_violates_both_and_every_witness_replays(catalogue):
    deployment = load(str(FIXTURES / "flawed-agency"))
    prover = prover_for(deployment)
    for goal in (CROSS_TENANT, UNGATED):
        result, findings = prover.prove(catalogue[goal])
        assert result.status == "violated", result.reason
        check_witnesses(deployment, result, goal)
        # one finding per root cause, each with one representative per tool/operation it lets through
        causes = {c for record in result.classes for c in record["causes"]}
        assert len(findings) == len(causes) < len(result.classes)
        for finding in findings:
            examples = [finding.witness, *finding.root_cause["examples"]]
            assert len({(w["class"]["tool"], w["class"]["operation"]) for w in examples}) == len(examples)
            check_witnesses(deployment, dataclasses.replace(result, witnesses=tuple(examples)), goal)  # all replay


# ---------------------------------------------------------------------------------------------- custom rules

NEVER_HIGH_RISK_BILLING = {
    "id": "no-high-risk-billing", "title": "No high-risk billing call", "severity": "high",
    "category": "risk-gating", "description": "No allowed billing call is high risk.",
    "rationale": "Large refunds belong to finance.", "remediation": "Cap the amount with a guardrail.",
    "never": 'call.tool == "billing" && call.risk == "high"',
}


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("rules")
    (folder / "no-high-risk-billing.yaml").write_text(yaml.safe_dump(NEVER_HIGH_RISK_BILLING), encoding="utf-8")
    return folder


@pytest.mark.parametrize("fixture,status", [("threshold-gap", "violated"), ("threshold-gap-fixed", "violated"),
                                            ("guardrail-closes-gap", "proved")])
def test_a_custom_never_rule_through_the_command_line(rules_dir, fixture, status):
    path = (FIXTURES / "conditions" / fixture / "deployment.yaml").relative_to(REPO_ROOT)
    code, out, err = run_cli("check", str(path), "--rules", str(rules_dir), "--format", "json")
    document = json.loads(out)
    (result,) = [inv for inv in document["invariants"] if inv["id"] == "no-high-risk-billing"]
    assert result["status"] == status, (result, err)
    deployment = load(str(REPO_ROOT / path))
    decider = Decider(deployment)
    for witness in result["witnesses"]:
        decision = decider.decide(parse_request(witness["call"], deployment))
        assert decision.allow and decision.risk == "high" and witness["call"]["tool"] == "billing"
    custom = [f for f in document["findings"] if f["rule"] == "no-high-risk-billing"]
    assert len(custom) == len(result["witnesses"])
    assert all(f["severity"] == "high" for f in custom)
    assert code == 1 if status == "violated" else code in (0, 1)


def test_a_custom_never_rule_sees_params_and_fields(catalogue):
    deployment = load(str(FIXTURES / "conditions" / "threshold-gap-fixed" / "deployment.yaml"))
    rule = load_rules_with_never('call.tool == "billing" && params.amount > 1000 && call.gate == null')
    result, _ = prover_for(deployment).prove(rule)
    assert result.status == "proved", result   # above 100 the finance gate is needed
    rule = load_rules_with_never('call.tool == "billing" && params.amount > 1000000')
    result, _ = prover_for(deployment).prove(rule)
    assert result.status == "violated"
    for witness in result.witnesses:
        assert witness["call"]["params"]["amount"] > 1000000 and witness["call"]["approval"]["gate"] == "finance"


def load_rules_with_never(expression: str):
    from dataclasses import replace

    from analyzer import conditions, model
    from analyzer.errors import Loc

    base = load_rules()[CROSS_TENANT]
    return replace(base, id="custom", check=None,
                   never=model.Condition(expression, Loc("rule.yaml", 1, 1), conditions.parse_cel(expression)))


# ---------------------------------------------------------------------------------------------- 4. disagreements
# Each case is a minimal deployment and call on which the Z3 encoding and the decision
# function disagreed (or the prover answered wrongly); the assertion is what FORMAT requires.


def _one_operation(*, params=None, fields=None, grant=None, deny=None, high_risk_when=None, effect="payment",
                   risk_override=None):
    operation = {"effect": effect, "params": params or {}}
    if fields:
        operation["fields"] = fields
    if high_risk_when:
        operation["high_risk_when"] = high_risk_when
    if risk_override:
        operation["risk"] = risk_override
    role = {"grants": [{"tool": "pay", "operations": "*", **(grant or {})}]}
    if deny:
        role["denies"] = [{"tool": "pay", "operations": "*", **deny}]
    return build_deployment(
        tenants=["acme"], tools={"pay": {"operations": {"op": operation}}}, roles={"r": role},
        agents={"a": {"roles": ["r"], "tenants": ["acme"], "credentials": ["k"]}},
        credentials={"k": {"tools": ["pay"], "tenants": ["acme"], "store": "vault"}},
        workflows={"w": {"tenant": "acme", "agent": "a"}})


def _call(**params_and_fields) -> Call:
    fields = params_and_fields.pop("fields", ())
    return Call("w", ("a",), "pay", "op", "acme", tuple(fields), params_and_fields)


def test_a_deny_that_errors_over_an_empty_list_denies():
    """Found by the differential test: `x in []` with an erroring x is an error (x is evaluated first),
    so a deny fails closed; the translation made it false and allowed the call."""
    deployment = build_deployment(
        tenants=["acme"],
        tools={"pay": {"operations": {"with_to": {"effect": "read", "params": {"to": "string"}},
                                      "without": {"effect": "read"}}}},
        roles={"r": {"grants": [{"tool": "pay", "operations": "*"}],
                     "denies": [{"tool": "pay", "operations": "*", "when": "params.to in []"}]}},
        agents={"a": {"roles": ["r"], "tenants": ["acme"], "credentials": ["k"]}},
        credentials={"k": {"tools": ["pay"], "tenants": ["acme"], "store": "vault"}},
        workflows={"w": {"tenant": "acme", "agent": "a"}})
    call = Call("w", ("a",), "pay", "without", "acme", (), {})
    assert expected_decision(Decider(deployment), call) == (False, None)
    assert prover_for(deployment).symbolic_decision(call) == (False, None)


def test_a_deny_comparing_with_a_backslash_u_text_does_not_deny_the_decoded_character(catalogue):
    """z3.StringVal decodes `\\u{41}` to "A": the prover thought "A" denied and answered PROVED."""
    deployment = _one_operation(params={"to": "string"}, grant={"when": 'params.to == "A"'},
                                deny={"when": 'params.to == "\\\\u{41}"'})
    call = _call(to="A")
    assert expected_decision(Decider(deployment), call) == (True, "high")
    assert prover_for(deployment).symbolic_decision(call) == (True, "high")
    result, _ = prover_for(deployment).prove(catalogue[UNGATED])
    assert result.status == "violated", result


def test_a_deny_on_empty_fields_does_not_deny_a_call_with_fields(catalogue):
    """`fields == []` is an error to the translation, so the deny "fails closed" on every call: PROVED."""
    deployment = _one_operation(fields=["stage"], deny={"when": "fields == []"})
    call = _call(fields=["stage"])
    assert expected_decision(Decider(deployment), call) == (True, "high")
    assert prover_for(deployment).symbolic_decision(call) == (True, "high")
    result, _ = prover_for(deployment).prove(catalogue[UNGATED])
    assert result.status == "violated", result


def test_a_deny_matching_a_zero_repeat_does_not_deny_longer_strings(catalogue):
    """`a{0}` became z3.Loop(a, 0, 0), which Z3 reads as `a*`: the deny covered "aaa" too: PROVED."""
    deployment = _one_operation(params={"to": "string"}, grant={"when": 'params.to == "aaa"'},
                                deny={"when": 'params.to.matches("^a{0}$")'})
    call = _call(to="aaa")
    assert expected_decision(Decider(deployment), call) == (True, "high")
    assert prover_for(deployment).symbolic_decision(call) == (True, "high")
    result, _ = prover_for(deployment).prove(catalogue[UNGATED])
    assert result.status == "violated", result


def test_a_high_risk_when_that_is_not_a_bool_makes_the_call_high():
    """Fail closed, as for a deny: decide.py keeps the declared risk, the encoding raises it."""
    deployment = _one_operation(params={"amount": "int"}, high_risk_when="params.amount", risk_override="medium")
    call = _call(amount=5)
    assert prover_for(deployment).symbolic_decision(call) == (True, "high")
    assert expected_decision(Decider(deployment), call) == (True, "high")


def test_a_witness_with_characters_beyond_latin_1_replays(catalogue):
    """Z3's as_string() spells such characters `\\u{1f600}`; the witness then does not replay and the
    violation is reported as UNKNOWN ("internal error") instead of VIOLATED."""
    deployment = _one_operation(params={"to": "string"}, grant={"when": 'params.to.startsWith("\\U0001F600")'})
    result, _ = prover_for(deployment).prove(catalogue[UNGATED])
    assert result.status == "violated", result.reason
    check_witnesses(deployment, result, UNGATED)


def test_a_witness_through_a_gate_without_a_person_is_reported(catalogue):
    """Seen on fixtures/flawed-agency: the only grant reaching globex needs gate `bots`, whose only
    approver is an agent. FORMAT §4 allows that call, so the invariant is violated (fail closed),
    but the witness's request (`by: null`) is denied by a §7 endpoint: see `replayed_call`."""
    deployment = build_deployment(
        tenants=["acme", "globex"], people=["dana"],
        tools={"crm": {"operations": {"read": {"effect": "read"}}}},
        roles={"r": {"grants": [{"tool": "crm", "operations": ["read"], "approval": "bots"},
                                {"tool": "crm", "operations": ["read"], "approval": "humans",
                                 "when": "call.tenant == call.home"}]}},
        agents={"a": {"roles": ["r"], "tenants": ["acme"], "credentials": ["k"]}},
        credentials={"k": {"tools": ["crm"], "tenants": ["acme", "globex"], "store": "vault"}},
        gates={"bots": {"approvers": ["a"]}, "humans": {"approvers": ["dana"]}},
        workflows={"w": {"tenant": "acme", "agent": "a"}})
    result, _ = prover_for(deployment).prove(catalogue[CROSS_TENANT])
    assert result.status == "violated", result.reason
    (witness,) = result.witnesses
    assert witness["call"]["approval"] == {"gate": "bots", "by": None}
    assert not Decider(deployment).decide(parse_request(witness["call"], deployment)).allow
    check_witnesses(deployment, result, CROSS_TENANT)


# ---------------------------------------------------------------------------------------------- 5. what scales
# Case enumeration works from per-role tables and skips cases no pending invariant can learn
# from, and operations declared alike share solver answers; each is held to the plain reading.


def _plain_cases(deployment):
    """The cases as FORMAT §4 reads them, agent by agent, with no tables and no filter."""
    from analyzer import reach
    from analyzer.prover import Case

    for wf_id in sorted(deployment.workflows):
        wf = deployment.workflows[wf_id]
        for agent_id, chain in sorted(reach.chains(deployment, wf).items()):
            agent = deployment.agents[agent_id]
            by_operation: dict = {}
            for role_id in agent.roles:
                for grant in deployment.roles[role_id].grants:
                    for tool, op in deployment.operations_of(grant):
                        if wf.uses(tool.id):
                            by_operation.setdefault((tool.id, op.id), []).append(grant)
            for (tool_id, op_id), grants in sorted(by_operation.items()):
                tool = deployment.tools[tool_id]
                denies = list(reach.denies_for(deployment, agent, wf.tenant, tool_id, op_id))
                if any(d.when is None for d in denies):
                    continue
                tenants: set = set()
                for cred_id in agent.credentials:
                    cred = deployment.credentials[cred_id]
                    if cred.covers(tool_id):
                        tenants |= reach.reach_of(deployment, cred, tool, wf)
                for tenant in sorted(tenants):
                    yield Case(wf, chain, tool, tool.operations[op_id], tenant, tuple(grants), tuple(denies))


@given(text=strategies.deployment_texts())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_case_enumeration_from_role_tables_is_the_plain_enumeration(text):
    from analyzer.prover import cases

    deployment = load_text(text)
    assert list(cases(deployment)) == list(_plain_cases(deployment))


@given(text=strategies.deployment_texts())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_cases_left_out_for_the_invariants_change_no_event(text):
    """Each built-in invariant sees the same events from the cases its Interest keeps as from
    every case, and the kept cases are a subsequence of every case (same order)."""
    from analyzer.prover import Interest, cases, group_cases, merge_events

    deployment = load_text(text)
    every = list(cases(deployment))
    prover = prover_for(deployment)
    for goal in ("cross-tenant", "ungated"):
        kept = list(cases(deployment, interest=Interest.of_goals([goal])))
        positions = iter(every)
        assert all(any(case == other for other in positions) for case in kept)  # a subsequence
        assert merge_events(prover.events(goal, None, list(group_cases(kept)))) == \
            merge_events(prover.events(goal, None, list(group_cases(every))))
    both = list(cases(deployment, interest=Interest.of_goals(["cross-tenant", "ungated"])))
    assert both == [c for c in every if c in both]


@given(text=strategies.deployment_texts())
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_asking_once_per_group_of_tenants_finds_what_asking_per_tenant_finds(text):
    """Groups of cases alike but for the tenant are the cases, and one question per group (when
    no condition sees the tenant) gives every invariant the witnesses, causes and unknowns that
    one question per case gives."""
    from analyzer.prover import case_groups, cases, group_cases, merge_events

    deployment = load_text(text)
    every = list(cases(deployment))
    groups = list(case_groups(deployment))
    assert list(group_cases(every)) == groups
    expanded = [dataclasses.replace(case, tenant=t) for case, tenants in groups for t in tenants]
    assert expanded == every
    singles = [(case, (case.tenant,)) for case in every]
    for goal in ("cross-tenant", "ungated"):
        grouped = merge_events(prover_for(deployment).events(goal, None, groups))
        alone = merge_events(prover_for(deployment).events(goal, None, singles))
        assert grouped.witnesses == alone.witnesses
        assert grouped.error == alone.error and sorted(grouped.unknowns) == sorted(alone.unknowns)


def test_operations_declared_alike_on_different_tools_share_one_solver_call(monkeypatch, catalogue):
    operation = {"effect": "payment", "params": {"amount": "int"}}
    tools = {f"billing-{n}": {"operations": {"refund": operation}} for n in range(5)}
    deployment = build_deployment(
        tenants=["acme"], tools=tools,
        roles={"r": {"grants": [{"tool": t, "operations": ["refund"], "when": "params.amount <= 50"}
                                for t in tools]}},
        agents={"a": {"roles": ["r"], "tenants": ["acme"], "credentials": ["k"]}},
        credentials={"k": {"tools": sorted(tools), "tenants": ["acme"], "store": "vault"}},
        workflows={"w": {"tenant": "acme", "agent": "a"}})
    solved = []
    prover = prover_for(deployment)
    real_solve = prover._solve
    monkeypatch.setattr(prover, "_solve", lambda *args, **kwargs: solved.append(args) or real_solve(*args, **kwargs))
    result, findings = prover.prove(catalogue["no-ungated-high-risk"])
    assert result.status == "violated"
    # five witness classes (one per tool), each replayed, from one question to the solver
    assert sorted(f.witness["call"]["tool"] for f in findings) == sorted(tools)
    assert all(f.witness["region"] == "amount <= 50" for f in findings)
    assert len(solved) == 1
