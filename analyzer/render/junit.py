"""JUnit XML for CI dashboards: one test case per invariant and per structural rule that ran.

An invariant fails when violated (its witnesses listed), errors when undecided (the reason);
a rule fails when it has an unsuppressed finding, one ``file:line:col: message`` line each.
Suppressed findings are listed in ``<system-out>``, never dropped. Built with ElementTree,
so names holding markup are escaped; characters XML cannot hold are replaced. No timestamp
unless one is passed in.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

from analyzer.findings import SEVERITY_RANK, CheckResult, Finding

# XML 1.0 allows tab, newline, carriage return and most of Unicode; anything else cannot be written at all.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """Text that XML 1.0 can hold: control characters (and lone surrogates) become U+FFFD."""
    return _NOT_XML.sub("\ufffd", text)


def _sub(parent: ET.Element, tag: str, attrs: dict | None = None, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: xml_text(str(v)) for k, v in (attrs or {}).items()})
    if text is not None:
        element.text = xml_text(text)
    return element


def _finding_line(finding: Finding) -> str:
    line = f"{finding.location}: {finding.message}"
    if finding.root_cause is not None:
        line += f"\n    fix: {finding.root_cause['remediation']}"
    if isinstance(finding.witness, dict) and "call" in finding.witness:
        line += "\n    call: " + json.dumps(finding.witness["call"], sort_keys=True, ensure_ascii=False)
    return line


def _suppressed_line(finding: Finding) -> str:
    s = finding.suppressed
    until = f", expires {s.expires}" if s.expires else ""
    return f"{finding.location}: {finding.message} [suppressed: {s.justification}{until}]"


class _Suite:
    def __init__(self, name: str, timestamp: str | None):
        self.suite = ET.Element("testsuite", {"name": name})
        if timestamp:
            self.suite.set("timestamp", timestamp)
        self.counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}

    def case(self, classname: str, name: str, *, failure: tuple[str, str, str] | None = None,
             error: tuple[str, str] | None = None, out: list[str] | None = None) -> None:
        self.counts["tests"] += 1
        case = _sub(self.suite, "testcase", {"classname": classname, "name": name})
        if failure is not None:
            self.counts["failures"] += 1
            message, kind, text = failure
            _sub(case, "failure", {"message": message, "type": kind}, text)
        if error is not None:
            self.counts["errors"] += 1
            message, text = error
            _sub(case, "error", {"message": message, "type": "undecided"}, text)
        if out:
            _sub(case, "system-out", None, "\n".join(out))

    def document(self, properties: dict[str, str]) -> str:
        if properties:
            props = ET.Element("properties")
            for key, value in properties.items():
                _sub(props, "property", {"name": key, "value": value})
            self.suite.insert(0, props)
        for key, value in self.counts.items():
            self.suite.set(key, str(value))
        root = ET.Element("testsuites", {"name": "agentperm", **{k: str(v) for k, v in self.counts.items()}})
        root.append(self.suite)
        ET.indent(root, space="  ")
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render_check(result: CheckResult, rules: dict, timestamp: str | None = None) -> str:
    """JUnit XML of a check; ``rules`` is the catalogue (id → Rule), for each rule's category."""
    suite = _Suite("agentperm", timestamp)
    by_rule: dict[str, list[Finding]] = {}
    for finding in result.findings:
        by_rule.setdefault(finding.rule, []).append(finding)
    invariants = {inv.id: inv for inv in result.invariants}
    cases = []
    for rule_id in sorted(set(result.rules_run) | set(invariants) | set(by_rule)):
        rule = rules.get(rule_id)
        is_invariant = rule.is_invariant if rule is not None else rule_id in invariants
        classname = "invariants" if is_invariant else f"rules.{rule.category if rule else 'other'}"
        cases.append((classname, rule_id))
    for classname, rule_id in sorted(cases):
        findings = by_rule.get(rule_id, [])
        active = [f for f in findings if f.suppressed is None]
        out = [_suppressed_line(f) for f in findings if f.suppressed is not None]
        inv = invariants.get(rule_id)
        if inv is not None and inv.status == "unknown":
            suite.case(classname, rule_id, error=(inv.reason or "undecided", inv.reason or "undecided"), out=out)
            continue
        if active:
            worst = max(active, key=lambda f: SEVERITY_RANK[f.severity]).severity
            what = "witness(es)" if classname == "invariants" else "finding(s)"
            status = "violated: " if inv is not None and inv.status == "violated" else ""
            suite.case(classname, rule_id, failure=(f"{status}{len(active)} {what}", worst,
                                                    "\n".join(_finding_line(f) for f in active)), out=out)
            continue
        if inv is not None and inv.status == "violated":
            out.insert(0, f"violated, but every witness is suppressed ({len(findings)})")
        suite.case(classname, rule_id, out=out)
    properties = {"deployment.paths": " ".join(result.deployment_paths), "deployment.digest": result.digest}
    return suite.document(properties)


def _class_name(c: dict) -> str:
    return f"{c['workflow']}/{c['agent']}: {c['tool']}.{c['operation']} on {c['tenant']}"


def render_diff(result, timestamp: str | None = None) -> str:
    """JUnit XML of ``agentperm diff``: one failing test case per new access class, one error per undecided case."""
    suite = _Suite("agentperm-diff", timestamp)
    for access in result.new_access:
        loc = access["location"]
        text = (f"{loc['file']}:{loc['line']}:{loc['column']}: {access['new']}\n"
                f"when: {access['region']}\nbefore: {access['old']}\n"
                f"call: {json.dumps(access['call'], sort_keys=True, ensure_ascii=False)}")
        suite.case("new-access", _class_name(access["class"]),
                   failure=(f"new access: {access['region']}", "new-access", text))
    for item in result.unknown:
        suite.case("undecided", item.split(": ", 1)[0], error=(item, item))
    if not result.new_access and not result.unknown:
        suite.case("new-access", "no new access")
    properties = {"old.paths": " ".join(result.old_paths), "old.digest": result.old_digest,
                  "new.paths": " ".join(result.new_paths), "new.digest": result.new_digest}
    return suite.document(properties)
