"""One path for data: deployment → graph → (structural checks, prover) → CheckResult."""

from __future__ import annotations

import traceback

from analyzer import loader, model
from analyzer.checks import STRUCTURAL_CHECKS
from analyzer.errors import Diagnostic, InputError
from analyzer.findings import SEVERITY_RANK, CheckResult, Finding, InvariantResult
from analyzer.gcpause import paused_gc
from analyzer.graph import PermissionGraph
from analyzer.rules import Rule


def validate_rules_against(deployment: model.Deployment, rules: dict[str, Rule]) -> None:
    """`never:` invariants may name only call fields, declared params and tenant attributes."""
    problems: list[Diagnostic] = []
    attributes = {k for t in deployment.tenants.values() for k in t.attributes}
    operations = [op for _, op in deployment.all_operations()]
    for rule in rules.values():
        if rule.enabled and rule.never is not None:
            loader.check_references(rule.never, operations, attributes, model.INVARIANT_CALL_FIELDS,
                                    lambda loc, message, hint=None: problems.append(Diagnostic(loc, message, hint)))
    if problems:
        raise InputError(problems)


def analyze(deployment: model.Deployment, rules: dict[str, Rule], graph: PermissionGraph | None = None,
            prover=None, progress=None, jobs: int = 1, parallel_threshold: int | None = None) -> CheckResult:
    """Run every enabled rule; a rule that raises is reported as unknown, never as a pass.

    ``progress`` (:mod:`analyzer.progress`) hears about the graph, rules and proofs stages
    (silent by default); ``jobs`` > 1 lets the prover split proofs across processes when they
    are estimated larger than ``parallel_threshold`` cases (default: the prover's)."""
    from analyzer import progress as progress_module

    with paused_gc():
        return _analyze(deployment, rules, graph, prover, progress or progress_module.NULL, jobs, parallel_threshold)


def _analyze(deployment, rules, graph, prover, progress, jobs, parallel_threshold) -> CheckResult:
    validate_rules_against(deployment, rules)
    if graph is None:
        with progress.stage("graph"):
            graph = PermissionGraph(deployment)
    pg = graph
    findings: list[Finding] = []
    invariants: list[InvariantResult] = []
    enabled = [rule for rule in rules.values() if rule.enabled and not rule.needs_audit_log]
    ran = [rule.id for rule in enabled]
    structural = [rule for rule in enabled if not rule.is_invariant]
    proofs = [rule for rule in enabled if rule.is_invariant]
    with progress.stage("rules", total=len(structural)) as stage:
        for rule in structural:
            _structural(pg, rule, findings, invariants)
            stage.advance()
    if proofs:
        if prover is None:
            from analyzer import prover as prover_module  # the solver loads only when an invariant runs

            threshold = prover_module.PARALLEL_THRESHOLD if parallel_threshold is None else parallel_threshold
            prover = prover_module.Prover(pg, progress=progress, jobs=jobs, parallel_threshold=threshold)
        if hasattr(prover, "prove_many"):
            outcomes = prover.prove_many(proofs)
        else:
            outcomes = [prover(pg, rule) for rule in proofs]
        for result, found in outcomes:
            invariants.append(result)
            findings.extend(found)
    findings.sort(key=Finding.sort_key)
    invariants.sort(key=lambda r: r.id)
    return CheckResult(deployment.paths, deployment.digest, tuple(invariants), tuple(findings), tuple(sorted(ran)))


def _structural(pg, rule, findings, invariants) -> None:
    check = STRUCTURAL_CHECKS[rule.check]
    try:
        hits = list(check(pg))
    except Exception as exc:  # noqa: BLE001 - fail closed: a crashing rule is undecided, not clean
        invariants.append(InvariantResult(rule.id, "unknown", reason=f"internal error in rule {rule.id}: "
                                          f"{type(exc).__name__}: {exc}; "
                                          + traceback.format_exc(limit=3).splitlines()[-1]))
        return
    for hit in hits:
        severity = rule.severity if rule.severity_overridden or hit.severity is None else hit.severity
        findings.append(Finding(rule.id, severity, hit.message, hit.subjects, hit.location, hit.path,
                                hit.witness))


def with_suppressions(result: CheckResult, suppressions, today, rules: dict[str, Rule]) -> CheckResult:
    """The result with suppressions applied (see :mod:`analyzer.suppressions`); ``today`` is passed in.

    ``unused-suppression`` findings follow that rule's catalogue entry: its (overridden)
    severity, and none at all when it is disabled.
    """
    from dataclasses import replace

    from analyzer import suppressions as supp

    rule = rules.get(supp.UNUSED_RULE)
    severity = rule.severity if rule is not None and rule.enabled else None
    return replace(result, findings=tuple(supp.apply(result.findings, suppressions, today, severity)))


__all__ = ["SEVERITY_RANK", "analyze", "with_suppressions"]
