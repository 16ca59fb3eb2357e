"""The permission graph: model → networkx MultiDiGraph whose every edge explains itself.

Nodes are ``kind:id`` strings (``agent:sales-agent``, ``operation:crm.read_contacts``,
``grant:sales#1``). Every edge has a ``kind`` and a one-line ``reason`` a reviewer can
read, plus the ``loc`` of the line that creates it, so that a path reads as a sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise

import networkx as nx

from analyzer import model, risk
from analyzer.errors import Loc
from analyzer.gcpause import paused_gc


@dataclass(frozen=True)
class Step:
    """One edge of a path: from, to, what kind of link, why it exists, and where."""

    source: str
    target: str
    kind: str
    reason: str
    loc: Loc | None

    def to_json(self) -> dict:
        return {"from": self.source, "to": self.target, "kind": self.kind, "reason": self.reason,
                "location": self.loc.to_json() if self.loc else None}


def node(kind: str, ident: str) -> str:
    return f"{kind}:{ident}"


def permission_node(perm: model.Permission) -> str:
    if perm.kind == "guardrail":
        return f"guardrail:#{perm.index + 1}"
    return f"{perm.kind}:{perm.owner}#{perm.index + 1}"


def _list(items) -> str:
    return ", ".join(items) if items else "nothing"


def _ops_text(perm: model.Permission) -> str:
    tool = "every tool" if perm.tool == model.STAR else perm.tool
    ops = "every operation" if perm.operations == model.STAR else ", ".join(perm.operations)
    return f"{tool}: {ops}"


def credential_reach_text(cred: model.Credential) -> str:
    if cred.issued == "per-workflow":
        return "minted per workflow for its tenant"
    tenants = "every tenant" if cred.tenants == model.STAR else _list(cred.tenants)
    return f"a static credential reaching {tenants}"


class PermissionGraph:
    """The graph plus the queries rules and commands share."""

    def __init__(self, deployment: model.Deployment):
        self.deployment = deployment
        self.g = nx.MultiDiGraph()
        self._pending: list[tuple] = []
        with paused_gc():
            self._build()
            self.g.add_edges_from(self._pending)
        del self._pending

    # ---- construction ------------------------------------------------------------------
    def _node(self, kind: str, ident: str, loc: Loc | None, label: str | None = None, **attrs) -> str:
        name = node(kind, ident)
        self.g.add_node(name, kind=kind, id=ident, label=label or ident, loc=loc, **attrs)
        return name

    def _edge(self, source: str, target: str, kind: str, reason: str, loc: Loc | None, **attrs) -> None:
        # collected, then added in one add_edges_from (networkx's per-call add_edge is the slow part)
        self._pending.append((source, target, kind, {"kind": kind, "reason": reason, "loc": loc, **attrs}))

    def _build(self) -> None:
        d = self.deployment
        for tenant in d.tenants.values():
            self._node("tenant", tenant.id, tenant.loc, tenant.name or tenant.id)
        for person in d.people.values():
            self._node("person", person.id, person.loc, person.name or person.id)
        for tool in d.tools.values():
            self._node("tool", tool.id, tool.loc, tool.name or tool.id, tenancy=tool.tenancy,
                       enforced_by=tool.enforced_by)
            for op in tool.operations.values():
                op_risk = risk.declared_risk(op, d.policy)
                self._node("operation", op.qualified, op.loc, op.qualified, effect=op.effect, risk=op_risk,
                           conditional_risk=op.high_risk_when is not None)
                self._edge(node("tool", tool.id), node("operation", op.qualified), "has-operation",
                           f"{tool.id} offers {op.id} ({op.effect}, {op_risk} risk)", op.loc)
        for gate in d.gates.values():
            self._node("gate", gate.id, gate.loc, gate.name or gate.id, real=d.is_real_gate(gate.id))
        for agent in d.agents.values():
            self._node("agent", agent.id, agent.loc, agent.name or agent.id,
                       untrusted_input=agent.untrusted_input)
        for cred in d.credentials.values():
            self._node("credential", cred.id, cred.loc, cred.name or cred.id, issued=cred.issued, store=cred.store)
        for role in d.roles.values():
            self._node("role", role.id, role.loc, role.name or role.id)
            for perm in role.grants + role.denies:
                self._permission(perm)
        for perm in d.guardrails:
            self._permission(perm)
        for gate in d.gates.values():
            for index, approver in enumerate(gate.approvers):
                kind = "person" if approver in d.people else "agent"
                self._edge(node("gate", gate.id), node(kind, approver), "approved-by",
                           f"{approver} ({kind}) approves through gate {gate.id}",
                           gate.item_locs.get(("approvers", index), gate.loc))
        for agent in d.agents.values():
            a = node("agent", agent.id)
            for index, role in enumerate(agent.roles):
                self._edge(a, node("role", role), "has-role", f"{agent.id} has role {role}",
                           agent.item_locs.get(("roles", index), agent.loc))
            for index, cred_id in enumerate(agent.credentials):
                cred = d.credentials[cred_id]
                self._edge(a, node("credential", cred_id), "holds",
                           f"{agent.id} holds {cred_id}, {credential_reach_text(cred)}",
                           agent.item_locs.get(("credentials", index), agent.loc))
            for index, other in enumerate(agent.delegates_to):
                self._edge(a, node("agent", other), "delegates-to", f"{agent.id} delegates to {other}",
                           agent.item_locs.get(("delegates_to", index), agent.loc))
            tenants = d.tenants if agent.tenants == model.STAR else agent.tenants
            for index, tenant in enumerate(tenants):
                how = "serves every tenant, including" if agent.tenants == model.STAR else "serves"
                self._edge(a, node("tenant", tenant), "serves", f"{agent.id} {how} {tenant}",
                           agent.item_locs.get(("tenants", index), agent.locs.get("tenants", agent.loc)))
        for cred in d.credentials.values():
            c = node("credential", cred.id)
            tools = d.tools if cred.tools == model.STAR else cred.tools
            for tool in tools:
                self._edge(c, node("tool", tool), "covers", f"{cred.id} covers {tool}",
                           cred.locs.get("tools", cred.loc))
            tenants = d.tenants if cred.tenants == model.STAR else cred.tenants
            for tenant in tenants:
                how = ("may be minted for" if cred.issued == "per-workflow" else "reaches")
                self._edge(c, node("tenant", tenant), "reaches", f"{cred.id} {how} {tenant}",
                           cred.locs.get("tenants", cred.loc))
        for wf in d.workflows.values():
            w = self._node("workflow", wf.id, wf.loc, wf.name or wf.id)
            self._edge(w, node("tenant", wf.tenant), "for-tenant", f"workflow {wf.id} works for {wf.tenant}",
                       wf.locs.get("tenant", wf.loc))
            self._edge(w, node("agent", wf.agent), "runs", f"workflow {wf.id} runs {wf.agent}",
                       wf.locs.get("agent", wf.loc))
            tools = d.tools if wf.tools == model.STAR else wf.tools
            for tool in tools:
                self._edge(w, node("tool", tool), "uses", f"workflow {wf.id} may use {tool}",
                           wf.locs.get("tools", wf.loc))

    def _permission(self, perm: model.Permission) -> None:
        d = self.deployment
        p = self._node(perm.kind, permission_node(perm).split(":", 1)[1], perm.loc, perm.label)
        if perm.kind != "guardrail":
            verb = "grants" if perm.kind == "grant" else "denies"
            self._edge(node("role", perm.owner), p, verb, f"role {perm.owner} {verb} {_ops_text(perm)}", perm.loc)
        condition = f" when {perm.when.source}" if perm.when else ""
        for tool, op in d.operations_of(perm):
            if perm.kind == "grant":
                extra = f" on fields {_list(perm.fields)}" if perm.fields is not None else ""
                gate = f", with approval from {perm.approval}" if perm.approval else ""
                self._edge(p, node("operation", op.qualified), "allows",
                           f"{perm.label} allows {op.qualified}{extra}{condition}{gate}", perm.loc)
            else:
                self._edge(p, node("operation", op.qualified), "blocks",
                           f"{perm.label} blocks {op.qualified}{condition}", perm.loc)
        if perm.approval:
            self._edge(p, node("gate", perm.approval), "needs-approval",
                       f"{perm.label} needs approval through gate {perm.approval}",
                       perm.locs.get("approval", perm.loc))

    # ---- queries -------------------------------------------------------------------------
    def step(self, source: str, target: str, kind: str) -> Step:
        data = self.g.get_edge_data(source, target, key=kind)
        if data is None:
            raise KeyError(f"no {kind} edge {source} -> {target}")
        return Step(source, target, kind, data["reason"], data["loc"])

    def grants_of(self, agent_id: str):
        """Every grant of every role of the agent, in order."""
        d = self.deployment
        for role_id in d.agents[agent_id].roles:
            yield from d.roles[role_id].grants

    def denies_of(self, agent_id: str):
        d = self.deployment
        for role_id in d.agents[agent_id].roles:
            yield from d.roles[role_id].denies

    @cached_property
    def _effective(self) -> dict[str, frozenset[tuple[str, str]]]:
        d = self.deployment
        result = {}
        for agent_id in d.agents:
            granted = set()
            for perm in self.grants_of(agent_id):
                granted.update(self._pairs(perm))
            for perm in self.denies_of(agent_id):
                if perm.when is None:
                    granted.difference_update(self._pairs(perm))
            result[agent_id] = frozenset(granted)
        return result

    def _pairs(self, perm: model.Permission) -> set[tuple[str, str]]:
        return {(tool.id, op.id) for tool, op in self.deployment.operations_of(perm)}

    def effective_pairs(self, agent_id: str) -> frozenset[tuple[str, str]]:
        """(tool, operation) pairs some grant names, less those an unconditional deny removes."""
        return self._effective[agent_id]

    def closure(self, agent_id: str) -> list[str]:
        """The agent and everyone it can delegate to, transitively, in a stable order."""
        seen = [agent_id]
        frontier = [agent_id]
        while frontier:
            current = frontier.pop(0)
            for other in self.deployment.agents[current].delegates_to:
                if other not in seen:
                    seen.append(other)
                    frontier.append(other)
        return seen

    def delegation_path(self, source: str, target: str) -> list[Step]:
        """The shortest chain of delegation edges from one agent to another."""
        if source == target:
            return []
        sub = self.delegation_graph
        names = nx.shortest_path(sub, source, target)
        return [self.step(node("agent", a), node("agent", b), "delegates-to") for a, b in pairwise(names)]

    @cached_property
    def delegation_graph(self) -> nx.DiGraph:
        sub = nx.DiGraph()
        for agent in self.deployment.agents.values():
            sub.add_node(agent.id)
            for other in agent.delegates_to:
                sub.add_edge(agent.id, other)
        return sub

    def to_json(self) -> dict:
        """Nodes and edges, sorted, for `graph --format json`."""
        nodes = []
        for name, data in sorted(self.g.nodes(data=True)):
            entry = {**{k: v for k, v in data.items() if k not in ("loc", "id")}, "id": name, "ident": data["id"]}
            entry["location"] = data["loc"].to_json() if data.get("loc") else None
            nodes.append(entry)
        edges = []
        for source, target, data in sorted(self.g.edges(data=True), key=lambda e: (e[0], e[1], e[2]["kind"])):
            edges.append({"from": source, "to": target, "kind": data["kind"], "reason": data["reason"],
                          "location": data["loc"].to_json() if data.get("loc") else None})
        return {"nodes": nodes, "edges": edges}
