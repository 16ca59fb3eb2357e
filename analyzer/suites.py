"""Decision test suites: calls with the answer a deployment must give, run against decide and an endpoint.

A suite is a YAML file holding a list of cases, or a mapping with ``cases:`` (and an optional
``description``)::

    cases:
      - name: sales reads an acme contact
        call: {workflow: acme-lead-followup, chain: [sales-agent], tool: crm,
               operation: read_contacts, tenant: acme}
        expect: allow
        reason: sales grant #1          # optional: a substring of decide's reason

``call`` has the shape of the decision API (FORMAT §7). A case passes when the decision
function agrees with ``expect`` (and its reason contains ``reason``) and, with a target, when
the endpoint agrees too (``200 allow: true`` for allow; ``allow: false`` or a 4xx for deny).
With ``engine="cedar"`` the decisions are cedarpy's on the deployment's Cedar export
(analyzer.cedar) instead of analyzer.decide's; ``reason`` is then not checked (it quotes
decide's words), and a case covers every grant, deny or guardrail among Cedar's determining
policies.

Suites live beside the deployment, not in it: a deployment directory merges every ``*.yaml``
below it, so ``agentperm test fixtures/agency`` reads ``fixtures/agency.tests/*.yaml`` (for a
file ``prod.yaml``: ``prod.tests/*.yaml``) unless ``--tests GLOB`` says otherwise.

Coverage is the share of the deployment's rules (grants, role denies, guardrails) that decided
at least one case: the grant that allowed it, or the deny or guardrail that refused it.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from typing import Any

from analyzer import model
from analyzer.decide import Decider, Decision, MalformedCall, parse_request
from analyzer.errors import Diagnostic, InputError, Loc
from analyzer.yamlsrc import YamlError, read_yaml_file

SUITE_FORMAT = "agentperm-tests/1"
CASE_KEYS = {"name", "call", "expect", "reason", "description"}


@dataclass(frozen=True)
class Case:
    name: str
    suite: str  # the file
    loc: Loc
    call: Any
    expect: str  # allow | deny
    reason: str | None = None


@dataclass
class Outcome:
    case: Case
    decision: Decision | None  # None: the call is malformed
    decide_reason: str
    observed: Any = None  # an Observation from the target, when there is one
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


@dataclass
class SuiteResult:
    deployment: model.Deployment
    outcomes: list[Outcome]
    rules: list[model.Permission]
    covered: set[int]  # id() of the rules that decided some case
    target: str | None = None
    engine: str = "native"

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.passed]

    @property
    def coverage(self) -> float:
        return len(self.covered) / len(self.rules) if self.rules else 1.0

    @property
    def uncovered(self) -> list[model.Permission]:
        return [r for r in self.rules if id(r) not in self.covered]


def default_glob(path: str) -> str:
    """Where a deployment's suites are by convention: a sibling folder `<deployment>.tests/`."""
    base = path.rstrip("/\\") or path
    for suffix in (".yaml", ".yml"):
        base = base.removesuffix(suffix)
    return os.path.join(base + ".tests", "*.y*ml")


def find_suites(pattern: str) -> list[str]:
    return sorted(p for p in glob.glob(pattern, recursive=True)
                  if os.path.isfile(p) and p.endswith((".yaml", ".yml")))


def load_cases(files: list[str]) -> list[Case]:
    """Every case of every suite file; raises InputError listing every problem with file:line."""
    cases: list[Case] = []
    problems: list[Diagnostic] = []
    for file in files:
        try:
            doc = read_yaml_file(file)
        except YamlError as exc:
            problems.extend(exc.diagnostics)
            continue
        data = doc.data
        prefix: tuple = ()
        if isinstance(data, dict):
            unknown = sorted(set(data) - {"cases", "description", "format"})
            for key in unknown:
                problems.append(Diagnostic(doc.loc((key,)), f"unknown key {key!r} in a decision test suite",
                                           "a suite holds `cases:` (and an optional `description:`)"))
            if data.get("format", SUITE_FORMAT) != SUITE_FORMAT:
                problems.append(Diagnostic(doc.loc(("format",)), f"format must be {SUITE_FORMAT}"))
            data, prefix = data.get("cases"), ("cases",)
        if not isinstance(data, list):
            problems.append(Diagnostic(doc.loc(prefix), "a decision test suite is a list of cases (or `cases:`)"))
            continue
        names: dict[str, Loc] = {}
        for index, item in enumerate(data):
            path = prefix + (index,)
            loc = doc.value_loc(path)
            if not isinstance(item, dict):
                problems.append(Diagnostic(loc, "a case is a mapping with name, call and expect"))
                continue
            for key in sorted(set(item) - CASE_KEYS):
                problems.append(Diagnostic(doc.loc(path + (key,)), f"unknown key {key!r} in a case",
                                           "a case has name, call, expect and optionally reason"))
            name = item.get("name")
            if not isinstance(name, str) or not name:
                problems.append(Diagnostic(loc, "a case needs a `name`"))
                name = f"case {index + 1}"
            elif name in names:
                problems.append(Diagnostic(doc.loc(path + ("name",)),
                                           f"duplicate case name {name!r} (first at line {names[name].line})"))
            names.setdefault(name, loc)
            if "call" not in item:
                problems.append(Diagnostic(loc, f"case {name!r} needs a `call` (the decision API request)"))
            expect = item.get("expect")
            if expect not in ("allow", "deny"):
                problems.append(Diagnostic(doc.loc(path + ("expect",)),
                                           f"case {name!r}: expect must be allow or deny, not {expect!r}"))
            reason = item.get("reason")
            if reason is not None and not isinstance(reason, str):
                problems.append(Diagnostic(doc.loc(path + ("reason",)), "reason must be a string"))
            cases.append(Case(name, file, loc, item.get("call"), str(expect), reason))
    if problems:
        raise InputError(problems)
    return cases


def deciding_rules(deployment: model.Deployment) -> list[model.Permission]:
    """Every grant, role deny and guardrail, in file order."""
    rules = [p for role in deployment.roles.values() for p in (*role.grants, *role.denies)]
    rules += list(deployment.guardrails)
    return sorted(rules, key=lambda p: p.loc)


def run(deployment: model.Deployment, cases: list[Case], target=None, timeout: float = 5.0,
        engine: str = "native") -> SuiteResult:
    """Each case against decide (or, engine "cedar", Cedar on the export) and, when given, a target
    (URL, module:function or callable)."""
    import json

    decide = _cedar_decide(deployment) if engine == "cedar" else _native(Decider(deployment).decide)
    rules = deciding_rules(deployment)
    covered: set[int] = set()
    endpoint = None
    if target is not None:
        from analyzer.harness.targets import resolve

        endpoint = resolve(target, timeout)
    outcomes = []
    try:
        for case in cases:
            try:
                call = parse_request(case.call, deployment)
            except MalformedCall as exc:
                decision, reason, deciding = None, f"malformed: {exc}", ()
            else:
                decision, deciding = decide(call, case.call)
                reason = decision.reason
            outcome = Outcome(case, decision, reason)
            allowed = decision is not None and decision.allow
            covered.update(id(rule) for rule in deciding)
            said = "decide" if engine == "native" else engine
            if allowed != (case.expect == "allow"):
                outcome.problems.append(f"{said}: {'allow' if allowed else 'deny'} ({reason}), expected {case.expect}")
            elif case.reason and engine == "native" and case.reason not in reason:
                outcome.problems.append(f"decide: the reason {reason!r} does not contain {case.reason!r}")
            if endpoint is not None:
                observed = endpoint.send(json.dumps(case.call, ensure_ascii=False).encode("utf-8"), case.call)
                outcome.observed = observed
                said = _endpoint_answer(observed)
                if said != case.expect:
                    outcome.problems.append(f"endpoint: {_describe(observed)}, expected {case.expect}")
            outcomes.append(outcome)
    finally:
        if endpoint is not None:
            endpoint.close()
    return SuiteResult(deployment, outcomes, rules, covered, endpoint.label if endpoint else None, engine)


def _native(decide):
    def run(call, _body):
        decision = decide(call)
        rule = decision.grant if decision.allow else decision.deny
        return decision, (rule,) if rule is not None else ()
    return run


def _cedar_decide(deployment: model.Deployment):
    """decide(call, body) → (Decision, the rules that decided it), through cedarpy on the export."""
    from analyzer.cedar import CedarEngine

    engine = CedarEngine.of(deployment)
    labels = engine.export.labels

    def run(_call, body):
        answer = engine.decide(body)
        rules = tuple(dict.fromkeys(labels[p] for p in answer.policies if p in labels))
        decision = Decision(answer.allow, answer.reason,
                            grant=next((r for r in rules if r.kind == "grant"), None) if answer.allow else None,
                            deny=None if answer.allow else next(iter(rules), None))
        return decision, rules
    return run


def _endpoint_answer(observed) -> str | None:
    if observed.status is None or observed.status >= 500:
        return None
    if 200 <= observed.status < 300:
        return {True: "allow", False: "deny"}.get(observed.allow) if isinstance(observed.allow, bool) else None
    if 400 <= observed.status < 500:
        return "deny"
    return None


def _describe(observed) -> str:
    if observed.status is None:
        return observed.error or "no answer"
    if isinstance(observed.allow, bool) and 200 <= observed.status < 300:
        return f"allow: {str(observed.allow).lower()}" + (f" ({observed.reason})" if observed.reason else "")
    return f"HTTP {observed.status}" + (f" ({observed.error or observed.reason})" if observed.error or observed.reason
                                         else "")


def parse_percent(text: str) -> float:
    """`80`, `80%` or `80.5` → 0.8..; a percentage from 0 to 100."""
    value = float(str(text).strip().rstrip("%"))
    if not 0 <= value <= 100:
        raise ValueError("a percentage from 0 to 100")
    return value / 100


def render_text(result: SuiteResult) -> str:
    lines = []
    for outcome in result.outcomes:
        case = outcome.case
        where = f"{case.loc}"
        if outcome.passed:
            lines.append(f"PASS {case.name} ({case.expect})")
        else:
            lines.append(f"FAIL {case.name} ({where})")
            lines.extend(f"  {problem}" for problem in outcome.problems)
    against = ("decide" if result.engine == "native" else f"{result.engine} (reasons not checked)") + (
        f" and {result.target}" if result.target else "")
    passed = len(result.outcomes) - len(result.failed)
    lines.append(f"{passed}/{len(result.outcomes)} case(s) passed against {against}")
    lines.append(f"coverage: {len(result.covered)}/{len(result.rules)} rules decided at least one case "
                 f"({result.coverage:.1%})")
    for rule in result.uncovered:
        lines.append(f"  not covered: {rule.label} on {rule.tool}.{_ops(rule)} ({rule.loc})")
    return "\n".join(lines) + "\n"


def _ops(rule: model.Permission) -> str:
    return "*" if rule.operations == model.STAR else "{" + ",".join(rule.operations) + "}"


def render_junit(result: SuiteResult) -> str:
    from xml.etree import ElementTree as ET

    root = ET.Element("testsuites", name="agentperm test", tests=str(len(result.outcomes)),
                      failures=str(len(result.failed)))
    by_suite: dict[str, list[Outcome]] = {}
    for outcome in result.outcomes:
        by_suite.setdefault(outcome.case.suite, []).append(outcome)
    for suite_file, outcomes in by_suite.items():
        suite = ET.SubElement(root, "testsuite", name=suite_file, tests=str(len(outcomes)),
                              failures=str(sum(not o.passed for o in outcomes)), errors="0")
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="coverage", value=f"{result.coverage:.4f}")
        stem = os.path.splitext(os.path.basename(suite_file))[0]
        for outcome in outcomes:
            case = ET.SubElement(suite, "testcase", classname=f"agentperm.test.{stem}", name=outcome.case.name,
                                 file=suite_file, line=str(outcome.case.loc.line))
            if not outcome.passed:
                failure = ET.SubElement(case, "failure", message=outcome.problems[0], type="decision")
                failure.text = "\n".join(outcome.problems)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
