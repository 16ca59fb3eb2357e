"""Structural cases: every way to call an operation, enumerated without a solver.

A case fixes the workflow, the delegation chain, the tool, the operation and the target tenant;
what remains open (params, fields, the gate) is the prover's to ask Z3. Both the prover and
``analyzer.parallel`` (which splits the cases across processes) build on this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from analyzer import model, reach, risk


@dataclass(frozen=True)
class Case:
    """A structural way to call an operation: everything but params, fields and the gate is fixed."""

    workflow: model.Workflow
    chain: tuple[str, ...]
    tool: model.Tool
    operation: model.Operation
    tenant: str
    grants: tuple[model.Permission, ...]
    denies: tuple[model.Permission, ...]  # conditional ones only (unconditional ones removed the case)

    @property
    def agent(self) -> str:
        return self.chain[-1]


@dataclass(frozen=True)
class Interest:
    """Which cases some pending invariant can learn from; the others are not enumerated at all.

    ``every``: a custom ``never`` invariant looks at every case. ``foreign``: the cross-tenant
    invariant looks only at cases whose target tenant is not the workflow's. ``ungated``: the
    approval invariant looks only at operations that may need approval, called through a grant
    that needs no real gate (a case without one answers unsat for every gate it would try)."""

    every: bool = True
    foreign: bool = False
    ungated: bool = False

    @classmethod
    def of_goals(cls, goals) -> Interest:
        goals = set(goals)
        return cls(every="never" in goals, foreign="cross-tenant" in goals, ungated="ungated" in goals)


EVERY = Interest()


def cases(deployment: model.Deployment, workflows=None, interest: Interest = EVERY) -> Iterator[Case]:
    """Every structural case, in a stable order (workflow, agent, tool, operation, tenant).

    With ``workflows`` (ids), only the cases of those workflows, in the same order; with
    ``interest``, only the cases it names (the order of those is unchanged)."""
    for wf_id in sorted(deployment.workflows if workflows is None else workflows):
        yield from workflow_cases(deployment, deployment.workflows[wf_id], interest=interest)


class _Tables:
    """What case enumeration asks again and again, computed once per deployment: agents share
    roles, so the (tool, operation) pairs their grants name and the denies that name them are
    kept per roles tuple rather than recomputed per agent and workflow."""

    def __init__(self, d: model.Deployment):
        self.d = d
        self.unreal = frozenset(d.gates) - d.real_gates
        self._roles: dict[str, tuple] = {}
        self._by_roles: dict[tuple, list] = {}
        self._role_denies: dict[tuple, tuple] = {}
        self._guardrails: dict[tuple, tuple] = {}
        self._spread: dict[str, frozenset] = {}
        self._cred_spread: dict[tuple, frozenset] = {}
        self._views: dict[str, tuple] = {}
        self._needs: dict[int, bool] = {}

    def role(self, role_id: str) -> tuple[dict, dict, frozenset]:
        """One role's grants by (tool id, operation id) → [tool, operation, grants...], its keys by
        tool id, and the keys the approval invariant can learn from (see :class:`Interest`)."""
        found = self._roles.get(role_id)
        if found is None:
            d = self.d
            by_key: dict[tuple[str, str], list] = {}
            by_tool: dict[str, list] = {}
            ungated = set()
            for grant in d.roles[role_id].grants:
                loose = grant.approval is None or grant.approval in self.unreal
                for tool, op in d.operations_of(grant):
                    key = (tool.id, op.id)
                    entry = by_key.get(key)
                    if entry is None:
                        by_key[key] = [tool, op, grant]
                        by_tool.setdefault(tool.id, []).append(key)
                    else:
                        entry.append(grant)
                    if loose and self.may_need_approval(op):
                        ungated.add(key)
            found = self._roles[role_id] = (by_key, by_tool, frozenset(ungated))
        return found

    def entry(self, roles: tuple[str, ...], key: tuple[str, str], tables: list | None = None):
        """(tool id, operation id, tool, operation, grants) of an agent with these roles: grants in
        role order, then grant order (as FORMAT §4 reads them); None when no role names it.
        ``tables``: the roles' tables (:meth:`role`), when the caller has them."""
        grants: list = []
        first = None
        for table in tables if tables is not None else [self.role(role_id) for role_id in roles]:
            found = table[0].get(key)
            if found is not None:
                first = first or found
                grants.extend(found[2:])
        return None if first is None else (key[0], key[1], first[0], first[1], tuple(grants))

    def operations(self, roles: tuple[str, ...]) -> list:
        """Every entry (see :meth:`entry`) of an agent with these roles, sorted by key."""
        found = self._by_roles.get(roles)
        if found is None:
            keys = set()
            for role_id in roles:
                keys.update(self.role(role_id)[0])
            found = self._by_roles[roles] = [self.entry(roles, key) for key in sorted(keys)]
        return found

    def denies(self, agent: model.Agent, home: str, tool_id: str, op_id: str) -> tuple:
        """reach.denies_for (same order), from per-role and per-(agent, home) tables."""
        found: tuple = ()
        role_denies = self._role_denies
        for role_id in agent.roles:
            key = (role_id, tool_id, op_id)
            own = role_denies.get(key)
            if own is None:
                own = role_denies[key] = tuple(
                    deny for deny in self.d.roles[role_id].denies if deny.matches(tool_id, op_id))
            if own:
                found += own
        rails = self.guardrails(agent.id, home)
        if rails:
            found += tuple(g for g in rails if g.matches(tool_id, op_id))
        return found

    def view(self, agent: model.Agent) -> tuple[frozenset, list, dict]:
        """An agent's keys the approval invariant can learn from (the union of its roles', see
        :meth:`role`), its roles' tables in order, and a place for its entries (filled as asked)."""
        found = self._views.get(agent.id)
        if found is None:
            tables = [self.role(role_id) for role_id in agent.roles]
            loose = frozenset().union(*(table[2] for table in tables))
            found = self._views[agent.id] = (loose, tables, {})
        return found

    def spread(self, agent: model.Agent) -> frozenset[str]:
        """Tools on which some credential of the agent may reach beyond one workflow's tenant
        (a superset: per-workflow credentials on per-tenant tools enforced by the server, and
        tools holding no tenant data, never do; see reach.reach_of)."""
        found = self._spread.get(agent.id)
        if found is None:
            found = self._spread[agent.id] = frozenset().union(
                *(self._credential_spread(cred_id) for cred_id in agent.credentials))
        return found

    def _credential_spread(self, cred_id: str) -> frozenset[str]:
        """The tools on which one credential may reach beyond a workflow's tenant (see :meth:`spread`)."""
        d = self.d
        cred = d.credentials[cred_id]
        shape = (cred.tools, cred.issued == "per-workflow")  # all it depends on: keys minted alike share it
        found = self._cred_spread.get(shape)
        if found is None:
            tools = set()
            for tool_id in (d.tools if cred.tools == model.STAR else cred.tools):
                tool = d.tools.get(tool_id)
                if tool is None or tool.tenancy == "none":
                    continue
                if tool.tenancy == "shared" or tool.enforced_by == "prompt" or cred.issued != "per-workflow":
                    tools.add(tool_id)
            found = self._cred_spread[shape] = frozenset(tools)
        return found

    def guardrails(self, agent_id: str, home: str) -> tuple:
        key = (agent_id, home)
        found = self._guardrails.get(key)
        if found is None:
            found = self._guardrails[key] = tuple(
                g for g in self.d.guardrails if reach.guardrail_selects(g, agent_id, home))
        return found

    def may_need_approval(self, op: model.Operation) -> bool:
        found = self._needs.get(id(op))
        if found is None:
            policy = self.d.policy
            declared = risk.declared_risk(op, policy)
            found = risk.needs_approval(declared, policy) or (
                op.high_risk_when is not None and declared != "high" and risk.needs_approval("high", policy))
            self._needs[id(op)] = found
        return found


def tables(d: model.Deployment) -> _Tables:
    found = d.__dict__.get("_prover_tables")
    if found is None:
        found = _Tables(d)
        d.__dict__["_prover_tables"] = found  # the Deployment is frozen; its cached properties live there too
    return found


def case_groups(deployment: model.Deployment, workflows=None,
                interest: Interest = EVERY) -> Iterator[tuple[Case, tuple[str, ...]]]:
    """The cases of :func:`cases`, in the same order, as groups that differ only in the target
    tenant: (the group's first case, every tenant of the group in order)."""
    for wf_id in sorted(deployment.workflows if workflows is None else workflows):
        yield from workflow_case_groups(deployment, deployment.workflows[wf_id], interest=interest)


def group_cases(some_cases) -> Iterator[tuple[Case, tuple[str, ...]]]:
    """Consecutive cases alike but for the tenant, as the groups of :func:`case_groups`."""
    first, tenants = None, []
    for case in some_cases:
        if first is not None and (case.workflow is first.workflow and case.chain == first.chain
                                  and case.tool is first.tool and case.operation is first.operation
                                  and case.grants == first.grants and case.denies == first.denies):
            tenants.append(case.tenant)
            continue
        if first is not None:
            yield first, tuple(tenants)
        first, tenants = case, [case.tenant]
    if first is not None:
        yield first, tuple(tenants)


def workflow_cases(deployment: model.Deployment, wf: model.Workflow, agents=None,
                   interest: Interest = EVERY) -> Iterator[Case]:
    """The cases of one workflow (with ``agents``, only those whose acting agent is among them;
    with ``interest``, only those it names)."""
    for case, tenants in workflow_case_groups(deployment, wf, agents, interest):
        yield case
        for tenant in tenants[1:]:
            yield Case(case.workflow, case.chain, case.tool, case.operation, tenant, case.grants, case.denies)


def workflow_case_groups(deployment: model.Deployment, wf: model.Workflow, agents=None,
                         interest: Interest = EVERY) -> Iterator[tuple[Case, tuple[str, ...]]]:
    """The cases of :func:`workflow_cases` grouped by everything but the tenant (see :func:`case_groups`)."""
    t = tables(deployment)
    home = wf.tenant
    every, foreign, ungated = interest.every, interest.foreign, interest.ungated
    for agent_id, chain in sorted(reach.chains(deployment, wf).items()):
        if agents is not None and agent_id not in agents:
            continue
        agent = deployment.agents[agent_id]
        reached: dict[str, list[str]] = {}  # tool id → sorted tenants the agent's credentials reach

        def tenants_of(tool, agent=agent, reached=reached):
            tenants = reached.get(tool.id)
            if tenants is None:
                found: set[str] = set()
                for cred_id in agent.credentials:
                    cred = deployment.credentials[cred_id]
                    if cred.covers(tool.id):
                        found |= reach.reach_of(deployment, cred, tool, wf)
                tenants = reached[tool.id] = sorted(found)
            return tenants

        if every:
            entries = t.operations(agent.roles)
            loose: frozenset | set = frozenset()
        else:
            # only what the pending invariants can learn from: keys some role grants without a
            # real gate on an operation that may need approval, and keys on tools whose reach
            # leaves the workflow's tenant
            agent_loose, role_tables, known = t.view(agent)
            loose = agent_loose if ungated else frozenset()
            keys = set(loose)
            if foreign:
                for tool_id in t.spread(agent):
                    if wf.uses(tool_id) and any(x != home for x in tenants_of(deployment.tools[tool_id])):
                        for table in role_tables:
                            keys.update(table[1].get(tool_id, ()))
            entries = []
            for key in sorted(keys):
                found = known.get(key)
                if found is None:
                    found = known[key] = t.entry(agent.roles, key, role_tables)
                entries.append(found)
        for tool_id, op_id, tool, op, grants in entries:
            if not wf.uses(tool_id):
                continue
            wanted_all = every or (tool_id, op_id) in loose
            denies = t.denies(agent, home, tool_id, op_id)
            if denies and any(d.when is None for d in denies):
                continue
            tenants = tenants_of(tool)
            if not wanted_all:
                tenants = [x for x in tenants if x != home]
            if tenants:
                yield Case(wf, chain, tool, op, tenants[0], grants, denies), tuple(tenants)


def estimated_cases(deployment: model.Deployment) -> int:
    """A cheap estimate of how many cases there are (grant entries reachable per workflow), to
    decide whether splitting the proofs across processes pays before enumerating anything."""
    return sum(workflow_weight(deployment, wf) for wf in deployment.workflows.values())


def workflow_weight(deployment: model.Deployment, wf: model.Workflow) -> int:
    """Grant entries of the agents that can act in a workflow: roughly how many cases it has."""
    return sum(len(deployment.roles[r].grants) for agent_id in reach.chains(deployment, wf)
               for r in deployment.agents[agent_id].roles)
