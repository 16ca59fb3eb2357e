"""The audit report: one self-contained HTML file a reviewer can hand to a client.

Renders a CheckResult with its deployment and permission graph; it recomputes nothing the
analysis decided. Templates and CSS live in ``reports/templates/`` and are rendered with
autoescape on; the only markup not written by a template is the SVG Graphviz draws from DOT
whose every string is escaped (:mod:`analyzer.render.dot`). No clock: the date is passed in.

It stays readable on large deployments: past the bounds below, each part that grows with the
deployment (the matrices, the per-tenant pictures, the inventory, long lists of findings)
collapses to a summary plus the rows findings name, and its full data is written as CSV, JSON
and DOT into a folder beside the report (``audit.html`` → ``audit.files/``), which the report
links to by relative paths. Every finding stays in the report or, past the bounds, in that folder.
The whole graph's DOT is always written beside the report (``audit.graph.dot``), streamed to
its file: at 1,000 tenants it is 140 MB.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO
from urllib.parse import quote as url_quote

from markupsafe import Markup

from analyzer import model, risk
from analyzer.errors import Loc
from analyzer.findings import SEVERITIES, CheckResult, Finding
from analyzer.graph import PermissionGraph
from analyzer.render import dot as dotrender
from analyzer.render import jsonout
from analyzer.resources import TEMPLATES_DIR
from analyzer.rules import Rule

LONG_GROUP = 12  # a rule with more findings folds its list behind one <details>
MAX_INLINE_GRAPH_NODES = 300  # past this the picture is unreadable inline; the DOT goes beside the report

# ---- size bounds -------------------------------------------------------------------------------
# Past these, a part collapses to a summary and its full data goes into the folder beside the
# report. They keep the report of the 1,000-tenant synthetic agency (10,000 agents, 500 tools)
# near 1 MB, and the bundled fixtures and the 10-tenant agency (100 agents, 25 tools) under all
# of them, so that those render in full, as they always have.
MAX_MATRIX_AGENTS = 100  # agent × tool rows: a row is ~1 KB at 25 tools; 100 rows is a long page already
MAX_MATRIX_TOOLS = 40  # its columns: past ~40 a fixed-width table is unreadable at any zoom
MAX_FOCUS_AGENTS = 25  # agents named in findings, shown one by one when the matrix collapses
MAX_FOCUS_TOOLS = 60  # tools listed for one of them (riskiest first)
MAX_TOOL_SUMMARY = 60  # tools in the per-tool summary (most exposed first)
MAX_MATRIX_TENANTS = 12  # tenant × tenant rows and columns; past it, only tenants with crossings or findings
MAX_CROSSINGS = 100  # crossings listed one by one when they do not all fit the collapsed matrix
MAX_TENANT_VIEWS = 12  # per-tenant pictures (a Graphviz run each); past it, tenants in findings only
MAX_INVENTORY_ROWS = 200  # rows of one inventory table; past it, rows findings name, then the first by id
MAX_TABLE_ITEMS = 2_000  # names listed in the cells of one inventory table (grants of roles, holders, ...)
MAX_CELL_ITEMS = 20  # names in one cell of a collapsed table (holders of a credential, grants of a role, ...)
MAX_DETAILED_FINDINGS = 600  # findings shown with path and witness (~2.5 KB each), shared fairly among rules ...
MAX_LISTED_FINDINGS = 2_000  # ... and past those, one line each (~0.3 KB); the rest are counted (all are beside)
MAX_LISTED_LINES = 100  # distinct lines listed under "Lines involved" of one rule
MAX_LISTED_FILES = 100  # files named in the method appendix
MAX_DRAWABLE_NODES = 5_000  # the whole graph's DOT goes beside the report at any size, but past this Graphviz
#                             cannot lay it out in useful time: the DOT of the findings' paths and of the
#                             tenants drawn goes into graph/ too, to draw (`agentperm graph` gives any other view)

# The five classic mistakes of agent deployments, and the rules that catch each. Rules not
# listed here (custom `never:` rules, say) fall into a mistake by their category.
MISTAKES = (
    ("identity", "Shared identities and weak secrets",
     ("shared-credential", "unsafe-secret-store", "long-lived-token", "no-rotation")),
    ("god-mode", "God-mode permissions", ("wildcard-grant", "delegation-escalation", "delegation-cycle")),
    ("tenant", "No tenant isolation",
     ("no-cross-tenant-reach", "multi-tenant-credential", "global-tool", "prompt-only-enforcement",
      "workflow-agent-tenant")),
    ("risk", "High-risk actions not gated",
     ("no-ungated-high-risk", "risk-downgraded", "gate-without-approvers", "agent-approver", "approval-disabled",
      "lethal-trifecta")),
    ("audit", "No audit trail", ("no-audit-trail", "unaudited-tool", "audit-incomplete", "secret-logged")),
)
HYGIENE = ("other", "Hygiene (unused definitions, custom rules)", ())
_MISTAKE_BY_CATEGORY = {"identity": "identity", "secrets": "identity", "least-privilege": "god-mode",
                        "delegation": "god-mode", "tenant-isolation": "tenant", "risk-gating": "risk",
                        "audit": "audit"}
_EXPLICIT_OTHER = {"unused-definition"}
VERDICTS = {0: "PASS", 1: "FAIL", 3: "UNDECIDED"}
SEVERITY_COLORS = {"critical": "#991b1b", "high": "#dc2626", "medium": "#d97706", "low": "#2563eb"}


@dataclass(frozen=True)
class Streamed:
    """A file beside the report too large to hold as one string: written to its file in pieces."""

    write_to: Callable[[TextIO], None]  # writes the whole text to an open text file

    def text(self) -> str:
        """The whole text at once (for tests and small graphs)."""
        buffer = io.StringIO()
        self.write_to(buffer)
        return buffer.getvalue()


@dataclass(frozen=True)
class RenderedReport:
    """The HTML text and the files to write beside it (relative name → text, or a :class:`Streamed` one)."""

    html: str
    attachments: dict[str, str | Streamed] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # for the person running the command (a missing `dot`, say)

    def write(self, path: str) -> None:
        """Writes the report to ``path`` and its attachments beside it (UTF-8); raises OSError."""
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(self.html)
        for name, content in self.attachments.items():  # the DOT, and the folder of full data when parts collapsed
            target = os.path.join(folder, name)
            os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
            with open(target, "w", encoding="utf-8") as handle:
                if isinstance(content, Streamed):
                    content.write_to(handle)
                else:
                    handle.write(content)


def _stem(report_name: str) -> str:
    return report_name[:-5] if report_name.lower().endswith(".html") else report_name


def attachment_name(report_name: str) -> str:
    """`audit.html` → `audit.graph.dot`: the DOT written beside the report."""
    return f"{_stem(report_name)}.graph.dot"


def data_folder_name(report_name: str) -> str:
    """`audit.html` → `audit.files`: the folder beside the report holding the full data of collapsed parts."""
    return f"{_stem(report_name)}.files"


def href_of(relative_path: str) -> str:
    """A relative link to a file beside the report: percent-encoded, so no name reads as a scheme or a fragment."""
    return url_quote(relative_path, safe="/")


def mistake_of(rule_id: str, rules: dict[str, Rule]) -> str:
    for key, _, members in MISTAKES:
        if rule_id in members:
            return key
    if rule_id in _EXPLICIT_OTHER or rule_id not in rules:
        return "other"
    return _MISTAKE_BY_CATEGORY.get(rules[rule_id].category, "other")


# ---- pieces of the report ---------------------------------------------------------------------
def _bars(items: list[tuple[str, str, int, str]], width: int = 520) -> dict:
    """Geometry of a horizontal bar chart drawn as inline SVG by the template (no script)."""
    label_w, count_w, row_h, bar_h = 230, 40, 30, 18
    top = max((count for _, _, count, _ in items), default=0) or 1
    span = width - label_w - count_w
    rows = []
    for index, (key, label, count, color) in enumerate(items):
        rows.append({"key": key, "label": label, "count": count, "color": color, "y": index * row_h + 6,
                     "text_y": index * row_h + 6 + bar_h - 5, "bar_w": round(span * count / top, 1),
                     "count_x": label_w + round(span * count / top, 1) + 6})
    return {"width": width, "height": len(items) * row_h + 8, "label_w": label_w, "bar_h": bar_h, "rows": rows,
            "span": span}


def _location(loc) -> str:
    return str(loc) if loc else ""


def pretty_call(call: dict) -> str:
    """A decision-API call as JSON, one key a line (values compact), in the order given."""
    if not isinstance(call, dict) or not call:
        return json.dumps(call, indent=2, ensure_ascii=False, default=str)
    items = [f"  {json.dumps(str(key), ensure_ascii=False)}: "
             f"{json.dumps(value, ensure_ascii=False, separators=(', ', ': '), default=str)}"
             for key, value in call.items()]
    return "{\n" + ",\n".join(items) + "\n}"


def _witness_view(witness) -> dict | None:
    if witness is None:
        return None
    if isinstance(witness, dict) and "call" in witness:
        return {"call": pretty_call(witness["call"]),
                "region": witness.get("region"), "decision": witness.get("decision"), "risk": witness.get("risk"),
                "note": witness.get("note")}
    return {"call": json.dumps(witness, indent=2, ensure_ascii=False, sort_keys=True, default=str),
            "region": None, "decision": None, "risk": None, "note": None}


def _finding_view(finding: Finding, index: int) -> dict:
    return {"anchor": f"finding-{index}", "rule": finding.rule, "severity": finding.severity,
            "message": finding.message, "location": _location(finding.location), "subjects": list(finding.subjects),
            "loc_key": (finding.location.file, finding.location.line, finding.location.column),
            "path": [{"reason": s.reason, "kind": s.kind, "source": s.source, "target": s.target,
                      "location": _location(s.loc)} for s in finding.path],
            "witness": _witness_view(finding.witness), "suppressed": finding.suppressed,
            "cause": _cause_view(finding.root_cause)}


def _cause_view(cause) -> dict | None:
    """What a root-cause finding stands for: the edit, and how much it lets through (counts, capped names)."""
    if cause is None:
        return None
    return {"remediation": cause["remediation"], "classes": cause["classes"],
            "affected": [{"kind": kind, "count": len(ids), "names": ids[:12], "more": max(0, len(ids) - 12)}
                         for kind, ids in cause["affected"].items()]}


def _rule_view(rule_id: str, rules: dict[str, Rule]) -> dict:
    rule = rules.get(rule_id)
    if rule is None:
        return {"id": rule_id, "title": rule_id, "severity": None, "category": None, "description": None,
                "rationale": None, "remediation": None, "references": [], "kind": "unknown", "location": ""}
    return {"id": rule.id, "title": rule.title, "severity": rule.severity, "category": rule.category,
            "description": rule.description, "rationale": rule.rationale, "remediation": rule.remediation,
            "references": list(rule.references), "location": _location(rule.loc),
            "kind": "invariant (proved with Z3)" if rule.is_invariant else "structural check",
            "never": rule.never.source if rule.never is not None else None}


def finding_groups(result: CheckResult, rules: dict[str, Rule]) -> list[dict]:
    """Active findings grouped by rule, in the order of the result (most severe first).

    Past ``MAX_DETAILED_FINDINGS`` findings in all, each rule shows its first ones in full (a fair
    share: a rule with fewer shows all of its own), the next ones a line each, from a budget of
    ``MAX_LISTED_FINDINGS`` shared the same way, and counts the rest (the folder beside has them all).
    """
    groups: dict[str, dict] = {}
    for index, finding in enumerate(result.findings, start=1):
        if finding.suppressed is not None:
            continue
        group = groups.get(finding.rule)
        if group is None:
            group = groups[finding.rule] = {"rule": _rule_view(finding.rule, rules), "findings": [],
                                            "severities": Counter(), "anchor": f"rule-{finding.rule}",
                                            "mistake": mistake_of(finding.rule, rules)}
        group["findings"].append(_finding_view(finding, index))
        group["severities"][finding.severity] += 1
    for group in groups.values():
        group["severity"] = next(s for s in SEVERITIES if group["severities"][s])
        lines = Counter(f["loc_key"] for f in group["findings"])
        group["lines"] = [(_location(Loc(*key)), count) for key, count in sorted(lines.items())][:MAX_LISTED_LINES]
        group["lines_total"] = len(lines)
        group["repeats"] = any(count > 1 for count in lines.values())
        group["severity_counts"] = [(s, group["severities"][s]) for s in SEVERITIES if group["severities"][s]]
    ordered = list(groups.values())
    sizes = [len(g["findings"]) for g in ordered]
    detailed = fair_shares(sizes, MAX_DETAILED_FINDINGS)
    listed = fair_shares([n - d for n, d in zip(sizes, detailed)], MAX_LISTED_FINDINGS)
    for group, n, d, l in zip(ordered, sizes, detailed, listed):
        group["collapsed"] = d < n
        group["detailed"] = group["findings"][:d]
        group["listed"] = group["findings"][d:d + l]
        group["unlisted"] = n - d - l
    return ordered


def fair_shares(sizes: list[int], budget: int) -> list[int]:
    """How many of each list to take so that at most ``budget`` are taken in all, the smallest
    lists whole and the others an equal share of what is left (water-filling)."""
    shares = [0] * len(sizes)
    left, remaining = budget, len(sizes)
    for index in sorted(range(len(sizes)), key=lambda i: (sizes[i], i)):
        shares[index] = min(sizes[index], left // remaining)
        left -= shares[index]
        remaining -= 1
    return shares


# ---- what the findings name: the rows a collapsed part keeps ----------------------------------
@dataclass(frozen=True)
class Focus:
    """The graph nodes the active findings name (subjects and path steps), and the tenants involved."""

    nodes: frozenset[str]
    tenants: tuple[str, ...]  # tenants with a crossing first, then the others findings involve; sorted

    def ids(self, kind: str) -> set[str]:
        prefix = f"{kind}:"
        return {name[len(prefix):] for name in self.nodes if name.startswith(prefix)}


def focus_of(result: CheckResult, graph: PermissionGraph, crossing_tenants: set[str] = frozenset()) -> Focus:
    """What the findings name, and the tenants they involve: those named, the one home of each named
    workflow, agent or credential, the tenants a named credential covers, and ``crossing_tenants``."""
    g, d = graph.g, graph.deployment
    nodes: set[str] = set()
    for finding in result.active():
        nodes.update(s for s in finding.subjects if s in g)
        for step in finding.path:
            nodes.update(n for n in (step.source, step.target) if n in g)
    involved: set[str] = set()
    for name in nodes:
        kind = g.nodes[name]["kind"]
        if kind in ("tenant", "workflow", "agent", "credential"):
            home = dotrender.home_tenant(graph, name)
            if home is not None:
                involved.add(home)
        if kind == "credential":
            covered = d.credentials[g.nodes[name]["id"]].tenants
            if covered != model.STAR:
                involved.update(covered)
    involved &= set(d.tenants)
    crossing = sorted(set(crossing_tenants) & set(d.tenants))
    return Focus(frozenset(nodes), tuple(crossing + sorted(involved - set(crossing))))


# ---- the folder beside the report ---------------------------------------------------------------
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_value(value) -> str:
    if type(value) is not str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, (list, tuple)):
            value = "; ".join(map(str, value))
        value = str(value)
    # a spreadsheet would run a cell starting with one of these as a formula: OWASP's guard
    return "'" + value if value.startswith(_FORMULA_START) else value


_PLAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


def _csv_line(values) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([_csv_value(v) for v in values])
    return buffer.getvalue()


def csv_text(header: list[str], rows) -> str:
    """CSV with a header row, "\\n" line ends, lists joined with "; ", formula-looking cells quoted."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    start = _FORMULA_START
    writer.writerows([v if type(v) is str and not v.startswith(start) else _csv_value(v) for v in row]
                     for row in rows)
    return buffer.getvalue()


@dataclass
class Beside:
    """The files for the folder beside the report, with what the report says of each."""

    report: str  # the report's file name
    folder: str
    files: dict[str, dict] = field(default_factory=dict)

    def add(self, name: str, text: str, description: str, rows: int | None = None) -> str:
        """Adds a file; returns its link relative to the report."""
        self.files[name] = {"text": text, "description": description, "rows": rows}
        return self.href(name)

    def href(self, name: str) -> str:
        return href_of(f"{self.folder}/{name}")

    def listing(self) -> list[dict]:
        return [{"name": f"{self.folder}/{name}", "href": self.href(name), "description": entry["description"],
                 "rows": entry["rows"], "bytes": len(entry["text"].encode("utf-8"))}
                for name, entry in sorted(self.files.items())]

    def attachments(self) -> dict[str, str]:
        if not self.files:
            return {}
        out = {f"{self.folder}/{name}": entry["text"] for name, entry in sorted(self.files.items())}
        readme = [f"Files beside the agentperm audit report {self.report}, written with it; the whole permission",
                  f"graph's DOT is next to this folder, in {attachment_name(self.report)}.", "",
                  "CSV: one header row; lists joined with '; '; a cell starting with = + - @ is prefixed",
                  "with ' so that spreadsheets show it as text.", ""]
        readme += [f"{name}\n    {entry['description']}" + (f" ({entry['rows']:,} rows)" if entry["rows"] is not None
                                                           else "") for name, entry in sorted(self.files.items())]
        out[f"{self.folder}/README.txt"] = "\n".join(readme) + "\n"
        return out


def _file_slug(text: str) -> str:
    """A file name part from an id: safe characters only, never a path."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._-")[:60]
    return slug or "x"


def _capped(items: list) -> list:
    """At most ``MAX_CELL_ITEMS`` items, then one saying how many more there are."""
    items, cap = list(items), MAX_CELL_ITEMS
    if len(items) <= cap:
        return items
    return items[:cap] + [f"… and {len(items) - cap:,} more"]


# ---- tenant isolation ---------------------------------------------------------------------------
def _tenant_cells(result: CheckResult, deployment: model.Deployment) -> tuple[list[str], dict, object]:
    homes = sorted({wf.tenant for wf in deployment.workflows.values()})
    invariant = next((inv for inv in result.invariants if inv.id == "no-cross-tenant-reach"), None)
    workflows_of: dict[str, list[str]] = defaultdict(list)
    for wf in deployment.workflows.values():
        workflows_of[wf.tenant].append(wf.id)
    cells: dict[tuple[str, str], dict] = {}
    for home in homes:
        wfs = sorted(workflows_of[home])
        agents = sorted({deployment.workflows[w].agent for w in wfs})
        cells[(home, home)] = {"home": True, "agents": agents, "credentials": [], "tools": [], "workflows": wfs,
                               "classes": 0}
    # every witness class (with the causes that allow it), or the witnesses of a result built without them
    found = invariant.classes if invariant else ()
    if hasattr(found, "compact"):
        rows = ((seed["workflow"], tenant, agent, tool, [c.split(":", 1)[1] for c in causes
                                                         if c.startswith("credential:")])
                for agent, tool, _op, tenant, causes, seed in found.compact())
    else:
        rows = ((w.get("call", {}).get("workflow"), w.get("call", {}).get("tenant"),
                 (w.get("call", {}).get("chain") or ["?"])[-1], w.get("call", {}).get("tool"),
                 [s["to"].split(":", 1)[1] for s in w.get("path", ()) if s.get("kind") == "holds"]
                 + [c.split(":", 1)[1] for c in w.get("causes", ()) if c.startswith("credential:")])
                for w in (found or (invariant.witnesses if invariant else ())))
    for wf_id, tenant, agent, tool, held in rows:
        workflow = deployment.workflows.get(wf_id)
        if workflow is None:
            continue
        cell = cells.setdefault((workflow.tenant, tenant),
                                {"home": False, "agents": [], "credentials": [], "tools": [], "workflows": [],
                                 "classes": 0})
        cell["classes"] += 1
        for key, values in (("agents", (agent,)), ("tools", (tool,)), ("workflows", (wf_id,)), ("credentials", held)):
            have = cell.setdefault("_" + key, set(cell[key]))
            for value in values:
                if value and value not in have:
                    have.add(value)
                    cell[key].append(value)
    for cell in cells.values():
        for key in ("agents", "credentials", "tools", "workflows"):
            cell.pop("_" + key, None)
    for cell in cells.values():
        for key in ("agents", "credentials", "tools", "workflows"):
            cell[key] = sorted(cell[key])
    return homes, cells, invariant


def tenant_matrix(result: CheckResult, deployment: model.Deployment, focus: Focus | None = None,
                  beside: Beside | None = None) -> dict:
    """Which agents and credentials reach each target tenant from workflows of each home tenant.

    Off the diagonal: the witnesses of `no-cross-tenant-reach`. On it: the workflows of the
    tenant and the agents they run (the access a tenant expects). Past ``MAX_MATRIX_TENANTS`` tenants
    (and with ``beside``), only the tenants with a crossing or a finding are shown, the crossings
    that do not fit are listed, and every cell goes into ``tenant-matrix.csv`` beside the report.
    """
    homes, cells, invariant = _tenant_cells(result, deployment)
    crossings = sorted((key for key, cell in cells.items() if not cell["home"]), key=lambda k: (str(k[0]), str(k[1])))
    view = {"status": invariant.status if invariant else "not run", "reason": invariant.reason if invariant else None,
            "crossings": len(crossings), "collapsed": False}
    max_tenants = MAX_MATRIX_TENANTS
    if len(deployment.tenants) <= max_tenants or beside is None:
        targets = sorted(deployment.tenants)
        shown_homes = homes
    else:
        crossing_tenants = {t for pair in crossings for t in pair}
        wanted = list(focus.tenants) if focus else []
        wanted += sorted(crossing_tenants - set(wanted))
        shown = set(wanted[:max_tenants])
        targets = sorted(shown)
        shown_homes = [h for h in homes if h in shown]
        rows = [(home, target, "home" if cell["home"] else "crosses", cell["classes"], cell["agents"],
                 cell["credentials"], cell["tools"], cell["workflows"])
                for (home, target), cell in sorted(cells.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1])))]
        hidden = [pair for pair in crossings if not (pair[0] in shown and pair[1] in shown)]
        view.update(collapsed=True, tenants=len(deployment.tenants), homes=len(homes),
                    involved=len(crossing_tenants | set(focus.tenants if focus else ())), shown=len(shown),
                    max_tenants=max_tenants,
                    hidden=[{"home": h, "target": t, **{k: _capped(cells[(h, t)][k]) for k in
                                                       ("agents", "credentials", "tools")},
                             "classes": cells[(h, t)]["classes"]} for h, t in hidden[:MAX_CROSSINGS]],
                    hidden_total=len(hidden),
                    csv=beside.add("tenant-matrix.csv", csv_text(
                        ["workflow_tenant", "target_tenant", "cell", "call_classes", "agents", "credentials", "tools",
                         "workflows"], rows),
                        "every non-empty cell of the tenant isolation matrix: each tenant's own workflows and "
                        "agents, and every crossing with its agents, credentials and tools", len(rows)))
    view["targets"] = [{"tenant": t, "name": deployment.tenants[t].name} for t in targets]
    view["rows"] = [{"tenant": home, "name": deployment.tenants[home].name if home in deployment.tenants else None,
                     "cells": [_shown_cell(cells.get((home, target)), view["collapsed"]) for target in targets]}
                    for home in shown_homes]
    return view


def _shown_cell(cell: dict | None, collapsed: bool) -> dict | None:
    if cell is None or not collapsed:
        return cell
    return {**cell, **{key: _capped(cell[key]) for key in ("agents", "credentials", "tools")}}


# ---- agent permissions --------------------------------------------------------------------------
def permission_cells(graph: PermissionGraph) -> dict[str, dict[str, dict]]:
    """Agent → tool → cell: the operations the agent's roles grant on the tool (effective), the
    highest declared risk among them, and how many are gated (every grant naming it needs approval).

    Agents with the same roles and the same effective pairs share one computation, and one dict."""
    d = graph.deployment
    order = model.RISK_ORDER
    # (tool, op) → (rank, declared risk, conditionally high, every call needs approval)
    facts: dict[tuple[str, str], tuple[int, str, bool, bool]] = {}
    for tool in d.tools.values():
        for op in tool.operations.values():
            declared = risk.declared_risk(op, d.policy)
            facts[(tool.id, op.id)] = (order[declared], declared, op.high_risk_when is not None and declared != "high",
                                       risk.needs_approval(declared, d.policy))
    granted_in_role: dict[str, dict[str, frozenset]] = {}  # role → tool → the pairs its grants name
    ungated_in_role: dict[str, frozenset] = {}  # role → the pairs some grant of it names without approval
    for role in d.roles.values():
        by_tool: dict[str, set] = defaultdict(set)
        for grant in role.grants:
            for tool, op in d.operations_of(grant):
                by_tool[tool.id].add((tool.id, op.id))
        granted_in_role[role.id] = {tool_id: frozenset(named) for tool_id, named in by_tool.items()}
        ungated_in_role[role.id] = frozenset((tool.id, op.id) for grant in role.grants if not grant.approval
                                             for tool, op in d.operations_of(grant))
    shared: dict[tuple, dict[str, dict]] = {}
    made: dict[tuple, dict] = {}  # one cell per (pairs, ungated pairs) of a tool: cells repeat a lot
    result = {}
    for agent_id in sorted(d.agents):
        roles = tuple(d.agents[agent_id].roles)
        pairs = graph.effective_pairs(agent_id)  # what the roles grant, less what they deny
        key = (roles, pairs)
        cells = shared.get(key)
        if cells is None:
            # an effective pair is named by a grant of these roles: gated unless one such grant is not
            ungated = frozenset().union(*(ungated_in_role.get(r, ()) for r in roles))
            named: dict[str, frozenset] = {}
            for role_id in roles:
                for tool_id, tool_pairs in granted_in_role.get(role_id, {}).items():
                    named[tool_id] = named[tool_id] | tool_pairs if tool_id in named else tool_pairs
            cells = {}
            for tool_id in sorted(named):
                held = named[tool_id] & pairs
                if held:
                    cell_key = (held, held & ungated)
                    cell = made.get(cell_key)
                    if cell is None:
                        cell = made[cell_key] = _cell(tool_id, sorted(op for _, op in held),
                                                      [op for _, op in cell_key[1]], facts)
                    cells[tool_id] = cell
            shared[key] = cells
        result[agent_id] = cells
    return result


def _cell(tool_id: str, ops: list[str], skipped: list[str], facts: dict) -> dict:
    """One agent × tool cell: ``ops`` granted (sorted), ``skipped`` those some grant gives without approval."""
    rank, highest, conditional = -1, None, False
    for op_id in ops:
        op_rank, declared, conditionally_high, _ = facts[(tool_id, op_id)]
        if op_rank > rank:  # the first of the highest, as max() would pick
            rank, highest = op_rank, declared
        conditional = conditional or conditionally_high
    gated = len(ops) - len(skipped)
    return {"ops": ops, "risk": highest, "conditional": conditional,
            "gated": "all" if gated == len(ops) else ("some" if gated else "none"), "gated_count": gated,
            # approval required by the operation's declared risk, and a grant skips it
            "ungated_required": sum(facts[(tool_id, op_id)][3] for op_id in skipped)}


def permission_matrix(graph: PermissionGraph, focus: Focus | None = None, beside: Beside | None = None) -> dict:
    """Agent × tool: the operations each agent's roles grant (effective), by highest declared risk.

    Past ``MAX_MATRIX_AGENTS`` agents or ``MAX_MATRIX_TOOLS`` tools (and with ``beside``), a per-tool summary and
    the agents findings name, one by one; every cell goes into ``agent-permissions.csv`` beside.
    """
    d = graph.deployment
    by_agent = permission_cells(graph)
    tools = sorted(d.tools)
    view = {"tools": tools, "require_approval": d.policy.require_approval, "collapsed": False}
    max_agents, max_tools = MAX_MATRIX_AGENTS, MAX_MATRIX_TOOLS
    if beside is None or (len(d.agents) <= max_agents and len(tools) <= max_tools):
        view["rows"] = [{"agent": agent_id, "name": d.agents[agent_id].name,
                         "cells": [by_agent[agent_id].get(tool_id) for tool_id in tools]} for agent_id in sorted(d.agents)]
        return view
    # agents with the same roles share one cells dict: count each once, times how many share it
    profiles: dict[int, list] = {}  # id(cells) → [cells, agents sharing it]
    for cells in by_agent.values():
        entry = profiles.setdefault(id(cells), [cells, 0])
        entry[1] += 1
    weights: Counter = Counter()  # (tool, id of a cell) → agents holding it; cells are shared too
    cell_of: dict[int, dict] = {}
    for cells, weight in profiles.values():
        for tool_id, cell in cells.items():
            weights[(tool_id, id(cell))] += weight
            cell_of[id(cell)] = cell
    kinds: Counter = Counter()  # (tool, risk, gated, conditional, exposed) → agents
    granted: dict[str, set] = defaultdict(set)
    for (tool_id, cell_id), weight in weights.items():
        cell = cell_of[cell_id]
        kinds[(tool_id, cell["risk"], cell["gated"], cell["conditional"], cell["ungated_required"] > 0)] += weight
        granted[tool_id].update(cell["ops"])
    per_tool = {t: {"tool": t, "tenancy": d.tools[t].tenancy, "agents": 0, "ops": granted.get(t, set()),
                    "risk": Counter(), "gated": Counter(), "conditional": 0, "ungated_required": 0} for t in tools}
    totals = {"cells": 0, "risk": Counter(), "gated": Counter(), "conditional": 0, "ungated_required": 0}
    for (tool_id, highest, gated, conditional, exposed), weight in kinds.items():
        for bucket in (per_tool[tool_id], totals):
            bucket["risk"][highest] += weight
            bucket["gated"][gated] += weight
            bucket["conditional"] += weight * conditional
            bucket["ungated_required"] += weight * exposed
        per_tool[tool_id]["agents"] += weight
        totals["cells"] += weight
    ranked = sorted(per_tool.values(),
                    key=lambda r: (-r["ungated_required"], -r["risk"]["high"], -r["agents"], r["tool"]))
    summary_rows = [{**r, "ops": len(r["ops"]), "effects": _effects(d, r["tool"], r["ops"])} for r in ranked]
    # each shared cells dict is written as CSV once; an agent's rows are its id before those lines
    # (ids that match FORMAT's id syntax need neither CSV quoting nor the formula guard: a fast path)
    plain_tools = {t.id for t in d.tools.values() if _PLAIN_ID.match(t.id) and all(map(_PLAIN_ID.match, t.operations))}
    line_of: dict[int, str] = {}  # id of a cell → its CSV line after the agent
    for (tool_id, cell_id) in weights:
        cell = cell_of[cell_id]
        values = (cell["risk"], "yes" if cell["conditional"] else "no", cell["gated"], cell["gated_count"],
                  cell["ungated_required"], len(cell["ops"]))
        line_of[cell_id] = (f"{tool_id},{'; '.join(cell['ops'])},{','.join(map(str, values))}\n"
                            if tool_id in plain_tools else _csv_line((tool_id, cell["ops"], *values)))
    blocks: dict[int, tuple[list[str], bool]] = {}  # each shared cells dict's lines, and whether all are plain
    for key, (cells, _) in profiles.items():
        blocks[key] = ([line_of[id(cell)] for cell in cells.values()], all(map(plain_tools.__contains__, cells)))
    lines = [_csv_line(["agent", "tool", "operations", "highest_risk", "conditionally_high", "gated",
                        "gated_operations", "ungated_needing_approval", "operations_granted"])]
    joined: dict[int, str] = {}
    for agent_id, cells in by_agent.items():
        agent = f"{agent_id}," if _PLAIN_ID.match(agent_id) else _csv_line([agent_id])[:-1] + ","
        block, plain = blocks[id(cells)]
        if not block:
            continue
        if plain:  # one line a cell, no newline inside: prefix every line at once
            text = joined.get(id(cells))
            if text is None:
                text = joined[id(cells)] = "".join(block)[:-1]
            lines.append(agent + text.replace("\n", "\n" + agent) + "\n")
        else:
            lines.extend([agent + line for line in block])
    csv_link = beside.add("agent-permissions.csv", "".join(lines),
        "the whole agent × tool matrix, one row per non-empty cell: the operations the agent's roles grant on "
        "the tool, the highest declared risk, how many are gated, and how many need approval by their risk "
        "but some grant skips it", totals["cells"])
    summary_link = beside.add("tool-summary.csv", csv_text(
        ["tool", "tenancy", "agents", "operations_granted", "cells_low", "cells_medium", "cells_high",
         "gated_all", "gated_some", "gated_none", "conditionally_high", "ungated_needing_approval"],
        [(r["tool"], r["tenancy"], r["agents"], r["ops"], r["risk"]["low"], r["risk"]["medium"], r["risk"]["high"],
          r["gated"]["all"], r["gated"]["some"], r["gated"]["none"], r["conditional"], r["ungated_required"])
         for r in summary_rows]),
        "the per-tool summary of the agent × tool matrix, every tool", len(summary_rows))
    named = sorted(focus.ids("agent") & set(d.agents)) if focus else []
    view.update(collapsed=True, agents=len(d.agents), max_agents=max_agents, max_tools=max_tools, totals=totals,
                tool_rows=summary_rows[:MAX_TOOL_SUMMARY], tool_rows_total=len(summary_rows),
                csv=csv_link, summary_csv=summary_link, focus_total=len(named),
                focus=[_focus_row(d, agent_id, by_agent[agent_id]) for agent_id in named[:MAX_FOCUS_AGENTS]])
    return view


def _effects(d: model.Deployment, tool_id: str, ops: set[str]) -> list[tuple[str, int]]:
    counts = Counter(d.tools[tool_id].operations[op].effect for op in ops)
    return sorted(counts.items())


def _focus_row(d: model.Deployment, agent_id: str, cells: dict[str, dict]) -> dict:
    ranked = sorted(cells.items(), key=lambda item: (-model.RISK_ORDER[item[1]["risk"]], item[0]))
    return {"agent": agent_id, "name": d.agents[agent_id].name, "roles": _list_text(d.agents[agent_id].roles),
            "tools_total": len(cells), "cells": [{"tool": tool_id, **cell} for tool_id, cell in ranked[:MAX_FOCUS_TOOLS]]}


# ---- inventory ----------------------------------------------------------------------------------
def _tenants_text(value) -> str:
    if value == model.STAR:
        return "* (every tenant)"
    return ", ".join(value) if value else "—"


def _list_text(value, star: str = "*") -> str:
    if value == model.STAR:
        return star
    return ", ".join(value) if value else "—"


def inventory(graph: PermissionGraph) -> dict:
    d = graph.deployment
    workflows_of: dict[str, list[str]] = defaultdict(list)
    for w in d.workflows.values():
        workflows_of[w.tenant].append(w.id)
    holders_of_role: dict[str, list[str]] = defaultdict(list)
    holders_of_credential: dict[str, list[str]] = defaultdict(list)
    for a in d.agents.values():
        for role_id in set(a.roles):
            holders_of_role[role_id].append(a.id)
        if a.credentials != model.STAR:
            for cred_id in set(a.credentials):
                holders_of_credential[cred_id].append(a.id)
    gates_of: dict[str, list[str]] = defaultdict(list)
    for g in d.gates.values():
        if g.approvers != model.STAR:
            for person_id in set(g.approvers):
                gates_of[person_id].append(g.id)
    return {
        "tenants": [{"id": t.id, "name": t.name, "description": t.description, "location": _location(t.loc),
                     "attributes": ", ".join(f"{k}={v}" for k, v in sorted(t.attributes.items())),
                     "workflows": sorted(workflows_of[t.id])}
                    for t in sorted(d.tenants.values(), key=lambda t: t.id)],
        "people": [{"id": p.id, "name": p.name, "email": p.email, "location": _location(p.loc),
                    "gates": sorted(gates_of[p.id])}
                   for p in sorted(d.people.values(), key=lambda p: p.id)],
        "agents": [{"id": a.id, "name": a.name, "description": a.description, "roles": _list_text(a.roles),
                    "tenants": _tenants_text(a.tenants), "credentials": _list_text(a.credentials),
                    "delegates_to": _list_text(a.delegates_to), "untrusted_input": a.untrusted_input,
                    "location": _location(a.loc)} for a in sorted(d.agents.values(), key=lambda a: a.id)],
        "roles": [{"id": r.id, "name": r.name, "description": r.description, "location": _location(r.loc),
                   "agents": sorted(holders_of_role[r.id]),
                   # (no line of each grant: the report shows the role's; a large deployment has 100,000s)
                   "grants": [_permission_text(p, located=False) for p in r.grants],
                   "denies": [_permission_text(p, located=False) for p in r.denies]}
                  for r in sorted(d.roles.values(), key=lambda r: r.id)],
        "tools": [{"id": t.id, "name": t.name, "description": t.description, "tenancy": t.tenancy,
                   "enforced_by": t.enforced_by, "location": _location(t.loc),
                   "operations": [{"id": o.id, "effect": o.effect, "risk": risk.declared_risk(o, d.policy),
                                   "external": o.external, "data": ", ".join(o.data),
                                   "high_risk_when": o.high_risk_when.source if o.high_risk_when else None,
                                   "location": _location(o.loc)}
                                  for o in sorted(t.operations.values(), key=lambda o: o.id)]}
                  for t in sorted(d.tools.values(), key=lambda t: t.id)],
        "credentials": [{"id": c.id, "name": c.name, "tools": _list_text(c.tools, "* (every tool)"),
                         "tenants": _tenants_text(c.tenants), "issued": c.issued, "store": c.store,
                         "ttl": c.ttl.text, "rotation": c.rotation.text, "logged": c.logged,
                         "holders": sorted(holders_of_credential[c.id]),
                         "location": _location(c.loc)} for c in sorted(d.credentials.values(), key=lambda c: c.id)],
        "gates": [{"id": g.id, "name": g.name, "approvers": _list_text(g.approvers), "real": d.is_real_gate(g.id),
                   "location": _location(g.loc)} for g in sorted(d.gates.values(), key=lambda g: g.id)],
        "workflows": [{"id": w.id, "name": w.name, "tenant": w.tenant, "agent": w.agent,
                       "tools": _list_text(w.tools, "* (every tool)"), "location": _location(w.loc)}
                      for w in sorted(d.workflows.values(), key=lambda w: w.id)],
        "guardrails": [_permission_text(p) for p in d.guardrails],
        "policy": d.policy,
        "audit": d.audit,
    }


# Each inventory table's CSV: its columns and how a row of the table's view becomes a CSV row.
_INVENTORY_CSV = {
    "tenants": (["id", "name", "description", "attributes", "workflows", "location"],
                lambda t: [t["id"], t["name"], t["description"], t["attributes"], t["workflows"], t["location"]]),
    "agents": (["id", "name", "description", "roles", "tenants", "credentials", "delegates_to", "untrusted_input",
                "location"],
               lambda a: [a["id"], a["name"], a["description"], a["roles"], a["tenants"], a["credentials"],
                          a["delegates_to"], a["untrusted_input"], a["location"]]),
    "roles": (["id", "name", "description", "given_to", "grants", "denies", "location"],
              lambda r: [r["id"], r["name"], r["description"], r["agents"], len(r["grants"]), len(r["denies"]),
                         r["location"]]),
    "credentials": (["id", "name", "held_by", "tools", "tenants", "issued", "store", "ttl", "rotation", "logged",
                     "location"],
                    lambda c: [c["id"], c["name"], c["holders"], c["tools"], c["tenants"], c["issued"], c["store"],
                               c["ttl"], c["rotation"], c["logged"], c["location"]]),
    "gates": (["id", "name", "approvers", "a_person_approves", "location"],
              lambda g: [g["id"], g["name"], g["approvers"], g["real"], g["location"]]),
    "people": (["id", "name", "email", "approves_through", "location"],
               lambda p: [p["id"], p["name"], p["email"], p["gates"], p["location"]]),
    "workflows": (["id", "name", "tenant", "agent", "tools", "location"],
                  lambda w: [w["id"], w["name"], w["tenant"], w["agent"], w["tools"], w["location"]]),
    "guardrails": (["guardrail", "denies", "when", "agents", "tenants", "location"],
                   lambda p: [p["label"], p["what"], p["when"], p["agents"], p["tenants"], p["location"]]),
}
_PERMISSION_CSV = ["role", "kind", "label", "tool_and_operations", "fields", "when", "approval"]
_FOCUS_KIND = {"tenants": "tenant", "agents": "agent", "roles": "role", "tools": "tool",
               "credentials": "credential", "gates": "gate", "people": "person", "workflows": "workflow"}


def _table_items(row: dict) -> int:
    """How many names a row's cells list (the lists, and the comma-joined texts)."""
    return sum(len(v) if isinstance(v, list) else v.count(", ") for k, v in row.items()
               if isinstance(v, list) or (k in _JOINED and isinstance(v, str)))


_JOINED = ("roles", "credentials", "delegates_to", "approvers", "tenants", "tools")


def collapse_inventory(view: dict, focus: Focus | None, beside: Beside) -> dict:
    """Each table with more than ``MAX_INVENTORY_ROWS`` rows, or more than ``MAX_TABLE_ITEMS`` names
    in its cells, collapses: it keeps the rows findings involve, then the first by id, up to
    ``MAX_INVENTORY_ROWS``, in id order, each cell cut to ``MAX_CELL_ITEMS`` names; the whole table
    goes into ``inventory/NAME.csv`` beside the report."""
    max_rows, max_items = MAX_INVENTORY_ROWS, MAX_TABLE_ITEMS
    notes: dict[str, dict] = {}
    out = dict(view)
    for table, rows in view.items():
        if table in ("policy", "audit") or (len(rows) <= max_rows and sum(map(_table_items, rows)) <= max_items):
            continue
        if table == "tools":
            header = ["tool", "name", "tenancy", "enforced_by", "operation", "effect", "risk", "external", "data",
                      "high_risk_when", "location"]
            csv_rows = [[t["id"], t["name"], t["tenancy"], t["enforced_by"], o["id"], o["effect"], o["risk"],
                         o["external"], o["data"], o["high_risk_when"], o["location"]]
                        for t in rows for o in t["operations"]]
        else:
            header, to_row = _INVENTORY_CSV[table]
            csv_rows = [to_row(row) for row in rows]
        singular = {"people": "person", "guardrails": "guardrail"}.get(table, table[:-1])
        href = beside.add(f"inventory/{table}.csv", csv_text(header, csv_rows),
                          f"every {singular} of the deployment" + (", one row per operation" if table == "tools"
                                                                   else ""), len(csv_rows))
        named = focus.ids(_FOCUS_KIND[table]) if focus and table in _FOCUS_KIND else set()
        if table == "tenants" and focus:
            named |= set(focus.tenants)  # the tenants findings involve, not only those they name
        if table == "guardrails":
            keep = list(range(min(max_rows, len(rows))))
        else:
            keep = [i for i, row in enumerate(rows) if row["id"] in named][:max_rows]
            chosen = set(keep)
            keep += [i for i in range(len(rows)) if i not in chosen][:max_rows - len(keep)]
            keep.sort()
        out[table] = [_short_row(rows[i]) for i in keep]
        notes[table] = {"shown": len(keep), "total": len(rows),
                        "named": sum(1 for i in keep if table != "guardrails" and rows[i]["id"] in named),
                        "href": href, "name": f"{beside.folder}/inventory/{table}.csv", "cell_items": MAX_CELL_ITEMS}
        if table == "roles":
            perm_rows = [[r["id"], kind[:-1], p["label"], p["what"], p["fields"], p["when"], p["approval"]]
                         for r in rows for kind in ("grants", "denies") for p in r[kind]]
            notes["permissions"] = {"total": len(perm_rows), "name": f"{beside.folder}/inventory/role-permissions.csv",
                                    "href": beside.add("inventory/role-permissions.csv",
                                                       csv_text(_PERMISSION_CSV, perm_rows),
                                                       "every grant and deny of every role, in the order of "
                                                       "the role's file (the label counts them)", len(perm_rows))}
    out["notes"] = notes
    return out


def _short_row(row: dict) -> dict:
    """A row whose cells list at most ``MAX_CELL_ITEMS`` names (the full row is in the CSV)."""
    original, row = row, dict(row)
    for key, value in original.items():
        if key in ("grants", "denies", "operations"):
            if len(value) > MAX_CELL_ITEMS:
                row[key + "_more"] = len(value) - MAX_CELL_ITEMS
                row[key] = value[:MAX_CELL_ITEMS]
        elif isinstance(value, list):
            row[key] = _capped(value)
        elif key in _JOINED and isinstance(value, str) and value.count(", ") >= MAX_CELL_ITEMS:
            row[key] = ", ".join(_capped(value.split(", ")))
    return row


def _permission_text(perm: model.Permission, located: bool = True) -> dict:
    ops = "every operation" if perm.operations == model.STAR else ", ".join(perm.operations)
    tool = "every tool" if perm.tool == model.STAR else perm.tool
    parts = {"label": perm.label, "what": f"{tool}: {ops}", "fields": ", ".join(perm.fields) if perm.fields else None,
             "when": perm.when.source if perm.when else None, "approval": perm.approval,
             "location": _location(perm.loc) if located else None}
    if perm.kind == "guardrail":
        parts["agents"] = _list_text(perm.agents) if perm.agents is not None else "*"
        parts["tenants"] = _list_text(perm.tenants) if perm.tenants is not None else "*"
    return parts


# ---- the permission graph -----------------------------------------------------------------------
def graph_section(result: CheckResult, graph: PermissionGraph, rules: dict[str, Rule], dot_name: str,
                  max_nodes: int = MAX_INLINE_GRAPH_NODES, *, focus: Focus | None = None,
                  beside: Beside | None = None) -> tuple[dict, Streamed]:
    """The inline pictures (or why there are none) and the full DOT to write beside the report.

    Past ``MAX_TENANT_VIEWS`` tenants (and with ``beside``), only the tenants findings involve get
    a picture. A graph too large to draw inline gets a picture of what the findings name instead.
    The full DOT is returned at every size, to be streamed to its file; past ``MAX_DRAWABLE_NODES``
    nodes, which Graphviz cannot lay out in useful time, the DOT of the findings' picture and of
    each tenant's go into ``graph/`` beside the report too, small enough to draw.
    """
    d = graph.deployment
    violated = {inv.id for inv in result.invariants if inv.status == "violated"}
    highlight = dotrender.highlight_of([f for f in result.active() if f.rule in violated], graph)
    nodes = graph.g.number_of_nodes()
    # (from the adjacency: networkx's edge views and its own count are several times slower)
    edge_kinds = Counter(kind for _, targets in graph.g.adjacency() for keyed in targets.values() for kind in keyed)
    drawable = beside is None or nodes <= MAX_DRAWABLE_NODES or nodes <= max_nodes  # (a graph drawn inline is small)
    title = f"Permission graph of {d.name}"
    full_dot = Streamed(lambda handle: dotrender.write_dot(graph, handle, highlight=highlight, title=title))
    section = {"dot_name": dot_name, "dot_href": href_of(dot_name), "drawable": drawable,
               "nodes": nodes, "edges": sum(edge_kinds.values()), "svg": None,
               "too_large": nodes > max_nodes, "max_nodes": max_nodes, "missing_dot": None, "tenants": [],
               "highlighted_edges": len(highlight.edges), "violated": sorted(violated),
               "node_kinds": sorted(Counter(data["kind"] for _, data in graph.g.nodes(data=True)).items()),
               "edge_kinds": sorted(edge_kinds.items()),
               "max_drawable_nodes": MAX_DRAWABLE_NODES, "findings_view": None, "views_collapsed": False}
    tenants = sorted(d.tenants)
    if beside is not None and len(tenants) > MAX_TENANT_VIEWS:
        drawn = list(focus.tenants[:MAX_TENANT_VIEWS]) if focus else []
        section.update(views_collapsed=True, tenants_total=len(tenants), tenants_involved=len(focus.tenants)
                       if focus else 0, max_views=MAX_TENANT_VIEWS)
    else:
        drawn = tenants
    index_of = {t: i for i, t in enumerate(tenants, start=1)}
    # the DOT files first: they are written whether or not `dot` can draw the pictures
    views = []
    for tenant_id in drawn:
        kept = dotrender.view_nodes(graph, tenant=tenant_id)
        view = {"tenant": tenant_id, "name": d.tenants[tenant_id].name, "nodes": len(kept), "svg": None,
                "href": None, "dot": None}
        if not drawable:
            file_name = f"graph/tenant-{index_of[tenant_id]:05d}-{_file_slug(tenant_id)}.dot"
            view["dot"] = f"{beside.folder}/{file_name}"
            view["href"] = beside.add(file_name, dotrender.dot_source(graph, nodes=kept, highlight=highlight,
                                                                      title=f"Tenant {tenant_id}"),
                                      f"DOT of tenant {tenant_id}'s view (as `agentperm graph --tenant` writes it)")
        views.append((view, kept))
    if section["too_large"] and beside is not None and focus is not None and focus.nodes:
        section["findings_view"] = {"nodes": len(focus.nodes), "svg": None, "href": None}
        if not drawable:
            section["findings_view"]["href"] = beside.add(
                "graph/findings.dot", dotrender.dot_source(graph, nodes=focus.nodes, highlight=highlight,
                                                           title=f"What the findings of {d.name} name"),
                "DOT of the nodes the findings name (subjects and path steps) and the edges between them")
    try:
        if not section["too_large"]:
            # inline, edge labels are too small to read; each edge's reason shows on hover instead
            inline_dot = dotrender.dot_source(graph, highlight=highlight, edge_labels=False)
            section["svg"] = Markup(dotrender.svg_of(inline_dot))
        elif section["findings_view"] and len(focus.nodes) <= max_nodes:
            section["findings_view"]["svg"] = Markup(dotrender.svg_of(dotrender.dot_source(
                graph, nodes=focus.nodes, highlight=highlight, edge_labels=False, graph_id="findingsview")))
        for view, kept in views:
            if len(kept) <= max_nodes:
                view["svg"] = Markup(dotrender.svg_of(
                    dotrender.dot_source(graph, nodes=kept, highlight=highlight, edge_labels=False,
                                         graph_id=f"tenant{index_of[view['tenant']]}")))
            section["tenants"].append(view)
    except dotrender.DotMissing as exc:
        section["svg"] = None
        section["tenants"] = []
        if section["findings_view"]:
            section["findings_view"]["svg"] = None
        section["missing_dot"] = str(exc)
    graph_files = [name for name in beside.files if name.startswith("graph/")] if beside is not None else []
    section["dot_files"] = len(graph_files)
    section["dot_folder_href"] = beside.href("graph/") if graph_files else None
    return section, full_dot


# ---- the whole report ---------------------------------------------------------------------------
def render_report(result: CheckResult, graph: PermissionGraph, rules: dict[str, Rule], *, version: str,
                  date: str | None = None, fail_on: str = "low", report_name: str = "report.html",
                  max_graph_nodes: int | None = None) -> RenderedReport:
    """The whole report; ``report_name`` is the HTML file's name, used to link the files beside it.

    Attachments are paths relative to the report's folder: the full DOT (``NAME.graph.dot``, at
    every size, :class:`Streamed`) and, when a part collapsed, the files of ``NAME.files/``.
    """
    deployment = graph.deployment
    summary = result.summary()
    active = result.active()
    exit_code = result.exit_code(fail_on)
    by_mistake = Counter(mistake_of(f.rule, rules) for f in active)
    mistakes = [(key, label, by_mistake[key], "#b91c1c" if by_mistake[key] else "#16a34a")
                for key, label, _ in (*MISTAKES, HYGIENE)]
    mistake_rules = {key: list(members) for key, _, members in MISTAKES}
    mistake_rules["other"] = sorted({f.rule for f in active if mistake_of(f.rule, rules) == "other"}
                                    | _EXPLICIT_OTHER)
    severity_bars = [(s, s.capitalize(), summary["by_severity"][s], SEVERITY_COLORS[s]) for s in SEVERITIES]
    name = Path(report_name).name
    dot_name = attachment_name(name)
    beside = Beside(name, data_folder_name(name))
    groups = finding_groups(result, rules)
    _, cells, _ = _tenant_cells(result, deployment)
    focus = focus_of(result, graph, {tenant for pair, cell in cells.items() if not cell["home"] for tenant in pair})
    graph_view, full_dot = graph_section(result, graph, rules, dot_name,
                                         MAX_INLINE_GRAPH_NODES if max_graph_nodes is None else max_graph_nodes,
                                         focus=focus, beside=beside)
    inventory_view = collapse_inventory(inventory(graph), focus, beside)
    context = {
        "title": f"Agent permission audit — {deployment.name}",
        "deployment": {"name": deployment.name, "paths": list(result.deployment_paths), "digest": result.digest,
                       "files": list(deployment.files)[:MAX_LISTED_FILES], "files_total": len(deployment.files)},
        "version": version,
        "date": date,
        "fail_on": fail_on,
        "verdict": VERDICTS.get(exit_code, "FAIL"),
        "summary": summary,
        "invariants": [{"id": inv.id, "status": inv.status, "reason": inv.reason, "witnesses": len(inv.classes) or len(inv.witnesses),
                        "title": rules[inv.id].title if inv.id in rules else inv.id} for inv in result.invariants],
        "severity_chart": _bars(severity_bars),
        "mistake_chart": _bars(mistakes),
        "mistakes": [{"key": key, "label": label, "count": count, "rules": mistake_rules.get(key, [])}
                     for key, label, count, _ in mistakes],
        "groups": groups,
        "long_group": LONG_GROUP,
        "tenant_matrix": tenant_matrix(result, deployment, focus, beside),
        "permission_matrix": permission_matrix(graph, focus, beside),
        "graph": graph_view,
        "inventory": inventory_view,
        "rules_run": [_rule_view(r, rules) for r in result.rules_run],
        "suppressed": [_finding_view(f, i) for i, f in enumerate(result.findings, start=1)
                       if f.suppressed][:MAX_LISTED_FINDINGS],
        "severities": SEVERITIES,
        "counts": {"agents": len(deployment.agents), "tools": len(deployment.tools),
                   "tenants": len(deployment.tenants), "workflows": len(deployment.workflows),
                   "credentials": len(deployment.credentials), "roles": len(deployment.roles),
                   "gates": len(deployment.gates), "people": len(deployment.people)},
    }
    if beside.files or len(deployment.files) > MAX_LISTED_FILES \
            or summary["suppressed"] > MAX_LISTED_FINDINGS or any(g["collapsed"] for g in groups):
        _add_result_files(beside, result, deployment)
    context["findings_csv"] = beside.href("findings.csv") if "findings.csv" in beside.files else None
    context["result_json"] = beside.href("result.json") if "result.json" in beside.files else None
    context["files_txt"] = beside.href("files.txt") if "files.txt" in beside.files else None
    context["beside"] = {"folder": beside.folder, "href": beside.href(""), "files": beside.listing()}
    groups_by_id = {g["rule"]["id"] for g in context["groups"]}
    for inv in context["invariants"]:
        inv["href"] = f"#rule-{inv['id']}" if inv["id"] in groups_by_id else f"#rule-{inv['id']}-meta"
    env = environment()
    css = Markup(env.loader.get_source(env, "report.css")[0])
    html = env.get_template("report.html.j2").render(css=css, **context)
    notes = (graph_view["missing_dot"],) if graph_view["missing_dot"] else ()
    attachments: dict[str, str | Streamed] = {dot_name: full_dot}
    attachments.update(beside.attachments())
    return RenderedReport(html, attachments, notes)


def _add_result_files(beside: Beside, result: CheckResult, deployment: model.Deployment) -> None:
    """Every finding, active or suppressed, in a CSV and (with paths and witnesses) in JSON."""
    rows = [(index, f.rule, f.severity, _location(f.location), f.subjects, f.message,
             f.suppressed.justification if f.suppressed else None, f.suppressed.expires if f.suppressed else None)
            for index, f in enumerate(result.findings, start=1)]
    beside.add("findings.csv", csv_text(["number", "rule", "severity", "location", "subjects", "message",
                                         "suppressed_because", "suppression_expires"], rows),
               "every finding, active and suppressed, with its rule, severity, file:line:column and subjects; "
               "the number is the report's #finding-N anchor", len(rows))
    beside.add("result.json", jsonout.render_check(result),
               "the whole result as `agentperm check --format json` prints it (agentperm-result/1): every "
               "invariant and finding with its path and witness call", len(result.findings))
    if len(deployment.files) > MAX_LISTED_FILES:
        beside.add("files.txt", "".join(f"{f}\n" for f in deployment.files), "every file analysed",
                   len(deployment.files))


def ticks(text: str) -> Markup:
    """Rule prose with `backticked` spans set as code; every part is escaped first."""
    parts = str(text).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: show the text as written
        return Markup.escape(text)
    return Markup("").join(Markup("<code>{}</code>").format(part) if index % 2 else Markup.escape(part)
                           for index, part in enumerate(parts))


def environment():
    """The jinja2 environment of the report templates: autoescape always on, undefined is an error."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters["ticks"] = ticks
    env.filters["num"] = lambda n: f"{n:,}"
    return env
