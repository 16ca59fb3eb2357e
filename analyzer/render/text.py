"""Plain-text output: one line per finding, grouped by severity, then a one-line summary."""

from __future__ import annotations

from analyzer.findings import SEVERITIES, CheckResult


def render_check(result: CheckResult, verbose: bool = False) -> str:
    lines: list[str] = []
    for inv in result.invariants:
        line = f"invariant {inv.id}: {inv.status.upper()}"
        if inv.reason:
            line += f" ({inv.reason})"
        lines.append(line)
    if result.invariants:
        lines.append("")
    for severity in SEVERITIES:
        group = [f for f in result.findings if f.severity == severity]
        if not group:
            continue
        lines.append(f"{severity.upper()} ({len(group)})")
        for finding in group:
            mark = ""
            if finding.suppressed:
                until = f", expires {finding.suppressed.expires}" if finding.suppressed.expires else ""
                mark = f" [suppressed: {finding.suppressed.justification}{until}]"
            lines.append(f"{finding.location}: {finding.severity} {finding.rule}: {finding.message}{mark}")
            if finding.root_cause is not None:
                lines.append(f"    fix: {finding.root_cause['remediation']}")
            if verbose or finding.path:
                for step in finding.path:
                    where = f"  ({step.loc})" if step.loc else ""
                    lines.append(f"    {step.reason}{where}")
        lines.append("")
    summary = result.summary()
    counts = ", ".join(f"{summary['by_severity'][s]} {s}" for s in SEVERITIES)
    inv = summary["invariants"]
    text = f"{summary['findings']} finding(s): {counts}"
    if summary["suppressed"]:
        text += f"; {summary['suppressed']} suppressed"
    if result.invariants:
        text += f"; invariants: {inv['proved']} proved, {inv['violated']} violated, {inv['unknown']} unknown"
    text += f"; {summary['rules_run']} rules run"
    lines.append(text)
    return "\n".join(lines) + "\n"
