"""The concrete decision function: FORMAT.md §4, once.

Witness replay, the reference server and the fuzzer's oracle all call :meth:`Decider.decide`.
Indices are built once per deployment and every CEL condition is compiled once to closures,
so a decision is a few dictionary look-ups and closure calls.

Conditions fail closed: a condition that cannot be evaluated (a missing tenant attribute, a
param another operation declares, a division by zero) makes a grant not apply, and makes a
deny, a guardrail or a `high_risk_when` apply.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from analyzer import conditions, model, reach, risk

_ERROR = object()  # a condition that could not be evaluated


@dataclass(frozen=True)
class Call:
    """An abstract call (FORMAT §4); ``gate`` is the approving gate's id, or None."""

    workflow: str
    chain: tuple[str, ...]
    tool: str
    operation: str
    tenant: str
    fields: tuple[str, ...] = ()
    params: Mapping[str, Any] = None  # type: ignore[assignment]
    gate: str | None = None

    def to_request(self, deployment: model.Deployment) -> dict:
        """The call in the decision-API shape of FORMAT §7, approved by a person on the gate when there is one."""
        approval = None
        if self.gate is not None:
            gate = deployment.gates.get(self.gate)
            people = [p for p in (gate.approvers if gate else ()) if p in deployment.people]
            approval = {"gate": self.gate, "by": people[0] if people else None}
        return {"workflow": self.workflow, "chain": list(self.chain), "tool": self.tool,
                "operation": self.operation, "tenant": self.tenant, "fields": list(self.fields),
                "params": dict(self.params or {}), "approval": approval}


@dataclass(frozen=True)
class Decision:
    allow: bool
    reason: str
    grant: model.Permission | None = None
    credential: str | None = None
    risk: str | None = None
    deny: model.Permission | None = None  # the deny or guardrail that refused the call, if one did


class MalformedCall(ValueError):
    """A decision request that is not a well-formed call (FORMAT §7): answered with 400."""


_REQUIRED = {"workflow": str, "chain": list, "tool": str, "operation": str, "tenant": str}


def parse_request(body: Any, deployment: model.Deployment) -> Call:
    """A decoded JSON request → Call; an approval whose `by` is not a person on that gate counts as none."""
    if not isinstance(body, dict):
        raise MalformedCall("the request must be a JSON object")
    for key, kind in _REQUIRED.items():
        if key not in body:
            raise MalformedCall(f"missing required key {key!r}")
        if not isinstance(body[key], kind):
            raise MalformedCall(f"{key!r} must be a {'list' if kind is list else 'string'}")
    if not all(isinstance(a, str) for a in body["chain"]):
        raise MalformedCall("'chain' must be a list of agent ids")
    fields = body.get("fields", [])
    if fields is None:
        fields = []
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise MalformedCall("'fields' must be a list of strings")
    params = body.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise MalformedCall("'params' must be an object")
    approval = body.get("approval")
    gate = None
    if approval is not None:
        if not isinstance(approval, dict) or not isinstance(approval.get("gate"), str) \
                or not isinstance(approval.get("by"), (str, type(None))):
            raise MalformedCall("'approval' must be an object with string 'gate' and 'by'")
        found = deployment.gates.get(approval["gate"])
        by = approval.get("by")
        if found is not None and by in found.approvers and by in deployment.people:
            gate = approval["gate"]
    return Call(body["workflow"], tuple(body["chain"]), body["tool"], body["operation"], body["tenant"],
                tuple(fields), params, gate)


def _compile(cond: model.Condition | None) -> Callable[[Mapping], Any] | None:
    if cond is None:
        return None
    compiled = conditions.compile_cel(cond.expr)

    def run(env, compiled=compiled):
        try:
            return compiled(env)
        except conditions.CelEvalError:
            return _ERROR
        except (TypeError, ValueError, KeyError, AttributeError, RecursionError, OverflowError):
            return _ERROR  # fail closed on anything the evaluator did not foresee

    return run


class Decider:
    """`decide` for one deployment, with indices built once."""

    def __init__(self, deployment: model.Deployment):
        self.d = deployment
        self._compiled: dict[int, Callable | None] = {}
        # role → tool (or STAR) → [grant]; role → tool (or STAR) → [deny]
        self.grants: dict[str, dict[str, list[model.Permission]]] = {}
        self.denies: dict[str, dict[str, list[model.Permission]]] = {}
        for role in deployment.roles.values():
            self.grants[role.id] = _by_tool(role.grants)
            self.denies[role.id] = _by_tool(role.denies)
        self.guardrails = _by_tool(deployment.guardrails)
        self.tenant_env = {t.id: {**t.attributes, "id": t.id} for t in deployment.tenants.values()}
        for perm in [*(g for r in deployment.roles.values() for g in r.grants + r.denies), *deployment.guardrails]:
            self._compiled[id(perm)] = _compile(perm.when)
        self.high_risk = {(op.tool, op.id): _compile(op.high_risk_when) for _, op in deployment.all_operations()}

    # ---- the parts of §4 -----------------------------------------------------------------
    def condition(self, perm: model.Permission, env) -> Any:
        run = self._compiled[id(perm)]
        return True if run is None else run(env)

    def env(self, call: Call, wf: model.Workflow, op: model.Operation) -> dict:
        return {
            "call": {"agent": call.chain[-1], "tool": call.tool, "operation": call.operation, "effect": op.effect,
                     "workflow": call.workflow, "tenant": call.tenant, "home": wf.tenant, "gate": call.gate,
                     "delegated": len(call.chain) > 1},
            "params": dict(call.params or {}),
            "fields": list(call.fields),
            "tenant": self.tenant_env.get(call.tenant, {"id": call.tenant}),
        }

    def call_risk(self, op: model.Operation, env) -> str:
        """risk(c): the declared risk, raised to high when `high_risk_when` holds (or cannot be evaluated)."""
        declared = risk.declared_risk(op, self.d.policy)
        run = self.high_risk[(op.tool, op.id)]
        # true, or anything that is not a clean false (an error, a non-bool): fail closed
        if run is not None and declared != "high" and run(env) is not False:
            return "high"
        return declared

    def decide(self, call: Call) -> Decision:
        d = self.d
        wf = d.workflows.get(call.workflow)
        if wf is None:
            return Decision(False, f"unknown workflow {call.workflow!r}")
        home = wf.tenant
        # 1. chain
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
        # 2. scope
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
            missing = sorted(set(op.params) - set(params))
            extra = sorted(set(params) - set(op.params))
            what = f"missing param {missing[0]!r}" if missing else f"undeclared param {extra[0]!r}"
            return Decision(False, f"{op.qualified}: {what}")
        for name, kind in op.params.items():
            if not kind.accepts(params[name]):
                return Decision(False, f"{op.qualified}: param {name!r} must be {kind.describe()}")
        if call.gate is not None and call.gate not in d.gates:
            return Decision(False, f"unknown gate {call.gate!r}")
        env = self.env(call, wf, op)
        # 3. grant
        chosen = None
        refusals = []
        for role_id in acting.roles:
            table = self.grants.get(role_id, {})
            for grant in (*table.get(tool.id, ()), *table.get(model.STAR, ())):
                if grant.operations != model.STAR and op.id not in grant.operations:
                    continue
                if grant.fields is not None and tool.enforced_by != "prompt" \
                        and not set(call.fields) <= set(grant.fields):
                    refusals.append(f"{grant.label} does not cover fields {sorted(set(call.fields) - set(grant.fields))}")
                    continue
                if grant.approval is not None and grant.approval != call.gate:
                    refusals.append(f"{grant.label} needs approval through {grant.approval}")
                    continue
                if self.condition(grant, env) is not True:
                    refusals.append(f"{grant.label}: condition {grant.when.source} does not hold")
                    continue
                chosen = grant
                break
            if chosen is not None:
                break
        if chosen is None:
            detail = "; ".join(refusals) if refusals else f"no role of {acting.id} grants {op.qualified}"
            return Decision(False, detail)
        # 4. deny
        for deny in self._denies(acting, home, tool.id, op.id):
            if self.condition(deny, env) is not False:
                return Decision(False, f"{deny.label} denies {op.qualified}"
                                       + (f" (when {deny.when.source})" if deny.when else ""), chosen, deny=deny)
        # 5. credential
        held = []
        for cred_id in acting.credentials:
            cred = d.credentials.get(cred_id)
            if cred is None or not cred.covers(tool.id):
                continue
            reached = reach.reach_of(d, cred, tool, wf)
            if call.tenant in reached:
                return Decision(True, f"{chosen.label} allows {op.qualified}; {acting.id} holds {cred.id} which "
                                      f"reaches {call.tenant} ({reach.reach_reason(cred, tool)})",
                                chosen, cred.id, self.call_risk(op, env))
            held.append(cred.id)
        if held:
            return Decision(False, f"{acting.id}'s credentials for {tool.id} ({', '.join(held)}) do not reach "
                                   f"{call.tenant}", chosen)
        return Decision(False, f"{acting.id} holds no credential covering {tool.id}", chosen)

    def _denies(self, agent: model.Agent, home: str, tool: str, operation: str):
        for role_id in agent.roles:
            table = self.denies.get(role_id, {})
            for deny in (*table.get(tool, ()), *table.get(model.STAR, ())):
                if deny.operations == model.STAR or operation in deny.operations:
                    yield deny
        for guardrail in (*self.guardrails.get(tool, ()), *self.guardrails.get(model.STAR, ())):
            if (guardrail.operations == model.STAR or operation in guardrail.operations) \
                    and reach.guardrail_selects(guardrail, agent.id, home):
                yield guardrail

    def allowed(self, call: Call) -> bool:
        return self.decide(call).allow


def _by_tool(perms) -> dict[str, list[model.Permission]]:
    table: dict[str, list[model.Permission]] = {}
    for perm in perms:
        table.setdefault(perm.tool, []).append(perm)
    return table


def decide(deployment: model.Deployment, call: Call) -> Decision:
    """One decision (builds the indices; keep a :class:`Decider` for many)."""
    return Decider(deployment).decide(call)
