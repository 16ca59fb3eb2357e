"""The audit report: one self-contained HTML file a reviewer can hand to a client.

Renders a CheckResult with its deployment and permission graph; it recomputes nothing the
analysis decided. Templates and CSS live in ``reports/templates/`` and are rendered with
autoescape on; the only markup not written by a template is the SVG Graphviz draws from DOT
whose every string is escaped (:mod:`analyzer.render.dot`). No clock: the date is passed in.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from markupsafe import Markup

from analyzer import model, risk
from analyzer.errors import Loc
from analyzer.findings import SEVERITIES, CheckResult, Finding
from analyzer.graph import PermissionGraph
from analyzer.render import dot as dotrender
from analyzer.rules import Rule

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "reports" / "templates"
LONG_GROUP = 12  # a rule with more findings folds its list behind one <details>
MAX_INLINE_GRAPH_NODES = 300  # past this the picture is unreadable inline; the DOT goes beside the report

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
class RenderedReport:
    """The HTML text and the files to write beside it (relative name → text)."""

    html: str
    attachments: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # for the person running the command (a missing `dot`, say)


def attachment_name(report_name: str) -> str:
    """`audit.html` → `audit.graph.dot`: the DOT written beside the report."""
    stem = report_name[:-5] if report_name.lower().endswith(".html") else report_name
    return f"{stem}.graph.dot"


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
            "witness": _witness_view(finding.witness), "suppressed": finding.suppressed}


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
    """Active findings grouped by rule, in the order of the result (most severe first)."""
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
        group["lines"] = [(_location(Loc(*key)), count) for key, count in sorted(lines.items())]
        group["repeats"] = any(count > 1 for count in lines.values())
        group["severity_counts"] = [(s, group["severities"][s]) for s in SEVERITIES if group["severities"][s]]
    return list(groups.values())


def tenant_matrix(result: CheckResult, deployment: model.Deployment) -> dict:
    """Which agents and credentials reach each target tenant from workflows of each home tenant.

    Off the diagonal: the witnesses of `no-cross-tenant-reach`. On it: the workflows of the
    tenant and the agents they run (the access a tenant expects).
    """
    homes = sorted({wf.tenant for wf in deployment.workflows.values()})
    targets = sorted(deployment.tenants)
    invariant = next((inv for inv in result.invariants if inv.id == "no-cross-tenant-reach"), None)
    cells: dict[tuple[str, str], dict] = {}
    for home in homes:
        wfs = sorted(w.id for w in deployment.workflows.values() if w.tenant == home)
        agents = sorted({deployment.workflows[w].agent for w in wfs})
        cells[(home, home)] = {"home": True, "agents": agents, "credentials": [], "tools": [], "workflows": wfs,
                               "classes": 0}
    for witness in invariant.witnesses if invariant else ():
        call = witness.get("call", {})
        workflow = deployment.workflows.get(call.get("workflow"))
        if workflow is None:
            continue
        cell = cells.setdefault((workflow.tenant, call.get("tenant")),
                                {"home": False, "agents": [], "credentials": [], "tools": [], "workflows": [],
                                 "classes": 0})
        cell["classes"] += 1
        agent = (call.get("chain") or ["?"])[-1]
        held = [s["to"].split(":", 1)[1] for s in witness.get("path", ()) if s.get("kind") == "holds"]
        for key, value in (("agents", agent), ("tools", call.get("tool")), ("workflows", call.get("workflow"))):
            if value and value not in cell[key]:
                cell[key].append(value)
        for cred in held[-1:]:
            if cred not in cell["credentials"]:
                cell["credentials"].append(cred)
    for cell in cells.values():
        for key in ("agents", "credentials", "tools", "workflows"):
            cell[key] = sorted(cell[key])
    rows = [{"tenant": home, "name": deployment.tenants[home].name if home in deployment.tenants else None,
             "cells": [cells.get((home, target)) for target in targets]} for home in homes]
    return {"status": invariant.status if invariant else "not run", "reason": invariant.reason if invariant else None,
            "targets": [{"tenant": t, "name": deployment.tenants[t].name} for t in targets], "rows": rows,
            "crossings": sum(1 for (h, t), c in cells.items() if h != t)}


def permission_matrix(graph: PermissionGraph) -> dict:
    """Agent × tool: the operations each agent's roles grant (effective), by highest declared risk."""
    d = graph.deployment
    tools = sorted(d.tools)
    rows = []
    for agent_id in sorted(d.agents):
        pairs = graph.effective_pairs(agent_id)
        grants = list(graph.grants_of(agent_id))
        cells = []
        for tool_id in tools:
            ops = sorted(op for t, op in pairs if t == tool_id)
            if not ops:
                cells.append(None)
                continue
            risks, gated, conditional = [], 0, False
            for op_id in ops:
                op = d.tools[tool_id].operations[op_id]
                risks.append(risk.declared_risk(op, d.policy))
                conditional = conditional or (op.high_risk_when is not None
                                              and risk.declared_risk(op, d.policy) != "high")
                matching = [g for g in grants if g.matches(tool_id, op_id)]
                if matching and all(g.approval for g in matching):
                    gated += 1
            highest = max(risks, key=lambda r: model.RISK_ORDER[r])
            cells.append({"ops": ops, "risk": highest, "conditional": conditional,
                          "gated": "all" if gated == len(ops) else ("some" if gated else "none"),
                          "gated_count": gated})
        agent = d.agents[agent_id]
        rows.append({"agent": agent_id, "name": agent.name, "cells": cells})
    return {"tools": tools, "rows": rows, "require_approval": d.policy.require_approval}


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
    return {
        "tenants": [{"id": t.id, "name": t.name, "description": t.description, "location": _location(t.loc),
                     "attributes": ", ".join(f"{k}={v}" for k, v in sorted(t.attributes.items())),
                     "workflows": sorted(w.id for w in d.workflows.values() if w.tenant == t.id)}
                    for t in sorted(d.tenants.values(), key=lambda t: t.id)],
        "people": [{"id": p.id, "name": p.name, "email": p.email, "location": _location(p.loc),
                    "gates": sorted(g.id for g in d.gates.values() if p.id in g.approvers)}
                   for p in sorted(d.people.values(), key=lambda p: p.id)],
        "agents": [{"id": a.id, "name": a.name, "description": a.description, "roles": _list_text(a.roles),
                    "tenants": _tenants_text(a.tenants), "credentials": _list_text(a.credentials),
                    "delegates_to": _list_text(a.delegates_to), "untrusted_input": a.untrusted_input,
                    "location": _location(a.loc)} for a in sorted(d.agents.values(), key=lambda a: a.id)],
        "roles": [{"id": r.id, "name": r.name, "description": r.description, "location": _location(r.loc),
                   "agents": sorted(a.id for a in d.agents.values() if r.id in a.roles),
                   "grants": [_permission_text(p) for p in r.grants], "denies": [_permission_text(p) for p in r.denies]}
                  for r in sorted(d.roles.values(), key=lambda r: r.id)],
        "tools": [{"id": t.id, "name": t.name, "description": t.description, "tenancy": t.tenancy,
                   "enforced_by": t.enforced_by, "location": _location(t.loc),
                   "operations": [{"id": o.id, "effect": o.effect, "risk": risk.declared_risk(o, d.policy),
                                   "external": o.external, "data": ", ".join(o.data),
                                   "high_risk_when": o.high_risk_when.source if o.high_risk_when else None}
                                  for o in sorted(t.operations.values(), key=lambda o: o.id)]}
                  for t in sorted(d.tools.values(), key=lambda t: t.id)],
        "credentials": [{"id": c.id, "name": c.name, "tools": _list_text(c.tools, "* (every tool)"),
                         "tenants": _tenants_text(c.tenants), "issued": c.issued, "store": c.store,
                         "ttl": c.ttl.text, "rotation": c.rotation.text, "logged": c.logged,
                         "holders": sorted(a.id for a in d.agents.values() if c.id in a.credentials),
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


def _permission_text(perm: model.Permission) -> dict:
    ops = "every operation" if perm.operations == model.STAR else ", ".join(perm.operations)
    tool = "every tool" if perm.tool == model.STAR else perm.tool
    parts = {"label": perm.label, "what": f"{tool}: {ops}", "fields": ", ".join(perm.fields) if perm.fields else None,
             "when": perm.when.source if perm.when else None, "approval": perm.approval,
             "location": _location(perm.loc)}
    if perm.kind == "guardrail":
        parts["agents"] = _list_text(perm.agents) if perm.agents is not None else "*"
        parts["tenants"] = _list_text(perm.tenants) if perm.tenants is not None else "*"
    return parts


def graph_section(result: CheckResult, graph: PermissionGraph, rules: dict[str, Rule], dot_name: str,
                  max_nodes: int = MAX_INLINE_GRAPH_NODES) -> tuple[dict, str]:
    """The inline pictures (or why there are none) and the full DOT to write beside the report."""
    violated = {inv.id for inv in result.invariants if inv.status == "violated"}
    highlight = dotrender.highlight_of([f for f in result.active() if f.rule in violated], graph)
    full_dot = dotrender.dot_source(graph, highlight=highlight,
                                    title=f"Permission graph of {graph.deployment.name}")
    # inline, edge labels are too small to read; each edge's reason shows on hover instead
    inline_dot = dotrender.dot_source(graph, highlight=highlight, edge_labels=False)
    nodes = graph.g.number_of_nodes()
    section = {"dot_name": dot_name, "nodes": nodes, "edges": graph.g.number_of_edges(), "svg": None,
               "too_large": nodes > max_nodes, "max_nodes": max_nodes, "missing_dot": None, "tenants": [],
               "highlighted_edges": len(highlight.edges), "violated": sorted(violated),
               "node_kinds": sorted(Counter(d["kind"] for _, d in graph.g.nodes(data=True)).items()),
               "edge_kinds": sorted(Counter(d["kind"] for _, _, d in graph.g.edges(data=True)).items())}
    try:
        if not section["too_large"]:
            section["svg"] = Markup(dotrender.svg_of(inline_dot))
        for index, tenant_id in enumerate(sorted(graph.deployment.tenants), start=1):
            kept = dotrender.view_nodes(graph, tenant=tenant_id)
            view = {"tenant": tenant_id, "name": graph.deployment.tenants[tenant_id].name, "nodes": len(kept),
                    "svg": None}
            if len(kept) <= max_nodes:
                view["svg"] = Markup(dotrender.svg_of(
                    dotrender.dot_source(graph, tenant=tenant_id, highlight=highlight, edge_labels=False,
                                         graph_id=f"tenant{index}")))
            section["tenants"].append(view)
    except dotrender.DotMissing as exc:
        section["svg"] = None
        section["tenants"] = []
        section["missing_dot"] = str(exc)
    return section, full_dot


def render_report(result: CheckResult, graph: PermissionGraph, rules: dict[str, Rule], *, version: str,
                  date: str | None = None, fail_on: str = "low", report_name: str = "report.html",
                  max_graph_nodes: int = MAX_INLINE_GRAPH_NODES) -> RenderedReport:
    """The whole report; ``report_name`` is the HTML file's name, used to link the DOT beside it."""
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
    dot_name = attachment_name(Path(report_name).name)
    graph_view, full_dot = graph_section(result, graph, rules, dot_name, max_graph_nodes)
    context = {
        "title": f"Agent permission audit — {deployment.name}",
        "deployment": {"name": deployment.name, "paths": list(result.deployment_paths), "digest": result.digest,
                       "files": list(deployment.files)},
        "version": version,
        "date": date,
        "fail_on": fail_on,
        "verdict": VERDICTS.get(exit_code, "FAIL"),
        "summary": summary,
        "invariants": [{"id": inv.id, "status": inv.status, "reason": inv.reason, "witnesses": len(inv.witnesses),
                        "title": rules[inv.id].title if inv.id in rules else inv.id} for inv in result.invariants],
        "severity_chart": _bars(severity_bars),
        "mistake_chart": _bars(mistakes),
        "mistakes": [{"key": key, "label": label, "count": count, "rules": mistake_rules.get(key, [])}
                     for key, label, count, _ in mistakes],
        "groups": finding_groups(result, rules),
        "long_group": LONG_GROUP,
        "tenant_matrix": tenant_matrix(result, deployment),
        "permission_matrix": permission_matrix(graph),
        "graph": graph_view,
        "inventory": inventory(graph),
        "rules_run": [_rule_view(r, rules) for r in result.rules_run],
        "suppressed": [_finding_view(f, i) for i, f in enumerate(result.findings, start=1) if f.suppressed],
        "severities": SEVERITIES,
        "counts": {"agents": len(deployment.agents), "tools": len(deployment.tools),
                   "tenants": len(deployment.tenants), "workflows": len(deployment.workflows),
                   "credentials": len(deployment.credentials), "roles": len(deployment.roles),
                   "gates": len(deployment.gates), "people": len(deployment.people)},
    }
    groups = {g["rule"]["id"] for g in context["groups"]}
    for inv in context["invariants"]:
        inv["href"] = f"#rule-{inv['id']}" if inv["id"] in groups else f"#rule-{inv['id']}-meta"
    env = environment()
    css = Markup(env.loader.get_source(env, "report.css")[0])
    html = env.get_template("report.html.j2").render(css=css, **context)
    notes = (graph_view["missing_dot"],) if graph_view["missing_dot"] else ()
    return RenderedReport(html, {dot_name: full_dot}, notes)


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
    return env
