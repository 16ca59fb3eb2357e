"""`who-can` and `explain`: who reaches a tool, and why an agent can or cannot call it."""

from __future__ import annotations

from dataclasses import dataclass

from analyzer import model, reach
from analyzer.reach import Route

CONDITIONS_NOTE = ("conditions are evaluated with the solver: each route shows the parameters it allows "
                   "(integer params as ranges, others by example)")


@dataclass(frozen=True)
class Access:
    """One agent's routes to one operation, grouped for display."""

    agent: str
    tool: str
    operation: str
    routes: tuple[Route, ...]


def who_can(deployment: model.Deployment, tool: str, operation: str | None = None,
            tenant: str | None = None) -> list[Access]:
    """Every agent that can call the tool (operation), optionally on a given target tenant."""
    grouped: dict[tuple[str, str], list[Route]] = {}
    for route in reach.routes(deployment, tool, operation):
        if tenant is not None and tenant not in route.tenants:
            continue
        grouped.setdefault((route.agent, route.operation.id), []).append(route)
    return [Access(agent, tool, op, tuple(rs)) for (agent, op), rs in sorted(grouped.items())]


def route_region(prover, route: Route) -> tuple[str, str]:
    """(status, text) of where the route's grant allows the call, on the home tenant when reachable."""
    tenant = route.workflow.tenant if route.workflow.tenant in route.tenants else min(route.tenants)
    return prover.grant_region(route.workflow, route.chain, route.tool, route.operation, tenant, route.grant)


def summarize(prover, access: Access) -> str:
    """One line: "billing.refund allowed when amount <= 50, or with approval from finance"."""
    parts = []
    for route in access.routes:
        status, text = route_region(prover, route)
        if status == "never":
            continue
        ranges = ", ".join(p for p in text.split(", ") if not p.endswith("for example")) or "some parameters"
        part = "always" if status == "always" else f"when {ranges}"
        if route.grant.approval:
            part = ("with approval from " + route.grant.approval) if status == "always" else \
                f"{part}, with approval from {route.grant.approval}"
        if part not in parts:
            parts.append(part)
    if not parts:
        return f"{access.tool}.{access.operation}: never (every route's conditions exclude every call)"
    return f"{access.tool}.{access.operation} allowed " + ", or ".join(parts)


def describe_route(deployment: model.Deployment, route: Route, prover=None) -> list[str]:
    """The route as indented lines: workflow, chain, role and grant, credential and reach, denies."""
    wf = route.workflow
    grant = route.grant
    lines = [f"in workflow {wf.id} (tenant {wf.tenant}), chain {' -> '.join(route.chain)}"]
    grant_text = f"role {grant.owner}, grant #{grant.index + 1} ({grant.loc})"
    if grant.when is not None:
        grant_text += f" when {grant.when.source}"
    if grant.fields is not None:
        grant_text += f" on fields {', '.join(grant.fields) or 'none'}"
    if grant.approval:
        real = "" if deployment.is_real_gate(grant.approval) else " — a gate with no person, so no approval"
        grant_text += f", with approval through {grant.approval}{real}"
    lines.append("  " + grant_text)
    lines.append(f"  credential {route.credential.id} ({route.credential.loc}) reaches "
                 f"{', '.join(sorted(route.tenants))}: {reach.reach_reason(route.credential, route.tool)}")
    agent = deployment.agents[route.agent]
    for deny in reach.denies_for(deployment, agent, wf.tenant, route.tool.id, route.operation.id):
        if deny.when is not None:
            lines.append(f"  except when {deny.when.source} ({deny.label}, {deny.loc})")
    if prover is not None:
        lines.append(f"  allowed for: {route_region(prover, route)[1]}")
    return lines


def render_who_can(deployment, accesses: list[Access], tool: str, operation: str | None, tenant: str | None) -> str:
    target = f"{tool}.{operation}" if operation else tool
    if tenant:
        target += f" on tenant {tenant}"
    out = [CONDITIONS_NOTE, ""]
    if not accesses:
        out.append(f"no agent can call {target}")
        return "\n".join(out) + "\n"
    agents = sorted({a.agent for a in accesses})
    out.append(f"{len(agents)} agent(s) may call {target}:")
    prover = _prover(deployment)
    for access in accesses:
        out.append("")
        out.append(f"{access.agent}: {summarize(prover, access)}")
        for route in access.routes:
            out.extend("  " + line for line in describe_route(deployment, route, prover))
    return "\n".join(out) + "\n"


def explain(deployment: model.Deployment, agent_id: str, tool_id: str, operation: str | None = None) -> str:
    """Why an agent can, or cannot, call each operation of a tool."""
    agent = deployment.agents[agent_id]
    tool = deployment.tools[tool_id]
    ops = [operation] if operation else sorted(tool.operations)
    out = [CONDITIONS_NOTE, ""]
    prover = _prover(deployment)
    for op_id in ops:
        routes = list(reach.routes(deployment, tool_id, op_id, agent_id))
        open_routes = [r for r in routes if route_region(prover, r)[0] != "never"]
        if open_routes:
            access = Access(agent_id, tool_id, op_id, tuple(routes))
            out.append(f"{agent_id} CAN call {tool_id}.{op_id}: {summarize(prover, access)}")
            for route in routes:
                out.extend("  " + line for line in describe_route(deployment, route, prover))
        elif routes:
            out.append(f"{agent_id} CANNOT call {tool_id}.{op_id}: every route's conditions exclude every call")
            for route in routes:
                out.extend("  " + line for line in describe_route(deployment, route, prover))
        else:
            out.append(f"{agent_id} CANNOT call {tool_id}.{op_id}:")
            out.extend("  " + reason for reason in _why_not(deployment, agent, tool, op_id))
        out.append("")
    return "\n".join(out)


def _prover(deployment: model.Deployment):
    from analyzer.graph import PermissionGraph
    from analyzer.prover import Prover

    return Prover(PermissionGraph(deployment))


def _why_not(deployment: model.Deployment, agent: model.Agent, tool: model.Tool, op_id: str) -> list[str]:
    reasons = []
    grants = [g for r in agent.roles for g in deployment.roles[r].grants if g.matches(tool.id, op_id)]
    if not grants:
        reasons.append(f"no role of {agent.id} ({', '.join(agent.roles) or 'none'}) grants {tool.id}.{op_id}")
    for role_id in agent.roles:
        for deny in deployment.roles[role_id].denies:
            if deny.matches(tool.id, op_id) and deny.when is None:
                reasons.append(f"{deny.label} denies it ({deny.loc})")
    for guardrail in deployment.guardrails:
        if guardrail.matches(tool.id, op_id) and guardrail.when is None \
                and reach.guardrail_selects(guardrail, agent.id, home=None):
            reasons.append(f"{guardrail.label} blocks it ({guardrail.loc})")
    if not any(deployment.credentials[c].covers(tool.id) for c in agent.credentials):
        reasons.append(f"{agent.id} holds no credential covering {tool.id}")
    workflows = [wf.id for wf in deployment.workflows.values() if agent.id in reach.chains(deployment, wf)]
    if not workflows:
        reasons.append(f"{agent.id} acts in no workflow (directly or by delegation, serving the workflow's tenant)")
    elif not any(deployment.workflows[w].uses(tool.id) for w in workflows):
        reasons.append(f"none of its workflows ({', '.join(workflows)}) may use {tool.id}")
    if not reasons:
        reasons.append("no combination of workflow, grant and credential lines up")
    return reasons
