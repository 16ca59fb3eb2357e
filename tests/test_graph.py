"""The permission graph: edges that explain themselves, node kinds, effective pairs, closure."""

from __future__ import annotations

import networkx as nx
import pytest
from conftest import FIXTURES, build_deployment, hygienic_sections
from hypothesis import HealthCheck, given, settings
from strategies import deployments

from analyzer import graph as graph_module
from analyzer.errors import Loc
from analyzer.graph import PermissionGraph, Step
from analyzer.loader import load


@pytest.fixture(scope="module", params=["agency", "flawed-agency"])
def fixture_graph(request):
    return PermissionGraph(load(str(FIXTURES / request.param)))


@pytest.fixture(scope="module")
def agency_graph():
    return PermissionGraph(load(str(FIXTURES / "agency")))


@pytest.fixture(scope="module")
def flawed_graph():
    return PermissionGraph(load(str(FIXTURES / "flawed-agency")))


def test_every_edge_has_a_kind_a_reason_and_a_location(fixture_graph):
    bad = []
    for source, target, data in fixture_graph.g.edges(data=True):
        explained = data.get("kind") and str(data.get("reason", "")).strip()
        if not explained or not isinstance(data.get("loc"), Loc):
            bad.append((source, target, data.get("kind"), data.get("reason"), data.get("loc")))
        elif data["loc"].line < 1:
            bad.append((source, target, data["kind"], "line < 1", data["loc"]))
    assert fixture_graph.g.number_of_edges() > 50
    assert not bad, f"edges that do not explain themselves: {bad[:10]}"


def test_every_node_has_a_kind_matching_its_name_and_a_location(fixture_graph):
    bad = [(name, data) for name, data in fixture_graph.g.nodes(data=True)
           if data.get("kind") != name.split(":", 1)[0] or not isinstance(data.get("loc"), Loc)]
    assert not bad, bad[:10]


def test_per_workflow_credential_edge_reads_like_a_sentence(agency_graph):
    data = agency_graph.g.get_edge_data("agent:sales-agent", "credential:sales-crm", key="holds")
    assert data["reason"] == "sales-agent holds sales-crm, minted per workflow for its tenant"
    assert data["loc"].file.endswith("agents.yaml")


def test_static_credential_edge_names_its_reach(flawed_graph):
    data = flawed_graph.g.get_edge_data("agent:ops-agent", "credential:agency-master-key", key="holds")
    assert data["reason"] == "ops-agent holds agency-master-key, a static credential reaching every tenant"


def test_edge_kinds_cover_every_relation(agency_graph):
    kinds = {data["kind"] for _, _, data in agency_graph.g.edges(data=True)}
    assert {"has-operation", "approved-by", "has-role", "holds", "delegates-to", "serves", "covers",
            "reaches", "for-tenant", "runs", "uses", "grants", "denies", "allows", "blocks",
            "needs-approval"} <= kinds


def test_node_kinds_for_all_sections(agency_graph):
    d = agency_graph.deployment
    kinds = {}
    for name, data in agency_graph.g.nodes(data=True):
        kinds.setdefault(data["kind"], set()).add(name)
    sections = {"tenant": d.tenants, "person": d.people, "tool": d.tools, "role": d.roles, "agent": d.agents,
                "credential": d.credentials, "gate": d.gates, "workflow": d.workflows}
    for kind, table in sections.items():
        assert {f"{kind}:{ident}" for ident in table} == kinds[kind], kind
    assert {f"operation:{op.qualified}" for _, op in d.all_operations()} == kinds["operation"]
    assert len(kinds["grant"]) == sum(len(r.grants) for r in d.roles.values())
    assert len(kinds["deny"]) == sum(len(r.denies) for r in d.roles.values())
    assert len(kinds["guardrail"]) == len(d.guardrails)


def test_step_returns_the_reason_and_raises_for_a_missing_edge(agency_graph):
    step = agency_graph.step("agent:sales-agent", "agent:research-agent", "delegates-to")
    assert step.reason == "sales-agent delegates to research-agent"
    assert step.to_json()["location"]["line"] >= 1
    with pytest.raises(KeyError):
        agency_graph.step("agent:research-agent", "agent:sales-agent", "delegates-to")


def _pairs_model(*, denies):
    tools = {"crm": {"operations": {
        "read": {"effect": "read"},
        "update": {"effect": "write", "params": {"amount": "int"}},
        "delete": {"effect": "delete"},
    }}, "email": {"operations": {"send": {"effect": "send"}}}}
    roles = {"reader": {"grants": [{"tool": "crm", "operations": "*"}], "denies": denies},
             "other": {"grants": [{"tool": "*", "operations": ["send"]}]}}
    agents = {"a": {"roles": ["reader"], "tenants": ["acme"], "credentials": ["k"]},
              "b": {"roles": ["reader", "other"], "tenants": ["acme"], "credentials": ["k"]}}
    return PermissionGraph(build_deployment(**hygienic_sections(tools=tools, roles=roles, agents=agents)))


def test_effective_pairs_subtract_unconditional_denies_only():
    pg = _pairs_model(denies=[{"tool": "crm", "operations": ["delete"]},
                              {"tool": "crm", "operations": ["update"], "when": "params.amount > 10"}])
    assert pg.effective_pairs("a") == {("crm", "read"), ("crm", "update")}


def test_effective_pairs_expand_wildcards_over_defined_operations():
    pg = _pairs_model(denies=[])
    assert pg.effective_pairs("a") == {("crm", "read"), ("crm", "update"), ("crm", "delete")}
    assert pg.effective_pairs("b") == pg.effective_pairs("a") | {("email", "send")}


def test_effective_pairs_wildcard_deny_removes_everything_it_names():
    pg = _pairs_model(denies=[{"tool": "*", "operations": "*"}])
    assert pg.effective_pairs("a") == frozenset()
    assert pg.effective_pairs("b") == frozenset()


def _closure_graph(delegations):
    agents = {name: {"roles": ["reader"], "tenants": ["acme"], "credentials": ["k"], "delegates_to": others}
              for name, others in delegations.items()}
    return PermissionGraph(build_deployment(**hygienic_sections(agents=agents)))


def test_closure_is_transitive_includes_the_agent_and_survives_cycles():
    pg = _closure_graph({"a": ["b"], "b": ["c", "a"], "c": ["c"], "d": ["a"], "e": []})
    assert pg.closure("a") == ["a", "b", "c"]
    assert pg.closure("d") == ["d", "a", "b", "c"]
    assert pg.closure("c") == ["c"]
    assert pg.closure("e") == ["e"]


def test_closure_on_the_agency(agency_graph):
    assert agency_graph.closure("sales-agent") == ["sales-agent", "research-agent"]
    assert agency_graph.closure("research-agent") == ["research-agent"]


def test_delegation_path_is_a_chain_of_explained_steps():
    pg = _closure_graph({"a": ["b"], "b": ["c"], "c": []})
    steps = pg.delegation_path("a", "c")
    assert [s.reason for s in steps] == ["a delegates to b", "b delegates to c"]
    assert pg.delegation_path("a", "a") == []


def test_to_json_is_sorted_and_complete(agency_graph):
    doc = agency_graph.to_json()
    ids = [n["id"] for n in doc["nodes"]]
    assert ids == sorted(agency_graph.g.nodes), "node ids must be the graph's kind:id names, sorted"
    assert {e["from"] for e in doc["edges"]} | {e["to"] for e in doc["edges"]} <= set(ids)
    assert len(doc["edges"]) == agency_graph.g.number_of_edges()
    assert all(e["reason"] and e["location"] for e in doc["edges"])


# ---- the graph made on first use, and single edges read without it ----------------------------
def _reference_graph(d):
    """The graph as networkx's own add_nodes_from / add_edges_from make it from the same nodes and edges."""
    ref = nx.MultiDiGraph()
    ref.add_nodes_from(graph_module._nodes(d))
    ref.add_edges_from((s, t, k, {"kind": k, "reason": r, "loc": loc}) for s, t, k, r, loc in graph_module._edges(d))
    return ref


def _assert_graph_and_steps_agree(d):
    whole, lazy = PermissionGraph(d), PermissionGraph(d)
    ref = _reference_graph(d)
    # the same nodes, edges and data, in the same orders (DOT and the report follow them)
    assert list(whole.g.nodes(data=True)) == list(ref.nodes(data=True))
    assert list(whole.g.edges(keys=True, data=True)) == list(ref.edges(keys=True, data=True))
    assert list(whole.g.in_edges(keys=True, data=True)) == list(ref.in_edges(keys=True, data=True))
    kinds = {k for _, _, k in whole.g.edges(keys=True)}
    for source, target, kind, data in whole.g.edges(keys=True, data=True):
        assert lazy.step(source, target, kind) == Step(source, target, kind, data["reason"], data["loc"])
        for other in kinds - set(whole.g[source][target]):
            assert not lazy.has_edge(source, target, other)
        if not whole.g.has_edge(target, source, kind):
            assert not lazy.has_edge(target, source, kind)
    for name in whole.g.nodes:  # every node's out-edges, and nothing more
        assert [e[:3] for e in lazy._edges_from(name)] == list(whole.g.out_edges(name, keys=True))
    assert "g" not in lazy.__dict__, "reading single edges must not make the whole graph"


def test_graph_and_single_edges_agree_on_the_fixtures(fixture_graph):
    _assert_graph_and_steps_agree(fixture_graph.deployment)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deployments())
def test_graph_and_single_edges_agree_on_random_deployments(d):
    _assert_graph_and_steps_agree(d)


@pytest.mark.parametrize("source", ["grant:nope#1", "grant:reader#0", "grant:reader#9", "grant:reader#01",
                                    "guardrail:#1", "deny:reader#1", "role:nope", "agent:nope", "tenant:acme",
                                    "nonsense", ""])
def test_unknown_sources_have_no_edges(source):
    pg = PermissionGraph(build_deployment(**hygienic_sections()))
    assert pg._edges_from(source) == []
    assert not pg.has_edge(source, "operation:crm.read", "allows")


def test_step_reads_the_graph_once_it_is_made(agency_graph):
    agency_graph.g  # noqa: B018 - made now
    step = agency_graph.step("agent:sales-agent", "credential:sales-crm", "holds")
    assert step.reason == "sales-agent holds sales-crm, minted per workflow for its tenant"
    assert agency_graph.has_edge("agent:sales-agent", "credential:sales-crm", "holds")
    assert not agency_graph.has_edge("agent:sales-agent", "credential:sales-crm", "covers")
