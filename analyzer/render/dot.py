"""The permission graph as Graphviz DOT, and as SVG through Graphviz's `dot`.

Tenants are clusters: a workflow, an agent or a credential that belongs to exactly one tenant
sits inside that tenant's cluster; whatever several tenants share sits outside. Node shapes
say what a node is, every edge carries its reason as a tooltip (and as the SVG ``<title>``),
and the paths of findings can be drawn in red. Every string from the deployment is escaped
for DOT, so a name can never become DOT syntax or markup in the SVG.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from html import escape as html_escape
from typing import TextIO

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


_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")  # control characters but the newline


def quote(text: str) -> str:
    """A DOT double-quoted string whose content Graphviz shows literally (no escString expansion)."""
    text = str(text)
    # most names need no change: a printable text has no control character (nor a newline)
    if '"' in text or "\\" in text or not text.isprintable():
        text = _CONTROL.sub(" ", text)
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
    return _home_of(graph.deployment, graph.g.nodes[name])


def _home_of(d: model.Deployment, data: dict) -> str | None:
    """:func:`home_tenant` of the node whose attributes are ``data``."""
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
    style = "filled"
    if kind in ("grant", "agent", "role", "workflow"):
        style = "rounded,filled" if kind in ("grant", "agent") else "filled"
    if kind == "gate" and not data.get("real", True):
        style += ",dashed"
    # _attr_list of {label, shape, fillcolor, tooltip, (color, penwidth, fontcolor), style}, written out:
    # a large graph has a hundred thousand nodes
    text = (f"[label={quote(_node_label(data))}, shape={quote(SHAPES.get(kind, 'box'))}, fillcolor={quote(fill)}, "
            f"tooltip={quote(_node_tooltip(data))}")
    if name in highlight.nodes:
        text += f', color="{HIGHLIGHT}", penwidth="2.2", fontcolor="#7f1d1d"'
    return text + f", style={quote(style)}]"


def _attr_list(attrs: dict) -> str:
    return "[" + ", ".join(f"{key}={quote(value)}" for key, value in attrs.items()) + "]"


def dot_source(graph: PermissionGraph, *, tenant: str | None = None, agent: str | None = None,
               highlight: Highlight = Highlight(), title: str | None = None, edge_labels: bool = True,
               graph_id: str = "pg", nodes: Iterable[str] | None = None) -> str:
    """The DOT text of the graph (or of one tenant's or agent's view), deterministic.

    ``graph_id`` prefixes every id in the SVG, so that several pictures can share one HTML page.
    ``nodes``, when given, is the view's node set (``view_nodes``'s, say, or the nodes findings
    name) instead of the one ``tenant`` and ``agent`` select; only edges between them are drawn.
    """
    buffer = io.StringIO()
    write_dot(graph, buffer, tenant=tenant, agent=agent, highlight=highlight, title=title, edge_labels=edge_labels,
              graph_id=graph_id, nodes=nodes)
    return buffer.getvalue()


_FLUSH_LINES = 20_000  # lines joined per write: few calls, and never the whole text of a large graph at once


def write_dot(graph: PermissionGraph, handle: TextIO, *, tenant: str | None = None, agent: str | None = None,
              highlight: Highlight = Highlight(), title: str | None = None, edge_labels: bool = True,
              graph_id: str = "pg", nodes: Iterable[str] | None = None) -> None:
    """Writes :func:`dot_source`'s text to ``handle`` (a text file) in pieces, with the same arguments.

    The whole graph of a 1,000-tenant deployment is 600,000 edges and 140 MB of DOT; it is never
    held as one string, and each node name and loc is turned into text once.
    """
    g = graph.g
    d = graph.deployment
    kept = view_nodes(graph, tenant, agent) if nodes is None else {n for n in nodes if n in g}
    whole = len(kept) == g.number_of_nodes()  # every target is kept: no need to ask
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
    write = handle.write

    def flush() -> None:
        lines.append("")
        write("\n".join(lines))
        lines.clear()

    node_data = g.nodes
    quoted: dict[str, str] = {}  # node name → its DOT string: a name is written once a node and once an edge end
    clusters: dict[str, list[str]] = {}
    loose: list[str] = []
    ordered = sorted(kept)
    for name in ordered:
        home = _home_of(d, node_data[name])
        (clusters.setdefault(home, []) if home is not None else loose).append(name)
    for tenant_id in sorted(clusters):
        tenant_data = node_data.get(f"tenant:{tenant_id}", {})
        label = tenant_data.get("label") or tenant_id
        cluster_label = f"tenant {tenant_id}" + (f" — {_short(label)}" if label != tenant_id else "")
        lines.append(f"  subgraph {quote('cluster_tenant_' + tenant_id)} {{")
        lines.append(f"    graph {_attr_list({'label': cluster_label, 'style': 'rounded,filled', 'fillcolor': '#f8fafc', 'color': '#cbd5e1', 'fontcolor': '#334155', 'labeljust': 'l', 'tooltip': cluster_label})};")
        for name in clusters[tenant_id]:
            quoted[name] = text = quote(name)
            lines.append(f"    {text} {_node_attrs(name, node_data[name], highlight)};")
        lines.append("  }")
        if len(lines) >= _FLUSH_LINES:
            flush()
    for name in loose:
        quoted[name] = text = quote(name)
        lines.append(f"  {text} {_node_attrs(name, node_data[name], highlight)};")
        if len(lines) >= _FLUSH_LINES:
            flush()
    # edges in (source, target, kind) order: sources sorted, then each source's targets and kinds,
    # which is the order sorting every edge by that key gives (a kind is an edge's key: no ties)
    succ = dict(g.adjacency())
    red = highlight.edges
    locs: dict[int, str] = {}  # id(loc) → " (file:line:column)" escaped: many edges share one loc
    tails: dict[tuple[str, bool], str] = {}  # (kind, highlighted) → the attributes after the tooltip
    plain_tails: dict[str, str] = {}  # kind → the same, not highlighted
    append = lines.append
    index = 0
    for source in ordered:
        targets = succ[source]
        if not targets:
            continue
        start = f"  {quoted[source]} -> "
        for target in sorted(targets) if whole else sorted(t for t in targets if t in kept):
            keyed = targets[target]
            start_end = f"{start}{quoted[target]} [id=\"{graph_id}_why"
            for data in keyed.values() if len(keyed) == 1 else sorted(keyed.values(), key=_kind_of):
                index += 1
                kind = data["kind"]
                # the tooltip is quote(reason + where), escaped in two parts: quote maps character by character
                reason = data["reason"]
                if '"' in reason or "\\" in reason or not reason.isprintable():  # quote's own test
                    reason = quote(reason)[1:-1]
                loc = data.get("loc")
                if loc:
                    where = locs.get(id(loc))
                    if where is None:
                        where = locs[id(loc)] = quote(f" ({loc})")[1:-1]
                else:
                    where = ""
                if red and (source, target, kind) in red:
                    tail = tails.get((kind, True)) or tails.setdefault((kind, True), _edge_tail(kind, True, edge_labels))
                else:
                    tail = plain_tails.get(kind) or plain_tails.setdefault(kind, _edge_tail(kind, False, edge_labels))
                append(f'{start_end}{index}", tooltip="{reason}{where}"{tail};')
            if len(lines) >= _FLUSH_LINES:
                flush()
    lines.append("}")
    flush()


def _edge_tail(kind: str, highlighted: bool, edge_labels: bool) -> str:
    """An edge's attributes after its id and tooltip, as _attr_list writes them, and the closing bracket."""
    attrs = {"label": kind} if edge_labels else {}
    if highlighted:
        attrs.update(color=HIGHLIGHT, fontcolor=HIGHLIGHT, penwidth="2.2")
    elif kind in ("blocks",):
        attrs.update(style="dashed", color="#ef9a9a")
    return "".join(f", {key}={quote(value)}" for key, value in attrs.items()) + "]"


def _kind_of(data: dict) -> str:
    return data["kind"]


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
