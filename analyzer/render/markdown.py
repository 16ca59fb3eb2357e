"""A pull-request comment in GitHub-flavoured Markdown, kept under GitHub's comment size limit.

Verdict, counts by severity, invariants, then one table row and one ``<details>`` block per
finding (its path and witness call). When the comment would reach the limit, details are
left out first, then table rows from the end (lowest severity first, suppressed ones before
any active one), and a note says how many. User text (ids, names, messages) is escaped so that markup in
a name cannot break a table, open a tag, or end a code block.
"""

from __future__ import annotations

import html
import json
import re

from analyzer.findings import SEVERITIES, CheckResult, Finding

MAX_CHARS = 65_000  # GitHub refuses comments of 65,536 characters and more; keep a margin
PASSED, FAILED = "✅", "❌"


def cell(text) -> str:
    """Text safe in a table cell and in running text: no pipes, tags, code spans or line breaks."""
    text = str(text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "&#96;")
    return re.sub(r"\s*[\r\n]+\s*", " ", text)


def summary_text(text) -> str:
    """Text inside an HTML element (``<summary>``), where Markdown escapes would show as written."""
    return re.sub(r"\s*[\r\n]+\s*", " ", html.escape(str(text), quote=False))


def code_block(text: str, language: str = "") -> str:
    """A fenced block whose fence is longer than any backtick run inside it, so the text cannot end it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def _summary_table(result: CheckResult) -> list[str]:
    active = {s: 0 for s in SEVERITIES}
    suppressed = {s: 0 for s in SEVERITIES}
    for finding in result.findings:
        (suppressed if finding.suppressed else active)[finding.severity] += 1
    lines = ["| severity | findings | suppressed |", "|---|---:|---:|"]
    lines += [f"| {s} | {active[s]} | {suppressed[s]} |" for s in SEVERITIES]
    return lines


def _invariants_table(result: CheckResult) -> list[str]:
    if not result.invariants:
        return []
    lines = ["### Invariants", "", "| invariant | status | detail |", "|---|---|---|"]
    for inv in result.invariants:
        if inv.status == "violated":
            detail = f"{len(inv.classes) or len(inv.witnesses)} witness class(es)"
        elif inv.status == "unknown":
            reason = inv.reason or "no reason given"
            detail = reason if len(reason) <= 500 else reason[:500] + "…"
        else:
            detail = "proved for every call"
        mark = {"proved": PASSED, "violated": FAILED}.get(inv.status, FAILED)
        lines.append(f"| {cell(inv.id)} | {mark} {inv.status.upper()} | {cell(detail)} |")
    return lines + [""]


def _message(finding: Finding) -> str:
    text = cell(finding.message)
    if finding.suppressed is not None:
        until = f", expires {finding.suppressed.expires}" if finding.suppressed.expires else ""
        text += f" _(suppressed: {cell(finding.suppressed.justification)}{cell(until)})_"
    return text


def _row(number: int, finding: Finding) -> str:
    return (f"| {number} | {finding.severity} | {cell(finding.rule)} | {cell(finding.location)} | "
            f"{_message(finding)} |")


def _details(number: int, finding: Finding) -> str:
    summary = (f"<details><summary>#{number} {finding.severity} {summary_text(finding.rule)} at "
               f"{summary_text(finding.location)}</summary>")
    parts = [summary, "", _message(finding), ""]
    if finding.subjects:
        parts += ["Subjects: " + ", ".join(cell(s) for s in finding.subjects), ""]
    if finding.root_cause is not None:
        cause = finding.root_cause
        counts = ", ".join(f"{len(ids)} {kind}" for kind, ids in cause["affected"].items())
        parts += [f"Fix: {cell(cause['remediation'])}", "",
                  (f"Affected: {counts}; {cause['classes']} witness class(es), "
                   f"{cause['classes'] - cause['omitted']} shown in the JSON output"), ""]
    if finding.path:
        parts.append("Path:")
        parts.append("")
        for step in finding.path:
            where = f" ({cell(step.loc)})" if step.loc else ""
            parts.append(f"1. {cell(step.reason)}{where}")
        parts.append("")
    if isinstance(finding.witness, dict) and "call" in finding.witness:
        parts += ["Witness call (replayable against a decision endpoint):", "",
                  code_block(json.dumps(finding.witness["call"], sort_keys=True, ensure_ascii=False), "json"), ""]
    parts.append("</details>")
    return "\n".join(parts)


def _largest(fits, upper: int) -> int:
    """The largest n in 0..upper with fits(n), for a predicate that holds up to some n and fails after."""
    low, high = 0, upper
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _fit(head: list[str], rows: list[str], details: list[str], noun: str, limit: int,
         table_head: list[str]) -> str:
    """Head, then as many table rows as fit under ``limit``, then the details of as many of those as fit.

    Rows are worth more than details, so details go first; then rows, from the end (lowest
    severity). A note says what was left out.
    """
    total = len(rows)

    def compose(shown: int, detailed: int) -> str:
        parts = list(head)
        if shown:
            parts += [*table_head, *rows[:shown], ""]
        parts += details[:detailed]
        notes = []
        if shown < total:
            notes.append(f"**{total - shown} {noun}(s) not shown**")
        if detailed < shown:
            notes.append(f"details of #{detailed + 1}–#{shown} left out")
        if notes:
            parts += ["", (f"{'; '.join(notes)}: this comment is limited to {limit:,} characters; "
                           "the JSON, SARIF or HTML output has everything.")]
        return "\n".join(parts) + "\n"

    shown = _largest(lambda n: len(compose(n, 0)) < limit, total)
    detailed = _largest(lambda n: len(compose(shown, n)) < limit, shown)
    return compose(shown, detailed)


def render_check(result: CheckResult, fail_on: str = "low", limit: int = MAX_CHARS) -> str:
    """The pull-request comment of a check; the verdict follows the exit code for ``fail_on``."""
    code = result.exit_code(fail_on)
    summary = result.summary()
    inv = summary["invariants"]
    verdict = {0: f"{PASSED} **agentperm: passed**", 1: f"{FAILED} **agentperm: failed**",
               3: f"{FAILED} **agentperm: undecided** (nothing violated, but something could not be decided)"}[code]
    counts = f"{summary['findings']} finding(s)"
    if summary["suppressed"]:
        counts += f", {summary['suppressed']} suppressed"
    if result.invariants:
        counts += f"; invariants: {inv['proved']} proved, {inv['violated']} violated, {inv['unknown']} unknown"
    scope = (f"{counts}; {summary['rules_run']} rules run on {cell(', '.join(result.deployment_paths))} "
             f"({cell(result.digest)}).")
    head = [f"## {verdict}", "", scope, "", *_summary_table(result), "", *_invariants_table(result)]
    ordered = [f for f in result.findings if f.suppressed is None] + \
              [f for f in result.findings if f.suppressed is not None]
    if not ordered:
        return "\n".join([*head, "No findings."]) + "\n"
    rows = [_row(n, f) for n, f in enumerate(ordered, 1)]
    details = [_details(n, f) for n, f in enumerate(ordered, 1)]
    table_head = ["### Findings", "", "| # | severity | rule | location | message |", "|---:|---|---|---|---|"]
    return _fit(head, rows, details, "finding", limit, table_head)


def render_diff(result, limit: int = MAX_CHARS) -> str:
    """The pull-request comment of ``agentperm diff``: a table of every new access class."""
    summary = result.summary()
    if result.new_access:
        verdict = (f"{FAILED} **agentperm diff: {summary['new_access']} new access class(es)** for "
                   f"{summary['agents']} agent(s) on {summary['tenants']} tenant(s)")
    elif result.unknown:
        verdict = f"{FAILED} **agentperm diff: undecided**: no new access found, but some cases were not decided"
    else:
        verdict = f"{PASSED} **agentperm diff: no new access**"
    scope = (f"Old: {cell(', '.join(result.old_paths))} ({cell(result.old_digest)}); "
             f"new: {cell(', '.join(result.new_paths))} ({cell(result.new_digest)}).")
    head = [f"## {verdict}", "", scope, ""]
    if result.unknown:
        head += ["### Undecided", "", *(f"- {cell(item)}" for item in result.unknown), ""]
    rows, details = [], []
    for number, access in enumerate(result.new_access, 1):
        c, loc = access["class"], access["location"]
        where = f"{loc['file']}:{loc['line']}:{loc['column']}"
        rows.append(f"| {number} | {cell(c['agent'])} | {cell(c['tool'])}.{cell(c['operation'])} | "
                    f"{cell(c['tenant'])} | {cell(c['workflow'])} | {cell(access['region'])} | {cell(where)} |")
        steps = [f"1. {cell(s['reason'])}" + (f" ({cell(_loc_text(s['location']))})" if s.get("location") else "")
                 for s in access["path"]]
        summary_line = (f"<details><summary>#{number} {summary_text(c['agent'])} → {summary_text(c['tool'])}."
                        f"{summary_text(c['operation'])} on {summary_text(c['tenant'])}</summary>")
        details.append("\n".join([
            summary_line, "", f"Now: {cell(access['new'])}", "",
            f"Before: {cell(access['old'])}", "", *(["Path:", "", *steps, ""] if steps else []),
            "Witness call:", "",
            code_block(json.dumps(access["call"], sort_keys=True, ensure_ascii=False), "json"),
            "", "</details>"]))
    if not rows:
        return "\n".join([*head, "NEW allows nothing that OLD did not."]) + "\n"
    table_head = ["### New access", "", "| # | agent | call | tenant | workflow | when | granted at |",
                  "|---:|---|---|---|---|---|---|"]
    return _fit(head, rows, details, "new access class", limit, table_head)


def _loc_text(loc: dict) -> str:
    return f"{loc['file']}:{loc['line']}:{loc['column']}"
