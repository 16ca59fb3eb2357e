"""Calls to throw at an enforcement endpoint, derived from one deployment.

A :class:`Universe` reads the model once: every workflow with every valid delegation chain,
the tools and operations the chain's acting agent is granted, and for each declared param the
values at the edges the conditions draw: for an int, both sides of every integer constant in
a CEL condition that reads it (c-1, c, c+1) and the bounds Z3 finds of the allowed region;
for a string, values that satisfy and just miss each `endsWith` / `startsWith` / `contains` /
`==` (`"x@acme.com"`, `"xacme.com"`), an address at every tenant's domain, and for `matches`
strings drawn from the pattern. From these it builds the *sweep*: a deterministic list of
boundary calls (each param at each boundary, each approval, each field, each other tenant)
for every route, and the witnesses of every VIOLATED invariant.

The Hypothesis strategies (:func:`family`) then mutate calls the oracle allows into the
adversarial neighbourhood, one family of mistakes per strategy: another tenant, a chain that
skips or reorders delegation, a tool outside the workflow, fields outside the grant, an
approval for another gate or by a non-approver or an agent, ids differing in case or by a
Unicode look-alike, mistyped or missing params, malformed and non-JSON bodies.
"""

from __future__ import annotations

import base64
import itertools
import json
import random
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from analyzer import conditions, model, reach
from analyzer.decide import Decider, MalformedCall, parse_request

FAMILIES = ("in-policy", "cross-tenant", "chain", "scope", "fields", "approval", "ids", "params", "unicode",
            "malformed", "non-json")
HTTP_ONLY_FAMILIES = frozenset({"non-json"})
MAX_CHAINS_PER_WORKFLOW = 32
MAX_BASE_COMBINATIONS = 256
MAX_SOLVER_SHAPES = 64
# Bounds that keep a deployment of thousands of tenants to a sample of the same shape: routes
# (workflow, chain, tool, operation), calls in the sweep, tenants whose attributes seed string
# edges, and other tenants tried per route. Each bound that bites is said in the notes.
MAX_ROUTES = 20_000
MAX_SWEEP = 5_000
MAX_TENANT_SAMPLE = 6
MAX_OTHER_TENANTS = 2

# A few Latin letters and the Cyrillic letters drawn the same (homoglyphs).
LOOKALIKES = {"a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440", "c": "\u0441", "x": "\u0445",
              "y": "\u0443", "i": "\u0456", "s": "\u0455", "A": "\u0410", "E": "\u0415", "O": "\u041e"}
NON_ASCII = ("\u00e9", "\u00df", "\u0130", "\U0001f642", "\u202e", "\u200b", "\uff41", "\u0000", "\u4e2d")


@dataclass(frozen=True, eq=False)
class Probe:
    """One request: a JSON value (sent as UTF-8 JSON, plus `padding` spaces) or raw bytes."""

    family: str
    body: Any = None
    raw: bytes | None = None
    padding: int = 0
    note: str = ""  # what was changed, in words

    @property
    def http_only(self) -> bool:
        return self.raw is not None or self.padding > 0

    def payload(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.body, ensure_ascii=False).encode("utf-8") + b" " * self.padding

    def to_json(self) -> dict:
        data: dict[str, Any] = {"family": self.family, "note": self.note}
        if self.raw is not None:
            data["body_base64"] = base64.b64encode(self.raw).decode("ascii")
            data["body_text"] = self.raw.decode("utf-8", "replace")
        else:
            data["body"] = self.body
        if self.padding:
            data["padding"] = self.padding
        return data

    @classmethod
    def from_json(cls, data: dict) -> Probe:
        raw = base64.b64decode(data["body_base64"]) if "body_base64" in data else None
        return cls(data.get("family", "saved"), data.get("body"), raw, int(data.get("padding", 0)),
                   data.get("note", ""))


@dataclass(frozen=True)
class Route:
    """A structural way to call an operation that some grant of the acting agent names."""

    workflow: str
    chain: tuple[str, ...]
    tool: str
    operation: str
    home: str
    gates: tuple[str, ...]  # the gates the matching grants ask for
    grant_fields: tuple[tuple[str, ...], ...]  # the `fields` of matching grants that set them


def all_chains(deployment: model.Deployment, workflow: model.Workflow,
               limit: int = MAX_CHAINS_PER_WORKFLOW) -> list[tuple[str, ...]]:
    """Every valid delegation chain of a workflow (FORMAT §4.1), shortest first, at most `limit`."""
    if not reach.chains(deployment, workflow):
        return []
    found: list[tuple[str, ...]] = []
    frontier = [(workflow.agent,)]
    while frontier and len(found) < limit:
        found.extend(frontier[: limit - len(found)])
        next_frontier = []
        for chain in frontier:
            for other in deployment.agents[chain[-1]].delegates_to:
                agent = deployment.agents.get(other)
                if agent is not None and other not in chain and agent.serves(workflow.tenant):
                    next_frontier.append(chain + (other,))
        frontier = next_frontier
    return found


class Universe:
    """Everything the sweep and the strategies need to know about one deployment, computed once."""

    def __init__(self, deployment: model.Deployment, decider: Decider | None = None, solver: bool = True,
                 witnesses: bool = True):
        self.d = deployment
        self.decider = decider or Decider(deployment)
        self.notes: list[str] = []
        self._prover = None
        self._indices: dict[int, st.SearchStrategy] = {}
        self._params: dict[tuple, st.SearchStrategy] = {}
        self._options: dict[Route, tuple[list, list]] = {}
        self._route_values: dict[tuple[str, str, str], dict[str, tuple]] = {}
        self.tenants = sorted(deployment.tenants)
        self.agents = sorted(deployment.agents)
        self.people = sorted(deployment.people)
        self.gates = sorted(deployment.gates)
        self.tenant_env = {t.id: {**t.attributes, "id": t.id} for t in deployment.tenants.values()}
        self._conditions = _conditions_by_operation(deployment)
        self.values: dict[tuple[str, str], dict[str, tuple]] = {}
        self.patterns: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {}
        solver_bounds = self._solver_bounds() if solver else {}
        for tool, op in deployment.all_operations():
            self.values[(tool.id, op.id)] = {
                name: self._boundaries(op, name, kind, solver_bounds.get((tool.id, op.id, name), set()))
                for name, kind in sorted(op.params.items())}
        self.routes: list[Route] = []
        self.ungranted: list[Route] = []
        self._build_routes()
        self.witness_probes: list[Probe] = self._witnesses() if witnesses else []
        self.sweep: list[Probe] = []
        self._build_sweep()
        self.allowed = [p.body for p in self.sweep if self.decide(p.body)]
        self.approved = [b for b in self.allowed if b.get("approval")]
        if not self.allowed:
            self.notes.append("no call of the sweep is allowed: mutations start from denied calls")
        self.seeds = self.allowed or [p.body for p in self.sweep] or [self._placeholder()]

    # ---- the oracle ---------------------------------------------------------------------------------
    def decide(self, body: Any) -> bool:
        try:
            return self.decider.decide(parse_request(body, self.d)).allow
        except MalformedCall:
            return False

    # ---- boundaries ---------------------------------------------------------------------------------
    def _boundaries(self, op: model.Operation, name: str, kind: model.ParamType, extra_ints: set[int]) -> tuple:
        conds = [c for c in self._conditions.get((op.tool, op.id), ()) if ("params", name) in _refs(c)]
        if kind.kind == "int":
            found = {0, 1, -1} | extra_ints | _INT64_EDGES
            for cond in conds:
                found |= {c + delta for c in _int_constants(cond.expr) for delta in (-1, 0, 1)}
            return tuple(sorted(found, key=lambda v: (abs(v), v)))
        if kind.kind == "bool":
            return (False, True)
        if kind.kind == "enum":
            return tuple(kind.values)
        found_s: set[str] = {"x", ""}
        patterns: list[str] = []
        sample = [self.tenant_env[t] for t in self.tenants[:MAX_TENANT_SAMPLE]]
        for cond in conds:
            strings, regexes = _string_edges(cond.expr, name, sample)
            found_s |= strings
            patterns += regexes
        if conds:  # an address at the tenants' domains, and the domain without "@"
            found_s |= _attribute_addresses(sample)
        if patterns:
            self.patterns.setdefault((op.tool, op.id), {})[name] = tuple(dict.fromkeys(patterns))
        return tuple(sorted(found_s, key=lambda v: (len(v), v)))

    def _solver_bounds(self) -> dict[tuple[str, str, str], set[int]]:
        """Where Z3 puts the edges of each case's allowed region (and of its high-risk part), per int param."""
        if not any(g.when for r in self.d.roles.values() for g in r.grants + r.denies) and \
                not any(g.when for g in self.d.guardrails):
            return {}
        found: dict[tuple[str, str, str], set[int]] = {}
        seen: set[tuple] = set()
        try:
            from analyzer import smt
            from analyzer.prover import cases

            prover = self.prover()
            for case in cases(self.d):
                ints = [n for n, k in case.operation.params.items() if k.kind == "int"]
                if not ints:
                    continue
                for gate in [None, *sorted({g.approval for g in case.grants if g.approval})]:
                    usable = tuple(g for g in case.grants if g.approval is None or g.approval == gate)
                    key = (case.tool.id, case.operation.id, tuple(map(id, usable)), tuple(map(id, case.denies)))
                    if not usable or key in seen or not (any(g.when for g in usable) or case.denies
                                                         or case.operation.high_risk_when):
                        continue
                    seen.add(key)
                    if len(seen) > MAX_SOLVER_SHAPES:
                        return found
                    enc = prover.encode(case, gate, usable)
                    regions = [enc.allowed] + ([enc.allowed + [enc.high]] if enc.high is not None else [])
                    for name in ints:
                        term = enc.variables[name][0]
                        for constraints in regions:
                            for bound in smt.bounds(constraints, term, timeout_ms=2_000):
                                if bound is not None:
                                    found.setdefault((case.tool.id, case.operation.id, name), set()).update(
                                        {bound - 1, bound, bound + 1})
        except Exception as exc:  # noqa: BLE001 - an UNKNOWN-prone condition: keep the CEL constants
            self.notes.append(f"solver bounds incomplete: {type(exc).__name__}: {exc}")
        return found

    def prover(self):
        """One prover for the solver bounds and the witnesses (Z3 loads only when a deployment has conditions)."""
        if self._prover is None:
            from analyzer.graph import PermissionGraph
            from analyzer.prover import Prover

            self._prover = Prover(PermissionGraph(self.d), decider=self.decider)
        return self._prover

    def _witnesses(self) -> list[Probe]:
        """The calls of every VIOLATED invariant (built-in rules), replayable as they are."""
        try:
            from analyzer.rules import load_rules

            prover = self.prover()
            probes = []
            for rule in load_rules().values():
                if rule.enabled and rule.is_invariant:
                    result, _ = prover.prove(rule)
                    for witness in result.witnesses:
                        probes.append(Probe("witness", witness["call"], note=f"witness of {rule.id}"))
            return probes
        except Exception as exc:  # noqa: BLE001 - witnesses are extra calls; the sweep still runs
            self.notes.append(f"invariant witnesses skipped: {type(exc).__name__}: {exc}")
            return []

    # ---- routes and the sweep -----------------------------------------------------------------------
    def _build_routes(self) -> None:
        d = self.d
        order = sorted(d.workflows)
        if len(order) > 64:  # a sample spread over every tenant rather than the first workflows by name
            random.Random(0).shuffle(order)
        for wf_id in order:
            if len(self.routes) >= MAX_ROUTES:
                self.notes.append(f"routes limited to {MAX_ROUTES}: a sample of the workflows is fuzzed")
                break
            wf = d.workflows[wf_id]
            for chain in all_chains(d, wf):
                agent = d.agents[chain[-1]]
                grants: dict[tuple[str, str], list[model.Permission]] = {}
                for role_id in agent.roles:
                    for grant in d.roles[role_id].grants:
                        for tool, op in d.operations_of(grant):
                            if wf.uses(tool.id):
                                grants.setdefault((tool.id, op.id), []).append(grant)
                for tool, op in d.all_operations():
                    if not wf.uses(tool.id):
                        continue
                    matching = grants.get((tool.id, op.id))
                    route = Route(wf.id, chain, tool.id, op.id, wf.tenant,
                                  tuple(sorted({g.approval for g in matching or () if g.approval})),
                                  tuple(dict.fromkeys(tuple(g.fields) for g in matching or () if g.fields is not None)))
                    (self.routes if matching else self.ungranted).append(route)

    def request(self, route: Route, params: dict | None = None, fields=(), approval=None, tenant=None) -> dict:
        return {"workflow": route.workflow, "chain": list(route.chain), "tool": route.tool,
                "operation": route.operation, "tenant": tenant or route.home, "fields": list(fields),
                "params": dict(params or {}), "approval": approval}

    def approval_options(self, route: Route) -> list[dict | None]:
        options: list[dict | None] = [None]
        for gate_id in route.gates:
            gate = self.d.gates.get(gate_id)
            options += [{"gate": gate_id, "by": p} for p in (gate.approvers if gate else ()) if p in self.d.people]
        return options

    def field_options(self, route: Route) -> list[tuple[str, ...]]:
        op = self.d.operation(route.tool, route.operation)
        options: list[tuple[str, ...]] = [()]
        options += [(f,) for f in op.fields]
        for granted in route.grant_fields:
            options.append(granted)
            outside = [f for f in op.fields if f not in granted]
            if outside:
                options.append(granted + (outside[0],))
        return list(dict.fromkeys(options))

    def options(self, route: Route) -> tuple[list, list]:
        """(field options, approval options) of a route, computed once."""
        if route not in self._options:
            self._options[route] = (self.field_options(route), self.approval_options(route))
        return self._options[route]

    def route_values(self, route: Route) -> dict[str, tuple]:
        """The boundary values of each param on a route: the operation's, plus the string edges drawn
        from the route's own tenant (`x@<its domain>`), which a sample of tenants may not hold."""
        key = (route.tool, route.operation, route.home)
        found = self._route_values.get(key)
        if found is None:
            found = dict(self.values[(route.tool, route.operation)])
            op = self.d.operation(route.tool, route.operation)
            home = [self.tenant_env[route.home]] if route.home in self.tenant_env else []
            for name, kind in op.params.items():
                conds = [c for c in self._conditions.get((op.tool, op.id), ()) if ("params", name) in _refs(c)]
                if kind.kind == "string" and conds and home:
                    extra = set(_attribute_addresses(home))
                    for cond in conds:
                        extra |= _string_edges(cond.expr, name, home)[0]
                    found[name] = tuple(dict.fromkeys([*found[name], *sorted(extra, key=lambda v: (len(v), v))]))
            self._route_values[key] = found
        return found

    def base(self, route: Route, limit: int = MAX_BASE_COMBINATIONS) -> tuple[dict, dict | None]:
        """Params and an approval that the oracle allows on this route, when there are any."""
        op = self.d.operation(route.tool, route.operation)
        names = sorted(op.params)
        values = self.route_values(route)
        lists = [values[n] for n in names]
        combos = list(itertools.islice(itertools.product(*lists), limit))
        first = None
        for approval in self.approval_options(route):
            for combo in combos:
                params = dict(zip(names, combo))
                if first is None:
                    first = (params, approval)
                if self.decide(self.request(route, params, approval=approval)):
                    return params, approval
        return first if first is not None else ({}, None)

    def _shape(self, route: Route) -> tuple:
        """What the decision on a route depends on besides ids: routes of one shape share a full sweep."""
        agent = self.d.agents[route.chain[-1]]
        denies = tuple(id(p) for p in reach.denies_for(self.d, agent, route.home, route.tool, route.operation))
        return (agent.roles, len(route.chain) > 1, route.tool, route.operation, denies)

    def _other_tenants(self, route: Route) -> list[str]:
        """Tenants to try from a route: those its agent's credentials list (what a missing tenant check
        reaches first), then the next ones by name; at most MAX_OTHER_TENANTS."""
        agent = self.d.agents[route.chain[-1]]
        listed: list[str] = []
        for cred_id in agent.credentials:
            cred = self.d.credentials.get(cred_id)
            if cred is not None and cred.covers(route.tool):
                listed += self.tenants if cred.tenants == model.STAR else sorted(cred.tenants)
        ordered = [t for t in dict.fromkeys([*listed, *self.tenants]) if t != route.home and t in self.d.tenants]
        return ordered[:MAX_OTHER_TENANTS]

    def _build_sweep(self) -> None:
        seen: set[str] = set()
        sweep: list[Probe] = []

        def add(probe: Probe) -> None:
            key = json.dumps(probe.body, sort_keys=True)
            if key not in seen:
                seen.add(key)
                sweep.append(probe)

        for probe in self.witness_probes:
            add(probe)
        shapes: set[tuple] = set()
        others: list[Route] = []
        for route in self.routes:
            if len(sweep) >= MAX_SWEEP:
                break
            shape = self._shape(route)
            if shape in shapes:  # the same grants and denies: the base call and another tenant will do
                others.append(route)
                continue
            shapes.add(shape)
            params, approval = self.base(route)
            add(Probe("in-policy", self.request(route, params, approval=approval), note="an allowed call"))
            for option in self.approval_options(route):
                for name, candidates in self.route_values(route).items():
                    for value in candidates:
                        add(Probe("in-policy", self.request(route, {**params, name: value}, approval=option),
                                  note=f"param {name} = {value!r}"))
            for fields in self.field_options(route):
                add(Probe("fields", self.request(route, params, fields, approval), note=f"fields {list(fields)}"))
            for tenant in self._other_tenants(route):
                add(Probe("cross-tenant", self.request(route, params, approval=approval, tenant=tenant),
                          note=f"tenant {tenant} from a workflow of {route.home}"))
            for gate_id in route.gates:
                for by in self._wrong_approvers(gate_id)[:3]:
                    add(Probe("approval", self.request(route, params, approval={"gate": gate_id, "by": by}),
                              note=f"approval of {gate_id} by {by}"))
        # each workflow's entry agent calling each tool outside the workflow
        for wf_id in sorted({r.workflow for r in self.routes}):
            wf = self.d.workflows[wf_id]
            if wf.tools == model.STAR or len(sweep) >= MAX_SWEEP:
                continue
            for tool in sorted(self.d.tools):
                if not wf.uses(tool) and self.d.tools[tool].operations:
                    op = min(self.d.tools[tool].operations)
                    route = Route(wf.id, (wf.agent,), tool, op, wf.tenant, (), ())
                    params, _ = self.base(route, limit=8)
                    add(Probe("scope", self.request(route, params), note=f"{tool} is outside {wf.id}"))
        for route in others:
            if len(sweep) >= MAX_SWEEP:
                break
            params, approval = self.base(route, limit=16)
            add(Probe("in-policy", self.request(route, params, approval=approval), note="an allowed call"))
            for tenant in self._other_tenants(route)[:1]:
                add(Probe("cross-tenant", self.request(route, params, approval=approval, tenant=tenant),
                          note=f"tenant {tenant} from a workflow of {route.home}"))
        if len(sweep) > MAX_SWEEP:
            self.notes.append(f"the boundary sweep is limited to {MAX_SWEEP} calls")
        self.sweep = sweep[:MAX_SWEEP]

    def _wrong_approvers(self, gate_id: str) -> list[str]:
        """People who do not approve the gate, then agents, then an approver of the gate written wrongly."""
        gate = self.d.gates.get(gate_id)
        approvers = set(gate.approvers if gate else ())
        return [p for p in self.people if p not in approvers][:2] + [a for a in self.agents if a in approvers][:1] \
            + self.agents[:1]

    def _placeholder(self) -> dict:
        wf = next(iter(sorted(self.d.workflows)), "workflow")
        # every key a family edits, as the seeds from routes have them (a deployment with no route)
        return {"workflow": wf, "chain": ["agent"], "tool": "tool", "operation": "operation", "tenant": "tenant",
                "fields": [], "params": {}, "approval": None}

    # ---- strategies ---------------------------------------------------------------------------------
    def choose(self, draw, items):
        """One of the items (a private copy), drawn by index: like `sampled_from`, shrinking towards the
        first, without building a strategy per draw (building one is not free)."""
        strategy = self._indices.get(len(items))
        if strategy is None:
            strategy = self._indices[len(items)] = st.integers(0, len(items) - 1)
        return _copy(items[draw(strategy)])

    def param_strategy(self, tool: str, operation: str, name: str) -> st.SearchStrategy:
        key = (tool, operation, name)
        if key not in self._params:
            self._params[key] = self._param_strategy(tool, operation, name)
        return self._params[key]

    def _param_strategy(self, tool: str, operation: str, name: str) -> st.SearchStrategy:
        values = st.sampled_from(self.values[(tool, operation)][name])
        patterns = self.patterns.get((tool, operation), {}).get(name, ())
        drawn = []
        for pattern in patterns:
            try:
                drawn.append(st.from_regex(pattern, alphabet=st.characters(codec="utf-8")))
            except Exception as exc:  # noqa: BLE001 - RE2 syntax Python's re cannot read: the edges still apply
                self.notes.append(f"{tool}.{operation} param {name}: no strings drawn from {pattern!r} ({exc})")
        return st.one_of(values, *drawn) if drawn else values


def family(universe: Universe, name: str) -> st.SearchStrategy[Probe]:
    """The Hypothesis strategy of one family of calls (see FAMILIES)."""
    return _BUILDERS[name](universe)


def families(http: bool) -> tuple[str, ...]:
    return tuple(f for f in FAMILIES if http or f not in HTTP_ONLY_FAMILIES)


# ---- the families -------------------------------------------------------------------------------------

def _in_policy(u: Universe) -> st.SearchStrategy[Probe]:
    if not u.routes:
        return st.sampled_from(u.seeds).map(lambda b: Probe("in-policy", b, note="a seed call"))

    @st.composite
    def build(draw):
        route = u.choose(draw, u.routes)
        op = u.d.operation(route.tool, route.operation)
        params = {name: draw(u.param_strategy(route.tool, route.operation, name)) for name in sorted(op.params)}
        fields_options, approvals = u.options(route)
        fields = u.choose(draw, fields_options)
        approval = u.choose(draw, approvals)
        return Probe("in-policy", u.request(route, params, fields, approval), note="a call on a granted route")

    return build()


def _seed(draw, u: Universe, pool=None) -> dict:
    return u.choose(draw, pool or u.seeds)


def _copy(value):
    """A deep copy of a JSON value (faster than copy.deepcopy)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _cross_tenant(u: Universe) -> st.SearchStrategy[Probe]:
    @st.composite
    def build(draw):
        body = _seed(draw, u)
        others = [t for t in u.tenants if t != body["tenant"]] or [body["tenant"] + "-other"]
        body["tenant"] = u.choose(draw, others)
        return Probe("cross-tenant", body, note=f"tenant set to {body['tenant']}")

    return build()


_CHAIN_EDITS = ("drop the first agent", "drop the last agent", "reverse", "prepend an agent", "append an agent",
                "replace the acting agent", "replace the first agent", "repeat an agent", "empty")


def _chain(u: Universe) -> st.SearchStrategy[Probe]:
    @st.composite
    def build(draw):
        body = _seed(draw, u)
        chain = body["chain"]
        edit = u.choose(draw, _CHAIN_EDITS)
        agent = u.choose(draw, u.agents or ["agent"])
        if edit == "drop the first agent":
            chain = chain[1:]
        elif edit == "drop the last agent":
            chain = chain[:-1]
        elif edit == "reverse":
            chain = chain[::-1]
        elif edit == "prepend an agent":
            chain = [agent, *chain]
        elif edit == "append an agent":
            chain = [*chain, agent]
        elif edit == "replace the acting agent":
            chain = [*chain[:-1], agent]
        elif edit == "replace the first agent":
            chain = [agent, *chain[1:]]
        elif edit == "repeat an agent":
            chain = [*chain, chain[0]] if chain else [agent, agent]
        else:
            chain = []
        body["chain"] = chain
        return Probe("chain", body, note=f"chain: {edit} ({' -> '.join(chain) or 'empty'})")

    return build()


def _scope(u: Universe) -> st.SearchStrategy[Probe]:
    all_ops = [(t.id, o.id) for t, o in u.d.all_operations()] or [("tool", "operation")]

    @st.composite
    def build(draw):
        body = _seed(draw, u)
        edit = u.choose(draw, ("another tool", "another operation", "an ungranted route", "unknown operation"))
        if edit == "an ungranted route" and u.ungranted:
            route = u.choose(draw, u.ungranted)
            params, approval = u.base(route)
            return Probe("scope", u.request(route, params, approval=approval),
                         note=f"{route.chain[-1]} is granted no {route.tool}.{route.operation}")
        if edit == "unknown operation":
            body["operation"] = body["operation"] + "_all"
        else:
            tool, operation = u.choose(draw, all_ops)
            if edit == "another tool":
                body["tool"], body["operation"] = tool, operation
                body["params"] = {name: values[0] for name, values in u.values.get((tool, operation), {}).items()}
            else:
                body["operation"] = operation
        return Probe("scope", body, note=f"{edit}: {body['tool']}.{body['operation']}")

    return build()


def _fields(u: Universe) -> st.SearchStrategy[Probe]:
    @st.composite
    def build(draw):
        body = _seed(draw, u)
        op = u.d.operation(body["tool"], body["operation"])
        declared = list(op.fields) if op else []
        edit = u.choose(draw, ("add a declared field", "every declared field", "an unknown field",
                                     "a field twice"))
        fields = list(body["fields"])
        if edit == "add a declared field" and declared:
            extra = u.choose(draw, declared)
            fields = fields + [extra] if extra not in fields else fields
        elif edit == "every declared field":
            fields = declared
        elif edit == "a field twice" and fields:
            fields = fields + fields[:1]
        else:
            fields = fields + [u.choose(draw, [*declared, "owner"]) + "_id"]
        body["fields"] = fields
        return Probe("fields", body, note=f"{edit}: fields {fields}")

    return build()


def _approval(u: Universe) -> st.SearchStrategy[Probe]:
    people_or_agents = u.people + u.agents + ["nobody"]

    @st.composite
    def build(draw):
        body = _seed(draw, u, u.approved or None)
        approval = body.get("approval") or {"gate": u.choose(draw, u.gates or ["gate"]), "by": None}
        edit = u.choose(draw, ("by someone else", "by an agent", "by nobody", "another gate",
                                     "an unknown gate", "no approval", "approver of another gate"))
        if edit == "by someone else":
            approval["by"] = u.choose(draw, people_or_agents)
        elif edit == "by an agent":
            approval["by"] = u.choose(draw, u.agents or ["agent"])
        elif edit == "by nobody":
            approval["by"] = None
        elif edit == "another gate":
            gate = u.choose(draw, u.gates or ["gate"])
            found = u.d.gates.get(gate)
            approval = {"gate": gate, "by": (found.approvers[0] if found and found.approvers else None)}
        elif edit == "an unknown gate":
            approval["gate"] = approval["gate"] + "-2"
        elif edit == "approver of another gate":
            gate = u.choose(draw, u.gates or ["gate"])
            found = u.d.gates.get(gate)
            approval["by"] = found.approvers[-1] if found and found.approvers else None
        else:
            approval = None
        body["approval"] = approval
        return Probe("approval", body, note=f"approval {edit}: {approval}")

    return build()


def _variants(text: str) -> list[tuple[str, str]]:
    """Ids that differ from `text` only in case or by a look-alike character."""
    out = [("upper case", text.upper()), ("capitalised", text[:1].upper() + text[1:]),
           ("swapped case", text.swapcase())]
    for index, char in enumerate(text):
        if char in LOOKALIKES:
            out.append((f"look-alike {LOOKALIKES[char]!a} for {char!r}", text[:index] + LOOKALIKES[char] + text[index + 1:]))
            break
    out += [("a zero-width space", text + "\u200b"), ("a trailing space", text + " "),
            ("full-width", "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text[:1]) + text[1:])]
    return out


def _id_slots(body: dict, d: model.Deployment) -> list[tuple]:
    slots: list[tuple] = [("workflow",), ("tool",), ("operation",), ("tenant",)]
    slots += [("chain", i) for i in range(len(body["chain"]))]
    slots += [("fields", i) for i in range(len(body["fields"]))]
    if body.get("approval"):
        slots += [("approval", "gate"), ("approval", "by")]
    op = d.operation(body["tool"], body["operation"])
    for name, kind in (op.params.items() if op else ()):
        if kind.kind == "enum":
            slots.append(("params", name))
    return slots


def _get(body, slot):
    value = body
    for key in slot:
        value = value[key]
    return value


def _put(body, slot, value) -> None:
    target = body
    for key in slot[:-1]:
        target = target[key]
    target[slot[-1]] = value


def _ids(u: Universe) -> st.SearchStrategy[Probe]:
    @st.composite
    def build(draw):
        body = _seed(draw, u)
        slot = u.choose(draw, _id_slots(body, u.d))
        original = _get(body, slot)
        if not isinstance(original, str):
            return Probe("ids", body, note="unchanged")
        how, changed = u.choose(draw, _variants(original))
        _put(body, slot, changed)
        return Probe("ids", body, note=f"{'.'.join(map(str, slot))} {original!r} -> {changed!r} ({how})")

    return build()


_WRONG_VALUES = ("a string of digits", "a float", "a boolean", "null", "a list", "an object", "an int")


def _wrong_value(value, how: str):
    if how == "a string of digits":
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else "5"
    return {"a float": 5.0, "a boolean": True, "null": None, "a list": [value], "an object": {"value": value},
            "an int": 5}[how]


# both sides of each end of a 64-bit int (FORMAT §2): the inner ones are ints, the outer ones are not
_INT64_EDGES = frozenset({model.INT64_MIN - 1, model.INT64_MIN, model.INT64_MAX, model.INT64_MAX + 1})


def _params(u: Universe) -> st.SearchStrategy[Probe]:
    @st.composite
    def build(draw):
        body = _seed(draw, u)
        params = body["params"]
        edit = u.choose(draw, ("wrong type", "missing", "undeclared", "huge int", "negative", "long string"))
        names = sorted(params)
        if edit == "undeclared" or not names:
            params[u.choose(draw, ["amount", "to", "admin", "id"])] = u.choose(draw, [1, "x", True])
            note = "an undeclared param"
        else:
            name = u.choose(draw, names)
            if edit == "missing":
                del params[name]
            elif edit == "wrong type":
                params[name] = _wrong_value(params[name], u.choose(draw, _WRONG_VALUES))
            elif edit == "huge int":
                params[name] = u.choose(draw, [2**31, *sorted(_INT64_EDGES), 10**30])
            elif edit == "negative":
                params[name] = -abs(params[name]) - 1 if isinstance(params[name], int) else "-1"
            else:
                params[name] = (params[name] if isinstance(params[name], str) else "x") * 200
            note = f"param {name}: {edit}"
        return Probe("params", body, note=note)

    return build()


def _unicode(u: Universe) -> st.SearchStrategy[Probe]:
    @st.composite
    def build(draw):
        body = _seed(draw, u)
        slots = _id_slots(body, u.d) + [("params", n) for n, v in body["params"].items() if isinstance(v, str)]
        slot = u.choose(draw, sorted(set(slots), key=str))
        original = _get(body, slot)
        char = u.choose(draw, NON_ASCII)
        where = u.choose(draw, ("append", "prepend", "replace"))
        text = original if isinstance(original, str) else str(original)
        changed = {"append": text + char, "prepend": char + text, "replace": char}[where]
        _put(body, slot, changed)
        return Probe("unicode", body, note=f"{'.'.join(map(str, slot))}: {where} {char!a}")

    return build()


_REQUIRED = ("workflow", "chain", "tool", "operation", "tenant")


def _malformed(u: Universe) -> st.SearchStrategy[Probe]:
    @st.composite
    def build(draw):
        body = _seed(draw, u)
        edit = u.choose(draw, ("not an object", "missing key", "wrong type", "chain of non-strings",
                                     "fields not a list", "params not an object", "approval malformed"))
        if edit == "not an object":
            value = u.choose(draw, [[body], "call", 1, None, True, []])
            return Probe("malformed", value, note=f"the body is {json.dumps(value)[:40]}")
        if edit == "missing key":
            key = u.choose(draw, _REQUIRED)
            del body[key]
            note = f"no {key!r}"
        elif edit == "wrong type":
            key = u.choose(draw, _REQUIRED)
            value = body[key]
            if key == "chain":
                options = [",".join(value), None, 5, True, {"agent": value[-1] if value else "x"}]
            else:
                options = [[value], None, 5, 5.0, True, {"id": value}]
            body[key] = u.choose(draw, options)
            note = f"{key!r} is {json.dumps(body[key])[:40]}"
        elif edit == "chain of non-strings":
            body["chain"] = [*body["chain"][:-1], u.choose(draw, [1, None, ["x"], {"id": "x"}])]
            note = "a chain item that is not a string"
        elif edit == "fields not a list":
            body["fields"] = u.choose(draw, ["stage", 1, {"stage": True}, [1], [None]])
            note = f"fields is {json.dumps(body['fields'])}"
        elif edit == "params not an object":
            body["params"] = u.choose(draw, [[], "amount=1", 1, True])
            note = f"params is {json.dumps(body['params'])}"
        else:
            body["approval"] = u.choose(draw, ["yes", True, [], {"gate": 1, "by": "x"}, {"by": "x"},
                                                     {"gate": "g", "by": 7}])
            note = f"approval is {json.dumps(body['approval'])}"
        return Probe("malformed", body, note=note)

    return build()


def _non_json(u: Universe) -> st.SearchStrategy[Probe]:
    @st.composite
    def build(draw):
        body = _seed(draw, u)
        text = json.dumps(body).encode("utf-8")
        edit = u.choose(draw, ("truncated", "trailing data", "empty", "invalid UTF-8", "NaN", "byte-order mark",
                                     "single quotes", "form-encoded"))
        if edit == "truncated":
            raw = text[: draw(st.integers(0, max(len(text) - 1, 0)))]
        elif edit == "trailing data":
            raw = text + b"}"
        elif edit == "empty":
            raw = b""
        elif edit == "invalid UTF-8":
            raw = text.replace(b'"tenant": "', b'"tenant": "\xff', 1)
        elif edit == "NaN":
            raw = text.replace(b'"params": {', b'"nan": NaN, "params": {', 1)
        elif edit == "byte-order mark":
            raw = b"\xef\xbb\xbf" + text
        elif edit == "single quotes":
            raw = text.replace(b'"', b"'")
        else:
            raw = b"&".join(f"{k}={v}".encode() for k, v in body.items() if isinstance(v, str))
        return Probe("non-json", raw=raw, note=edit)

    return build()


_BUILDERS = {"in-policy": _in_policy, "cross-tenant": _cross_tenant, "chain": _chain, "scope": _scope,
             "fields": _fields, "approval": _approval, "ids": _ids, "params": _params, "unicode": _unicode,
             "malformed": _malformed, "non-json": _non_json}


# ---- reading the conditions ---------------------------------------------------------------------------

def _conditions_by_operation(d: model.Deployment) -> dict[tuple[str, str], list[model.Condition]]:
    found: dict[tuple[str, str], list[model.Condition]] = {}
    perms = [p for r in d.roles.values() for p in r.grants + r.denies] + list(d.guardrails)
    for perm in perms:
        if perm.when is not None:
            for tool, op in d.operations_of(perm):
                found.setdefault((tool.id, op.id), []).append(perm.when)
    for tool, op in d.all_operations():
        if op.high_risk_when is not None:
            found.setdefault((tool.id, op.id), []).append(op.high_risk_when)
    return found


def _refs(cond: model.Condition) -> frozenset:
    return conditions.references(cond.expr)


def _walk(node):
    stack = [node]
    while stack:
        item = stack.pop()
        yield item
        stack.extend(conditions._children(item))


def _int_constants(expr) -> set[int]:
    found = set()
    for node in _walk(expr):
        if isinstance(node, conditions.Lit) and isinstance(node.value, int) and not isinstance(node.value, bool):
            found.add(node.value)
        elif isinstance(node, conditions.Unary) and node.op == "-" and isinstance(node.operand, conditions.Lit) \
                and isinstance(node.operand.value, int) and not isinstance(node.operand.value, bool):
            found.add(-node.operand.value)  # `-5` is a negation of the literal 5
    return found


def _is_param(node, name: str) -> bool:
    return isinstance(node, conditions.Select) and node.field == name and isinstance(node.operand, conditions.Ident) \
        and node.operand.name == "params"


def _attribute_addresses(tenant_envs: list[dict]) -> set[str]:
    """An address at each string attribute of the tenants (`x@acme.com`) and one without the `@`."""
    found = set()
    for env in tenant_envs:
        for key, value in env.items():
            if key != "id" and isinstance(value, str) and value:
                found |= {"x@" + value, "x" + value}
    return found


def _constant_strings(node, tenant_envs: list[dict]) -> set[str]:
    """The string a sub-expression denotes for each tenant, when it reads nothing but the tenant."""
    found = set()
    for env in tenant_envs:
        value = _evaluate_quietly(node, {"call": {}, "params": {}, "fields": [], "tenant": env})
        if isinstance(value, str):
            found.add(value)
    return found


def _evaluate_quietly(node, env):
    try:
        return conditions.evaluate(node, env)
    except Exception:  # noqa: BLE001 - it reads more than the tenant: not a constant
        return None


def _string_edges(expr, name: str, tenant_envs: list[dict]) -> tuple[set[str], list[str]]:
    """Strings that satisfy and just miss each test a condition makes of `params.<name>`, and its regexes."""
    found: set[str] = set()
    patterns: list[str] = []
    for node in _walk(expr):
        if isinstance(node, conditions.Call) and node.target is not None and _is_param(node.target, name) \
                and node.args:
            for s in _constant_strings(node.args[0], tenant_envs):
                if node.function == "endsWith":
                    found |= {"x" + s, "x" + s[1:], "x" + s[:-1], "x" + s + ".evil", ("x" + s).upper()}
                elif node.function == "startsWith":
                    found |= {s + "x", s[:-1] + "x", "x" + s, s.upper() + "x"}
                elif node.function == "contains":
                    found |= {"a" + s + "b", "a" + s[:-1] + "b", s.upper()}
                elif node.function == "matches":
                    patterns.append(s)
        elif isinstance(node, conditions.Binary) and node.op in ("==", "!="):
            for mine, other in ((node.left, node.right), (node.right, node.left)):
                if _is_param(mine, name):
                    found |= {v for s in _constant_strings(other, tenant_envs) for v in (s, s + "x", s.upper())}
        elif isinstance(node, conditions.Binary) and node.op == "in" and _is_param(node.left, name) \
                and isinstance(node.right, conditions.ListExpr):
            for item in node.right.items:
                found |= _constant_strings(item, tenant_envs)
    return found, patterns


__all__ = ["FAMILIES", "Probe", "Route", "Universe", "all_chains", "families", "family"]
