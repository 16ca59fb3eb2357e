"""The permission graph as DOT, SVG and JSON (`agentperm graph`), and what happens without Graphviz."""

from __future__ import annotations

import io
import json
import re
import shutil
import sys
import xml.etree.ElementTree as ET

import pytest
from conftest import REPO_ROOT, build_deployment, invoke_cli
from fixture_cases import valid_units

from analyzer.graph import PermissionGraph
from analyzer.loader import load
from analyzer.render import dot as dotrender

HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="Graphviz `dot` is not installed (sudo apt-get install graphviz)")
PAYLOAD = "<script>window.__pwned=1</script> \" ] ; } digraph x { \\N \\\" \\"


@pytest.fixture(scope="module")
def agency():
    return PermissionGraph(load(["fixtures/agency"]))


def hostile_graph() -> PermissionGraph:
    return PermissionGraph(build_deployment(
        tenants={"acme": {"name": PAYLOAD}},
        tools={"crm": {"name": PAYLOAD, "operations": {"read": {"effect": "read"}}}},
        roles={"r": {"grants": [{"tool": "crm", "operations": ["read"]}]}},
        agents={"a": {"name": PAYLOAD, "roles": ["r"], "tenants": ["acme"], "credentials": ["k"]}},
        credentials={"k": {"tools": ["crm"], "tenants": ["acme"], "store": "vault"}},
        workflows={"w": {"tenant": "acme", "agent": "a"}}))


# ---- DOT escaping ----------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("plain", '"plain"'),
    ('say "hi"', '"say \\"hi\\""'),
    ("back\\slash", '"back\\\\slash"'),
    ("\\N \\G \\L", '"\\\\N \\\\G \\\\L"'),  # Graphviz escapes stay literal text
    ("two\nlines", '"two\\nlines"'),
    ("bell\x07tab\t", '"bell tab "'),  # control characters cannot reach Graphviz
    ("<b>html-like</b>", '"<b>html-like</b>"'),  # quoted, so never an HTML-like label
])
def test_quote_makes_a_literal_dot_string(text, expected):
    assert dotrender.quote(text) == expected


def test_hostile_names_stay_inside_their_quoted_strings():
    source = dotrender.dot_source(hostile_graph())
    # every line is a statement, an attribute list or a brace: no name opened a new statement
    for line in source.splitlines():
        stripped = re.sub(r'"(?:[^"\\]|\\.)*"', '""', line).strip()
        assert re.fullmatch(r'(digraph permissions \{|\}|(graph|node|edge) \[.*\];|subgraph "" \{|""( -> "")? \[.*\];)',
                            stripped), line


@needs_dot
def test_svg_of_a_hostile_name_carries_no_markup():
    svg = dotrender.svg_of(dotrender.dot_source(hostile_graph()))
    root = ET.fromstring(svg.replace("xlink:", "xlink_"))  # well-formed XML, without the dropped namespace
    tags = {element.tag.split("}")[-1] for element in root.iter()}
    assert "script" not in tags and "foreignObject" not in tags
    assert "<script" not in svg and "&lt;script&gt;" in svg
    assert not any(name.lower().startswith("on") for element in root.iter() for name in element.attrib)


def test_clusters_hold_what_belongs_to_one_tenant(agency):
    source = dotrender.dot_source(agency)
    acme = source.split('subgraph "cluster_tenant_acme" {')[1].split("\n  }")[0]
    assert '"workflow:acme-lead-followup"' in acme and '"tenant:acme"' in acme
    assert '"agent:research-agent"' not in acme  # serves every tenant: outside every cluster
    initech = source.split('subgraph "cluster_tenant_initech" {')[1].split("\n  }")[0]
    assert '"agent:ops-agent"' in initech and '"credential:ops-admin"' in initech


def test_shapes_and_edge_reasons(agency):
    source = dotrender.dot_source(agency)
    assert re.search(r'"agent:sales-agent" \[[^\]]*shape="box"', source)
    assert re.search(r'"tool:crm" \[[^\]]*shape="component"', source)
    assert re.search(r'"credential:sales-crm" \[[^\]]*shape="note"', source)
    assert re.search(r'"gate:outbound-review" \[[^\]]*shape="diamond"', source)
    assert re.search(r'"person:dana" \[[^\]]*shape="egg"', source)
    assert re.search(r'"role:sales" \[[^\]]*shape="hexagon"', source)
    assert re.search(r'"tenant:acme" \[[^\]]*shape="folder"', source)
    assert re.search(r'"workflow:acme-lead-followup" \[[^\]]*shape="cds"', source)
    edges = [line for line in source.splitlines() if " -> " in line]
    assert len(edges) == agency.g.number_of_edges()
    assert all('tooltip="' in line and 'label="' in line for line in edges)
    assert any('tooltip="sales-agent holds sales-crm, minted per workflow for its tenant' in line for line in edges)


def test_views_keep_a_tenant_or_an_agent(agency):
    acme = dotrender.view_nodes(agency, tenant="acme")
    assert "workflow:acme-lead-followup" in acme and "workflow:globex-support-desk" not in acme
    assert "agent:sales-agent" in acme and "agent:ops-agent" not in acme
    ops = dotrender.view_nodes(agency, agent="ops-agent")
    assert "agent:ops-agent" in ops and "workflow:initech-platform-ops" in ops and "agent:sales-agent" not in ops
    assert "operation:admin-panel.manage_users" in ops


@needs_dot
def test_svg_edges_say_why_on_hover(agency):
    svg = dotrender.svg_of(dotrender.dot_source(agency, agent="sales-agent"))
    assert svg.startswith("<svg") and "http://" not in svg
    assert "<title>sales-agent holds sales-crm, minted per workflow for its tenant" in svg


# ---- agentperm graph ---------------------------------------------------------------------------
def test_graph_json():
    code, out, _ = invoke_cli("graph", "fixtures/agency", "--format", "json")
    assert code == 0
    document = json.loads(out)
    assert document["format"] == "agentperm-graph/1"
    assert {"id", "kind", "ident", "label", "location"} <= set(document["nodes"][0])
    assert all(e["reason"] for e in document["edges"])


def test_graph_dot_with_tenant_and_highlight():
    code, out, _ = invoke_cli("graph", "fixtures/flawed-agency", "--tenant", "initech", "--highlight",
                              "no-cross-tenant-reach")
    assert code == 0
    assert out.startswith("digraph permissions {")
    assert '"workflow:initech-platform-ops"' in out and '"workflow:acme-lead-followup"' not in out
    assert 'color="#dc2626"' in out


def test_graph_json_highlight_marks_the_paths():
    code, out, _ = invoke_cli("graph", "fixtures/flawed-agency", "--format", "json", "--highlight", "shared-credential")
    assert code == 0
    nodes = {n["id"]: n for n in json.loads(out)["nodes"]}
    assert nodes["credential:agency-master-key"]["highlight"] is True
    assert nodes["tenant:acme"]["highlight"] is False


@needs_dot
def test_graph_svg_to_a_file(tmp_path):
    target = tmp_path / "g.svg"
    code, _, _ = invoke_cli("graph", "fixtures/agency", "--format", "svg", "--agent", "sales-agent", "-o", target)
    assert code == 0
    text = target.read_text(encoding="utf-8")
    assert text.startswith("<svg") and "sales&#45;agent" in text


@pytest.mark.parametrize("args, message", [
    (["--highlight", "no-such-rule"], "unknown rule 'no-such-rule'"),
    (["--tenant", "nobody"], "unknown tenant 'nobody'"),
    (["--agent", "sales-agnet"], "did you mean 'sales-agent'"),
])
def test_graph_usage_errors(args, message):
    code, _, err = invoke_cli("graph", "fixtures/agency", *args)
    assert code == 2 and message in err


def _no_dot(monkeypatch):
    import graphviz

    def missing(*_args, **_kwargs):
        raise graphviz.ExecutableNotFound(("dot", "-Tsvg"))

    monkeypatch.setattr(graphviz.Source, "pipe", missing)


def test_svg_without_dot_prints_the_install_hint_and_writes_dot(monkeypatch, tmp_path):
    _no_dot(monkeypatch)
    code, _, err = invoke_cli("graph", "fixtures/agency", "--format", "svg", "-o", tmp_path / "g.svg")
    assert code == 2
    assert "sudo apt-get install graphviz" in err
    assert (tmp_path / "g.dot").read_text(encoding="utf-8").startswith("digraph permissions {")
    assert not (tmp_path / "g.svg").exists()


def test_svg_without_dot_to_stdout_still_prints_dot(monkeypatch):
    _no_dot(monkeypatch)
    code, out, err = invoke_cli("graph", "fixtures/agency", "--format", "svg")
    assert code == 2 and "apt-get install graphviz" in err and out.startswith("digraph permissions {")


def test_dot_needs_no_graphviz(monkeypatch):
    _no_dot(monkeypatch)
    code, out, _ = invoke_cli("graph", "fixtures/agency")
    assert code == 0 and out.startswith("digraph")


def test_report_without_dot_shows_a_note_and_writes_dot_beside(monkeypatch, tmp_path):
    _no_dot(monkeypatch)
    report = tmp_path / "audit.html"
    code, _, err = invoke_cli("report", "fixtures/agency", "-o", report, "--date", "2025-01-31")
    assert code == 0 and "apt-get install graphviz" in err
    html = report.read_text(encoding="utf-8")
    assert "sudo apt-get install graphviz" in html and 'href="audit.graph.dot"' in html
    assert (tmp_path / "audit.graph.dot").read_text(encoding="utf-8").startswith("digraph permissions {")
    assert "<svg" not in html.split('id="graph"')[1].split("</section>")[0]


# ---- the fast writer against the straightforward one -------------------------------------------
# `write_dot` (and `dot_source`, which wraps it) is written for speed: 600,000 edges at 1,000 tenants.
# Below is the implementation it replaced, kept as the reference: the output must stay byte for byte
# the same, views, highlights, hostile names and all.
def reference_quote(text) -> str:
    text = re.sub(r"[\x00-\x09\x0b-\x1f]", " ", str(text))
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def reference_attr_list(attrs: dict) -> str:
    return "[" + ", ".join(f"{key}={reference_quote(value)}" for key, value in attrs.items()) + "]"


def reference_node_attrs(name: str, data: dict, highlight: dotrender.Highlight) -> str:
    kind = data["kind"]
    fill = (dotrender.RISK_FILLS.get(data.get("risk"), "#ffffff") if kind == "operation"
            else dotrender.FILLS.get(kind, "#ffffff"))
    attrs = {"label": dotrender._node_label(data), "shape": dotrender.SHAPES.get(kind, "box"), "fillcolor": fill,
             "tooltip": dotrender._node_tooltip(data)}
    style = "filled"
    if kind in ("grant", "agent", "role", "workflow"):
        style = "rounded,filled" if kind in ("grant", "agent") else "filled"
    if kind == "gate" and not data.get("real", True):
        style += ",dashed"
    if name in highlight.nodes:
        attrs["color"] = dotrender.HIGHLIGHT
        attrs["penwidth"] = "2.2"
        attrs["fontcolor"] = "#7f1d1d"
    attrs["style"] = style
    return reference_attr_list(attrs)


def reference_dot_source(graph: PermissionGraph, *, tenant=None, agent=None, highlight=None, title=None,
                         edge_labels=True, graph_id="pg", nodes=None) -> str:
    highlight = highlight or dotrender.Highlight()
    g = graph.g
    kept = dotrender.view_nodes(graph, tenant, agent) if nodes is None else {n for n in nodes if n in g}
    graph_id = re.sub(r"[^A-Za-z0-9_]", "_", graph_id)
    lines = ["digraph permissions {"]
    graph_attrs = {"id": graph_id, "rankdir": "LR", "fontname": "Helvetica", "fontsize": "12", "nodesep": "0.18",
                   "ranksep": "0.55", "bgcolor": "white", "pad": "0.2", "newrank": "true"}
    if title:
        graph_attrs.update(label=title, labelloc="t", labeljust="l", fontsize="14")
    lines.append(f"  graph {reference_attr_list(graph_attrs)};")
    lines.append('  node [fontname="Helvetica", fontsize="10", color="#475569", penwidth="1", margin="0.08,0.04"];')
    lines.append('  edge [fontname="Helvetica", fontsize="8", color="#94a3b8", fontcolor="#64748b", '
                 'arrowsize="0.6"];')
    clusters: dict[str, list[str]] = {}
    loose: list[str] = []
    for name in sorted(kept):
        home = dotrender.home_tenant(graph, name)  # placement is not what the fast writer changed
        (clusters.setdefault(home, []) if home is not None else loose).append(name)
    for tenant_id in sorted(clusters):
        tenant_data = g.nodes.get(f"tenant:{tenant_id}", {})
        label = tenant_data.get("label") or tenant_id
        cluster_label = f"tenant {tenant_id}" + (f" — {dotrender._short(label)}" if label != tenant_id else "")
        lines.append(f"  subgraph {reference_quote('cluster_tenant_' + tenant_id)} {{")
        lines.append(f"    graph {reference_attr_list({'label': cluster_label, 'style': 'rounded,filled', 'fillcolor': '#f8fafc', 'color': '#cbd5e1', 'fontcolor': '#334155', 'labeljust': 'l', 'tooltip': cluster_label})};")
        for name in clusters[tenant_id]:
            lines.append(f"    {reference_quote(name)} {reference_node_attrs(name, g.nodes[name], highlight)};")
        lines.append("  }")
    for name in loose:
        lines.append(f"  {reference_quote(name)} {reference_node_attrs(name, g.nodes[name], highlight)};")
    edges = sorted(((s, t, d) for s in kept for _, t, d in g.out_edges(s, data=True) if t in kept),
                   key=lambda e: (e[0], e[1], e[2]["kind"]))
    for index, (source, target, data) in enumerate(edges, start=1):
        reason = data["reason"] + (f" ({data['loc']})" if data.get("loc") else "")
        attrs = {"id": f"{graph_id}_why{index}", "tooltip": reason}
        if edge_labels:
            attrs["label"] = data["kind"]
        if (source, target, data["kind"]) in highlight.edges:
            attrs.update(color=dotrender.HIGHLIGHT, fontcolor=dotrender.HIGHLIGHT, penwidth="2.2")
        elif data["kind"] in ("blocks",):
            attrs.update(style="dashed", color="#ef9a9a")
        lines.append(f"  {reference_quote(source)} -> {reference_quote(target)} {reference_attr_list(attrs)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def some_highlight(graph: PermissionGraph, seed: int) -> dotrender.Highlight:
    """Nodes and edges picked at random, and the deny edges ("blocks" has a style of its own)."""
    import random

    rng = random.Random(seed)
    edges = sorted(graph.g.edges(keys=True))
    picked = rng.sample(edges, min(40, len(edges))) + [e for e in edges if e[2] == "blocks"][:3]
    nodes = sorted(graph.g.nodes)
    return dotrender.Highlight(frozenset(rng.sample(nodes, min(20, len(nodes)))), frozenset(picked))


def assert_same_dot_as_the_reference(graph: PermissionGraph, seed: int = 0) -> None:
    d = graph.deployment
    highlight = some_highlight(graph, seed)
    views = [{}, {"highlight": highlight, "title": 'Permission graph of "x" \\N'},
             {"highlight": highlight, "edge_labels": False, "graph_id": "tenant-1 view"}]
    views += [{"tenant": t, "highlight": highlight} for t in sorted(d.tenants)[:3]]
    views += [{"agent": a, "highlight": highlight} for a in sorted(d.agents)[:3]]
    views += [{"nodes": dotrender.view_nodes(graph, tenant=t) | {"no-such-node"}, "edge_labels": False}
              for t in sorted(d.tenants)[-2:]]
    for view in views:
        expected = reference_dot_source(graph, **view)
        assert dotrender.dot_source(graph, **view) == expected, view
        streamed = io.StringIO()
        dotrender.write_dot(graph, streamed, **view)
        assert streamed.getvalue() == expected, view


UNITS = valid_units()


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_dot_is_the_reference_dot_on_every_fixture(unit):
    assert_same_dot_as_the_reference(PermissionGraph(load([str(f) for f in unit.files])))


def test_dot_is_the_reference_dot_with_hostile_names():
    assert_same_dot_as_the_reference(hostile_graph())


def test_dot_is_the_reference_dot_with_edges_no_deployment_makes():
    """Two kinds between one pair of nodes, added in the reverse of their sorted order, and edges
    without a loc or with a reason to escape: the writer must not lean on what the model happens to make."""
    graph = hostile_graph()
    g = graph.g
    for kind, reason in (("zz-kind", 'a "quoted"\treason\\ with\nlines'), ("aa-kind", PAYLOAD)):
        g.add_edge("workflow:w", "tenant:acme", key=kind, kind=kind, reason=reason, loc=None)
    g.add_edge("agent:a", "tool:crm", key="blocks", kind="blocks", reason="plain", loc=None)
    assert list(g["workflow:w"]["tenant:acme"]) == ["for-tenant", "zz-kind", "aa-kind"]
    assert_same_dot_as_the_reference(graph)


def test_dot_is_the_reference_dot_on_a_generated_agency(tmp_path, monkeypatch):
    """The synthetic agency of the scale benchmark (30 tenants, 300 agents: 2,700 nodes, 19,000 edges),
    written in pieces of a few lines, so that many flushes fall mid-graph."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_generate_dot", REPO_ROOT / "bench" / "generate.py")
    generator = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = generator  # its dataclasses look their module up while it loads
    try:
        spec.loader.exec_module(generator)
        generator.write(generator.generate(30), str(tmp_path / "agency"))
    finally:
        del sys.modules[spec.name]
    graph = PermissionGraph(load([str(tmp_path / "agency")]))
    assert graph.g.number_of_edges() > 10_000
    monkeypatch.setattr(dotrender, "_FLUSH_LINES", 7)
    assert_same_dot_as_the_reference(graph, seed=1)
    writes = []

    class Recorder(io.StringIO):
        def write(self, text):
            writes.append(len(text))
            return super().write(text)

    handle = Recorder()
    dotrender.write_dot(graph, handle)
    whole = reference_dot_source(graph)
    assert handle.getvalue() == whole
    assert len(writes) > 1000 and max(writes) < len(whole) / 100  # in pieces, never the whole text at once
