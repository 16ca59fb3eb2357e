"""The permission graph as DOT, SVG and JSON (`agentperm graph`), and what happens without Graphviz."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET

import pytest
from conftest import build_deployment, invoke_cli

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
