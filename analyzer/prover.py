"""Invariants over every allowed call (FORMAT §4, §6): PROVED, VIOLATED with witnesses, or UNKNOWN.

The structure (workflows, delegation chains, grants naming an operation, unconditional
denies, credential reach) is enumerated from the model without a solver. What is left
for each case (workflow, chain, tool, operation, target tenant, approving gate) are the
conditions: the grants' and denies' `when`, `high_risk_when`, the invariant's own CEL, over
the call's params and fields. Only those go to Z3 (analyzer.smt), and cases that share a
shape share one solver call. Every witness is replayed through the concrete decision
function before it is reported; one that does not replay is an internal error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

from analyzer import conditions, model, reach, risk, rootcause, smt
from analyzer.cases import (  # noqa: F401 - re-exported: the prover's callers name them here
    EVERY,
    Case,
    Interest,
    case_groups,
    cases,
    estimated_cases,
    group_cases,
    tables,
    workflow_cases,
    workflow_weight,
)
from analyzer.decide import Call, Decider
from analyzer.findings import Finding, InvariantResult
from analyzer.graph import PermissionGraph, Step, node, permission_node
from analyzer.rules import Rule

CROSS_TENANT = "no-cross-tenant-reach"
UNGATED = "no-ungated-high-risk"


class ReplayError(Exception):
    """A solver witness the concrete decision function does not confirm: a bug in agentperm."""


@dataclass
class Question:
    """One satisfiability question about a case with a given gate."""

    case: Case
    gate: str | None
    goal: str  # cross-tenant | ungated | never
    never: model.Condition | None = None


@dataclass
class Encoding:
    """allowed(c) as constraints over a case's params and fields, and the pieces of risk(c)."""

    allowed: list
    variables: dict  # param name → (z3 term, sort)
    flags: dict  # field name → z3 bool (the field is in F)
    declared: str
    high: Any  # z3 term: high_risk_when holds or errs; None when it cannot raise the risk
    call: dict
    params: dict
    tenant: dict

    def risk_term(self):
        if self.high is None:
            return smt.string_term(self.declared)
        return smt.ite(self.high, smt.string_term("high"), smt.string_term(self.declared))


@dataclass
class Answer:
    status: str  # sat | unsat | unknown
    params: dict[str, Any] = field(default_factory=dict)
    fields: tuple[str, ...] = ()
    reason: str | None = None
    region: str | None = None


PARALLEL_THRESHOLD = 5_000  # estimated cases (grant entries per workflow) below which forking surely costs
#: more than it saves, when `--jobs N` is asked for
AUTO_PARALLEL_THRESHOLD = 50_000_000  # the same when `--jobs` is left at its default (the cores): measured on
#: 2 cores, neither L (1.4 million; 3.8 s in one process, 5.1 s in two) nor XL (14 million; 41.1 s against
#: 41.3 s, with 3.9 GB against 6.5 GB of memory) gains from the split, so only larger ones try it


class Event(NamedTuple):
    """What one group of cases (alike but for the target tenant) contributes to an invariant:
    unknown reasons, a witness for each of its tenants, or an error that makes the whole
    invariant UNKNOWN. Plain data, so that worker processes can return it."""

    key: tuple  # the witness classes' (agent, tool, operation); each tenant below makes one class
    tenants: tuple[str, ...] = ()
    unknowns: tuple[str, ...] = ()
    witness: dict | None = None  # a seed: the solver's call for the classes (see Prover.events), not yet replayed
    error: str | None = None
    cause: tuple = ()  # the root cause: ("grant", role, index), ("credential", id) or ("tool", id)


@dataclass
class Merged:
    witnesses: dict[tuple, dict[str, dict]]  # ((agent, tool, operation), cause) → tenant → seed
    unknowns: list[str]
    error: str | None = None


def merge_events(events) -> Merged:
    """Events of consecutive shares of the cases, in case order, as one serial pass would have
    seen them: a case whose class already has a witness is skipped; the first error ends it."""
    witnesses: dict[tuple, dict[str, dict]] = {}
    unknowns: list[str] = []
    for event in events:
        have = witnesses.get((event.key, event.cause))
        new = event.tenants if have is None else [t for t in event.tenants if t not in have]
        if not new:
            continue
        if event.error is not None:
            return Merged(witnesses, unknowns, event.error)
        unknowns.extend(event.unknowns)
        if event.witness is not None:
            if have is None:
                have = witnesses[(event.key, event.cause)] = {}
            have.update(dict.fromkeys(new, event.witness))
    return Merged(witnesses, unknowns)


@dataclass
class _Job:
    rule: Rule
    goal: str
    result: tuple[InvariantResult, list[Finding]] | None = None


class Prover:
    """Proves invariants over one deployment; build once, call :meth:`prove` per rule (or
    :meth:`prove_many` for several, which may split the work across processes).

    ``pg`` may be omitted when ``deployment`` is given: the permission graph (needed only for
    witness paths) and the decision function are then built on first use. ``progress`` (see
    :mod:`analyzer.progress`) hears about case enumeration and proofs; the default is silent.
    ``jobs`` > 1 lets :meth:`prove_many` fork that many worker processes when the deployment
    has more than ``parallel_threshold`` (estimated) cases; the result is the same either way.
    """

    def __init__(self, pg: PermissionGraph | None = None, timeout_ms: int = 10_000, decider: Decider | None = None,
                 *, deployment: model.Deployment | None = None, progress=None, jobs: int = 1,
                 parallel_threshold: int = PARALLEL_THRESHOLD):
        from analyzer import progress as progress_module

        if pg is None and deployment is None:
            raise TypeError("Prover needs a permission graph or a deployment")
        self._pg = pg
        self.d = pg.deployment if pg is not None else deployment
        self._decider = decider
        self.timeout_ms = timeout_ms
        self.progress = progress or progress_module.NULL
        self.jobs = max(1, jobs)
        self.parallel_threshold = parallel_threshold
        self._cases: list[Case] | None = None
        self._refs: dict[int, frozenset] = {}
        self._cache: dict[tuple, Answer] = {}
        self._signatures: dict[int, tuple] = {}
        self._statics: dict[tuple, tuple] = {}
        self._mentions_gate: dict[tuple, bool] = {}
        self._alive: dict[int, object] = {}
        self._blind: dict[tuple, tuple] = {}
        self._outcomes: dict[tuple, tuple] = {}

    @property
    def pg(self) -> PermissionGraph:
        if self._pg is None:
            self._pg = PermissionGraph(self.d)
        return self._pg

    @property
    def decider(self) -> Decider:
        if self._decider is None:
            self._decider = Decider(self.d)
        return self._decider

    @cached_property
    def unreal_gates(self) -> list[str]:
        return sorted(tables(self.d).unreal)

    @property
    def all_cases(self) -> list[Case]:
        if self._cases is None:
            self._cases = self._enumerate(sorted(self.d.workflows))
        return self._cases

    def _enumerate(self, workflow_ids: list[str], interest: Interest = EVERY) -> list[Case]:
        found: list[Case] = []
        with self.progress.stage("proofs: enumerating cases", total=len(workflow_ids)) as stage:
            for index, wf_id in enumerate(workflow_ids, 1):
                found.extend(workflow_cases(self.d, self.d.workflows[wf_id], interest=interest))
                if index % 64 == 0:
                    stage.advance(64)
            stage.update(completed=len(workflow_ids))
        return found

    # ---- the rule interface (analysis.analyze calls this) ------------------------------------
    def __call__(self, pg: PermissionGraph, rule: Rule) -> tuple[InvariantResult, list[Finding]]:
        return self.prove(rule)

    def prove(self, rule: Rule) -> tuple[InvariantResult, list[Finding]]:
        return self.prove_many([rule])[0]

    def prove_many(self, rules: list[Rule]) -> list[tuple[InvariantResult, list[Finding]]]:
        """Each rule's result, in the given order; the same whatever ``jobs`` is."""
        jobs = [self._job(rule) for rule in rules]
        pending = [job for job in jobs if job.result is None]
        if pending:
            merged = None
            if self.jobs > 1 and self._cases is None and estimated_cases(self.d) > self.parallel_threshold:
                from analyzer import parallel

                try:
                    merged = parallel.prove_split(self, pending)
                except Exception as exc:  # noqa: BLE001 - any pool trouble: do the same work here
                    self.progress.note(f"parallel proofs failed ({type(exc).__name__}: {exc}); proving serially")
                    merged = None
            if merged is None:
                try:
                    merged = self._prove_serial(pending)
                except Exception as exc:  # noqa: BLE001 - fail closed: never a pass
                    reason = f"internal error in the prover: {type(exc).__name__}: {exc}"
                    merged = [[Event((), (), None, reason)] for _ in pending]
            for job, events in zip(pending, merged):
                job.result = self._conclude(job, events)
        return [job.result for job in jobs]

    def _job(self, rule: Rule) -> _Job:
        if rule.never is not None:
            goal = "never"
        elif rule.check == CROSS_TENANT:
            goal = "cross-tenant"
        elif rule.check == UNGATED:
            goal = "ungated"
        else:  # pragma: no cover - rules.py only routes invariants here
            return _Job(rule, "", (InvariantResult(rule.id, "unknown", reason=f"internal error in the prover: "
                                                   f"{rule.id} is not an invariant"), []))
        if goal == "ungated" and self.d.policy.require_approval == "none":
            return _Job(rule, goal, (InvariantResult(rule.id, "proved", reason="policy.require_approval is none: no "
                                                     "call needs approval (see approval-disabled)"), []))
        return _Job(rule, goal)

    def _prove_serial(self, jobs: list[_Job]) -> list[list[Event]]:
        if self._cases is not None:
            groups = list(group_cases(self._cases))
        else:
            with self.progress.stage("proofs: enumerating cases", total=len(self.d.workflows)) as stage:
                groups = list(case_groups(self.d, interest=Interest.of_goals(job.goal for job in jobs)))
                stage.update(completed=len(self.d.workflows))
        total = sum(len(tenants) for _, tenants in groups)
        results = []
        with self.progress.stage(f"proofs: {total:,} cases", total=total * len(jobs)) as stage:
            for job in jobs:
                results.append(self.events(job.goal, job.rule.never, groups, stop_on_error=True, stage=stage))
        return results

    def events(self, goal: str, never: model.Condition | None, groups, stop_on_error: bool = False,
               stage=None) -> list[Event]:
        """What each group of cases (:func:`analyzer.cases.case_groups`) contributes to one
        invariant, in case order: unknown reasons and witnesses (or the error it raised).

        The cases of a group differ only in the target tenant. Tenants alike in everything the
        question's conditions can see of them (nothing, or the same values of the attributes they
        read) and on the same side of the workflow's own share one answer (the solver cache would
        give it anyway), so it is asked once for them all. A class met again later (an agent
        acting in several workflows) is asked again; :func:`merge_events` keeps the first answer."""
        found: list[Event] = []
        done = 0
        t = tables(self.d)
        cross = goal == "cross-tenant"
        unreal = t.unreal
        for case, tenants in groups:
            done += len(tenants)
            if stage is not None and done >= 1024:
                stage.advance(done)
                done = 0
            home = case.workflow.tenant
            if cross:
                if home in tenants:
                    tenants = tuple(x for x in tenants if x != home)
                    if not tenants:
                        continue
            elif goal == "ungated" and not t.may_need_approval(case.operation):
                continue  # every gate it would try answers unsat (see Interest)
            key = (case.agent, case.tool.id, case.operation.id)
            if cross:  # one question over every grant; the cause is what reaches each tenant
                parts = [(case, self.tenant_causes_of(case, tenants))]
            else:  # one question per grant: each grant that lets a violating call through is a cause of it
                grants = case.grants
                if goal == "ungated":  # a grant behind a real gate lets no call through without its approval
                    grants = [g for g in grants if g.approval is None or g.approval in unreal]
                    if not grants:
                        continue
                if len(tenants) == 1:
                    grants = self._remembered(goal, never, key, case, tenants, grants, found)
                parts = [(Case(case.workflow, case.chain, case.tool, case.operation, case.tenant, (g,), case.denies),
                          [(("grant", g.owner, g.index), tenants)]) for g in grants]
            for part, caused in parts:
                view, free = self._blindness(part, never)
                if len(tenants) == 1:
                    subgroups = [tenants]
                elif view == ():
                    foreign = tuple(x for x in tenants if x != home)
                    subgroups = [foreign] if len(foreign) == len(tenants) else [(home,), foreign] if foreign else [(home,)]
                elif view is None:
                    subgroups = [(x,) for x in tenants]
                else:  # tenants alike in what the conditions see of them share an answer
                    alike: dict[tuple, list] = {}
                    attributes = self.d.tenants
                    for x in tenants:
                        seen = attributes[x].attributes
                        alike.setdefault((x == home, *(_hashable(seen.get(n, _MISSING)) for n in view)), []).append(x)
                    subgroups = [tuple(xs) for xs in alike.values()]
                for sub in subgroups:
                    one = part if part.tenant == sub[0] else Case(part.workflow, part.chain, part.tool,
                                                                   part.operation, sub[0], part.grants, part.denies)
                    if self._one(goal, never, key, one, sub, caused, found, free) and stop_on_error:
                        return found
        if stage is not None and done:
            stage.advance(done)
        return found

    def _remembered(self, goal, never, key, case: Case, tenants: tuple, grants: list, found: list) -> list:
        """The events of the grants whose question :meth:`_one` already answered for a case alike
        (conditions that see neither the call nor the tenant, the same side of the workflow's
        tenant): appended without building the case again. The grants left to ask are returned."""
        side = tenants[0] == case.workflow.tenant
        tail = (None, *map(id, case.denies))
        head = (id(never), id(case.operation))
        seeds: dict[int, dict] = {}
        left = []
        for g in grants:
            memo_key = (*head, id(g), *tail)
            blind = self._blind.get(memo_key)
            outcome = self._outcomes.get((goal, *memo_key, side)) if blind is not None and blind[1] else None
            if outcome is None:
                left.append(g)
            elif outcome[1] is not None:
                seed = seeds.get(id(outcome))
                if seed is None:
                    seed = seeds[id(outcome)] = self._seed(case, outcome)
                found.append(Event(key, tenants, (), seed, None, ("grant", g.owner, g.index)))
        return left

    @staticmethod
    def _seed(case: Case, outcome: tuple) -> dict:
        gate, answer = outcome
        return {"workflow": case.workflow.id, "chain": list(case.chain), "gate": gate,
                "params": dict(answer.params), "fields": list(answer.fields), "region": answer.region}

    def _one(self, goal, never, key, case: Case, sub: tuple, caused: list, found: list, free: bool) -> bool:
        """Ask one case's questions for the tenants ``sub`` (which share its answer); append the
        events. True when it ended in an error. ``free``: no condition of the case sees the call
        or the tenant (:meth:`_blindness`)."""
        unknowns: list[str] = []
        # a question none of whose conditions sees the call or the tenant has one answer for every
        # workflow, chain and tenant on the same side of the workflow's own: remembered here
        memo_key = (goal, id(never), id(case.operation), *map(id, case.grants), None, *map(id, case.denies),
                    case.tenant == case.workflow.tenant) if free else None  # as _remembered looks it up
        outcome = self._outcomes.get(memo_key) if free else None
        try:
            if outcome is None:
                for gate in self._gates(case, goal, never):
                    answer = self.ask(Question(case, gate, goal, never))
                    if answer.status == "unknown":
                        via = f" ({case.grants[0].label})" if goal != "cross-tenant" else ""
                        unknowns.extend(f"{case.workflow.id}/{case.agent}/{case.operation.qualified}/{x}{via}: "
                                        f"{answer.reason}" for x in sub)
                        continue
                    if answer.status == "sat":
                        outcome = (gate, answer)
                        break
                if free and not unknowns:
                    self._outcomes[memo_key] = outcome or (None, None)
        except smt.Unsupported as exc:
            found.append(Event(key, sub, tuple(unknowns), None, exc.reason, caused[0][0]))
            return True
        except Exception as exc:  # noqa: BLE001 - fail closed: never a pass
            found.append(Event(key, sub, tuple(unknowns), None,
                               f"internal error in the prover: {type(exc).__name__}: {exc}", caused[0][0]))
            return True
        if outcome is not None and outcome[1] is not None:
            seed = self._seed(case, outcome)
            for cause, ts in caused:
                if ts is sub or len(caused) == 1 and len(ts) == len(sub):
                    hit = sub
                elif len(sub) == 1:
                    hit = sub if sub[0] in ts else ()
                else:
                    inside = set(ts)
                    hit = tuple(x for x in sub if x in inside)
                if hit:
                    found.append(Event(key, hit, tuple(unknowns), seed, None, cause))
                    unknowns = []
        elif unknowns:
            found.append(Event(key, sub, tuple(unknowns), None, None, caused[0][0]))
        return False

    def _blindness(self, case: Case, never: model.Condition | None) -> tuple[tuple[str, ...] | None, bool]:
        """What the case's conditions see of the target tenant — () nothing, the names of the
        attributes they read, or None when they see its id (or the whole call or tenant) — and
        whether they see nothing of the call or the tenant at all."""
        memo_key = (id(never), id(case.operation), *map(id, case.grants), None, *map(id, case.denies))
        found = self._blind.get(memo_key)
        if found is None:
            refs = [(root, name) for cond in self.case_conditions(case, never) for root, name in self.refs(cond)]
            if any(root == "call" and name in (None, "tenant") or root == "tenant" and name in (None, "id")
                   for root, name in refs):
                view = None
            else:
                view = tuple(sorted({name for root, name in refs if root == "tenant"}))
            found = (view, not any(root in ("tenant", "call") for root, _ in refs))
            self._blind[memo_key] = found
            self._alive[id(never)] = never
        return found

    def _conclude(self, job: _Job, events: list[Event]) -> tuple[InvariantResult, list[Finding]]:
        """One finding per root cause, with witnesses built (replayed, with a path) only for its
        few representatives; every witness class stays in the result, as a compact record."""
        rule = job.rule
        merged = merge_events(events)
        if merged.error is not None:
            return InvariantResult(rule.id, "unknown", reason=merged.error), []
        seeds, unknowns = merged.witnesses, merged.unknowns
        by_cause: dict[tuple, dict[tuple, dict[str, dict]]] = {}
        for (key, cause), tenants in seeds.items():
            by_cause.setdefault(cause, {})[key] = tenants
        findings, examples = [], []
        try:
            for cause in sorted(by_cause):
                classes = by_cause[cause]
                # every representative is replayed; only the first, which the finding prints, gets a path
                chosen = [self.witness_of(job, cause, cls, seed, with_path=not number)
                          for number, (cls, seed) in enumerate(representatives(classes))]
                examples.append(chosen[0])
                findings.append(self.root_finding(rule, cause, classes, chosen))
        except Exception as exc:  # noqa: BLE001 - fail closed: never a pass
            return InvariantResult(rule.id, "unknown",
                                   reason=f"internal error in the prover: {type(exc).__name__}: {exc}"), []
        if seeds:
            records = rootcause.WitnessClasses(seeds, self.d)
            reason = f"{len(records)} witness class(es), {len(by_cause)} root cause(s)"
            if unknowns:
                reason += f"; also undecided: {unknowns[0]}" + (f" (+{len(unknowns) - 1} more)" if len(unknowns) > 1
                                                                  else "")
            examples.sort(key=lambda w: (tuple(w["class"].values()), w["cause"]))
            return InvariantResult(rule.id, "violated", tuple(examples), reason, records), findings
        if unknowns:
            more = f" (+{len(unknowns) - 1} more)" if len(unknowns) > 1 else ""
            return InvariantResult(rule.id, "unknown", reason=unknowns[0] + more), []
        return InvariantResult(rule.id, "proved"), []

    def tenant_causes_of(self, case: Case, tenants: tuple[str, ...]) -> list[tuple[tuple, tuple[str, ...]]]:
        """What lets a call reach each of ``tenants`` (others than the workflow's): the tool itself
        when it keeps one store or trusts the prompt, else each credential of the agent that
        reaches the tenant. As (cause, the tenants it reaches),
        causes in the agent's order of credentials, tenants in the given order."""
        tool = case.tool
        if tool.tenancy == "shared" or tool.enforced_by == "prompt":
            return [(("tool", tool.id), tenants)]
        found, left = [], set(tenants)
        for cred_id in self.d.agents[case.agent].credentials:
            cred = self.d.credentials.get(cred_id)
            if cred is None or not cred.covers(tool.id):
                continue
            within = reach.reach_of(self.d, cred, tool, case.workflow)
            reached = tenants if within.issuperset(tenants) else tuple(x for x in tenants if x in within)
            if reached:
                found.append((("credential", cred_id), reached))
                left.difference_update(reached)
        if left:
            found.append((("tool", tool.id), tuple(x for x in tenants if x in left)))
        return found

    def witness_of(self, job: _Job, cause: tuple, cls: tuple, seed: dict, with_path: bool = True) -> dict:
        """The witness of one class of a root cause, replayed through decide (with its path, if asked)."""
        _agent, tool_id, op_id, tenant = cls
        tool = self.d.tools[tool_id]
        case = Case(self.d.workflows[seed["workflow"]], tuple(seed["chain"]), tool, tool.operations[op_id], tenant,
                    (), ())
        answer = Answer("sat", params=seed["params"], fields=tuple(seed["fields"]), region=seed["region"])
        witness = self.witness(Question(case, seed["gate"], job.goal, job.rule.never), answer, cause, with_path)
        witness["cause"] = rootcause.cause_subject(cause)
        return witness

    def root_finding(self, rule: Rule, cause: tuple, classes: dict[tuple, dict], examples: list[dict]) -> Finding:
        return rootcause.finding(self.d, rule, cause, classes, examples)

    def _gates(self, case: Case, goal: str, never: model.Condition | None) -> list[str | None]:
        """The approvals worth trying: a grant only distinguishes none, its own gate, and others."""
        gates: list[str | None] = [None]
        memo_key = (id(never), id(case.operation), *map(id, case.grants), None, *map(id, case.denies))
        mentions_gate = self._mentions_gate.get(memo_key)
        if mentions_gate is None:
            mentions_gate = any(("call", "gate") in self.refs(c) for c in self.case_conditions(case, never))
            self._mentions_gate[memo_key] = mentions_gate
            # the operation and permissions live as long as the deployment; the invariant's own
            # condition is kept here, so that its id is not reused while the memo lives
            self._alive[id(never)] = never
        if goal == "ungated":
            unreal = self.unreal_gates
            if mentions_gate:
                return gates + unreal
            return gates + sorted({g.approval for g in case.grants if g.approval in unreal})
        if mentions_gate:
            return gates + sorted(self.d.gates)
        return gates + sorted({g.approval for g in case.grants if g.approval})

    def case_conditions(self, case: Case, never: model.Condition | None = None) -> list[model.Condition]:
        found = [g.when for g in case.grants if g.when] + [d.when for d in case.denies if d.when]
        if case.operation.high_risk_when:
            found.append(case.operation.high_risk_when)
        if never is not None:
            found.append(never)
        return found

    def refs(self, cond: model.Condition) -> frozenset:
        key = id(cond)
        if key not in self._refs:
            self._refs[key] = conditions.references(cond.expr)
        return self._refs[key]

    # ---- one question -------------------------------------------------------------------------
    def call_constants(self, case: Case, gate: str | None) -> dict:
        return {"agent": case.agent, "tool": case.tool.id, "operation": case.operation.id,
                "effect": case.operation.effect, "workflow": case.workflow.id, "tenant": case.tenant,
                "home": case.workflow.tenant, "gate": gate, "delegated": len(case.chain) > 1}

    def shape_key(self, question: Question, usable: tuple[model.Permission, ...], symbolic: bool = False) -> tuple:
        """Cases that agree on everything their conditions can see share one solver answer.

        With ``symbolic``, tenant attributes count only by type: the key of a question asked
        for every tenant at once (an attribute is then any value of its type)."""
        case = question.case
        static = self._static_shape(question, usable)
        seen = []
        if static[1]:
            call = self.call_constants(case, question.gate)
            tenant = self.d.tenants[case.tenant]
            for root, name in static[1]:
                if root == "call" and name is not None:
                    seen.append(("call", name, call.get(name)))
                elif root == "call" or root == "tenant" and name is None:
                    seen.append((root, None, case.tenant, case.agent, case.workflow.id, question.gate, case.tool.id,
                                 case.operation.id))
                else:
                    value = case.tenant if name == "id" else tenant.attributes.get(name, _MISSING)
                    seen.append(("tenant", name, type(value).__name__ if symbolic and value is not _MISSING
                                 else _hashable(value)))
        return (symbolic, static[0], case.tenant == case.workflow.tenant, tuple(seen))

    def _static_shape(self, question: Question, usable: tuple[model.Permission, ...]) -> tuple:
        """The part of a shape key that depends only on the grants, denies, operation and
        invariant (remembered by their identity), and the call and tenant references of their
        conditions, in order."""
        case = question.case
        memo_key = (question.goal, id(question.never), id(case.operation), *map(id, usable), None,
                    *map(id, case.denies))
        found = self._statics.get(memo_key)
        if found is None:
            refs = []
            for cond in self.case_conditions(case, question.never):
                for root, name in sorted(self.refs(cond), key=lambda r: (r[0], r[1] or "")):
                    if root in ("call", "tenant"):
                        refs.append((root, name))
            declared = risk.declared_risk(case.operation, self.d.policy)
            static = (question.goal, id(question.never), self.op_signature(case.tool, case.operation),
                      # grants and denies count by what the solver sees of them, so identical grants of
                      # different roles (the common case in large deployments) share one answer
                      tuple(sorted({(g.when.source if g.when else "", g.fields is None, g.fields or ())
                                    for g in usable})),
                      tuple(sorted({d.when.source for d in case.denies})), declared)
            # the operation and permissions are kept alive with the memo, so their ids stay theirs
            found = self._statics[memo_key] = (static, tuple(refs), case.operation, usable, case.denies)
        return found

    def op_signature(self, tool: model.Tool, op: model.Operation) -> tuple:
        """What the encoding of a case sees of its tool and operation (their ids only through the
        conditions, which the shape key adds): operations of different tools declared alike
        (billing-007.refund, billing-013.refund) share one solver answer."""
        found = self._signatures.get(id(op))
        if found is None or found[0] is not op:
            params = tuple((name, kind.kind, kind.values) for name, kind in sorted(op.params.items()))
            found = self._signatures[id(op)] = (op, (
                params, op.fields, tool.enforced_by, op.high_risk_when.source if op.high_risk_when else None,
                risk.declared_risk(op, self.d.policy)))
        return found[1]

    def ask(self, question: Question) -> Answer:
        case = question.case
        usable = tuple(g for g in case.grants if g.approval is None or g.approval == question.gate)
        if not usable:
            return Answer("unsat")
        key = self.shape_key(question, usable)
        cached = self._cache.get(key)
        if cached is None:
            if self._sees_tenant(question):
                # first for every tenant at once: when no tenant's attributes can open a hole, none can
                general_key = self.shape_key(question, usable, symbolic=True)
                general = self._cache.get(general_key)
                if general is None:
                    general = self._solve(question, usable, symbolic=True)
                    self._cache[general_key] = general
                if general.status == "unsat":
                    cached = general
            if cached is None:
                cached = self._solve(question, usable)
            self._cache[key] = cached
        return cached

    def _sees_tenant(self, question: Question) -> bool:
        return any(root == "tenant" and name is not None
                   for cond in self.case_conditions(question.case, question.never)
                   for root, name in self.refs(cond))

    def encode(self, case: Case, gate: str | None, usable: tuple[model.Permission, ...],
               symbolic: bool = False) -> Encoding:
        """allowed(c) and risk(c) for a case and gate, over Z3 variables for its params and fields
        (and, with ``symbolic``, for the target tenant's id and attributes)."""
        op = case.operation
        params = {}
        variables = {}
        domains = []
        for name, kind in sorted(op.params.items()):
            if kind.kind == "int":
                term = smt.int_var(f"p.{name}")
                params[name] = smt.V("int", term)
                domains.append(smt.int64_domain(term))
            elif kind.kind == "bool":
                term = smt.bool_var(f"p.{name}")
                params[name] = smt.V("bool", term)
            else:
                term = smt.string_var(f"p.{name}")
                params[name] = smt.V("string", term)
                if kind.kind == "enum":
                    domains.append(smt.enum_domain(term, kind.values))
            variables[name] = (term, "string" if kind.kind == "enum" else kind.kind)
        flags = {name: smt.bool_var(f"f.{name}") for name in op.fields}
        tenant = {**self.d.tenants[case.tenant].attributes, "id": case.tenant}
        call = self.call_constants(case, gate)
        symbols = {name: smt.symbol(f"t.{name}", value) for name, value in tenant.items()} if symbolic else None
        env = smt.Env(call, params, flags, tenant, tenant_symbols=symbols)
        grant_terms = []
        for grant in usable:
            parts = []
            if grant.fields is not None and case.tool.enforced_by != "prompt":
                parts.extend(smt.negation(flags[f]) for f in op.fields if f not in grant.fields)
            if grant.when is not None:
                parts.append(smt.holds(smt.translate(grant.when.expr, env)))
            grant_terms.append(smt.conjunction(*parts))
        allowed = list(domains)
        allowed.append(smt.disjunction(grant_terms))
        for deny in case.denies:
            allowed.append(smt.negation(smt.holds_or_errors(smt.translate(deny.when.expr, env))))
        declared = risk.declared_risk(op, self.d.policy)
        high = None
        if op.high_risk_when is not None and declared != "high":
            high = smt.holds_or_errors(smt.translate(op.high_risk_when.expr, env))
        return Encoding(allowed, variables, flags, declared, high, call, params, tenant)

    def _solve(self, question: Question, usable: tuple[model.Permission, ...], symbolic: bool = False) -> Answer:
        case = question.case
        op = case.operation
        policy = self.d.policy
        declared = risk.declared_risk(op, policy)
        can_raise = op.high_risk_when is not None and declared != "high"
        if question.goal == "ungated" and not tables(self.d).may_need_approval(op):
            return Answer("unsat")  # no call of this operation ever needs approval
        conditional = any(g.when for g in usable) or bool(case.denies) or question.never is not None or (
            question.goal == "ungated" and can_raise and not risk.needs_approval(declared, policy))
        if not conditional:
            return Answer("sat", params=_default_params(op), fields=())
        enc = self.encode(case, question.gate, usable, symbolic)
        constraints = list(enc.allowed)
        if question.goal == "ungated":
            if risk.needs_approval(declared, policy):
                pass
            elif enc.high is not None and risk.needs_approval("high", policy):
                constraints.append(enc.high)
            else:
                return Answer("unsat")
        elif question.goal == "never":
            env_risk = smt.Env(enc.call, enc.params, enc.flags, enc.tenant,
                               extra_call={"risk": smt.V("string", enc.risk_term())})
            constraints.append(smt.holds(smt.translate(question.never.expr, env_risk)))
        solved = smt.solve(constraints, self.timeout_ms)
        if solved.status != "sat" or symbolic:
            return Answer(solved.status, reason=solved.reason)
        values = {name: smt.value_of(solved.model, term, sort) for name, (term, sort) in enc.variables.items()}
        chosen = tuple(sorted(f for f, flag in enc.flags.items() if smt.value_of(solved.model, flag, "bool")))
        return Answer("sat", params=values, fields=chosen, region=_region(constraints, enc.variables, values))

    def symbolic_decision(self, call: Call) -> tuple[bool, str | None]:
        """What the Z3 encoding says of one concrete call: (allowed, risk). For differential tests."""
        wf = self.d.workflows.get(call.workflow)
        if wf is None or not call.chain or reach.chains(self.d, wf).get(call.chain[-1]) is None:
            return False, None
        if call.gate is not None and call.gate not in self.d.gates:
            return False, None
        matching = [c for c in self.all_cases if c.workflow.id == wf.id and c.agent == call.chain[-1]
                    and c.tool.id == call.tool and c.operation.id == call.operation and c.tenant == call.tenant]
        if not matching or not self._valid_chain(wf, call.chain):
            return False, None
        case = matching[0]
        case = Case(case.workflow, tuple(call.chain), case.tool, case.operation, case.tenant, case.grants,
                    case.denies)
        op = case.operation
        if set(call.fields) - set(op.fields) or len(set(call.fields)) != len(call.fields):
            return False, None
        params = call.params or {}
        if set(params) != set(op.params) or not all(op.params[k].accepts(v) for k, v in params.items()):
            return False, None
        usable = tuple(g for g in case.grants if g.approval is None or g.approval == call.gate)
        if not usable:
            return False, None
        enc = self.encode(case, call.gate, usable)
        pins = [smt.pin(term, params[name], sort) for name, (term, sort) in enc.variables.items()]
        pins += [smt.pin(flag, name in call.fields, "bool") for name, flag in enc.flags.items()]
        allowed = smt.solve(enc.allowed + pins, self.timeout_ms)
        if allowed.status == "unknown":
            raise smt.Unsupported(allowed.reason or "unknown")
        if allowed.status != "sat":
            return False, None
        level = enc.declared
        if enc.high is not None and smt.solve([enc.high] + pins, self.timeout_ms).status == "sat":
            level = "high"
        return True, level

    def grant_region(self, wf: model.Workflow, chain: tuple[str, ...], tool: model.Tool, op: model.Operation,
                     tenant: str, grant: model.Permission) -> tuple[str, str]:
        """Where one grant lets the call through, after conditional denies and guardrails.

        Returns (status, text): status is always, some, never or unknown; text reads like
        "1 <= amount <= 50".
        """
        agent = self.d.agents[chain[-1]]
        denies = tuple(d for d in reach.denies_for(self.d, agent, wf.tenant, tool.id, op.id) if d.when is not None)
        if grant.when is None and not denies:
            return "always", "any parameters"
        case = Case(wf, chain, tool, op, tenant, (grant,), denies)
        try:
            enc = self.encode(case, grant.approval, (grant,))
        except smt.Unsupported as exc:
            return "unknown", f"undecided: {exc.reason}"
        solved = smt.solve(enc.allowed, self.timeout_ms)
        if solved.status == "unsat":
            return "never", "no parameters: its conditions exclude every call"
        if solved.status != "sat":
            return "unknown", f"undecided: {solved.reason}"
        example = {n: smt.value_of(solved.model, t, s) for n, (t, s) in enc.variables.items()}
        return "some", _region(enc.allowed, enc.variables, example) or "some parameters"

    def _valid_chain(self, wf: model.Workflow, chain) -> bool:
        if chain[0] != wf.agent or len(set(chain)) != len(chain):
            return False
        for index, agent_id in enumerate(chain):
            agent = self.d.agents.get(agent_id)
            if agent is None or not agent.serves(wf.tenant):
                return False
            if index and agent_id not in self.d.agents[chain[index - 1]].delegates_to:
                return False
        return True

    # ---- witnesses ----------------------------------------------------------------------------
    def witness(self, question: Question, answer: Answer, cause: tuple = (), with_path: bool = True) -> dict:
        case = question.case
        call = Call(case.workflow.id, case.chain, case.tool.id, case.operation.id, case.tenant, answer.fields,
                    dict(answer.params), question.gate)
        decision = self.decider.decide(call)
        if not decision.allow:
            raise ReplayError(f"the solver's call {call.to_request(self.d)} is denied by the decision function: "
                              f"{decision.reason}")
        if question.goal == "ungated" and (not risk.needs_approval(decision.risk, self.d.policy)
                                           or self.d.is_real_gate(question.gate)):
            raise ReplayError(f"the solver's call {call.to_request(self.d)} does not need approval "
                              f"concretely (risk {decision.risk})")
        if question.goal == "cross-tenant" and case.tenant == case.workflow.tenant:  # pragma: no cover
            raise ReplayError("a cross-tenant witness targets the workflow's own tenant")
        if question.goal == "never":
            wf = case.workflow
            env = self.decider.env(call, wf, case.operation)
            env["call"]["risk"] = decision.risk
            try:
                value = conditions.evaluate(question.never.expr, env)
            except conditions.CelEvalError as exc:
                value = exc
            if value is not True:
                raise ReplayError(f"the solver's call {call.to_request(self.d)} does not satisfy "
                                  f"{question.never.source} concretely ({value!r})")
        grant, credential = decision.grant, decision.credential
        if cause and cause[0] == "grant":  # the path goes through the grant the finding is about
            grant = self.d.roles[cause[1]].grants[cause[2]]
        elif cause and cause[0] == "credential":
            credential = cause[1]
        extra = {}
        if with_path:
            extra["path"] = [s.to_json() for s in self.path(case, decision, grant, credential)]
        if question.gate is not None and not self.d.is_real_gate(question.gate):
            extra["note"] = (f"gate {question.gate} has no person among its approvers: the policy lets its approval "
                    "through, while the decision API counts an approval by anyone but a listed person as none")
        return {
            **extra,
            "call": call.to_request(self.d),
            "location": grant.loc.to_json(),
            "class": {"agent": case.agent, "tool": case.tool.id, "operation": case.operation.id,
                      "tenant": case.tenant},
            "values": dict(answer.params),
            "region": answer.region or "any parameters",
            "risk": decision.risk,
            "decision": decision.reason,
        }

    def path(self, case: Case, decision, grant: model.Permission | None = None,
             credential: str | None = None) -> list[Step]:
        pg = self.pg
        wf = case.workflow
        steps = [pg.step(node("workflow", wf.id), node("agent", case.chain[0]), "runs")]
        steps += [pg.step(node("agent", a), node("agent", b), "delegates-to") for a, b in zip(case.chain, case.chain[1:])]
        grant = grant or decision.grant
        steps.append(pg.step(node("agent", case.agent), node("role", grant.owner), "has-role"))
        steps.append(pg.step(node("role", grant.owner), permission_node(grant), "grants"))
        steps.append(pg.step(permission_node(grant), node("operation", case.operation.qualified), "allows"))
        cred = self.d.credentials[credential or decision.credential]
        steps.append(pg.step(node("agent", case.agent), node("credential", cred.id), "holds"))
        target = node("tenant", case.tenant)
        if pg.has_edge(node("credential", cred.id), target, "reaches") and case.tool.tenancy == "per-tenant" \
                and case.tool.enforced_by == "server":
            steps.append(pg.step(node("credential", cred.id), target, "reaches"))
        else:
            steps.append(Step(node("credential", cred.id), target, "reaches",
                              f"{reach.reach_reason(cred, case.tool)}, so {cred.id} reaches {case.tenant}",
                              case.tool.loc))
        return steps


_MISSING = object()

#: representatives per root cause: one per distinct tool/operation, at most this many
EXAMPLES_CAP = 8


def representatives(classes: dict[tuple, dict[str, dict]]) -> list[tuple[tuple, dict]]:
    """The first class (in sorted order) of each distinct tool/operation, capped, with its seed.

    ``classes`` maps (agent, tool, operation) to each tenant's seed."""
    seen, chosen = set(), []
    for key in sorted(classes):
        if (key[1], key[2]) not in seen:
            seen.add((key[1], key[2]))
            tenants = classes[key]
            tenant = min(tenants)
            chosen.append(((*key, tenant), tenants[tenant]))
            if len(chosen) == EXAMPLES_CAP:
                break
    return chosen


def _hashable(value):
    return value if not isinstance(value, (list, dict)) else repr(value)


def _default_params(op: model.Operation) -> dict:
    """Some well-typed value for every declared param (used when no condition looks at params)."""
    values = {}
    for name, kind in sorted(op.params.items()):
        values[name] = {"int": 0, "bool": False, "string": "x"}.get(kind.kind) if kind.kind != "enum" else kind.values[0]
    return values


def _region(constraints, variables, example: dict) -> str | None:
    """The range of each integer param over the whole violating region (`101 <= amount <= 500`);
    other params are shown by the solver's example."""
    parts = []
    for name, (term, sort) in sorted(variables.items()):
        if sort != "int":
            parts.append(f"{name} = {json.dumps(example[name])} for example")
            continue
        low, high = smt.bounds(constraints, term)
        if low != high:  # an end of the 64-bit domain bounds every int: it says nothing of the condition
            low = None if low == model.INT64_MIN else low
            high = None if high == model.INT64_MAX else high
        if low is None and high is None:
            continue
        if low is not None and high is not None:
            parts.append(f"{low} <= {name} <= {high}" if low != high else f"{name} == {low}")
        elif low is not None:
            parts.append(f"{name} >= {low}")
        else:
            parts.append(f"{name} <= {high}")
    return ", ".join(parts) if parts else None
