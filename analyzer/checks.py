"""The built-in structural checks of FORMAT.md §6, read from the permission graph.

Each check is a function ``(graph) -> iterable of Hit`` registered by name in
:data:`STRUCTURAL_CHECKS`; rule metadata (severity, text, remediation) lives in
``rules/<id>.yaml``. Conditions are not evaluated here: that is the prover's job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import pairwise

import networkx as nx

from analyzer import model, risk
from analyzer.findings import Hit
from analyzer.graph import PermissionGraph, Step, node

Check = Callable[[PermissionGraph], Iterator[Hit]]
REQUIRED_RECORDS = ("who", "what", "when", "outcome")


def shared_credential(pg: PermissionGraph) -> Iterator[Hit]:
    d = pg.deployment
    holders_of: dict[str, list[str]] = {}
    for agent in d.agents.values():
        for cred_id in agent.credentials:
            holders_of.setdefault(cred_id, []).append(agent.id)
    for cred in d.credentials.values():
        holders = sorted(holders_of.get(cred.id, ()))
        if len(holders) > 1:
            path = tuple(pg.step(node("agent", a), node("credential", cred.id), "holds") for a in holders)
            yield Hit(f"credential {cred.id} is held by {len(holders)} agents ({', '.join(holders)}): "
                      "their actions cannot be told apart or revoked one by one",
                      (f"credential:{cred.id}", *(f"agent:{a}" for a in holders)), cred.loc, path)


def multi_tenant_credential(pg: PermissionGraph) -> Iterator[Hit]:
    d = pg.deployment
    for cred in d.credentials.values():
        if cred.issued != "static":
            continue
        if cred.tenants != model.STAR and len(cred.tenants) < 2:
            continue
        tools = d.tools.values() if cred.tools == model.STAR else [d.tools[t] for t in cred.tools]
        data_tools = sorted(t.id for t in tools if t.tenancy != "none")
        if not data_tools:
            continue
        tenants = "every tenant" if cred.tenants == model.STAR else ", ".join(cred.tenants)
        yield Hit(f"static credential {cred.id} reaches {tenants} on {', '.join(data_tools)}: "
                  "one leaked or misused token crosses tenants", (f"credential:{cred.id}",), cred.loc)


def wildcard_grant(pg: PermissionGraph) -> Iterator[Hit]:
    for role in pg.deployment.roles.values():
        for grant in role.grants:
            if grant.tool == model.STAR or grant.operations == model.STAR:
                what = []
                if grant.tool == model.STAR:
                    what.append('tool "*"')
                if grant.operations == model.STAR:
                    what.append('operations "*"')
                yield Hit(f"role {role.id} grant #{grant.index + 1} uses {' and '.join(what)}: "
                          "it silently grants every present and future operation it names",
                          (f"grant:{role.id}#{grant.index + 1}", f"role:{role.id}"), grant.loc)


def global_tool(pg: PermissionGraph) -> Iterator[Hit]:
    d = pg.deployment
    for tool in d.tools.values():
        if tool.tenancy != "shared":
            continue
        users: dict[str, list[str]] = {}
        for wf in d.workflows.values():
            if not wf.uses(tool.id) or wf.agent not in d.agents:
                continue
            if any(any(g.tool in (model.STAR, tool.id) for g in pg.grants_of(a)) for a in pg.closure(wf.agent)):
                users.setdefault(wf.tenant, []).append(wf.id)
        if len(users) > 1:
            tenants = sorted(users)
            path = tuple(pg.step(node("workflow", w), node("tool", tool.id), "uses")
                         for t in tenants for w in sorted(users[t]))
            yield Hit(f"tool {tool.id} keeps one store for all tenants and is used by workflows of "
                      f"{', '.join(tenants)}: nothing separates one tenant's data from another's",
                      (f"tool:{tool.id}", *(f"tenant:{t}" for t in tenants)), tool.loc, path)


def prompt_only_enforcement(pg: PermissionGraph) -> Iterator[Hit]:
    for tool in pg.deployment.tools.values():
        if tool.enforced_by == "prompt":
            yield Hit(f"tool {tool.id} is enforced_by: prompt: its tenant and field limits are only asked of "
                      "the model, and a prompt injection removes them", (f"tool:{tool.id}",),
                      tool.locs.get("enforced_by", tool.loc))


def unsafe_secret_store(pg: PermissionGraph) -> Iterator[Hit]:
    d = pg.deployment
    for cred in d.credentials.values():
        if cred.store not in d.policy.safe_secret_stores:
            prompt = cred.store == "prompt"
            detail = ("the secret sits in the model's prompt, where any prompt injection can read it"
                      if prompt else f"store {cred.store!r} is not one of the safe stores "
                                     f"({', '.join(d.policy.safe_secret_stores)})")
            yield Hit(f"credential {cred.id}: {detail}", (f"credential:{cred.id}",),
                      cred.locs.get("store", cred.loc), severity="critical" if prompt else None)


def long_lived_token(pg: PermissionGraph) -> Iterator[Hit]:
    d = pg.deployment
    for cred in d.credentials.values():
        if cred.ttl.exceeds(d.policy.max_token_ttl):
            lived = "never expires" if cred.ttl.seconds is None else f"lives {cred.ttl.text}"
            yield Hit(f"credential {cred.id} {lived}; policy allows at most {d.policy.max_token_ttl.text}",
                      (f"credential:{cred.id}",), cred.locs.get("ttl", cred.loc))


def no_rotation(pg: PermissionGraph) -> Iterator[Hit]:
    d = pg.deployment
    for cred in d.credentials.values():
        if cred.rotation.exceeds(d.policy.max_rotation):
            rotated = "is never rotated" if cred.rotation.seconds is None else f"rotates every {cred.rotation.text}"
            yield Hit(f"credential {cred.id} {rotated}; policy requires rotation at least every "
                      f"{d.policy.max_rotation.text}", (f"credential:{cred.id}",),
                      cred.locs.get("rotation", cred.loc))


def secret_logged(pg: PermissionGraph) -> Iterator[Hit]:
    d = pg.deployment
    for cred in d.credentials.values():
        if cred.logged:
            yield Hit(f"credential {cred.id}: its secret value reaches the logs", (f"credential:{cred.id}",),
                      cred.locs.get("logged", cred.loc))
    if d.audit is not None and not d.audit.redacts_secrets:
        yield Hit("the audit trail does not redact secrets: every logged call may carry a token",
                  ("audit:audit",), d.audit.locs.get("redacts_secrets", d.audit.loc))


def no_audit_trail(pg: PermissionGraph) -> Iterator[Hit]:
    d = pg.deployment
    if d.audit is None:
        yield Hit("the deployment has no audit section: no record of who did what, for which tenant",
                  (f"deployment:{d.name}",), d.format_loc)
    elif d.audit.sink == "none":
        yield Hit("audit sink is none: calls are not recorded", ("audit:audit",),
                  d.audit.locs.get("sink", d.audit.loc))


def unaudited_tool(pg: PermissionGraph) -> Iterator[Hit]:
    d = pg.deployment
    if d.audit is None or d.audit.sink == "none" or d.audit.covers == model.STAR:
        return
    for tool in d.tools.values():
        if tool.id not in d.audit.covers:
            yield Hit(f"calls to tool {tool.id} are not audited (audit.covers does not list it)",
                      (f"tool:{tool.id}",), tool.loc)


def audit_incomplete(pg: PermissionGraph) -> Iterator[Hit]:
    d = pg.deployment
    if d.audit is None:
        return
    missing = [r for r in REQUIRED_RECORDS if r not in d.audit.records]
    if missing:
        yield Hit(f"audit records lack {', '.join(missing)}: an incident cannot be reconstructed",
                  ("audit:audit",), d.audit.locs.get("records", d.audit.loc))


def gate_without_approvers(pg: PermissionGraph) -> Iterator[Hit]:
    d = pg.deployment
    for gate in d.gates.values():
        if not d.is_real_gate(gate.id):
            why = "has no approvers" if not gate.approvers else "has no person among its approvers"
            yield Hit(f"gate {gate.id} {why}: an approval through it is no human approval", (f"gate:{gate.id}",),
                      gate.loc)


def agent_approver(pg: PermissionGraph) -> Iterator[Hit]:
    d = pg.deployment
    for gate in d.gates.values():
        for index, approver in enumerate(gate.approvers):
            if approver in d.agents:
                yield Hit(f"agent {approver} is an approver of gate {gate.id}: an agent can approve its own "
                          "high-risk actions", (f"gate:{gate.id}", f"agent:{approver}"),
                          gate.item_locs.get(("approvers", index), gate.loc),
                          (pg.step(node("gate", gate.id), node("agent", approver), "approved-by"),))


def delegation_escalation(pg: PermissionGraph) -> Iterator[Hit]:
    d = pg.deployment
    for caller in d.agents.values():
        mine = pg.effective_pairs(caller.id)
        for index, other in enumerate(caller.delegates_to):
            extra = sorted(pg.effective_pairs(other) - mine)
            if extra:
                shown = ", ".join(f"{t}.{o}" for t, o in extra)
                yield Hit(f"{other} can {shown} which {caller.id} cannot: delegating lets {caller.id} "
                          "act beyond its own roles", (f"agent:{caller.id}", f"agent:{other}"),
                          caller.item_locs.get(("delegates_to", index), caller.loc),
                          (pg.step(node("agent", caller.id), node("agent", other), "delegates-to"),))


def delegation_cycle(pg: PermissionGraph) -> Iterator[Hit]:
    d = pg.deployment
    for cycle in sorted(_canonical(c) for c in nx.simple_cycles(pg.delegation_graph)):
        ring = list(cycle) + [cycle[0]]
        closing_agent, target = ring[-2], ring[-1]
        index = d.agents[closing_agent].delegates_to.index(target)
        path = tuple(pg.step(node("agent", a), node("agent", b), "delegates-to") for a, b in pairwise(ring))
        yield Hit(f"delegation cycle {' -> '.join(ring)}: a request can bounce between agents forever "
                  "and lose track of who started it", tuple(f"agent:{a}" for a in sorted(set(cycle))),
                  d.agents[closing_agent].item_locs.get(("delegates_to", index), d.agents[closing_agent].loc),
                  path)


def _canonical(cycle: list[str]) -> tuple[str, ...]:
    start = cycle.index(min(cycle))
    return tuple(cycle[start:] + cycle[:start])


class _OwnLegs:
    """An agent's own legs of the trifecta: the first private data it reads (sorted), the first external
    send or publish no real gate guards (in grant order). Both depend on its roles alone, so they are
    worked out once per role and combined once per tuple of roles, which thousands of agents share."""

    def __init__(self, pg: PermissionGraph):
        self.pg = pg
        self.d = pg.deployment
        self._private = frozenset(self.d.policy.private_data)
        self._reads_of_role: dict[str, set[tuple[str, str]]] = {}
        self._sends_of_role: dict[str, list[tuple[str, str]]] = {}
        self._legs: dict[tuple[str, ...], tuple] = {}

    def of(self, roles: tuple[str, ...]) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
        found = self._legs.get(roles)
        if found is None:
            effective = self.pg.effective_pairs_of_roles(roles)
            reads = min((p for r in roles for p in self._reads(r) if p in effective), default=None)
            sends = next((p for r in roles for p in self._sends(r) if p in effective), None)
            found = self._legs[roles] = (reads, sends)
        return found

    def _reads(self, role_id: str) -> set[tuple[str, str]]:
        """What the role's grants name that reads or exports private data."""
        found = self._reads_of_role.get(role_id)
        if found is None:
            found = self._reads_of_role[role_id] = {
                (tool.id, op.id) for grant in self.d.roles[role_id].grants for tool, op in self.d.operations_of(grant)
                if op.effect in ("read", "export") and not self._private.isdisjoint(op.data)}
        return found

    def _sends(self, role_id: str) -> list[tuple[str, str]]:
        """What the role's grants without a real gate name that sends out or publishes, in grant order."""
        found = self._sends_of_role.get(role_id)
        if found is None:
            d = self.d
            found = self._sends_of_role[role_id] = [
                (tool.id, op.id) for grant in d.roles[role_id].grants
                if grant.approval is None or not d.is_real_gate(grant.approval)
                for tool, op in d.operations_of(grant)
                if (op.effect == "send" and op.external) or op.effect == "publish"]
        return found


def lethal_trifecta(pg: PermissionGraph) -> Iterator[Hit]:
    d = pg.deployment
    legs = _OwnLegs(pg)
    reads, sends = {}, {}
    for agent in d.agents.values():
        reads[agent.id], sends[agent.id] = legs.of(agent.roles)
    for agent in d.agents.values():
        group = pg.closure(agent.id)
        untrusted = next((a for a in group if d.agents[a].untrusted_input), None)
        if untrusted is None:
            continue
        private = next(((a, reads[a]) for a in group if reads[a]), None)
        outbound = next(((a, sends[a]) for a in group if sends[a]), None)
        if untrusted is None or private is None or outbound is None:
            continue
        contributors = sorted({untrusted, private[0], outbound[0]} - {agent.id})
        path: list[Step] = []
        for target in [untrusted, private[0], outbound[0]]:
            for step in pg.delegation_path(agent.id, target):
                if step not in path:
                    path.append(step)
        yield Hit(f"{agent.id} (with its delegates) reads untrusted input ({untrusted}), reads private data "
                  f"({private[0]} via {'.'.join(private[1])}) and can send it out without approval "
                  f"({outbound[0]} via {'.'.join(outbound[1])}): one injected instruction exfiltrates it",
                  (f"agent:{agent.id}", *(f"agent:{a}" for a in contributors)), agent.loc, tuple(path))


def risk_downgraded(pg: PermissionGraph) -> Iterator[Hit]:
    d = pg.deployment
    for tool, op in d.all_operations():
        if op.risk is None or op.high_risk_when is not None:
            continue
        base = risk.base_risk(op, d.policy)
        if base == "high" and model.RISK_ORDER[op.risk] < model.RISK_ORDER[base]:
            yield Hit(f"{op.qualified} is {op.effect} (base risk high) but declared risk: {op.risk} with no "
                      "high_risk_when: it escapes approval", (f"operation:{op.qualified}", f"tool:{tool.id}"),
                      op.locs.get("risk", op.loc))


def approval_disabled(pg: PermissionGraph) -> Iterator[Hit]:
    policy = pg.deployment.policy
    if policy.require_approval == "none":
        yield Hit("policy.require_approval is none: no call ever needs a human's approval", ("policy:policy",),
                  policy.locs.get("require_approval", policy.loc or pg.deployment.format_loc))


def workflow_agent_tenant(pg: PermissionGraph) -> Iterator[Hit]:
    d = pg.deployment
    for wf in d.workflows.values():
        agent = d.agents.get(wf.agent)
        if agent is not None and not agent.serves(wf.tenant):
            yield Hit(f"workflow {wf.id} works for {wf.tenant} but its agent {agent.id} does not serve "
                      f"{wf.tenant} (it serves {', '.join(agent.tenants) or 'no tenant'})",
                      (f"workflow:{wf.id}", f"agent:{agent.id}", f"tenant:{wf.tenant}"),
                      wf.locs.get("agent", wf.loc), (pg.step(node("workflow", wf.id), node("agent", agent.id), "runs"),))


def unused_definition(pg: PermissionGraph) -> Iterator[Hit]:
    d = pg.deployment
    used_roles = {r for a in d.agents.values() for r in a.roles}
    held = {c for a in d.agents.values() for c in a.credentials}
    named_gates = {g.approval for r in d.roles.values() for g in r.grants if g.approval}
    approvers = {p for gate in d.gates.values() for p in gate.approvers}
    served = {wf.tenant for wf in d.workflows.values()}
    for role in d.roles.values():
        if role.id not in used_roles:
            yield Hit(f"role {role.id} is given to no agent", (f"role:{role.id}",), role.loc)
    for cred in d.credentials.values():
        if cred.id not in held:
            yield Hit(f"credential {cred.id} is held by no agent: revoke it", (f"credential:{cred.id}",), cred.loc)
    for gate in d.gates.values():
        if gate.id not in named_gates:
            yield Hit(f"gate {gate.id} is named by no grant", (f"gate:{gate.id}",), gate.loc)
    for person in d.people.values():
        if person.id not in approvers:
            yield Hit(f"person {person.id} approves no gate", (f"person:{person.id}",), person.loc)
    for tenant in d.tenants.values():
        if tenant.id not in served:
            yield Hit(f"tenant {tenant.id} has no workflow", (f"tenant:{tenant.id}",), tenant.loc)


def unused_suppression(pg: PermissionGraph) -> Iterator[Hit]:
    """Registered so ``rules/unused-suppression.yaml`` has a check to name; it finds nothing here.

    Whether a suppression matches needs the suppressions file and every other finding, which
    the graph does not see, so the matching happens after analysis in
    :func:`analyzer.suppressions.apply` (called by :func:`analyzer.analysis.with_suppressions`).
    """
    return iter(())


#: The explicit registry: rule files name these in `check:`.
STRUCTURAL_CHECKS: dict[str, Check] = {
    "shared-credential": shared_credential,
    "multi-tenant-credential": multi_tenant_credential,
    "wildcard-grant": wildcard_grant,
    "global-tool": global_tool,
    "prompt-only-enforcement": prompt_only_enforcement,
    "unsafe-secret-store": unsafe_secret_store,
    "long-lived-token": long_lived_token,
    "no-rotation": no_rotation,
    "secret-logged": secret_logged,
    "no-audit-trail": no_audit_trail,
    "unaudited-tool": unaudited_tool,
    "audit-incomplete": audit_incomplete,
    "gate-without-approvers": gate_without_approvers,
    "agent-approver": agent_approver,
    "delegation-escalation": delegation_escalation,
    "delegation-cycle": delegation_cycle,
    "lethal-trifecta": lethal_trifecta,
    "risk-downgraded": risk_downgraded,
    "approval-disabled": approval_disabled,
    "workflow-agent-tenant": workflow_agent_tenant,
    "unused-definition": unused_definition,
    "unused-suppression": unused_suppression,
}

#: Proved by the prover (analyzer.prover), not by a structural check.
INVARIANT_CHECKS = ("no-cross-tenant-reach", "no-ungated-high-risk")

#: Need a decision audit log: run by `agentperm unused` (analyzer.unused), never by `check`.
AUDIT_CHECKS = ("unused-grant", "unused-agent", "unused-credential", "unused-workflow", "unused-approval-path")
