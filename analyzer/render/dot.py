"""The permission graph as Graphviz DOT, and as SVG through Graphviz's `dot`.

Tenants are clusters: a workflow, an agent or a credential that belongs to exactly one tenant
sits inside that tenant's cluster; whatever several tenants share sits outside. Node shapes
say what a node is, every edge carries its reason as a tooltip (and as the SVG ``<title>``),
and the paths of findings can be drawn in red. Every string from the deployment is escaped
for DOT, so a name can never become DOT syntax or markup in the SVG.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from html import escape as html_escape

from analyzer import model
from analyzer.graph import PermissionGraph

INSTALL_HINT = ("Graphviz's `dot` is not installed, so no SVG could be drawn; install it with "
                "`sudo apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS) or "
                "from https://graphviz.org/download/ — the DOT source is written instead")

SHAPES = {"agent": "box", "tool": "component", "operation": "ellipse", "credential": "note", "gate": "diamond",
          "person": "egg", "role": "hexagon", "tenant": "folder", "workflow": "cds", "grant": "box",
          "deny": "octagon", "guardrail": "octagon"}
FILLS = {"agent": "#dbeafe", "tool": "#ede9fe", "credential": "#fef9c3", "gate": "#e0f2fe", "person": "#f1f5f9",
         "role": "#e2e8f0", "tenant": "#dcfce7", "workflow": "#f3e8ff", "grant": "#ffffff", "deny": "#fee2e2",
         "guardrail": "#fecaca"}
RISK_FILLS = {"low": "#ecfdf5", "medium": "#fef3c7", "high": "#fee2e2"}
HIGHLIGHT = "#dc2626"
MAX_LABEL = 48  # longer names are cut in the picture; the full text is in the tooltip and the report


class DotMissing(RuntimeError):
    """Graphviz's `dot` executable is not installed."""

    def __init__(self):
        super().__init__(INSTALL_HINT)


@dataclass(frozen=True)
class Highlight:
    """Nodes and edges (source, target, kind) to draw in red."""

    nodes: frozenset[str] = field(default_factory=frozenset)
    edges: frozenset[tuple[str, str, str]] = field(default_factory=frozenset)

    def __bool__(self) -> bool:
        return bool(self.nodes or self.edges)


def highlight_of(findings: Iterable, graph: PermissionGraph) -> Highlight:
    """The paths of the findings; a finding without a path highlights its subjects instead."""
    nodes: set[str] = set()
    edges: set[tuple[str, str, str]] = set()
    for finding in findings:
        if finding.path:
            for step in finding.path:
                edges.add((step.source, step.target, step.kind))
                nodes.update((step.source, step.target))
        else:
            nodes.update(s for s in finding.subjects if s in graph.g)
    return Highlight(frozenset(nodes), frozenset(edges))


def quote(text: str) -> str:
    """A DOT double-quoted string whose content Graphviz shows literally (no escString expansion)."""
    text = "".join(ch if ch >= " " or ch == "\n" else " " for ch in str(text))
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_LABEL else text[:MAX_LABEL - 1] + "…"


# ---- which nodes a view keeps ----------------------------------------------------------------
_STOP_EXPANDING = {"approved-by", "serves", "reaches", "for-tenant"}  # keep the target, do not walk on


def _walk(graph: PermissionGraph, seeds: Iterable[str], expand_agents: bool) -> set[str]:
    kept = set(seeds)
    frontier = list(kept)
    while frontier:
        current = frontier.pop()
        for _, target, kind in graph.g.out_edges(current, keys=True):
            if target in kept:
                continue
            kept.add(target)
            if kind in _STOP_EXPANDING or (kind == "delegates-to" and not expand_agents):
                continue
            frontier.append(target)
    return kept


def view_nodes(graph: PermissionGraph, tenant: str | None = None, agent: str | None = None) -> set[str]:
    """The nodes a view keeps: everything (no filter), a tenant's part, or an agent's neighbourhood.

    A tenant keeps its workflows and the agents serving it, with everything they reach (roles,
    grants, operations, credentials, tools, delegates, gates). An agent keeps itself, what it
    reaches (not walking on through its delegates), and whatever points at it directly.
    """
    g = graph.g
    kept = set(g.nodes)
    if tenant is not None:
        t = f"tenant:{tenant}"
        seeds = {t} | {s for s, _, k in g.in_edges(t, keys=True) if k in ("for-tenant", "serves")}
        kept = _walk(graph, seeds, expand_agents=True)
    if agent is not None:
        a = f"agent:{agent}"
        around = _walk(graph, {a}, expand_agents=False) | set(g.predecessors(a))
        kept &= around
    # guardrails that block a kept operation explain why something is not reachable
    for name, data in g.nodes(data=True):
        if data["kind"] == "guardrail" and any(t in kept for t in g.successors(name)):
            kept.add(name)
    return kept


# ---- placement in tenant clusters ------------------------------------------------------------
def home_tenant(graph: PermissionGraph, name: str) -> str | None:
    """The one tenant a workflow, agent or credential belongs to, or None when it is shared."""
    d = graph.deployment
    data = graph.g.nodes[name]
    kind, ident = data["kind"], data["id"]
    if kind == "tenant":
        return ident
    if kind == "workflow":
        return d.workflows[ident].tenant
    if kind == "agent":
        tenants = d.agents[ident].tenants
    elif kind == "credential":
        tenants = d.credentials[ident].tenants
    else:
        return None
    if tenants == model.STAR or len(tenants) != 1:
        return None
    return tenants[0]


def _node_label(data: dict) -> str:
    kind, ident, label = data["kind"], data["id"], data.get("label") or data["id"]
    if kind == "operation":
        return f"{ident}\n{data['effect']} · {data['risk']} risk" + (" (conditional high)"
                                                                      if data.get("conditional_risk") else "")
    if kind in ("grant", "deny", "guardrail"):
        return label
    if label != ident:
        return f"{ident}\n{_short(label)}"
    return ident


def _node_tooltip(data: dict) -> str:
    where = f" — {data['loc']}" if data.get("loc") else ""
    return f"{data['kind']} {data['id']}: {data.get('label') or data['id']}{where}"


def _node_attrs(name: str, data: dict, highlight: Highlight) -> str:
    kind = data["kind"]
    fill = RISK_FILLS.get(data.get("risk"), "#ffffff") if kind == "operation" else FILLS.get(kind, "#ffffff")
    attrs = {"label": _node_label(data), "shape": SHAPES.get(kind, "box"), "fillcolor": fill,
             "tooltip": _node_tooltip(data)}
    style = "filled"
    if kind in ("grant", "agent", "role", "workflow"):
        style = "rounded,filled" if kind in ("grant", "agent") else "filled"
    if kind == "gate" and not data.get("real", True):
        style += ",dashed"
    if name in highlight.nodes:
        attrs["color"] = HIGHLIGHT
        attrs["penwidth"] = "2.2"
        attrs["fontcolor"] = "#7f1d1d"
    attrs["style"] = style
    return _attr_list(attrs)


def _attr_list(attrs: dict) -> str:
    return "[" + ", ".join(f"{key}={quote(value)}" for key, value in attrs.items()) + "]"


def dot_source(graph: PermissionGraph, *, tenant: str | None = None, agent: str | None = None,
               highlight: Highlight = Highlight(), title: str | None = None, edge_labels: bool = True,
               graph_id: str = "pg") -> str:
    """The DOT text of the graph (or of one tenant's or agent's view), deterministic.

    ``graph_id`` prefixes every id in the SVG, so that several pictures can share one HTML page.
    """
    g = graph.g
    kept = view_nodes(graph, tenant, agent)
    graph_id = re.sub(r"[^A-Za-z0-9_]", "_", graph_id)  # Graphviz would write '-' as an entity in ids
    lines = ["digraph permissions {"]
    graph_attrs = {"id": graph_id, "rankdir": "LR", "fontname": "Helvetica", "fontsize": "12", "nodesep": "0.18",
                   "ranksep": "0.55", "bgcolor": "white", "pad": "0.2", "newrank": "true"}
    if title:
        graph_attrs.update(label=title, labelloc="t", labeljust="l", fontsize="14")
    lines.append(f"  graph {_attr_list(graph_attrs)};")
    lines.append('  node [fontname="Helvetica", fontsize="10", color="#475569", penwidth="1", margin="0.08,0.04"];')
    lines.append('  edge [fontname="Helvetica", fontsize="8", color="#94a3b8", fontcolor="#64748b", '
                 'arrowsize="0.6"];')
    clusters: dict[str, list[str]] = {}
    loose: list[str] = []
    for name in sorted(kept):
        home = home_tenant(graph, name)
        (clusters.setdefault(home, []) if home is not None else loose).append(name)
    for tenant_id in sorted(clusters):
        tenant_data = g.nodes.get(f"tenant:{tenant_id}", {})
        label = tenant_data.get("label") or tenant_id
        cluster_label = f"tenant {tenant_id}" + (f" — {_short(label)}" if label != tenant_id else "")
        lines.append(f"  subgraph {quote('cluster_tenant_' + tenant_id)} {{")
        lines.append(f"    graph {_attr_list({'label': cluster_label, 'style': 'rounded,filled', 'fillcolor': '#f8fafc', 'color': '#cbd5e1', 'fontcolor': '#334155', 'labeljust': 'l', 'tooltip': cluster_label})};")
        for name in clusters[tenant_id]:
            lines.append(f"    {quote(name)} {_node_attrs(name, g.nodes[name], highlight)};")
        lines.append("  }")
    for name in loose:
        lines.append(f"  {quote(name)} {_node_attrs(name, g.nodes[name], highlight)};")
    edges = sorted(((s, t, d) for s, t, d in g.edges(data=True) if s in kept and t in kept),
                   key=lambda e: (e[0], e[1], e[2]["kind"]))
    for index, (source, target, data) in enumerate(edges, start=1):
        reason = data["reason"] + (f" ({data['loc']})" if data.get("loc") else "")
        attrs = {"id": f"{graph_id}_why{index}", "tooltip": reason}
        if edge_labels:
            attrs["label"] = data["kind"]
        if (source, target, data["kind"]) in highlight.edges:
            attrs.update(color=HIGHLIGHT, fontcolor=HIGHLIGHT, penwidth="2.2")
        elif data["kind"] in ("blocks",):
            attrs.update(style="dashed", color="#ef9a9a")
        lines.append(f"  {quote(source)} -> {quote(target)} {_attr_list(attrs)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def edge_reasons(dot: str) -> dict[str, str]:
    """The tooltip of each edge id in DOT text written by :func:`dot_source` (for SVG titles)."""
    found = {}
    for match in re.finditer(r'\[id="(\w+_why\d+)", tooltip="((?:[^"\\]|\\.)*)"', dot):
        found[match.group(1)] = re.sub(r"\\(.)", r"\1", match.group(2))
    return found


def svg_of(dot: str) -> str:
    """SVG drawn by Graphviz's `dot`, ready to embed inline; raises :class:`DotMissing`.

    The XML prolog and doctype are dropped, and each edge's ``<title>`` holds its reason
    (escaped), so hovering an edge in a browser says why it exists.
    """
    import graphviz

    try:
        svg = graphviz.Source(dot).pipe(format="svg", encoding="utf-8")
    except graphviz.ExecutableNotFound as exc:
        raise DotMissing() from exc
    svg = svg[svg.index("<svg"):] if "<svg" in svg else svg
    svg = re.sub(r"<!--.*?-->\n?", "", svg, flags=re.DOTALL)
    # inline in HTML the namespaces are implied; dropping them leaves no URL anywhere in the picture
    svg = re.sub(r'\s+xmlns(?::xlink)?="[^"]*"', "", svg, count=2)
    reasons = edge_reasons(dot)

    def retitle(match: re.Match) -> str:
        reason = reasons.get(match.group(2))
        if reason is None:
            return match.group(0)
        return f"{match.group(1)}<title>{html_escape(reason, quote=True)}</title>"

    return re.sub(r'(<g id="(\w+_why\d+)" class="edge">\s*)<title>[^<]*</title>', retitle, svg)


def graph_json(graph: PermissionGraph, *, tenant: str | None = None, agent: str | None = None,
               highlight: Highlight = Highlight()) -> dict:
    """`graph --format json`: the view's nodes and edges, with ``highlight`` marks when asked."""
    kept = view_nodes(graph, tenant, agent)
    whole = graph.to_json()
    nodes = [n for n in whole["nodes"] if n["id"] in kept]
    edges = [e for e in whole["edges"] if e["from"] in kept and e["to"] in kept]
    if highlight:
        for n in nodes:
            n["highlight"] = n["id"] in highlight.nodes
        for e in edges:
            e["highlight"] = (e["from"], e["to"], e["kind"]) in highlight.edges
    return {"format": "agentperm-graph/1", "nodes": nodes, "edges": edges}
