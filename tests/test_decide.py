"""The concrete decision function, one test per point of FORMAT.md §4, then §7's request shape.

Every test starts from one small deployment (:func:`sections`) that allows its baseline call,
changes one thing, and checks the decision. A test that only checks a denial also checks the
baseline is allowed, so a denial is never an accident of the model.
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
from conftest import FIXTURES, build_deployment
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import calls, deployments, granted_routes, param_values

from analyzer import reach
from analyzer.decide import Call, Decider, Decision, MalformedCall, decide, parse_request
from analyzer.loader import load
from analyzer.model import STAR

# ---------------------------------------------------------------------------------------------- the model


def sections(**overrides) -> dict:
    """One home tenant (acme) and a neighbour (globex); `boss` runs workflow `w` and delegates to `helper`.

    Every agent holds role `worker`, which grants every operation of every tool, and the static
    credential `key`, which covers every tool and reaches acme only.
    """
    base = {
        "tenants": {"acme": {"attributes": {"domain": "acme.com", "region": "eu"}},
                    "globex": {"attributes": {"domain": "globex.com"}}},
        "people": ["dana", "erin"],
        "tools": {
            "crm": {"operations": {"read": {"effect": "read"},
                                   "update": {"effect": "write", "fields": ["stage", "notes", "amount"]}}},
            "billing": {"operations": {"refund": {"effect": "payment", "risk": "medium", "params": {"amount": "int"},
                                                  "high_risk_when": "params.amount > 100"}}},
            "email": {"operations": {"send": {"effect": "send",
                                              "params": {"to": "string", "urgent": "bool",
                                                         "kind": ["memo", "alert"]}}}},
        },
        "roles": {"worker": {"grants": [{"tool": "*", "operations": "*"}]}},
        "agents": {
            "boss": {"roles": ["worker"], "tenants": ["acme"], "credentials": ["key"], "delegates_to": ["helper"]},
            "helper": {"roles": ["worker"], "tenants": ["acme", "globex"], "credentials": ["key"],
                       "delegates_to": ["boss", "intern"]},
            "intern": {"roles": ["worker"], "tenants": ["acme"], "credentials": ["key"]},
            "stranger": {"roles": ["worker"], "tenants": "*", "credentials": ["key"]},
        },
        "credentials": {"key": {"tools": "*", "tenants": ["acme"], "store": "vault"}},
        "gates": {"finance": {"approvers": ["dana"]}, "legal": {"approvers": ["erin", "helper"]}},
        "workflows": {"w": {"tenant": "acme", "agent": "boss"}},
    }
    base.update(copy.deepcopy(overrides))
    return base


def model(**overrides):
    return build_deployment(**sections(**overrides))


def call(**fields) -> Call:
    """A call in workflow w by boss on crm.read for acme, with any part replaced."""
    values = {"workflow": "w", "chain": ("boss",), "tool": "crm", "operation": "read", "tenant": "acme",
              "fields": (), "params": {}, "gate": None}
    values.update(fields)
    values["chain"] = tuple(values["chain"])
    values["fields"] = tuple(values["fields"])
    return Call(**values)


def refund(amount=10, **fields) -> Call:
    return call(tool="billing", operation="refund", params={"amount": amount}, **fields)


def send(chain=("boss",), **params) -> Call:
    values = {"to": "bob@acme.com", "urgent": False, "kind": "memo"}
    values.update(params)
    return call(tool="email", operation="send", params=values, chain=chain)


def allowed(deployment, c: Call) -> bool:
    return Decider(deployment).decide(c).allow


@pytest.fixture(scope="module")
def plain():
    return model()


def test_baseline_calls_are_allowed(plain):
    for c in (call(), call(operation="update", fields=["stage"]), refund(), send(),
              call(chain=["boss", "helper"]), call(chain=["boss", "helper", "intern"])):
        decision = decide(plain, c)
        assert decision.allow, (c, decision.reason)
        assert decision.reason and decision.credential == "key" and decision.grant is not None


# ---------------------------------------------------------------------------------------------- 1. chain


def test_chain_must_start_at_the_workflows_agent(plain):
    assert not allowed(plain, call(chain=["helper"]))
    assert not allowed(plain, call(chain=["helper", "boss"]))


def test_chain_follows_delegates_to(plain):
    assert allowed(plain, call(chain=["boss", "helper"]))
    assert not allowed(plain, call(chain=["boss", "intern"]))      # boss does not delegate to intern
    assert not allowed(plain, call(chain=["boss", "stranger"]))


def test_chain_may_not_repeat_an_agent(plain):
    # boss -> helper -> boss follows delegates_to at every step, but boss repeats
    assert not allowed(plain, call(chain=["boss", "helper", "boss"]))


def test_every_agent_on_the_chain_serves_home():
    d = model(agents={**sections()["agents"],
                      "helper": {"roles": ["worker"], "tenants": ["globex"], "credentials": ["key"],
                                 "delegates_to": ["intern"]}})
    assert allowed(d, call())
    assert not allowed(d, call(chain=["boss", "helper"]))
    # the acting agent serves home, but an agent in the middle does not
    assert not allowed(d, call(chain=["boss", "helper", "intern"]))
    # the workflow's own agent must serve home too
    d = model(workflows={"w": {"tenant": "globex", "agent": "boss"}},
              credentials={"key": {"tools": "*", "tenants": "*", "store": "vault"}})
    assert not allowed(d, call(tenant="globex"))


def test_empty_or_unknown_chain_is_denied(plain):
    assert not allowed(plain, call(chain=[]))
    assert not allowed(plain, call(chain=["boss", "ghost"]))
    assert not allowed(plain, call(workflow="ghost"))


# ---------------------------------------------------------------------------------------------- 2. scope


def test_tool_must_be_in_the_workflows_tools():
    d = model(workflows={"w": {"tenant": "acme", "agent": "boss", "tools": ["billing"]}})
    assert allowed(d, refund())
    assert not allowed(d, call())
    assert not allowed(d, call(tool="ghost"))


def test_operation_must_be_an_operation_of_the_tool(plain):
    assert not allowed(plain, call(operation="refund"))    # an operation of billing, not of crm
    assert not allowed(plain, call(operation="ghost"))


def test_fields_must_be_fields_of_the_operation(plain):
    assert allowed(plain, call(operation="update", fields=["stage", "notes", "amount"]))
    assert not allowed(plain, call(operation="update", fields=["stage", "owner"]))
    assert not allowed(plain, call(operation="read", fields=["stage"]))


def test_params_must_be_exactly_the_declared_ones(plain):
    assert allowed(plain, refund(10))
    assert not allowed(plain, call(tool="billing", operation="refund", params={}))
    assert not allowed(plain, call(tool="billing", operation="refund", params={"amount": 1, "note": "x"}))
    assert not allowed(plain, call(params={"amount": 1}))     # crm.read declares no params


@pytest.mark.parametrize("amount", [True, False, "10", 10.0, None, [10]], ids=repr)
def test_an_int_param_takes_only_ints_and_bool_is_not_int(plain, amount):
    assert not allowed(plain, refund(amount))


@pytest.mark.parametrize("params", [{"urgent": 1}, {"urgent": "true"}, {"to": 5}, {"to": None},
                                    {"kind": "letter"}, {"kind": 1}], ids=repr)
def test_bool_string_and_enum_params_are_typed(plain, params):
    assert allowed(plain, send())
    assert not allowed(plain, send(**params))


def test_enum_params_take_any_listed_value(plain):
    assert allowed(plain, send(kind="alert", urgent=True, to=""))


# ---------------------------------------------------------------------------------------------- 3. grant


def test_without_a_matching_grant_the_call_is_denied():
    d = model(roles={"worker": {"grants": [{"tool": "crm", "operations": ["update"]}]}})
    assert allowed(d, call(operation="update"))
    assert not allowed(d, call(operation="read"))
    assert not allowed(d, refund())


def test_only_the_acting_agents_roles_count():
    d = model(roles={"worker": {"grants": [{"tool": "crm", "operations": ["read"]}]},
                     "idle": {"grants": [{"tool": "email", "operations": ["send"]}]}},
              agents={**sections()["agents"],
                      "boss": {"roles": ["worker"], "tenants": ["acme"], "credentials": ["key"],
                               "delegates_to": ["helper"]},
                      "helper": {"roles": ["idle"], "tenants": ["acme"], "credentials": ["key"]}})
    assert allowed(d, call())
    assert not allowed(d, call(chain=["boss", "helper"]))            # the caller's grant does not pass down
    assert allowed(d, send(chain=["boss", "helper"]))
    assert not allowed(d, send())                                    # nor the delegate's up


def test_grant_fields_must_contain_the_calls_fields():
    d = model(roles={"worker": {"grants": [{"tool": "crm", "operations": ["update"], "fields": ["stage"]}]}})
    assert allowed(d, call(operation="update"))
    assert allowed(d, call(operation="update", fields=["stage"]))
    assert not allowed(d, call(operation="update", fields=["notes"]))
    assert not allowed(d, call(operation="update", fields=["stage", "notes"]))


def test_another_grant_may_cover_the_fields_the_first_lacks():
    d = model(roles={"worker": {"grants": [{"tool": "crm", "operations": ["update"], "fields": ["stage"]},
                                           {"tool": "crm", "operations": ["update"], "fields": ["notes", "stage"]}]}})
    assert allowed(d, call(operation="update", fields=["stage", "notes"]))
    assert not allowed(d, call(operation="update", fields=["amount"]))


def test_grant_fields_are_not_enforced_on_prompt_only_tools():
    tools = sections()["tools"]
    tools["crm"]["enforced_by"] = "prompt"
    d = model(tools=tools, roles={"worker": {"grants": [{"tool": "crm", "operations": ["update"], "fields": ["stage"]}]}})
    assert allowed(d, call(operation="update", fields=["notes", "amount"]))
    # but the operation's own fields still bound F (point 2)
    assert not allowed(d, call(operation="update", fields=["owner"]))


def test_grant_when_must_hold():
    d = model(roles={"worker": {"grants": [{"tool": "billing", "operations": ["refund"],
                                            "when": "params.amount <= 50"}]}})
    assert allowed(d, refund(50))
    assert not allowed(d, refund(51))


def test_grant_when_sees_call_tenant_and_fields():
    d = model(roles={"worker": {"grants": [
        {"tool": "email", "operations": ["send"], "when": 'params.to.endsWith("@" + tenant.domain)'},
        {"tool": "crm", "operations": ["update"], "when": '!("amount" in fields) && call.home == call.tenant'},
        {"tool": "crm", "operations": ["read"], "when": 'call.delegated && call.agent == "helper"'}]}})
    assert allowed(d, send(to="bob@acme.com"))
    assert not allowed(d, send(to="bob@evilacme.com"))
    assert allowed(d, call(operation="update", fields=["stage"]))
    assert not allowed(d, call(operation="update", fields=["amount"]))
    assert allowed(d, call(chain=["boss", "helper"]))
    assert not allowed(d, call())


def test_grant_approval_must_equal_the_gate():
    d = model(roles={"worker": {"grants": [{"tool": "billing", "operations": ["refund"], "approval": "finance"}]}})
    assert allowed(d, refund(gate="finance"))
    assert not allowed(d, refund())
    assert not allowed(d, refund(gate="legal"))


def test_a_grant_without_approval_allows_any_gate(plain):
    assert allowed(plain, refund(gate="finance"))
    assert allowed(plain, refund(gate="legal"))


def test_an_unknown_gate_is_denied(plain):
    assert not allowed(plain, refund(gate="ghost"))


# ---------------------------------------------------------------------------------------------- 4. deny


def test_a_deny_of_the_acting_agents_role_blocks():
    d = model(roles={"worker": {"grants": [{"tool": "*", "operations": "*"}],
                                "denies": [{"tool": "crm", "operations": ["update"]}]}})
    assert allowed(d, call())
    assert not allowed(d, call(operation="update"))


def test_a_deny_blocks_only_when_its_condition_holds():
    d = model(roles={"worker": {"grants": [{"tool": "*", "operations": "*"}],
                                "denies": [{"tool": "billing", "operations": "*", "when": "params.amount > 100"}]}})
    assert allowed(d, refund(100))
    assert not allowed(d, refund(101))


def test_a_deny_on_the_caller_does_not_bind_the_delegate():
    d = model(roles={"worker": {"grants": [{"tool": "*", "operations": "*"}]},
                     "careful": {"grants": [{"tool": "*", "operations": "*"}],
                                 "denies": [{"tool": "crm", "operations": "*"}]}},
              agents={**sections()["agents"],
                      "boss": {"roles": ["careful"], "tenants": ["acme"], "credentials": ["key"],
                               "delegates_to": ["helper"]}})
    assert not allowed(d, call())
    assert allowed(d, call(chain=["boss", "helper"]))


def test_a_deny_wins_over_a_grant_of_another_role():
    d = model(roles={"worker": {"grants": [{"tool": "*", "operations": "*"}]},
                     "nocrm": {"denies": [{"tool": "crm", "operations": ["read"]}]}},
              agents={**sections()["agents"],
                      "boss": {"roles": ["worker", "nocrm"], "tenants": ["acme"], "credentials": ["key"]}})
    assert not allowed(d, call())
    assert allowed(d, call(operation="update"))


def test_a_guardrail_blocks_every_agent():
    d = model(guardrails=[{"tool": "billing", "operations": ["refund"], "when": "params.amount > 10000"}])
    assert allowed(d, refund(10000))
    assert not allowed(d, refund(10001))
    assert not allowed(d, refund(10001, chain=["boss", "helper"]))


def test_a_guardrail_selects_agents():
    d = model(guardrails=[{"tool": "crm", "operations": "*", "agents": ["helper"]}])
    assert allowed(d, call())
    assert not allowed(d, call(chain=["boss", "helper"]))
    assert allowed(d, call(chain=["boss", "helper", "intern"]))


def test_a_guardrail_selects_the_workflows_tenant_not_the_target():
    credentials = {"key": {"tools": "*", "tenants": "*", "store": "vault"}}
    d = model(credentials=credentials, guardrails=[{"tool": "crm", "operations": "*", "tenants": ["globex"]}],
              workflows={"w": {"tenant": "acme", "agent": "boss"},
                         "g": {"tenant": "globex", "agent": "helper"}})
    assert allowed(d, call())
    assert allowed(d, call(tenant="globex"))        # home is acme: not selected
    assert not allowed(d, call(workflow="g", chain=["helper"], tenant="globex"))
    assert not allowed(d, call(workflow="g", chain=["helper"], tenant="acme"))


# ---------------------------------------------------------------------------------------------- 5. credential


def test_the_acting_agent_needs_a_credential_covering_the_tool():
    d = model(credentials={"key": {"tools": ["crm"], "tenants": ["acme"], "store": "vault"}})
    assert allowed(d, call())
    assert not allowed(d, refund())
    d = model(agents={**sections()["agents"],
                      "helper": {"roles": ["worker"], "tenants": ["acme"], "credentials": []}})
    assert not allowed(d, call(chain=["boss", "helper"]))   # the caller's credential does not pass down


def _reach(tool_settings: dict, credential: dict) -> dict[str, bool]:
    """For a crm tool configured as given: {target tenant: allowed} in acme's workflow w."""
    tools = sections()["tools"]
    tools["crm"].update(tool_settings)
    d = model(tools=tools, credentials={"key": {"store": "vault", "tools": "*", **credential}},
              tenants={"acme": {}, "globex": {}, "initech": {}})
    return {t: allowed(d, call(tenant=t)) for t in ("acme", "globex", "initech")}


def test_reach_of_a_tool_holding_no_tenant_data_is_home():
    assert _reach({"tenancy": "none"}, {"tenants": ["globex"]}) == {"acme": True, "globex": False, "initech": False}
    assert _reach({"tenancy": "none", "enforced_by": "prompt"}, {"tenants": "*"}) == \
        {"acme": True, "globex": False, "initech": False}


def test_reach_of_a_shared_tool_is_every_tenant():
    assert _reach({"tenancy": "shared"}, {"tenants": ["acme"], "issued": "per-workflow"}) == \
        {"acme": True, "globex": True, "initech": True}


def test_reach_of_a_prompt_enforced_tool_is_every_tenant():
    assert _reach({"enforced_by": "prompt"}, {"tenants": ["acme"], "issued": "per-workflow"}) == \
        {"acme": True, "globex": True, "initech": True}


def test_reach_of_a_per_workflow_credential_is_home_if_listed():
    assert _reach({}, {"tenants": ["acme", "globex"], "issued": "per-workflow"}) == \
        {"acme": True, "globex": False, "initech": False}
    assert _reach({}, {"tenants": ["globex"], "issued": "per-workflow"}) == \
        {"acme": False, "globex": False, "initech": False}
    assert _reach({}, {"tenants": "*", "issued": "per-workflow"}) == {"acme": True, "globex": False, "initech": False}


def test_reach_of_a_static_credential_is_its_tenants():
    assert _reach({}, {"tenants": ["acme", "globex"]}) == {"acme": True, "globex": True, "initech": False}
    assert _reach({}, {"tenants": ["globex"]}) == {"acme": False, "globex": True, "initech": False}
    assert _reach({}, {"tenants": "*"}) == {"acme": True, "globex": True, "initech": True}


def test_any_held_credential_may_reach_the_target():
    d = model(credentials={"key": {"tools": "*", "tenants": ["acme"], "store": "vault"},
                           "other": {"tools": ["crm"], "tenants": ["globex"], "store": "vault"}},
              agents={**sections()["agents"],
                      "boss": {"roles": ["worker"], "tenants": ["acme"], "credentials": ["key", "other"]}})
    assert allowed(d, call(tenant="globex"))
    assert not allowed(d, refund(tenant="globex"))
    assert not allowed(d, call(tenant="ghost"))


# ---------------------------------------------------------------------------------------------- risk


def test_risk_is_the_declared_risk_raised_by_high_risk_when(plain):
    assert decide(plain, refund(100)).risk == "medium"
    assert decide(plain, refund(101)).risk == "high"
    assert decide(plain, call()).risk == "low"
    assert decide(plain, call(operation="update")).risk == "medium"


# ---------------------------------------------------------------------------------------------- fail closed


def test_a_grant_whose_condition_errors_does_not_grant():
    # globex has no `region`: the condition cannot be evaluated there
    d = model(credentials={"key": {"tools": "*", "tenants": "*", "store": "vault"}},
              roles={"worker": {"grants": [{"tool": "crm", "operations": ["read"], "when": 'tenant.region != "us"'}]}})
    assert allowed(d, call(tenant="acme"))
    assert not allowed(d, call(tenant="globex"))


def test_a_grant_whose_condition_is_not_a_bool_does_not_grant():
    d = model(roles={"worker": {"grants": [{"tool": "billing", "operations": ["refund"], "when": "params.amount"}]}})
    assert not allowed(d, refund(1))


def test_a_deny_whose_condition_errors_denies():
    d = model(credentials={"key": {"tools": "*", "tenants": "*", "store": "vault"}},
              roles={"worker": {"grants": [{"tool": "*", "operations": "*"}],
                                "denies": [{"tool": "crm", "operations": ["read"], "when": 'tenant.region == "us"'}]}})
    assert allowed(d, call(tenant="acme"))
    assert not allowed(d, call(tenant="globex"))


def test_a_deny_whose_condition_divides_by_zero_denies():
    d = model(roles={"worker": {"grants": [{"tool": "*", "operations": "*"}],
                                "denies": [{"tool": "billing", "operations": "*", "when": "100 / params.amount > 200"}]}})
    assert allowed(d, refund(1))
    assert not allowed(d, refund(0))


def test_a_guardrail_whose_condition_errors_denies():
    d = model(credentials={"key": {"tools": "*", "tenants": "*", "store": "vault"}},
              guardrails=[{"tool": "crm", "operations": ["read"], "when": 'tenant.region == "us"'}])
    assert allowed(d, call(tenant="acme"))
    assert not allowed(d, call(tenant="globex"))


def test_a_high_risk_when_that_errors_makes_the_call_high():
    tools = sections()["tools"]
    tools["billing"]["operations"]["refund"]["high_risk_when"] = "100 / params.amount < 1"
    d = model(tools=tools)
    assert decide(d, refund(1000)).risk == "high"
    assert decide(d, refund(50)).risk == "medium"
    assert decide(d, refund(0)).risk == "high"


def test_a_high_risk_when_that_is_not_a_bool_makes_the_call_high():
    """A condition that does not evaluate to a bool cannot be evaluated as a condition: fail closed.

    decide.py treats a non-bool deny as applying but a non-bool high_risk_when as not holding;
    the Z3 encoding (smt.holds_or_errors) makes it high, so the two disagree on this call.
    """
    tools = sections()["tools"]
    tools["billing"]["operations"]["refund"]["high_risk_when"] = "params.amount"
    d = model(tools=tools)
    assert decide(d, refund(5)).risk == "high"


# ---------------------------------------------------------------------------------------------- §7 requests


def request(**fields) -> dict:
    body = {"workflow": "w", "chain": ["boss"], "tool": "billing", "operation": "refund", "tenant": "acme",
            "params": {"amount": 5}}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not _DROP}


_DROP = object()


def test_a_request_parses_into_the_call(plain):
    parsed = parse_request(request(fields=[], approval={"gate": "finance", "by": "dana"}), plain)
    assert parsed == refund(5, gate="finance")
    assert decide(plain, parsed).allow


def test_optional_keys_default(plain):
    parsed = parse_request({"workflow": "w", "chain": ["boss"], "tool": "crm", "operation": "read",
                            "tenant": "acme"}, plain)
    assert parsed.fields == () and dict(parsed.params) == {} and parsed.gate is None
    assert parse_request(request(fields=None, params=None, approval=None), plain).gate is None


def test_approval_by_a_person_on_the_gate_counts(plain):
    assert parse_request(request(approval={"gate": "legal", "by": "erin"}), plain).gate == "legal"


@pytest.mark.parametrize("approval", [
    {"gate": "legal", "by": "helper"},     # on the gate, but an agent, not a person
    {"gate": "finance", "by": "erin"},     # a person, but not on that gate
    {"gate": "finance", "by": "ghost"},
    {"gate": "finance", "by": None},
    {"gate": "finance"},
    {"gate": "ghost", "by": "dana"},
], ids=lambda a: f"{a.get('gate')}-by-{a.get('by')}")
def test_approval_not_by_a_person_on_that_gate_counts_as_none(plain, approval):
    assert parse_request(request(approval=approval), plain).gate is None


def test_a_gated_grant_is_not_opened_by_a_non_person():
    d = model(roles={"worker": {"grants": [{"tool": "billing", "operations": ["refund"], "approval": "legal"}]}})
    assert Decider(d).decide(parse_request(request(approval={"gate": "legal", "by": "erin"}), d)).allow
    assert not Decider(d).decide(parse_request(request(approval={"gate": "legal", "by": "helper"}), d)).allow


def test_to_request_replays_as_the_same_call(plain):
    for c in (refund(7, gate="finance"), call(operation="update", fields=["stage"], chain=["boss", "helper"]),
              send(kind="alert")):
        assert parse_request(c.to_request(plain), plain) == c


@pytest.mark.parametrize("body", [
    None, [], "call", 5,
    request(workflow=_DROP), request(chain=_DROP), request(tool=_DROP), request(operation=_DROP),
    request(tenant=_DROP),
    request(workflow=5), request(chain="boss"), request(chain=[1]), request(chain=None), request(tool=None),
    request(operation=["refund"]), request(tenant={"id": "acme"}),
    request(fields="stage"), request(fields=[1]), request(params=[5]), request(params="amount"),
    request(approval="finance"), request(approval={"by": "dana"}), request(approval={"gate": 5, "by": "dana"}),
    request(approval={"gate": "finance", "by": 5}), request(approval=["finance", "dana"]),
], ids=repr)
def test_malformed_requests_raise(plain, body):
    with pytest.raises(MalformedCall):
        parse_request(body, plain)


def test_well_formed_but_unknown_ids_are_denied_not_malformed(plain):
    decider = Decider(plain)
    for body in (request(workflow="ghost"), request(chain=["ghost"]), request(tool="ghost"),
                 request(operation="ghost"), request(tenant="ghost"), request(params={"amount": "5"})):
        assert not decider.decide(parse_request(body, plain)).allow


# ---------------------------------------------------------------------------------------------- indices
# Decider gathers what a call needs into records made on first use (per workflow, agent, operation,
# and roles × operation). Held against §4 read straight off the deployment, call by call, with no
# index at all: the same decision, reason, grant, credential, risk and deny, first time and again.

def reference_decision(d, call: Call) -> Decision:
    """FORMAT §4 read straight off the deployment (the decision function before it had records)."""
    wf = d.workflows.get(call.workflow)
    if wf is None:
        return Decision(False, f"unknown workflow {call.workflow!r}")
    home = wf.tenant
    if not call.chain:
        return Decision(False, "empty delegation chain")
    if call.chain[0] != wf.agent:
        return Decision(False, f"the chain must start with the workflow's agent {wf.agent!r}")
    if len(set(call.chain)) != len(call.chain):
        return Decision(False, "an agent repeats in the delegation chain")
    for index, agent_id in enumerate(call.chain):
        agent = d.agents.get(agent_id)
        if agent is None:
            return Decision(False, f"unknown agent {agent_id!r}")
        if not agent.serves(home):
            return Decision(False, f"{agent_id} does not serve the workflow's tenant {home}")
        if index and agent_id not in d.agents[call.chain[index - 1]].delegates_to:
            return Decision(False, f"{call.chain[index - 1]} does not delegate to {agent_id}")
    acting = d.agents[call.chain[-1]]
    tool = d.tools.get(call.tool)
    if tool is None:
        return Decision(False, f"unknown tool {call.tool!r}")
    if not wf.uses(tool.id):
        return Decision(False, f"workflow {wf.id} may not use {tool.id}")
    op = tool.operations.get(call.operation)
    if op is None:
        return Decision(False, f"{tool.id} has no operation {call.operation!r}")
    if call.tenant not in d.tenants:
        return Decision(False, f"unknown tenant {call.tenant!r}")
    if len(set(call.fields)) != len(call.fields):
        return Decision(False, "a field is named twice")
    outside = [f for f in call.fields if f not in op.fields]
    if outside:
        return Decision(False, f"{op.qualified} has no field {outside[0]!r}")
    params = call.params or {}
    if set(params) != set(op.params):
        missing, extra = sorted(set(op.params) - set(params)), sorted(set(params) - set(op.params))
        return Decision(False, f"{op.qualified}: " + (f"missing param {missing[0]!r}" if missing
                                                      else f"undeclared param {extra[0]!r}"))
    for name, kind in op.params.items():
        if not kind.accepts(params[name]):
            return Decision(False, f"{op.qualified}: param {name!r} must be {kind.describe()}")
    if call.gate is not None and call.gate not in d.gates:
        return Decision(False, f"unknown gate {call.gate!r}")
    plain = Decider(d)  # for its env and compiled conditions only
    env = plain.env(call, wf, op)

    def holds(perm):
        return True if perm.when is None else plain.condition(perm, env)

    def in_order(perms):  # those for the tool, then those for every tool
        return [p for p in perms if p.tool == tool.id] + [p for p in perms if p.tool == STAR]

    chosen, refusals = None, []
    for role_id in acting.roles:
        role = d.roles.get(role_id)
        for grant in in_order(role.grants if role else ()):
            if not grant.matches(tool.id, op.id):
                continue
            if grant.fields is not None and tool.enforced_by != "prompt" and not set(call.fields) <= set(grant.fields):
                refusals.append(f"{grant.label} does not cover fields {sorted(set(call.fields) - set(grant.fields))}")
            elif grant.approval is not None and grant.approval != call.gate:
                refusals.append(f"{grant.label} needs approval through {grant.approval}")
            elif holds(grant) is not True:
                refusals.append(f"{grant.label}: condition {grant.when.source} does not hold")
            else:
                chosen = grant
                break
        if chosen is not None:
            break
    if chosen is None:
        return Decision(False, "; ".join(refusals) if refusals else f"no role of {acting.id} grants {op.qualified}")
    denies = [deny for role_id in acting.roles if role_id in d.roles
              for deny in in_order(d.roles[role_id].denies) if deny.matches(tool.id, op.id)]
    denies += [g for g in in_order(d.guardrails)
               if g.matches(tool.id, op.id) and reach.guardrail_selects(g, acting.id, home)]
    for deny in denies:
        if holds(deny) is not False:
            return Decision(False, f"{deny.label} denies {op.qualified}"
                                   + (f" (when {deny.when.source})" if deny.when else ""), chosen, deny=deny)
    held = []
    for cred_id in acting.credentials:
        cred = d.credentials.get(cred_id)
        if cred is None or not cred.covers(tool.id):
            continue
        if call.tenant in reach.reach_of(d, cred, tool, wf):
            return Decision(True, f"{chosen.label} allows {op.qualified}; {acting.id} holds {cred.id} which "
                                  f"reaches {call.tenant} ({reach.reach_reason(cred, tool)})",
                            chosen, cred.id, plain.call_risk(op, env))
        held.append(cred.id)
    if held:
        return Decision(False, f"{acting.id}'s credentials for {tool.id} ({', '.join(held)}) do not reach "
                               f"{call.tenant}", chosen)
    return Decision(False, f"{acting.id} holds no credential covering {tool.id}", chosen)


def _ghostly(draw, call: Call) -> Call:
    """The call, sometimes with one id no definition has (the records must not remember those)."""
    what = draw(st.sampled_from(["none"] * 6 + ["tool", "operation", "tenant", "agent", "workflow"]))
    if what == "agent":
        return dataclasses.replace(call, chain=(*call.chain, "ghost"))
    return call if what == "none" else dataclasses.replace(call, **{what: "ghost"})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deployments(), st.data())
def test_decider_records_decide_as_the_deployment_reads(d, data):
    decider = Decider(d)
    asked = [_ghostly(data.draw, data.draw(calls(d))) for _ in range(12)]
    for c in asked + asked:  # made, then read from the records
        assert decider.decide(c) == reference_decision(d, c), c
    assert "ghost" not in decider._workflows and "ghost" not in decider._agents
    assert not any("ghost" in key for key in decider._operations)


@pytest.mark.parametrize("name", ["agency", "flawed-agency"])
def test_decider_records_on_the_agency_fixtures(name):
    d = load(str(FIXTURES / name))
    decider = Decider(d)
    for wf_id, chain, tool_id, op_id in granted_routes(d):
        op = d.tools[tool_id].operations[op_id]
        for tenant in sorted(d.tenants):
            for value in (0, 1):  # the first and second value of each param's sampled domain
                params = {n: param_values(d, k)[value % len(param_values(d, k))] for n, k in op.params.items()}
                for gate in (None, *sorted(d.gates)):
                    c = Call(wf_id, chain, tool_id, op_id, tenant, (), params, gate)
                    assert decider.decide(c) == reference_decision(d, c), c


INT64_EDGES = [-(2**63) - 1, -(2**63), 2**63 - 1, 2**63]


@pytest.mark.parametrize("amount", INT64_EDGES, ids=repr)
def test_an_int_param_is_a_signed_64_bit_integer(plain, amount):
    """FORMAT §2: a JSON number outside [-2^63, 2^63 - 1] is not an int; the request parser agrees."""
    inside = -(2**63) <= amount <= 2**63 - 1
    assert allowed(plain, refund(amount, gate="finance")) is inside
    request = {"workflow": "w", "chain": ["boss"], "tool": "billing", "operation": "refund", "tenant": "acme",
               "params": {"amount": amount}, "approval": {"gate": "finance", "by": "dana"}}
    assert Decider(plain).decide(parse_request(request, plain)).allow is inside


def test_the_prover_finds_no_witness_outside_64_bits():
    """An ungated refund allowed only beyond 2^63 - 1 (or below -2^63) is no hole: no int reaches it."""
    from analyzer.prover import Prover
    from analyzer.rules import load_rules

    rules = load_rules(())
    for when in ("params.amount > 9223372036854775807", "params.amount < -9223372036854775808"):
        deployment = model(roles={"worker": {"grants": [{"tool": "billing", "operations": ["refund"], "when": when}]}})
        result, _findings = Prover(deployment=deployment).prove(rules["no-ungated-high-risk"])
        assert result.status == "proved", (when, result)
    edge = model(roles={"worker": {"grants": [{"tool": "billing", "operations": ["refund"],
                                               "when": "params.amount >= 9223372036854775807"}]}})
    result, _findings = Prover(deployment=edge).prove(rules["no-ungated-high-risk"])
    assert result.status == "violated"
    amounts = {w["call"]["params"]["amount"] for w in result.witnesses}
    assert amounts == {2**63 - 1}
