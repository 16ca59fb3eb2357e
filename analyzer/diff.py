"""`agentperm diff OLD NEW`: every access NEW allows that OLD did not, with concrete calls.

An access class is (workflow, acting agent, tool, operation, target tenant). For each
class NEW can reach, the solver looks for params, fields and an approval that NEW allows
and OLD refuses (the same Z3 variables feed both encodings). Conditions only see the
acting agent and whether the call is delegated, so OLD is asked about its own shortest
chain to the same agent. Every reported call is replayed: allowed by NEW's decision
function and refused by OLD's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from analyzer import model, reach, smt
from analyzer import prover as prover_module
from analyzer.decide import Call, Decider
from analyzer.gcpause import paused_gc
from analyzer.graph import PermissionGraph
from analyzer.prover import Answer, Case, Prover, ReplayError, _default_params, _region

DIFF_FORMAT = "agentperm-diff/1"


@dataclass(frozen=True)
class DiffResult:
    old_paths: tuple[str, ...]
    new_paths: tuple[str, ...]
    old_digest: str
    new_digest: str
    new_access: tuple[dict, ...]
    unknown: tuple[str, ...]

    def exit_code(self) -> int:
        if self.new_access:
            return 1
        return 3 if self.unknown else 0

    def summary(self) -> dict:
        return {"new_access": len(self.new_access), "unknown": len(self.unknown),
                "agents": len({a["class"]["agent"] for a in self.new_access}),
                "tenants": len({a["class"]["tenant"] for a in self.new_access})}

    def to_json(self) -> dict:
        return {"format": DIFF_FORMAT,
                "old": {"paths": list(self.old_paths), "digest": self.old_digest},
                "new": {"paths": list(self.new_paths), "digest": self.new_digest},
                "new_access": list(self.new_access), "unknown": list(self.unknown), "summary": self.summary()}


def diff(old: model.Deployment, new: model.Deployment, timeout_ms: int = 10_000, *, full: bool = False,
         progress=None) -> DiffResult:
    """Every access NEW allows that OLD did not.

    Only the cases a change can touch are solved again (see :func:`_diff_incremental`); with
    ``full``, every case of NEW is (the reference the incremental diff is tested against).
    ``progress`` (:mod:`analyzer.progress`) hears about the stages; the default is silent."""
    from analyzer import progress as progress_module

    progress = progress or progress_module.NULL
    with paused_gc():
        if full:
            return _diff_full(old, new, timeout_ms, progress)
        return _diff_incremental(old, new, timeout_ms, progress)


def _diff_full(old, new, timeout_ms, progress) -> DiffResult:
    old_prover = Prover(deployment=old, timeout_ms=timeout_ms)
    new_prover = Prover(deployment=new, timeout_ms=timeout_ms)
    old_cases = {(c.workflow.id, c.agent, c.tool.id, c.operation.id, c.tenant): c for c in old_prover.all_cases}
    found: dict[tuple, dict] = {}
    unknown: list[str] = []
    all_cases = new_prover.all_cases
    with progress.stage(f"diff: {len(all_cases):,} cases", total=len(all_cases)) as stage:
        for case in all_cases:
            stage.advance()
            key = _key(case)
            if key not in found:
                _compare(new_prover, old_prover, case, old_cases.get(key), found, unknown, None)
    return DiffResult(old.paths, new.paths, old.digest, new.digest,
                      tuple(found[k] for k in sorted(found)), tuple(sorted(unknown)))


def _key(case: Case) -> tuple:
    return (case.workflow.id, case.agent, case.tool.id, case.operation.id, case.tenant)


def _compare(new_prover: Prover, old_prover: Prover, case: Case, before: Case | None, found: dict, unknown: list,
             skip_gate) -> None:
    """Look for a call of this case NEW allows and OLD refuses; record it (or why it is undecided).
    ``skip_gate(gate)`` says a gate needs no solving: OLD and NEW agree on it by construction."""
    key = _key(case)
    for gate in new_prover._gates(case, "any", None):
        usable = tuple(g for g in case.grants if g.approval is None or g.approval == gate)
        if not usable or (skip_gate is not None and skip_gate(gate)):
            continue
        try:
            answer = _new_only(new_prover, old_prover, case, before, gate, usable)
        except smt.Unsupported as exc:
            unknown.append(f"{'/'.join(key)}: {exc.reason}")
            continue
        if answer.status == "unknown":
            unknown.append(f"{'/'.join(key)}: {answer.reason}")
            continue
        if answer.status == "sat":
            found[key] = _witness(new_prover, old_prover.d, old_prover.decider, new_prover.decider, case, gate,
                                  answer, local_graph=skip_gate is not None)
            return


# ---- the incremental diff ----------------------------------------------------------------------

_POSITIONS = frozenset({"loc", "locs", "item_locs"})
_ATOMS = frozenset({str, int, float, bool, type(None)})
_KEYERS: dict[type, object] = {}


def content_key(value) -> object:
    """A definition's content without positions: equal keys mean equal definitions wherever they
    are written. Drops ``loc``, ``locs`` and ``item_locs`` at every level (permissions, operations,
    conditions); a condition counts by its source; mappings count by their items (so tenant
    attributes and operation params, which the dataclasses do not compare, count too)."""
    cls = type(value)
    if cls in _ATOMS:
        return value
    keyer = _KEYERS.get(cls)
    if keyer is None:
        keyer = _KEYERS[cls] = _keyer_for(cls)
    return keyer(value)


def _permission_key(p: model.Permission) -> tuple:
    # the hot path (tens of thousands of grants): every field is a string, a tuple of strings or None
    return ("Permission", p.kind, p.owner, p.index, p.tool, p.operations, p.fields,
            None if p.when is None else p.when.source, p.approval, p.agents, p.tenants)


def _keyer_for(cls: type):
    if cls is model.Condition:
        return lambda value: ("cel", value.source)
    if cls is model.Permission:
        return _permission_key
    if dataclasses.is_dataclass(cls):
        names = tuple(f.name for f in dataclasses.fields(cls) if f.name not in _POSITIONS)
        label = cls.__name__
        return lambda value: (label, *[content_key(getattr(value, name)) for name in names])
    if issubclass(cls, (tuple, list)):
        return lambda value: ("[]", *[content_key(v) for v in value])
    if issubclass(cls, Mapping):
        return lambda value: ("{}", *sorted(((k, content_key(v)) for k, v in value.items()),
                                            key=lambda kv: (type(kv[0]).__name__, repr(kv[0]))))
    if issubclass(cls, (set, frozenset)):
        return lambda value: ("set", *sorted((content_key(v) for v in value), key=repr))
    return lambda value: value


def _tool_key(tool: model.Tool):
    """A tool's own content; its operations count one by one (see :func:`_changes`)."""
    return (tool.id, tool.tenancy, tool.enforced_by, tool.name, tool.description)


def _changed(before: Mapping, after: Mapping, key=content_key) -> set[str]:
    """Ids of NEW's definitions that are new or whose content differs from OLD's."""
    changed = set()
    for ident, definition in after.items():
        previous = before.get(ident)
        # by content, never by ==: that would compare positions, which are read lazily
        if previous is None or key(previous) != key(definition):
            changed.add(ident)
    return changed


@dataclass
class Changes:
    """What a change touches, in NEW's terms (ids of new or different definitions)."""

    everything: bool  # policy or guardrails changed: every case may gain access
    tenants: set[str]
    tools: set[str]
    operations: set[tuple[str, str]]
    agents: set[str]  # changed themselves, or through a changed role, credential, gate or approver
    workflows: set[str]
    gate_ids: bool  # the set of gate ids differs (matters to conditions that read call.gate)

    @property
    def per_case(self) -> bool:
        return bool(self.tenants or self.tools or self.operations or self.gate_ids)


def _changes(old: model.Deployment, new: model.Deployment) -> Changes:
    everything = content_key(old.policy) != content_key(new.policy) or \
        content_key(old.guardrails) != content_key(new.guardrails)
    people = _changed(old.people, new.people) | (set(old.people) ^ set(new.people))
    gates = _changed(old.gates, new.gates)
    gates |= {g.id for g in new.gates.values() if any(a in people for a in g.approvers)}
    roles = _changed(old.roles, new.roles)
    roles |= {r.id for r in new.roles.values() if any(g.approval in gates for g in r.grants)}
    credentials = _changed(old.credentials, new.credentials)
    agents = _changed(old.agents, new.agents)
    agents |= {a.id for a in new.agents.values()
               if any(r in roles for r in a.roles) or any(c in credentials for c in a.credentials)}
    operations = set()
    for tool_id, tool in new.tools.items():
        previous = old.tools.get(tool_id)
        for op_id, op in tool.operations.items():
            before = previous.operations.get(op_id) if previous is not None else None
            if before is None or content_key(before) != content_key(op):
                operations.add((tool_id, op_id))
    return Changes(everything, _changed(old.tenants, new.tenants), _changed(old.tools, new.tools, _tool_key),
                   operations, agents, _changed(old.workflows, new.workflows), set(old.gates) != set(new.gates))


def _may_touch(new: model.Deployment, changes: Changes, wf: model.Workflow, agent: model.Agent) -> bool:
    """Whether some case of this (unchanged) agent in this (unchanged) workflow may use a changed
    tool or operation, target a changed tenant, or read call.gate while the gate ids changed."""
    if changes.gate_ids:
        return True
    tools = changes.tools | {t for t, _ in changes.operations}
    if tools and (wf.tools == model.STAR or tools & set(wf.tools)):
        return True
    if changes.tenants:
        for cred_id in agent.credentials:
            cred = new.credentials[cred_id]
            if cred.tenants == model.STAR or changes.tenants & set(cred.tenants):
                return True
            covered = new.tools.values() if cred.tools == model.STAR else (new.tools[t] for t in cred.tools)
            if any(t.tenancy == "shared" or t.enforced_by == "prompt" for t in covered):
                return True
    return False


def _local_key(case: Case, deployment: model.Deployment) -> tuple:
    """Everything the encoding of allowed(c) sees of a case besides ids: equal keys (with the same
    ids) give the same constraints, so NEW cannot allow a call of the case that OLD refuses."""
    grants = sorted((g.fields is None, g.fields or (), g.when.source if g.when else "", g.approval or "")
                    for g in case.grants)
    return (case.workflow.tenant, len(case.chain) > 1, _tool_key(case.tool), content_key(case.operation),
            content_key(deployment.tenants[case.tenant].attributes), tuple(grants),
            tuple(sorted(d.when.source for d in case.denies)))


def _diff_incremental(old, new, timeout_ms, progress) -> DiffResult:
    """Solve only the NEW cases a change can touch.

    A case (workflow, chain, tool, operation, target tenant) can only gain access when
    something it depends on changed: its workflow, an agent on its chain (delegates_to,
    tenants, credentials, roles), the acting agent's roles (grants, denies, and the gates
    their grants name with those gates' approvers), its credentials, its tool and operation,
    the target tenant, the guardrails or the policy (these two: every case). Definitions are
    compared by :func:`content_key`, so moving a definition to another line changes nothing.
    A touched case whose OLD counterpart has the same conditions (same grants and denies by
    content, same operation, tenant attributes and delegation) is not solved either: the two
    encodings are the same formula. Everything else is solved exactly as the full diff does.
    """
    with progress.stage("diff: comparing definitions"):
        changes = _changes(old, new)
    old_prover = Prover(deployment=old, timeout_ms=timeout_ms)
    new_prover = Prover(deployment=new, timeout_ms=timeout_ms)
    old_cases: dict[tuple[str, str], dict[tuple, Case]] = {}

    def counterpart(case: Case) -> Case | None:
        scope = (case.workflow.id, case.agent)
        if scope not in old_cases:
            old_wf = old.workflows.get(case.workflow.id)
            old_cases[scope] = {} if old_wf is None else {
                _key(c): c for c in prover_module.workflow_cases(old, old_wf, agents={case.agent})}
        return old_cases[scope].get(_key(case))

    def mentions_gate(case: Case) -> bool:
        return any(("call", "gate") in new_prover.refs(c) for c in new_prover.case_conditions(case))

    found: dict[tuple, dict] = {}
    unknown: list[str] = []
    solved = 0
    with progress.stage("diff: cases", total=len(new.workflows)) as stage:
        for wf_id in sorted(new.workflows):
            stage.advance()
            wf = new.workflows[wf_id]
            chains = reach.chains(new, wf)
            whole = changes.everything or wf_id in changes.workflows or wf.tenant in changes.tenants
            touched = {a for a, chain in chains.items() if whole or any(x in changes.agents for x in chain)}
            scan = set(touched)
            if changes.per_case:
                scan |= {a for a in chains if a not in touched and _may_touch(new, changes, wf, new.agents[a])}
            if not scan:
                continue
            for case in prover_module.workflow_cases(new, wf, agents=scan):
                if case.agent not in touched and not (
                        case.tool.id in changes.tools or (case.tool.id, case.operation.id) in changes.operations
                        or case.tenant in changes.tenants or (changes.gate_ids and mentions_gate(case))):
                    continue
                before = counterpart(case)
                same = before is not None and _local_key(before, old) == _local_key(case, new)
                skip_gate = (lambda gate: gate is None or gate in old.gates) if same else (lambda gate: False)
                solved += 1
                _compare(new_prover, old_prover, case, before, found, unknown, skip_gate)
            stage.update(description=f"diff: {solved:,} cases touched")
    return DiffResult(old.paths, new.paths, old.digest, new.digest,
                      tuple(found[k] for k in sorted(found)), tuple(sorted(unknown)))


def _new_only(new_prover: Prover, old_prover: Prover, case: Case, before: Case | None, gate, usable) -> Answer:
    new_enc = new_prover.encode(case, gate, usable)
    constraints = list(new_enc.allowed)
    old_blocked = None
    if before is not None and _same_params(before.operation, case.operation) and (gate is None or gate in
                                                                                   old_prover.d.gates):
        old_usable = tuple(g for g in before.grants if g.approval is None or g.approval == gate)
        if old_usable:
            old_enc = old_prover.encode(before, gate, old_usable)
            extra_fields = [new_enc.flags[f] for f in case.operation.fields if f not in before.operation.fields]
            old_allowed = smt.conjunction(*old_enc.allowed, *(smt.negation(f) for f in extra_fields))
            old_blocked = smt.negation(old_allowed)
    if old_blocked is None and not new_prover.case_conditions(case):
        return Answer("sat", params=_default_params(case.operation), fields=())
    if old_blocked is not None:
        constraints.append(old_blocked)
    solved = smt.solve(constraints, new_prover.timeout_ms)
    if solved.status != "sat":
        return Answer(solved.status, reason=solved.reason)
    values = {n: smt.value_of(solved.model, t, s) for n, (t, s) in new_enc.variables.items()}
    chosen = tuple(sorted(f for f, flag in new_enc.flags.items() if smt.value_of(solved.model, flag, "bool")))
    return Answer("sat", params=values, fields=chosen, region=_region(constraints, new_enc.variables, values))


def _same_params(a: model.Operation, b: model.Operation) -> bool:
    """Whether OLD's encoding can be asked about NEW's params: the same names, each over the same
    solver sort (an enum is a string whose domain is part of `allowed`, so widening or narrowing
    an enum compares value by value). Otherwise no call of NEW's shape is one OLD accepts."""
    def sort(kind: model.ParamType) -> str:
        return "string" if kind.kind == "enum" else kind.kind

    return a.params.keys() == b.params.keys() and all(sort(a.params[n]) == sort(b.params[n]) for n in a.params)


def _witness(new_prover: Prover, old: model.Deployment, old_decider: Decider, new_decider: Decider, case: Case,
             gate, answer: Answer, local_graph: bool = False) -> dict:
    call = Call(case.workflow.id, case.chain, case.tool.id, case.operation.id, case.tenant, answer.fields,
                dict(answer.params), gate)
    decision = new_decider.decide(call)
    if not decision.allow:
        raise ReplayError(f"diff witness {call} is denied by NEW: {decision.reason}")
    old_reason = "OLD has no such access"
    old_wf = old.workflows.get(case.workflow.id)
    old_chain = reach.chains(old, old_wf).get(case.agent) if old_wf else None
    if old_chain is not None:
        before = old_decider.decide(Call(call.workflow, old_chain, call.tool, call.operation, call.tenant,
                                         call.fields, call.params, call.gate))
        if before.allow:
            raise ReplayError(f"diff witness {call} is also allowed by OLD: {before.reason}")
        old_reason = f"OLD refused it: {before.reason}"
    if local_graph:  # the path's edges, from a graph of just the definitions on it
        path = Prover(PermissionGraph(_neighbourhood(new_prover.d, case)), decider=new_decider).path(case, decision)
    else:
        path = new_prover.path(case, decision)
    return {
        "call": call.to_request(new_prover.d),
        "path": [s.to_json() for s in path],
        "location": decision.grant.loc.to_json(),
        "class": {"workflow": case.workflow.id, "agent": case.agent, "tool": case.tool.id,
                  "operation": case.operation.id, "tenant": case.tenant},
        "values": dict(answer.params),
        "region": answer.region or "any parameters",
        "old": old_reason,
        "new": decision.reason,
    }


def _neighbourhood(d: model.Deployment, case: Case) -> model.Deployment:
    """The part of a deployment a witness path walks through: the workflow, the agents on the
    chain with their roles and credentials, the tool, the home and target tenants (and every
    gate and person). Each edge of the permission graph is made from one definition, so these
    edges read exactly as in the whole deployment's graph."""
    agents = {a: d.agents[a] for a in case.chain}
    roles = {r: d.roles[r] for r in d.agents[case.agent].roles}
    credentials = {c: d.credentials[c] for agent in agents.values() for c in agent.credentials}
    tenants = {t: d.tenants[t] for t in sorted({case.tenant, case.workflow.tenant})}
    return dataclasses.replace(d, tenants=tenants, tools={case.tool.id: case.tool}, roles=roles, agents=agents,
                               credentials=credentials, workflows={case.workflow.id: case.workflow}, guardrails=())


def render_text(result: DiffResult) -> str:
    lines = []
    for access in result.new_access:
        c = access["class"]
        lines.append(f"NEW ACCESS: {c['agent']} can call {c['tool']}.{c['operation']} on tenant {c['tenant']} in "
                     f"workflow {c['workflow']} ({access['region']})")
        loc = access["location"]
        lines.append(f"  granted at {loc['file']}:{loc['line']}:{loc['column']}: {access['new']}")
        lines.append(f"  before: {access['old']}")
        for step in access["path"]:
            where = step["location"]
            lines.append(f"    {step['reason']}" + (f"  ({where['file']}:{where['line']}:{where['column']})"
                                                    if where else ""))
    for item in result.unknown:
        lines.append(f"UNDECIDED: {item}")
    summary = result.summary()
    if result.new_access:
        lines.append(f"{summary['new_access']} new access class(es) for {summary['agents']} agent(s) on "
                     f"{summary['tenants']} tenant(s)")
    else:
        lines.append("no new access: NEW allows nothing OLD did not" + (
            f" ({summary['unknown']} case(s) undecided)" if result.unknown else ""))
    return "\n".join(lines) + "\n"
