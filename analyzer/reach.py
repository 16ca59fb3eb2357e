"""Who can act in a workflow, and what a credential reaches: the parts of FORMAT §4 that need no solver."""

from __future__ import annotations

from dataclasses import dataclass

from analyzer import model


def reach_of(deployment: model.Deployment, credential: model.Credential, tool: model.Tool,
             workflow: model.Workflow) -> frozenset[str]:
    """The tenants a credential reaches on a tool within a workflow (FORMAT §4, point 5)."""
    home = workflow.tenant
    if tool.tenancy == "none":
        return frozenset({home})
    if tool.tenancy == "shared" or tool.enforced_by == "prompt":
        return frozenset(deployment.tenants)
    listed = frozenset(deployment.tenants) if credential.tenants == model.STAR else frozenset(credential.tenants)
    if credential.issued == "per-workflow":
        return listed & {home}
    return listed


def reach_reason(credential: model.Credential, tool: model.Tool) -> str:
    """Why the reach is what it is, in words."""
    if tool.tenancy == "none":
        return f"{tool.id} holds no tenant data, so calls stay with the workflow's tenant"
    if tool.tenancy == "shared":
        return f"{tool.id} keeps one store for every tenant"
    if tool.enforced_by == "prompt":
        return f"{tool.id} only asks the model to respect tenants (enforced_by: prompt)"
    if credential.issued == "per-workflow":
        return f"{credential.id} is minted per workflow for its tenant"
    tenants = "every tenant" if credential.tenants == model.STAR else ", ".join(credential.tenants)
    return f"{credential.id} is a static credential reaching {tenants}"


def chains(deployment: model.Deployment, workflow: model.Workflow) -> dict[str, tuple[str, ...]]:
    """Each agent that can act in the workflow, with the shortest valid delegation chain to it.

    A chain starts at the workflow's agent, follows `delegates_to`, never repeats an agent, and
    every agent on it serves the workflow's tenant (FORMAT §4, point 1). Conditions can only tell
    chains apart by the acting agent and whether the call is delegated, so the shortest chain to
    each agent stands for all of them.
    """
    home = workflow.tenant
    first = deployment.agents.get(workflow.agent)
    if first is None or not first.serves(home):
        return {}
    found: dict[str, tuple[str, ...]] = {first.id: (first.id,)}
    frontier = [(first.id,)]
    while frontier:
        next_frontier = []
        for chain in frontier:
            for other in deployment.agents[chain[-1]].delegates_to:
                agent = deployment.agents.get(other)
                if other in found or agent is None or not agent.serves(home):
                    continue
                found[other] = chain + (other,)
                next_frontier.append(found[other])
        frontier = next_frontier
    return found


@dataclass(frozen=True)
class Route:
    """A structural way for an agent to call an operation in a workflow, conditions aside."""

    workflow: model.Workflow
    chain: tuple[str, ...]
    tool: model.Tool
    operation: model.Operation
    grant: model.Permission
    credential: model.Credential
    tenants: frozenset[str]  # what the credential reaches here

    @property
    def agent(self) -> str:
        return self.chain[-1]


def routes(deployment: model.Deployment, tool_id: str | None = None, operation_id: str | None = None,
           agent_id: str | None = None):
    """Every (workflow, chain, grant, credential) by which an operation may be called, in a stable order.

    Unconditional denies and guardrails remove a route; conditional ones are left to the prover.
    """
    for wf_id in sorted(deployment.workflows):
        wf = deployment.workflows[wf_id]
        for agent, chain in sorted(chains(deployment, wf).items()):
            if agent_id is not None and agent != agent_id:
                continue
            yield from _agent_routes(deployment, wf, chain, tool_id, operation_id)


def _agent_routes(deployment, wf, chain, tool_id, operation_id):
    agent = deployment.agents[chain[-1]]
    roles = [deployment.roles[r] for r in agent.roles if r in deployment.roles]
    for role in roles:
        for grant in role.grants:
            for tool, op in deployment.operations_of(grant):
                if (tool_id is not None and tool.id != tool_id) or (operation_id is not None and op.id != operation_id):
                    continue
                if not wf.uses(tool.id) or blocked_unconditionally(deployment, agent, wf, tool.id, op.id):
                    continue
                for cred_id in agent.credentials:
                    cred = deployment.credentials.get(cred_id)
                    if cred is None or not cred.covers(tool.id):
                        continue
                    tenants = reach_of(deployment, cred, tool, wf)
                    if tenants:
                        yield Route(wf, chain, tool, op, grant, cred, tenants)


def guardrail_selects(guardrail: model.Permission, agent_id: str, home: str | None) -> bool:
    """Whether a guardrail applies to the agent in a workflow of `home` (None: in every workflow)."""
    agents_ok = guardrail.agents in (None, model.STAR) or agent_id in guardrail.agents
    tenants_ok = guardrail.tenants in (None, model.STAR) or (home is not None and home in guardrail.tenants)
    return agents_ok and tenants_ok


def denies_for(deployment: model.Deployment, agent: model.Agent, home: str, tool: str, operation: str):
    """Every deny of the agent's roles and every guardrail selecting it that names the operation."""
    for role_id in agent.roles:
        role = deployment.roles.get(role_id)
        for deny in role.denies if role else ():
            if deny.matches(tool, operation):
                yield deny
    for guardrail in deployment.guardrails:
        if guardrail_selects(guardrail, agent.id, home) and guardrail.matches(tool, operation):
            yield guardrail


def blocked_unconditionally(deployment, agent, wf, tool: str, operation: str) -> bool:
    return any(d.when is None for d in denies_for(deployment, agent, wf.tenant, tool, operation))
