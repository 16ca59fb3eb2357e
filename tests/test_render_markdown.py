"""The pull-request comment: verdict, tables, details, the size limit, escaping, goldens."""

from __future__ import annotations

import re

import pytest
from conftest import hygienic_sections, write_deployment
from golden_files import DEPLOYMENTS, assert_golden, catalogue, check_result, diff_result, fresh_goldens

from analyzer.analysis import analyze
from analyzer.errors import Loc
from analyzer.findings import SEVERITIES, CheckResult, Finding, InvariantResult, Suppression
from analyzer.loader import load
from analyzer.render import markdown

HOSTILE = "x | y <img src=x onerror=alert(1)> `code` ```json\n| z"


@pytest.mark.parametrize("fixture", DEPLOYMENTS)
def test_golden(fixture):
    name = f"{fixture}.md"
    assert_golden(name, fresh_goldens()[name])


def test_diff_golden():
    assert_golden("diff-threshold-gap.md", fresh_goldens()["diff-threshold-gap.md"])


def test_verdicts():
    assert markdown.render_check(check_result("agency")).startswith("## ✅ **agentperm: passed**")
    flawed = markdown.render_check(check_result("flawed-agency"))
    assert flawed.startswith("## ❌ **agentperm: failed**")
    undecided = CheckResult(("d",), "sha256:0", (InvariantResult("no-cross-tenant-reach", "unknown",
                                                                 reason="solver timeout"),), (), ())
    text = markdown.render_check(undecided)
    assert "undecided" in text.splitlines()[0] and "solver timeout" in text


def _table(text: str, header: str) -> list[list[str]]:
    """The cells of the table whose header row starts with ``header``, split on unescaped pipes."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def test_flawed_agency_tables_agree_with_the_result():
    result = check_result("flawed-agency")
    text = markdown.render_check(result)
    assert len(text) < markdown.MAX_CHARS
    counts = {row[0]: int(row[1]) for row in _table(text, "| severity |")}
    assert counts == result.summary()["by_severity"]
    invariants = _table(text, "| invariant |")
    assert [row[0] for row in invariants] == [inv.id for inv in result.invariants]
    findings = _table(text, "| # | severity |")
    assert len(findings) == len(result.findings)
    assert all(len(row) == 5 for row in findings)
    assert [row[1] for row in findings] == [f.severity for f in result.findings]
    assert "```json" in text and "<details><summary>" in text
    assert text.count("<details>") == text.count("</details>")


def _huge(count: int) -> CheckResult:
    findings = []
    for index in range(count):
        severity = SEVERITIES[index % 4]
        findings.append(Finding("wildcard-grant", severity, f"finding {index} " + "words " * 40,
                                (f"role:r{index}",), Loc("roles.yaml", index + 1, 9),
                                witness={"call": {"workflow": "w", "chain": ["a"], "tool": "t", "operation": "o",
                                                  "tenant": "x", "fields": [], "params": {}, "approval": None}}))
    findings.sort(key=Finding.sort_key)
    return CheckResult(("d",), "sha256:0", (), tuple(findings), ("wildcard-grant",))


def test_a_huge_result_is_cut_under_the_limit_in_severity_order_with_a_note():
    result = _huge(5000)
    text = markdown.render_check(result)
    assert len(text) < 65_000
    rows = _table(text, "| # | severity |")
    assert 0 < len(rows) < 5000
    shown = [row[1] for row in rows]
    assert shown == [f.severity for f in result.findings[:len(rows)]]  # the most severe first, the rest cut
    assert "critical" in shown and "low" not in shown
    note = re.search(r"\*\*(\d+) finding\(s\) not shown\*\*", text)
    assert note and int(note.group(1)) == 5000 - len(rows)
    assert text.count("<details>") == text.count("</details>")


def test_details_are_cut_before_rows():
    result = _huge(150)
    text = markdown.render_check(result, limit=60_000)
    assert len(text) < 60_000
    rows = _table(text, "| # | severity |")
    details = text.count("<details>")
    assert len(rows) == 150 and 0 < details < 150
    assert f"details of #{details + 1}–#150 left out" in text


def test_markup_in_names_and_messages_stays_escaped(tmp_path):
    # a directory name is user text that reaches every output; ids cannot hold markup, paths can
    folder = tmp_path / "team <b>x</b> | `y`"
    roles = {"reader": {"grants": [{"tool": "crm", "operations": "*"}]}}
    write_deployment(folder, **hygienic_sections(roles=roles))
    result = analyze(load(str(folder)), catalogue())
    entry = Suppression("x", "role:y", HOSTILE, None, None)
    hostile = Finding("wildcard-grant", "low", HOSTILE, ("role:r",), Loc(HOSTILE, 1, 1), suppressed=entry,
                      witness={"call": {"tool": "```\n</details><script>", "params": {}}})
    result = CheckResult(result.deployment_paths, result.digest, result.invariants,
                         (*result.findings, hostile), result.rules_run)
    text = markdown.render_check(result)
    outside_code = re.sub(r"^(`{3,})json\n.*?\n\1$", "", text, flags=re.MULTILINE | re.DOTALL)
    assert "<b>" not in outside_code and "<img" not in outside_code and "<script>" not in outside_code
    assert "team &lt;b&gt;x&lt;/b&gt; \\| &#96;y&#96;" in text
    for row in _table(text, "| # | severity |"):
        assert len(row) == 5, row
    # the witness block cannot be closed by backticks inside it
    block = re.search(r"^(`{3,})json\n(.*?)\n\1$", text, re.MULTILINE | re.DOTALL)
    assert block and len(block.group(1)) > 3 and "```" in block.group(2)


def test_suppressed_findings_are_marked():
    entry = Suppression("wildcard-grant", "role:r", "accepted in SEC-9", "2030-01-01", None)
    finding = Finding("wildcard-grant", "high", "role r is a wildcard", ("role:r",), Loc("r.yaml", 3, 9),
                      suppressed=entry)
    text = markdown.render_check(CheckResult(("d",), "sha256:0", (), (finding,), ("wildcard-grant",)))
    assert text.startswith("## ✅")
    assert "_(suppressed: accepted in SEC-9, expires 2030-01-01)_" in text
    assert "| high | 0 | 1 |" in text


def test_diff_table():
    result = diff_result()
    text = markdown.render_diff(result)
    rows = _table(text, "| # | agent |")
    assert len(rows) == len(result.new_access) and all(len(row) == 7 for row in rows)
    assert text.startswith("## ❌")
