"""Hypothesis strategies: small valid deployments (as section dicts, YAML text, or loaded) and calls.

A deployment has 1–3 tenants with a `domain` attribute (sometimes missing, so conditions on it
can fail to evaluate), 1–3 tools whose operations take int, string and enum params and have
fields, roles whose grants and denies carry random `when` conditions from a small grammar,
sometimes approvals through gates (real or not), guardrails with selectors, agents that
delegate, static and per-workflow credentials, and every tenancy.

Conditions only name params that the operations they cover declare (the loader insists on it),
but an operation may lack a param another covered operation declares: evaluating the
condition on it is then an error, which the decision function and the Z3 encoding must both
treat as failing closed.

`in` lists are never empty here: `x in []` with an erroring `x` is a known gap of the Z3
translation with its own test (test_smt, test_prover), and a random search that keeps
rediscovering it would hide everything else.

Calls are mostly well-formed for some structural route and sometimes broken on purpose
(a wrong chain, a missing or extra or mistyped param, an unknown field or gate).
"""

from __future__ import annotations

import functools
import itertools
import json
from typing import Any

from conftest import deployment_yaml
from hypothesis import strategies as st

from analyzer import model
from analyzer.decide import Call
from analyzer.loader import load_text

TENANTS = ("t0", "t1", "t2")
DOMAINS = ("acme.com", "evilacme.com", "globex.com")
TOOLS = ("crm", "mail", "pay")
AGENTS = ("a0", "a1", "a2")
GATES = ("g0", "g1")
PEOPLE = ("p0",)
FIELDS = ("stage", "notes", "owner")

# name → declared type (a list is an enum)
PARAM_TYPES = {"amount": "int", "to": "string", "kind": ["memo", "alert"]}
INT_CONSTANTS = (0, 10, 100, 500)
STRING_CONSTANTS = ("@acme.com", "acme.com", "x@", "@", "bob")
EFFECTS = model.EFFECTS

# Values a call may carry: every constant of the grammar, one either side, and a few others.
INT_VALUES = sorted({c + d for c in INT_CONSTANTS for d in (-1, 0, 1)} | {-7})
STRING_VALUES = ("", "@", "bob", "x@", "x@acme.com", "bob@acme.com", "bob@evilacme.com", "acme.com",
                 "@acme.com", "bob@globex.com", "globex.com", "x@globex.comx", "é@acme.com", "a\\b")
ENUM_VALUES = ("memo", "alert")


# ---------------------------------------------------------------------------------------------- conditions


def _param_atoms(name: str, kind) -> list[st.SearchStrategy[str]]:
    p = f"params.{name}"
    ints = st.sampled_from(INT_CONSTANTS)
    strings = st.sampled_from(STRING_CONSTANTS)
    if kind == "int":
        return [
            st.builds(lambda op, c: f"{p} {op} {c}", st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), ints),
            st.builds(lambda cs: f"{p} in [{', '.join(map(str, cs))}]", st.lists(ints, min_size=1, max_size=3,
                                                                                 unique=True)),
            st.builds(lambda c: f"{p} % 3 == {c % 3}", ints),
            st.builds(lambda c: f"{p} / 7 > {c // 10}", ints),
            st.builds(lambda c: f"{p} * 2 - 1 >= {c}", ints),
            st.builds(lambda c: f"-{p} < {c}", ints),
            st.builds(lambda c: f"{c} / {p} >= 1", ints),              # an error when the param is 0
            st.just(f"has({p}) && {p} > 5"),
        ]
    if kind == "string":
        return [
            st.builds(lambda m, c: f"{p}.{m}({json.dumps(c)})", st.sampled_from(["endsWith", "startsWith", "contains"]),
                      strings),
            st.builds(lambda m: f"{p}.{m}(tenant.domain)", st.sampled_from(["endsWith", "startsWith", "contains"])),
            st.just(f'{p}.endsWith("@" + tenant.domain)'),
            st.builds(lambda cs: f"{p} in {json.dumps(cs)}", st.lists(strings, min_size=1, max_size=3, unique=True)),
            st.builds(lambda c: f"{p} == {json.dumps(c)}", strings),
            st.builds(lambda c: f"size({p}) > {c}", st.sampled_from([0, 3, 10])),
            st.just(f"{p} > 3"),                                       # a type error: always an error
            st.just(f'{p} < tenant.domain'),
            st.builds(lambda r: f"{p}.matches({json.dumps(r)})", st.sampled_from(
                ["^[a-z]+@", "@acme\\.com$", "^x", "[0-9]", "^(bob|x)@.*$", "^.{3,}$"])),
        ]
    # an enum
    return [
        st.builds(lambda v: f"{p} == {json.dumps(v)}", st.sampled_from(kind)),
        st.just(f'{p} in ["memo"]'),
    ]


def _context_atoms(fields: tuple[str, ...]) -> list[st.SearchStrategy[str]]:
    atoms = [
        st.builds(lambda t: f'call.tenant == "{t}"', st.sampled_from(TENANTS)),
        st.just("call.tenant == call.home"),
        st.just("call.tenant != call.home"),
        st.builds(lambda a: f'call.agent == "{a}"', st.sampled_from(AGENTS)),
        st.just("call.delegated"),
        st.builds(lambda g: f'call.gate == "{g}"', st.sampled_from(GATES)),
        st.just("call.gate == null"),
        st.builds(lambda e: f'call.effect == "{e}"', st.sampled_from(["read", "payment", "send"])),
        st.builds(lambda d: f'tenant.domain == "{d}"', st.sampled_from(DOMAINS)),
        st.just('tenant.domain.endsWith("acme.com")'),
        st.builds(lambda t: f'tenant.id == "{t}"', st.sampled_from(TENANTS)),
        st.builds(lambda n: f"size(fields) <= {n}", st.integers(0, 2)),
        st.just("true"),
        st.just("false"),
        st.just("tenant.domain.size() > 8"),
        st.just('call.delegated == (call.agent != "a0")'),
    ]
    if fields:
        atoms.append(st.builds(lambda f: f'"{f}" in fields', st.sampled_from(fields)))
    return atoms


def conditions(params: dict, fields: tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    """CEL over the given params (name → type), the call, the tenant and the fields."""
    key = tuple(sorted((name, kind if isinstance(kind, str) else tuple(kind)) for name, kind in params.items()))
    return _conditions(key, tuple(sorted(fields)))


@functools.cache
def _conditions(params: tuple, fields: tuple[str, ...]) -> st.SearchStrategy[str]:
    atoms = _context_atoms(fields)
    for name, kind in params:
        atoms.extend(_param_atoms(name, kind))
    atom = st.one_of(atoms)
    return st.recursive(atom, lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a}) && ({b})", inner, inner),
        st.builds(lambda a, b: f"({a}) || ({b})", inner, inner),
        st.builds(lambda a: f"!({a})", inner),
        st.builds(lambda a, b, c: f"({a}) ? ({b}) : ({c})", inner, inner, inner),
    ), max_leaves=4)


# ---------------------------------------------------------------------------------------------- deployments


def _subset(items, min_size=0, max_size=None):
    if not items:
        return st.just([])
    return st.lists(st.sampled_from(list(items)), min_size=min_size, max_size=max_size or len(items), unique=True)


def _star_or_subset(items, min_size=1):
    return st.one_of(st.just("*"), _subset(items, min_size=min_size))


@st.composite
def operations(draw) -> dict:
    ops = {}
    for op_id in draw(_subset(("op1", "op2"), min_size=1)):
        op: dict[str, Any] = {"effect": draw(st.sampled_from(EFFECTS))}
        if draw(st.booleans()):
            op["external"] = True
        params = {name: PARAM_TYPES[name] for name in draw(_subset(PARAM_TYPES))}
        if params:
            op["params"] = params
        fields = draw(_subset(FIELDS))
        if fields:
            op["fields"] = fields
        if draw(st.integers(0, 3)) == 0:
            op["risk"] = draw(st.sampled_from(model.RISKS))
        if draw(st.integers(0, 2)) == 0:
            op["high_risk_when"] = draw(conditions(params, tuple(fields)))
        ops[op_id] = op
    return ops


def _covered(tools: dict, tool: str, ops) -> list[dict]:
    """The operation definitions a grant, deny or guardrail names."""
    found = []
    for tool_id, definition in tools.items():
        if tool not in ("*", tool_id):
            continue
        for op_id, op in definition["operations"].items():
            if ops == "*" or op_id in ops:
                found.append(op)
    return found


@st.composite
def permission(draw, tools: dict, kind: str, gates: tuple[str, ...]) -> dict:
    tool = draw(st.sampled_from(sorted(tools) + ["*"]))
    names = sorted({o for t in tools.values() for o in t["operations"]} if tool == "*" else tools[tool]["operations"])
    ops = draw(st.one_of(st.just("*"), _subset(names, min_size=1)))
    perm: dict[str, Any] = {"tool": tool, "operations": ops}
    covered = _covered(tools, tool, ops)
    params: dict = {}
    fields: set[str] = set()
    for op in covered:
        params.update(op.get("params", {}))
        fields.update(op.get("fields", ()))
    if kind == "grant" and tool != "*" and fields and draw(st.booleans()):
        perm["fields"] = draw(_subset(sorted(fields)))
    unconditional_odds = 4 if kind == "grant" else 5  # one in four grants, one in five denies has no `when`
    if draw(st.integers(1, unconditional_odds)) > 1:
        perm["when"] = draw(conditions(params, tuple(sorted(fields))))
    if kind == "grant" and gates and draw(st.integers(0, 2)) == 0:
        perm["approval"] = draw(st.sampled_from(gates))
    if kind == "guardrail":
        if draw(st.booleans()):
            perm["agents"] = draw(_star_or_subset(AGENTS))
        if draw(st.booleans()):
            perm["tenants"] = draw(_star_or_subset(TENANTS))
    return perm


@st.composite
def deployment_sections(draw) -> dict:
    """The sections of a small valid deployment (see the module docstring)."""
    n_tenants = draw(st.integers(1, 3))
    tenants = {}
    for index, tenant in enumerate(TENANTS[:n_tenants]):
        attributes = {"domain": draw(st.sampled_from(DOMAINS))} if index == 0 or draw(st.integers(0, 4)) else {}
        tenants[tenant] = {"attributes": attributes} if attributes else {}
    tenant_ids = tuple(tenants)
    tools = {}
    for tool in draw(_subset(TOOLS, min_size=1)):
        definition: dict[str, Any] = {"operations": draw(operations())}
        tenancy = draw(st.sampled_from(["per-tenant", "per-tenant", "shared", "none"]))
        if tenancy != "per-tenant":
            definition["tenancy"] = tenancy
        if draw(st.integers(0, 3)) == 0:
            definition["enforced_by"] = "prompt"
        tools[tool] = definition
    gates = {}
    for gate in draw(_subset(GATES)):
        gates[gate] = {"approvers": draw(_subset(PEOPLE + ("a0",), min_size=1))}
    gate_ids = tuple(gates)
    roles = {}
    for role in draw(_subset(("r0", "r1"), min_size=1)):
        roles[role] = {"grants": draw(st.lists(permission(tools, "grant", gate_ids), min_size=1, max_size=3)),
                       "denies": draw(st.lists(permission(tools, "deny", gate_ids), max_size=2))}
    n_agents = draw(st.integers(1, 3))
    agent_ids = AGENTS[:n_agents]
    credentials = {}
    for cred in draw(_subset(("k0", "k1"), min_size=1)):
        credentials[cred] = {"tools": draw(st.one_of(st.just("*"), _star_or_subset(tuple(tools)))),
                             "tenants": draw(_star_or_subset(tenant_ids)),
                             "issued": draw(st.sampled_from(["static", "per-workflow"])),
                             "store": "vault"}
    agents = {}
    for agent in agent_ids:
        agents[agent] = {
            "roles": draw(_subset(tuple(roles), min_size=1)),
            "tenants": draw(st.one_of(st.just("*"), st.just("*"), _subset(tenant_ids, min_size=1))),
            "credentials": draw(_subset(tuple(credentials), min_size=1 if draw(st.integers(0, 4)) else 0)),
            "delegates_to": draw(_subset(tuple(a for a in agent_ids if a != agent))),
        }
    workflows = {}
    for wf in draw(_subset(("w0", "w1"), min_size=1)):
        workflows[wf] = {"tenant": draw(st.sampled_from(tenant_ids)), "agent": draw(st.sampled_from(agent_ids)),
                         "tools": draw(_star_or_subset(tuple(tools)))}
    guardrails = draw(st.lists(permission(tools, "guardrail", gate_ids), max_size=2))
    guardrails = [g for g in guardrails if _guardrail_selectors_known(g, agent_ids, tenant_ids)]
    sections = {"tenants": tenants, "people": list(PEOPLE), "tools": tools, "roles": roles, "agents": agents,
                "credentials": credentials, "workflows": workflows,
                "policy": {"require_approval": draw(st.sampled_from(["low", "medium", "high", "high"]))}}
    if gates:
        sections["gates"] = gates
    if guardrails:
        sections["guardrails"] = guardrails
    return sections


def _guardrail_selectors_known(guardrail, agent_ids, tenant_ids) -> bool:
    agents, tenants = guardrail.get("agents", "*"), guardrail.get("tenants", "*")
    return (agents == "*" or set(agents) <= set(agent_ids)) and (tenants == "*" or set(tenants) <= set(tenant_ids))


def deployment_texts() -> st.SearchStrategy[str]:
    """The YAML text of a small valid deployment."""
    return deployment_sections().map(lambda s: deployment_yaml(**s))


def deployments() -> st.SearchStrategy[model.Deployment]:
    """A small valid deployment, loaded through analyzer.loader.load_text."""
    return deployment_texts().map(load_text)


# ---------------------------------------------------------------------------------------------- calls


def simple_chains(d: model.Deployment, workflow: model.Workflow, limit: int = 50) -> list[tuple[str, ...]]:
    """Every chain from the workflow's agent along delegates_to without repeats (serving home or not)."""
    found = []
    stack = [(workflow.agent,)]
    while stack and len(found) < limit:
        chain = stack.pop()
        found.append(chain)
        for other in d.agents[chain[-1]].delegates_to:
            if other not in chain:
                stack.append(chain + (other,))
    return sorted(found)


def param_values(d: model.Deployment, kind: model.ParamType) -> tuple:
    if kind.kind == "int":
        return tuple(INT_VALUES)
    if kind.kind == "string":
        domains = {t.attributes.get("domain") for t in d.tenants.values()} - {None}
        return STRING_VALUES + tuple(sorted(f"x@{dom}" for dom in domains))
    if kind.kind == "bool":
        return (True, False)
    return kind.values


def _wrong_value(kind: model.ParamType):
    return {"int": st.sampled_from([True, "1", None, 1.5]), "string": st.sampled_from([1, None, True]),
            "bool": st.sampled_from([1, "true"])}.get(kind.kind, st.sampled_from(["letter", 1]))


def granted_routes(d: model.Deployment) -> list[tuple[str, tuple[str, ...], str, str]]:
    """(workflow, chain, tool, operation) where the chain is valid and some grant of the acting agent
    names the operation: the calls worth sampling most (conditions, denies and reach still decide)."""
    found = []
    for wf_id in sorted(d.workflows):
        workflow = d.workflows[wf_id]
        for chain in simple_chains(d, workflow):
            if not all(d.agents[a].serves(workflow.tenant) for a in chain):
                continue
            grants = [g for r in d.agents[chain[-1]].roles for g in d.roles[r].grants]
            for tool, op in d.all_operations():
                if workflow.uses(tool.id) and any(g.matches(tool.id, op.id) for g in grants):
                    found.append((wf_id, chain, tool.id, op.id))
    return found


def _rarely(draw, one_in: int) -> bool:
    """True about once in `one_in` draws. Hypothesis favours the ends of an integer range (and
    shrinks to the low end), so the rare outcome sits in the middle and the common one shrinks."""
    return draw(st.integers(0, one_in - 1)) == one_in // 2


@st.composite
def calls(draw, d: model.Deployment, routes: list | None = None) -> Call:
    """A call on the deployment: usually well-formed for a granted route, sometimes broken."""
    routes = granted_routes(d) if routes is None else routes
    if routes and not _rarely(draw, 4):
        wf_id, chain, tool_id, op_id = draw(st.sampled_from(routes))
        workflow, tool = d.workflows[wf_id], d.tools[tool_id]
        op = tool.operations[op_id]
    else:
        workflow = d.workflows[draw(st.sampled_from(sorted(d.workflows)))]
        chain = draw(st.sampled_from(simple_chains(d, workflow)))
        if _rarely(draw, 10):
            chain = tuple(draw(st.lists(st.sampled_from(sorted(d.agents)), min_size=0, max_size=3)))
        tool, op = draw(st.sampled_from(list(d.all_operations())))
    tenant = draw(st.sampled_from(sorted(d.tenants))) if _rarely(draw, 2) else workflow.tenant
    wf_id = "ghost" if _rarely(draw, 30) else workflow.id
    fields = list(draw(_subset(op.fields)))
    if _rarely(draw, 15):
        fields.append(draw(st.sampled_from(FIELDS + ("ghost",))))
    params = {name: draw(st.sampled_from(param_values(d, kind))) for name, kind in sorted(op.params.items())}
    if _rarely(draw, 12) and params:
        params.pop(draw(st.sampled_from(sorted(params))))
    if _rarely(draw, 12):
        params[draw(st.sampled_from(sorted(PARAM_TYPES) + ["ghost"]))] = draw(st.sampled_from(INT_VALUES))
    if _rarely(draw, 12) and op.params:
        name = draw(st.sampled_from(sorted(op.params)))
        params[name] = draw(_wrong_value(op.params[name]))
    gate = None
    if _rarely(draw, 2):
        gate = draw(st.sampled_from(sorted(d.gates))) if d.gates and not _rarely(draw, 10) else None
        if _rarely(draw, 20):
            gate = "ghost"
    return Call(wf_id, chain, tool.id, op.id, tenant, tuple(fields), params, gate)


# ---------------------------------------------------------------------------------------------- domains


def int_constants(d: model.Deployment) -> set[int]:
    """Every int literal of every condition (and its neighbours), for exhaustive sampling."""
    from analyzer import conditions as cel

    found: set[int] = set()

    def walk(node):
        if isinstance(node, cel.Lit) and isinstance(node.value, int) and not isinstance(node.value, bool):
            found.update({node.value - 1, node.value, node.value + 1})
        for child in cel._children(node):
            walk(child)

    conds = [p.when for r in d.roles.values() for p in r.grants + r.denies if p.when]
    conds += [g.when for g in d.guardrails if g.when]
    conds += [op.high_risk_when for _, op in d.all_operations() if op.high_risk_when]
    for cond in conds:
        walk(cond.expr)
    return found


def sampled_domain(d: model.Deployment, per_case: int = 24, seed: int = 0):
    """Calls over every workflow × chain × tool × operation × tenant × gate, with params and fields
    drawn (deterministically, at most `per_case` per combination) from small sets that include
    every constant of the conditions and its neighbours."""
    import random

    rng = random.Random(seed)
    extra_ints = sorted(int_constants(d) | set(INT_VALUES))
    gates = [None] + sorted(d.gates)
    for wf_id in sorted(d.workflows):
        workflow = d.workflows[wf_id]
        for chain in simple_chains(d, workflow):
            for tool, op in d.all_operations():
                names = sorted(op.params)
                pools = [extra_ints if op.params[n].kind == "int" else list(param_values(d, op.params[n]))
                         for n in names]
                field_sets = [()] + [(f,) for f in op.fields] + ([tuple(op.fields)] if len(op.fields) > 1 else [])
                combos = list(itertools.product(*pools)) if pools else [()]
                for tenant in sorted(d.tenants):
                    for gate in gates:
                        picked = combos if len(combos) <= per_case else rng.sample(combos, per_case)
                        for values in picked:
                            for fields in field_sets:
                                yield Call(wf_id, chain, tool.id, op.id, tenant, fields, dict(zip(names, values)),
                                           gate)
