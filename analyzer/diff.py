"""`agentperm diff OLD NEW`: every access NEW allows that OLD did not, with concrete calls.

An access class is (workflow, acting agent, tool, operation, target tenant). For each
class NEW can reach, the solver looks for params, fields and an approval that NEW allows
and OLD refuses (the same Z3 variables feed both encodings). Conditions only see the
acting agent and whether the call is delegated, so OLD is asked about its own shortest
chain to the same agent. Every reported call is replayed: allowed by NEW's decision
function and refused by OLD's.
"""

from __future__ import annotations

from dataclasses import dataclass

from analyzer import model, reach, smt
from analyzer.decide import Call, Decider
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


def diff(old: model.Deployment, new: model.Deployment, timeout_ms: int = 10_000) -> DiffResult:
    old_prover = Prover(PermissionGraph(old), timeout_ms)
    new_prover = Prover(PermissionGraph(new), timeout_ms)
    old_cases = {(c.workflow.id, c.agent, c.tool.id, c.operation.id, c.tenant): c for c in old_prover.all_cases}
    old_decider, new_decider = old_prover.decider, new_prover.decider
    found: dict[tuple, dict] = {}
    unknown: list[str] = []
    for case in new_prover.all_cases:
        key = (case.workflow.id, case.agent, case.tool.id, case.operation.id, case.tenant)
        if key in found:
            continue
        before = old_cases.get(key)
        for gate in new_prover._gates(case, "any", None):
            usable = tuple(g for g in case.grants if g.approval is None or g.approval == gate)
            if not usable:
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
                found[key] = _witness(new_prover, old, old_decider, new_decider, case, gate, answer)
                break
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
    return dict(a.params) == dict(b.params)


def _witness(new_prover: Prover, old: model.Deployment, old_decider: Decider, new_decider: Decider, case: Case,
             gate, answer: Answer) -> dict:
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
