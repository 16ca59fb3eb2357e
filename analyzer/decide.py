"""The concrete decision function: FORMAT.md §4, once.

Witness replay, the reference server and the fuzzer's oracle all call :meth:`Decider.decide`.
Indices are built once per deployment and every CEL condition is compiled once to closures,
so a decision is a few dictionary look-ups and closure calls.

Conditions fail closed: a condition that cannot be evaluated (a missing tenant attribute, a
param another operation declares, a division by zero) makes a grant not apply, and makes a
deny, a guardrail or a `high_risk_when` apply.
"""

from __future__ import annotations

import json
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


MAX_JSON_DEPTH = 64  # a call nests 3 levels; deeper input is malformed, not a RecursionError


def decode_body(raw: bytes) -> Any:
    """Request bytes → a JSON value; raises MalformedCall for anything that is not strict JSON."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedCall(f"the body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    return decode_json(text)


def decode_json(text: str) -> Any:
    """A request's text → a JSON value, strictly (RFC 8259: no NaN, no byte-order mark, bounded
    nesting); raises MalformedCall. The server and ``agentperm decide`` read requests through it."""
    if text.startswith("\ufeff"):
        raise MalformedCall("the body starts with a byte-order mark")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except MalformedCall:
        raise
    except RecursionError:
        raise MalformedCall("the body nests too deeply") from None
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        raise MalformedCall(f"the body is not JSON: {exc}") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise MalformedCall("the body nests too deeply")
    return value


def _reject_constant(name: str):
    raise MalformedCall(f"the body is not JSON: {name} is not a JSON value")


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > MAX_JSON_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


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


_UNCOMPILED = object()  # not compiled yet (None is a permission without `when`)


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
    """`decide` for one deployment, with indices built once.

    A decision must cost about the same on ten thousand agents as on ten, so it never walks a
    list that grows with the deployment, and it reads few scattered objects: what a call needs
    of a workflow, an agent (with its credentials), an operation, and the roles of an agent for
    one operation is gathered into one record the first time a call names it, keyed by the ids
    the call carries. Unknown ids are never remembered (a fuzzer sends any number of them). The
    condition environment is built only when a condition is evaluated.
    """

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
        # conditions are compiled when a call first needs them (a deployment has tens of thousands)
        self.high_risk = {(op.tool, op.id): _compile(op.high_risk_when) for _, op in deployment.all_operations()}
        self._gates = frozenset(deployment.gates)
        self._tenants = frozenset(deployment.tenants)
        self._workflows: dict[str, tuple] = {}
        self._agents: dict[str, tuple] = {}
        self._operations: dict[tuple[str, str], tuple] = {}
        self._rules: dict[tuple[tuple[str, ...], str, str], tuple] = {}
        self._per_role: dict[tuple[str, str, str], tuple] = {}

    # ---- the parts of §4 -----------------------------------------------------------------
    def condition(self, perm: model.Permission, env) -> Any:
        run = self._run_of(perm)
        return True if run is None else run(env)

    def _run_of(self, perm: model.Permission) -> Callable | None:
        """The compiled `when` of a grant, deny or guardrail of the deployment (None: no `when`)."""
        run = self._compiled.get(id(perm), _UNCOMPILED)
        if run is _UNCOMPILED:
            run = self._compiled[id(perm)] = _compile(perm.when)
        return run

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
        record = self._workflows.get(call.workflow) or self._workflow(call.workflow)
        if record is None:
            return Decision(False, f"unknown workflow {call.workflow!r}")
        wf, home, first, used = record
        # 1. chain
        chain = call.chain
        if not chain:
            return Decision(False, "empty delegation chain")
        if chain[0] != first:
            return Decision(False, f"the chain must start with the workflow's agent {first!r}")
        if len(chain) > 1 and len(set(chain)) != len(chain):
            return Decision(False, "an agent repeats in the delegation chain")
        previous, delegates = None, None
        for agent_id in chain:
            acting = self._agents.get(agent_id) or self._agent(agent_id)
            if acting is None:
                return Decision(False, f"unknown agent {agent_id!r}")
            if acting[1] is not None and home not in acting[1]:
                return Decision(False, f"{agent_id} does not serve the workflow's tenant {home}")
            if delegates is not None and agent_id not in delegates:
                return Decision(False, f"{previous} does not delegate to {agent_id}")
            previous, delegates = agent_id, acting[2]
        agent, _, _, credentials = acting
        # 2. scope
        operation = self._operations.get((call.tool, call.operation))
        if operation is None:  # an unknown tool or operation: say which, in §4's order
            tool = self.d.tools.get(call.tool)
            if tool is None:
                return Decision(False, f"unknown tool {call.tool!r}")
            if used is not None and tool.id not in used:
                return Decision(False, f"workflow {wf.id} may not use {tool.id}")
            op = tool.operations.get(call.operation)
            if op is None:
                return Decision(False, f"{tool.id} has no operation {call.operation!r}")
            operation = self._operation(tool, op)
        tool, op, qualified, params_of, reach_kind, high_risk, declared = operation
        tool_id = tool.id
        if used is not None and tool_id not in used:
            return Decision(False, f"workflow {wf.id} may not use {tool_id}")
        tenant = call.tenant
        if tenant not in self._tenants:
            return Decision(False, f"unknown tenant {tenant!r}")
        fields = call.fields
        if fields:
            if len(set(fields)) != len(fields):
                return Decision(False, "a field is named twice")
            outside = [f for f in fields if f not in op.fields]
            if outside:
                return Decision(False, f"{qualified} has no field {outside[0]!r}")
        params = call.params or {}
        if params or params_of:
            if params.keys() != params_of.keys():
                missing = sorted(set(params_of) - set(params))
                extra = sorted(set(params) - set(params_of))
                what = f"missing param {missing[0]!r}" if missing else f"undeclared param {extra[0]!r}"
                return Decision(False, f"{qualified}: {what}")
            for name, kind in params_of.items():
                if not kind.accepts(params[name]):
                    return Decision(False, f"{qualified}: param {name!r} must be {kind.describe()}")
        gate = call.gate
        if gate is not None and gate not in self._gates:
            return Decision(False, f"unknown gate {gate!r}")
        env = None  # made when a condition first needs it
        # 3. grant: the first grant of the agent's roles, in order, whose fields, approval and condition fit
        chosen = None
        refusals = []
        for grant, run in self._rules_for(agent.roles, tool_id, op.id)[0]:
            if grant.fields is not None and fields and tool.enforced_by != "prompt" \
                    and not set(fields) <= set(grant.fields):
                refusals.append(f"{grant.label} does not cover fields {sorted(set(fields) - set(grant.fields))}")
                continue
            if grant.approval is not None and grant.approval != gate:
                refusals.append(f"{grant.label} needs approval through {grant.approval}")
                continue
            if run is not None:
                if env is None:
                    env = self.env(call, wf, op)
                if run(env) is not True:
                    refusals.append(f"{grant.label}: condition {grant.when.source} does not hold")
                    continue
            chosen = grant
            break
        if chosen is None:
            detail = "; ".join(refusals) if refusals else f"no role of {agent.id} grants {qualified}"
            return Decision(False, detail)
        # 4. deny
        for deny in self._denies(agent, home, tool_id, op.id):
            run = self._run_of(deny)
            if run is not None:
                if env is None:
                    env = self.env(call, wf, op)
                if run(env) is False:
                    continue
            return Decision(False, f"{deny.label} denies {qualified}"
                                   + (f" (when {deny.when.source})" if deny.when else ""), chosen, deny=deny)
        # 5. credential: one the agent holds that covers the tool and whose reach contains the tenant
        held = []
        for cred, tools, listed, per_workflow in credentials:
            if tools is not None and tool_id not in tools:
                continue
            if reach_kind == _HOME:
                reached = tenant == home
            elif reach_kind == _EVERY:
                reached = True  # every tenant, and the tenant is known (2.)
            else:  # the tenants the credential lists (None: every one), only home when minted per workflow
                reached = (listed is None or tenant in listed) and (not per_workflow or tenant == home)
            if reached:
                call_risk = declared
                if high_risk is not None and declared != "high":
                    if env is None:
                        env = self.env(call, wf, op)
                    if high_risk(env) is not False:  # true, an error or a non-bool: fail closed
                        call_risk = "high"
                return Decision(True, f"{chosen.label} allows {qualified}; {agent.id} holds {cred.id} which "
                                      f"reaches {tenant} ({reach.reach_reason(cred, tool)})",
                                chosen, cred.id, call_risk)
            held.append(cred.id)
        if held:
            return Decision(False, f"{agent.id}'s credentials for {tool_id} ({', '.join(held)}) do not reach "
                                   f"{tenant}", chosen)
        return Decision(False, f"{agent.id} holds no credential covering {tool_id}", chosen)

    def _denies(self, agent: model.Agent, home: str, tool: str, operation: str):
        """The denies of the agent's roles, then the guardrails selecting it, that name the operation."""
        _, denies, guardrails = self._rules_for(agent.roles, tool, operation)
        if guardrails:
            selected = tuple(g for g in guardrails if reach.guardrail_selects(g, agent.id, home))
            if selected:
                return denies + selected
        return denies

    # ---- records, made on first use -----------------------------------------------------
    def _workflow(self, workflow_id: str) -> tuple | None:
        """(workflow, home, its agent, its tools as a set or None for every tool)."""
        wf = self.d.workflows.get(workflow_id)
        if wf is None:
            return None
        record = self._workflows[workflow_id] = (
            wf, wf.tenant, wf.agent, None if wf.tools == model.STAR else frozenset(wf.tools))
        return record

    def _agent(self, agent_id: str) -> tuple | None:
        """(agent, its tenants as a set or None for every tenant, whom it delegates to, and each defined
        credential it holds as (credential, its tools, its tenants (sets, None for every one), per workflow))."""
        agent = self.d.agents.get(agent_id)
        if agent is None:
            return None
        credentials = []
        for cred_id in agent.credentials:
            cred = self.d.credentials.get(cred_id)
            if cred is not None:
                credentials.append((cred, None if cred.tools == model.STAR else frozenset(cred.tools),
                                    None if cred.tenants == model.STAR else frozenset(cred.tenants),
                                    cred.issued == "per-workflow"))
        record = self._agents[agent_id] = (
            agent, None if agent.tenants == model.STAR else frozenset(agent.tenants), frozenset(agent.delegates_to),
            tuple(credentials))
        return record

    def _operation(self, tool: model.Tool, op: model.Operation) -> tuple:
        """(tool, operation, its qualified name, its params (a plain dict), how far a credential reaches on the
        tool (§4, point 5), its compiled `high_risk_when`, its declared risk)."""
        if tool.tenancy == "none":
            reach_kind = _HOME
        elif tool.tenancy == "shared" or tool.enforced_by == "prompt":
            reach_kind = _EVERY
        else:
            reach_kind = _LISTED
        record = self._operations[(tool.id, op.id)] = (
            tool, op, op.qualified, dict(op.params), reach_kind, self.high_risk[(op.tool, op.id)],
            risk.declared_risk(op, self.d.policy))
        return record

    def _rules_for(self, roles: tuple[str, ...], tool: str, operation: str) -> tuple[tuple, tuple, tuple]:
        """For an agent with these roles and one operation: the grants that name it, each with its compiled
        condition, in the order §4 tries them (role by role; in a role, those for the tool, then those for
        every tool); the denies of those roles that name it, in the same order; the guardrails that name it."""
        key = (roles, tool, operation)
        found = self._rules.get(key)
        if found is None:
            grants: tuple = ()
            denies: tuple = ()
            for role_id in roles:
                role_grants, role_denies = self._role_rules(role_id, tool, operation)
                grants += role_grants
                denies += role_denies
            guardrails = tuple(g for g in (*self.guardrails.get(tool, ()), *self.guardrails.get(model.STAR, ()))
                               if g.operations == model.STAR or operation in g.operations)
            found = self._rules[key] = (grants, denies, guardrails)
        return found

    def _role_rules(self, role_id: str, tool: str, operation: str) -> tuple[tuple, tuple]:
        key = (role_id, tool, operation)
        found = self._per_role.get(key)
        if found is None:
            grants, denies = (
                tuple(p for p in (*table.get(tool, ()), *table.get(model.STAR, ()))
                      if p.operations == model.STAR or operation in p.operations)
                for table in (self.grants.get(role_id, {}), self.denies.get(role_id, {})))
            found = self._per_role[key] = (tuple((g, self._run_of(g)) for g in grants), denies)
        return found

    def allowed(self, call: Call) -> bool:
        return self.decide(call).allow


_HOME, _EVERY, _LISTED = "home", "every", "listed"  # how far a credential reaches on a tool (§4, point 5)


def _by_tool(perms) -> dict[str, list[model.Permission]]:
    table: dict[str, list[model.Permission]] = {}
    for perm in perms:
        table.setdefault(perm.tool, []).append(perm)
    return table


def decide(deployment: model.Deployment, call: Call) -> Decision:
    """One decision (builds the indices; keep a :class:`Decider` for many)."""
    return Decider(deployment).decide(call)
