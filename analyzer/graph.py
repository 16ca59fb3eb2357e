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
    """The graph plus the queries rules and commands share.

    The networkx graph :attr:`g` is made on first use (the ``graph`` command, DOT pictures,
    the report): a check reads single edges through :meth:`step` and :meth:`has_edge`,
    which make just the edges of the edge's source from the model. Both read the same
    per-source edge lists (``_edges_from``), so an edge reads the same either way.
    """

    def __init__(self, deployment: model.Deployment):
        self.deployment = deployment
        self._effective_by_roles: dict[tuple[str, ...], frozenset[tuple[str, str]]] = {}
        self._role_pairs: dict[str, tuple[set, set]] = {}

    @cached_property
    def g(self) -> nx.MultiDiGraph:
        """Every node and edge (about 60 edges per agent: one per tool a credential covers or a workflow uses)."""
        with paused_gc():
            return _build(self.deployment)

    # ---- edges, by source --------------------------------------------------------------
    def _edges_from(self, source: str) -> list[tuple]:
        """The (source, target, kind, reason, loc) edges going out of a node, in graph order."""
        d = self.deployment
        kind, _, ident = source.partition(":")
        if kind in ("grant", "deny", "guardrail"):
            found = _permission_named(d, kind, ident)
            return list(_permission_edges(d, found)) if found else []
        section, edges = _EDGES_BY_SOURCE.get(kind, (None, None))  # tenants, people, operations: none
        found = getattr(d, section).get(ident) if section else None
        return list(edges(d, found)) if found else []

    def _edge(self, source: str, target: str, kind: str) -> tuple | None:
        if "g" in self.__dict__:  # made already: read it
            data = self.g.get_edge_data(source, target, key=kind)
            return None if data is None else (source, target, kind, data["reason"], data["loc"])
        found = None
        for edge in self._edges_from(source):
            if edge[1] == target and edge[2] == kind:
                found = edge  # a repeated list item: the graph keeps the last one's data, so do we
        return found

    def has_edge(self, source: str, target: str, kind: str) -> bool:
        """Whether the graph has that edge (without making the whole graph)."""
        return self._edge(source, target, kind) is not None

    # ---- queries -------------------------------------------------------------------------
    def step(self, source: str, target: str, kind: str) -> Step:
        edge = self._edge(source, target, kind)
        if edge is None:
            raise KeyError(f"no {kind} edge {source} -> {target}")
        return Step(source, target, kind, edge[3], edge[4])

    def grants_of(self, agent_id: str):
        """Every grant of every role of the agent, in order."""
        d = self.deployment
        for role_id in d.agents[agent_id].roles:
            yield from d.roles[role_id].grants

    def denies_of(self, agent_id: str):
        d = self.deployment
        for role_id in d.agents[agent_id].roles:
            yield from d.roles[role_id].denies

    def effective_pairs(self, agent_id: str) -> frozenset[tuple[str, str]]:
        """(tool, operation) pairs some grant names, less those an unconditional deny removes."""
        return self.effective_pairs_of_roles(self.deployment.agents[agent_id].roles)

    def effective_pairs_of_roles(self, roles: tuple[str, ...]) -> frozenset[tuple[str, str]]:
        """:meth:`effective_pairs` of an agent with these roles; remembered per tuple of roles,
        which thousands of agents share."""
        found = self._effective_by_roles.get(roles)
        if found is None:
            granted: set[tuple[str, str]] = set()
            for role_id in roles:
                granted.update(self._pairs_of_role(role_id)[0])
            for role_id in roles:  # a deny of one role removes what any role grants
                granted.difference_update(self._pairs_of_role(role_id)[1])
            found = self._effective_by_roles[roles] = frozenset(granted)
        return found

    def _pairs_of_role(self, role_id: str) -> tuple[set, set]:
        """What the role's grants name, and what its unconditional denies name."""
        found = self._role_pairs.get(role_id)
        if found is None:
            role = self.deployment.roles[role_id]
            granted = {pair for perm in role.grants for pair in self._pairs(perm)}
            denied = {pair for perm in role.denies if perm.when is None for pair in self._pairs(perm)}
            found = self._role_pairs[role_id] = (granted, denied)
        return found

    def _pairs(self, perm: model.Permission) -> set[tuple[str, str]]:
        return {(tool.id, op.id) for tool, op in self.deployment.operations_of(perm)}

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


# ---- construction -------------------------------------------------------------------------
# One generator per kind of source node; the whole graph is their edges in the order below,
# which is the order networkx keeps (and DOT, JSON and the report show).

def _tool_edges(d: model.Deployment, tool: model.Tool):
    t = node("tool", tool.id)
    for op in tool.operations.values():
        yield (t, node("operation", op.qualified), "has-operation",
               f"{tool.id} offers {op.id} ({op.effect}, {risk.declared_risk(op, d.policy)} risk)", op.loc)


def _role_edges(d: model.Deployment, role: model.Role):
    for perm in role.grants + role.denies:
        yield _role_edge(perm)


def _role_edge(perm: model.Permission) -> tuple:
    verb = "grants" if perm.kind == "grant" else "denies"
    return (node("role", perm.owner), permission_node(perm), verb, f"role {perm.owner} {verb} {_ops_text(perm)}",
            perm.loc)


def _permission_edges(d: model.Deployment, perm: model.Permission):
    p = permission_node(perm)
    condition = f" when {perm.when.source}" if perm.when else ""
    if perm.kind == "grant":
        extra = f" on fields {_list(perm.fields)}" if perm.fields is not None else ""
        gate = f", with approval from {perm.approval}" if perm.approval else ""
        for _, op in d.operations_of(perm):
            yield (p, node("operation", op.qualified), "allows",
                   f"{perm.label} allows {op.qualified}{extra}{condition}{gate}", perm.loc)
    else:
        for _, op in d.operations_of(perm):
            yield p, node("operation", op.qualified), "blocks", f"{perm.label} blocks {op.qualified}{condition}", perm.loc
    if perm.approval:
        yield (p, node("gate", perm.approval), "needs-approval",
               f"{perm.label} needs approval through gate {perm.approval}", perm.locs.get("approval", perm.loc))


def _permission_named(d: model.Deployment, kind: str, ident: str) -> model.Permission | None:
    """The grant, deny or guardrail of a node name's id (``sales#2``, ``#1``)."""
    owner, _, number = ident.rpartition("#")
    if not number.isdigit() or int(number) < 1:
        return None
    if kind == "guardrail":
        perms = d.guardrails if owner == "" else ()
    else:
        role = d.roles.get(owner)
        perms = () if role is None else role.grants if kind == "grant" else role.denies
    index = int(number) - 1
    return perms[index] if index < len(perms) and permission_node(perms[index]) == f"{kind}:{ident}" else None


def _gate_edges(d: model.Deployment, gate: model.Gate):
    g = node("gate", gate.id)
    for index, approver in enumerate(gate.approvers):
        kind = "person" if approver in d.people else "agent"
        yield (g, node(kind, approver), "approved-by", f"{approver} ({kind}) approves through gate {gate.id}",
               gate.item_locs.get(("approvers", index), gate.loc))


def _agent_edges(d: model.Deployment, agent: model.Agent):
    a = node("agent", agent.id)
    item_locs = agent.item_locs
    for index, role in enumerate(agent.roles):
        yield a, node("role", role), "has-role", f"{agent.id} has role {role}", item_locs.get(("roles", index), agent.loc)
    for index, cred_id in enumerate(agent.credentials):
        cred = d.credentials[cred_id]
        yield (a, node("credential", cred_id), "holds", f"{agent.id} holds {cred_id}, {credential_reach_text(cred)}",
               item_locs.get(("credentials", index), agent.loc))
    for index, other in enumerate(agent.delegates_to):
        yield (a, node("agent", other), "delegates-to", f"{agent.id} delegates to {other}",
               item_locs.get(("delegates_to", index), agent.loc))
    tenants = d.tenants if agent.tenants == model.STAR else agent.tenants
    how = "serves every tenant, including" if agent.tenants == model.STAR else "serves"
    fallback = agent.locs.get("tenants", agent.loc)
    for index, tenant in enumerate(tenants):
        yield a, node("tenant", tenant), "serves", f"{agent.id} {how} {tenant}", item_locs.get(("tenants", index), fallback)


def _credential_edges(d: model.Deployment, cred: model.Credential):
    c = node("credential", cred.id)
    tools = d.tools if cred.tools == model.STAR else cred.tools
    loc = cred.locs.get("tools", cred.loc)
    for tool in tools:
        yield c, "tool:" + tool, "covers", f"{cred.id} covers {tool}", loc
    tenants = d.tenants if cred.tenants == model.STAR else cred.tenants
    how = "may be minted for" if cred.issued == "per-workflow" else "reaches"
    loc = cred.locs.get("tenants", cred.loc)
    for tenant in tenants:
        yield c, "tenant:" + tenant, "reaches", f"{cred.id} {how} {tenant}", loc


def _workflow_edges(d: model.Deployment, wf: model.Workflow):
    w = node("workflow", wf.id)
    yield w, node("tenant", wf.tenant), "for-tenant", f"workflow {wf.id} works for {wf.tenant}", wf.locs.get("tenant", wf.loc)
    yield w, node("agent", wf.agent), "runs", f"workflow {wf.id} runs {wf.agent}", wf.locs.get("agent", wf.loc)
    tools = d.tools if wf.tools == model.STAR else wf.tools
    loc = wf.locs.get("tools", wf.loc)
    for tool in tools:
        yield w, "tool:" + tool, "uses", f"workflow {wf.id} may use {tool}", loc


_EDGES_BY_SOURCE = {"tool": ("tools", _tool_edges), "role": ("roles", _role_edges), "gate": ("gates", _gate_edges),
                    "agent": ("agents", _agent_edges), "credential": ("credentials", _credential_edges),
                    "workflow": ("workflows", _workflow_edges)}


def _build(d: model.Deployment) -> nx.MultiDiGraph:
    g = nx.MultiDiGraph()
    g.add_nodes_from(_nodes(d))
    _add_edges(g, _edges(d))
    return g


def _nodes(d: model.Deployment):
    """(name, attributes) of every node, in graph order."""

    def named(kind: str, ident: str, loc: Loc | None, label: str | None = None, **attrs) -> tuple[str, dict]:
        return node(kind, ident), {"kind": kind, "id": ident, "label": label or ident, "loc": loc, **attrs}

    for tenant in d.tenants.values():
        yield named("tenant", tenant.id, tenant.loc, tenant.name or tenant.id)
    for person in d.people.values():
        yield named("person", person.id, person.loc, person.name or person.id)
    for tool in d.tools.values():
        yield named("tool", tool.id, tool.loc, tool.name or tool.id, tenancy=tool.tenancy, enforced_by=tool.enforced_by)
        for op in tool.operations.values():
            yield named("operation", op.qualified, op.loc, op.qualified, effect=op.effect,
                        risk=risk.declared_risk(op, d.policy), conditional_risk=op.high_risk_when is not None)
    for gate in d.gates.values():
        yield named("gate", gate.id, gate.loc, gate.name or gate.id, real=d.is_real_gate(gate.id))
    for agent in d.agents.values():
        yield named("agent", agent.id, agent.loc, agent.name or agent.id, untrusted_input=agent.untrusted_input)
    for cred in d.credentials.values():
        yield named("credential", cred.id, cred.loc, cred.name or cred.id, issued=cred.issued, store=cred.store)
    for role in d.roles.values():
        yield named("role", role.id, role.loc, role.name or role.id)
        for perm in role.grants + role.denies:
            yield named(perm.kind, permission_node(perm).split(":", 1)[1], perm.loc, perm.label)
    for perm in d.guardrails:
        yield named(perm.kind, permission_node(perm).split(":", 1)[1], perm.loc, perm.label)
    for wf in d.workflows.values():
        yield named("workflow", wf.id, wf.loc, wf.name or wf.id)


def _edges(d: model.Deployment):
    """(source, target, kind, reason, loc) of every edge, in graph order."""
    for tool in d.tools.values():
        yield from _tool_edges(d, tool)
    for role in d.roles.values():
        for perm in role.grants + role.denies:
            yield _role_edge(perm)
            yield from _permission_edges(d, perm)
    for perm in d.guardrails:
        yield from _permission_edges(d, perm)
    for gate in d.gates.values():
        yield from _gate_edges(d, gate)
    for agent in d.agents.values():
        yield from _agent_edges(d, agent)
    for cred in d.credentials.values():
        yield from _credential_edges(d, cred)
    for wf in d.workflows.values():
        yield from _workflow_edges(d, wf)


def _add_edges(g: nx.MultiDiGraph, edges) -> None:
    """``g.add_edges_from`` of (source, target, kind, {kind, reason, loc}), the kind as key, with the
    same result (node and edge order, a repeated edge updating its data) in a fraction of the time: it
    fills networkx's documented adjacency dicts (``succ[u][v][key] = data``, shared with
    ``pred[v][u]``) instead of making an attribute dict, a view and a cache reset per edge.
    ``g`` is new and not yet shared, so there are no views or cached results to reset."""
    succ, pred, node_data = g._succ, g._pred, g._node
    for source, target, kind, reason, loc in edges:
        for name in (source, target):
            if name not in succ:  # an edge to an undefined id makes a bare node, as add_edge does
                succ[name], pred[name], node_data[name] = {}, {}, {}
        keys = succ[source].get(target)
        if keys is None:
            keys = succ[source][target] = pred[target][source] = {}
        data = keys.get(kind)
        if data is None:
            keys[kind] = {"kind": kind, "reason": reason, "loc": loc}
        else:
            data.update(kind=kind, reason=reason, loc=loc)
