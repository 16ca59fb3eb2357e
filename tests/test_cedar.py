"""Cedar (issue 13): the export decides every call as analyzer.decide does.

Differential throughout: the same calls go to `Decider.decide` and to cedarpy on the export, on
every fixture (discovered) and on random deployments (tests/strategies.py), and the `allow`s
must be equal; a failure prints the call and the Cedar request. The calls are the fuzzer's
(analyzer/harness/strategies.py): its boundary sweep, its in-policy and adversarial families,
and the witnesses of violated invariants. Where a condition has no Cedar equivalent the export
reports a gap and Cedar may deny more, never allow more.

Goldens: tests/golden/cedar/<fixture>/; regenerate with AGENTPERM_UPDATE_GOLDEN=1 and review.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys

import cedarpy
import pytest
from conftest import AGENTPERM, FIXTURES, REPO_ROOT, build_deployment, invoke_cli, run_cli, write_deployment
from fixture_cases import valid_units
from golden_files import assert_golden, catalogue
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import calls, deployments, granted_routes, sampled_domain

from analyzer import cedar
from analyzer.analysis import analyze
from analyzer.decide import Decider, MalformedCall, parse_request
from analyzer.harness import strategies as fuzzing
from analyzer.harness.fuzz import run_campaign
from analyzer.harness.strategies import Universe
from analyzer.loader import load

UNITS = {unit.name: unit for unit in valid_units()}
SUITES = sorted(p.name.removesuffix(".tests") for p in FIXTURES.iterdir() if p.is_dir() and p.name.endswith(".tests"))
STRUCTURAL = cedar.STRUCTURE_ID, "params of "  # the forbids that decide before any grant: §4 points 1, 2, 5


@functools.cache
def fixture(name: str):
    """(deployment, export, engine, decider) of a fixture, loaded by repo-relative paths as the CLI would."""
    with contextlib.chdir(REPO_ROOT):
        deployment = load([str(f.relative_to(REPO_ROOT)) for f in UNITS[name].files])
    exported = cedar.export(deployment)
    return deployment, exported, cedar.CedarEngine(exported), Decider(deployment)


@functools.cache
def universe(name: str) -> Universe:
    deployment, _, _, decider = fixture(name)
    return Universe(deployment, decider)


def native(deployment, decider, body) -> bool | None:
    """decide's allow for a request; None when it is malformed."""
    try:
        return decider.decide(parse_request(body, deployment)).allow
    except MalformedCall:
        return None


def explain(engine, body, answer, expected) -> str:
    return (f"native {'allows' if expected else 'denies'}, Cedar {'allows' if answer.allow else 'denies'} "
            f"({answer.reason})\ncall: {json.dumps(body, ensure_ascii=False)}\n"
            f"Cedar request: {json.dumps(engine.cedar_request(body), ensure_ascii=False)}")


def assert_agree(deployment, exported, engine, decider, bodies, exact: bool | None = None) -> int:
    """Every well-formed body decided alike (or, with gaps, never allowed by Cedar alone); no policy errs
    unless a structural forbid already denies. Returns how many calls were compared."""
    exact = not exported.gaps if exact is None else exact
    wellformed = [(b, n) for b in bodies if (n := native(deployment, decider, b)) is not None]
    for (body, expected), answer in zip(wellformed, engine.decide_many([b for b, _ in wellformed]), strict=True):
        if exact:
            assert answer.allow == expected, explain(engine, body, answer, expected)
        else:
            assert expected or not answer.allow, explain(engine, body, answer, expected)
        if answer.errors:
            assert any(p.startswith(STRUCTURAL) for p in answer.policies), (answer.errors, body)
    return len(wellformed)


# ---------------------------------------------------------------------------------------------- the export

@pytest.mark.parametrize("name", sorted(UNITS))
def test_export_matches_the_golden_files(name):
    _, exported, _, _ = fixture(name)
    for file, text in exported.files().items():
        assert_golden(f"cedar/{name}/{file}", text)


@pytest.mark.parametrize("name", sorted(UNITS))
def test_policies_and_entities_validate_against_the_schema(name):
    _, exported, _, _ = fixture(name)
    schema = cedarpy.Schema.from_str(exported.schema)
    validation = cedarpy.validate_policies(exported.policies, schema)
    assert validation.validation_passed, [str(e) for e in validation.errors]
    # validated against the schema, which adds its action, Action::"call"
    assert len(cedarpy.Entities.from_json_str(exported.entities_json, schema)) == len(exported.entities) + 1


def test_every_fixture_exports_completely():
    """No fixture uses a construct Cedar lacks: their exports are exact, so every comparison below is equality."""
    gaps = {name: [g.render() for g in fixture(name)[1].gaps] for name in UNITS}
    assert not any(gaps.values()), {k: v for k, v in gaps.items() if v}


def test_the_export_is_the_same_bytes_in_every_process(tmp_path):
    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / seed
        done = subprocess.run([str(AGENTPERM), "export", "cedar", "fixtures/agency",
                               "--output", str(out)], cwd=REPO_ROOT, capture_output=True, text=True, check=False,
                              env={**os.environ, "PYTHONHASHSEED": seed})
        assert done.returncode == 0, done.stderr
        outputs.append({f: (out / f).read_text(encoding="utf-8") for f in cedar.FILES})
    assert outputs[0] == outputs[1] == fixture("agency")[1].files()


def test_a_tool_server_with_the_files_alone_decides_alike(tmp_path):
    """What README's Enforcing with Cedar tells a tool server: the three files, cedarpy, request_for
    (its lengths read from entities.json). The same answers as decide on the agency's sweep."""
    deployment, _, _, decider = fixture("agency")
    code, _, err = run_cli("export", "cedar", "fixtures/agency", "--output", str(tmp_path))
    assert code == 0, err
    entities_text = (tmp_path / "entities.json").read_text(encoding="utf-8")
    schema = cedarpy.Schema.from_str((tmp_path / "schema.cedarschema").read_text(encoding="utf-8"))
    policies = cedarpy.PolicySet.from_str((tmp_path / "policies.cedar").read_text(encoding="utf-8"))
    entities = cedarpy.Entities.from_json_str(entities_text, schema)
    lengths = cedar.lengths_from_entities(json.loads(entities_text))
    bodies = [p.body for p in universe("agency").sweep if native(deployment, decider, p.body) is not None]
    requests = []
    for body in bodies:
        principal, action, resource, context = cedar.request_for(body, lengths)
        requests.append({"principal": principal, "action": action, "resource": resource, "context": context})
    results = cedarpy.is_authorized_batch(requests, policies, entities)
    assert [r.allowed for r in results] == [native(deployment, decider, b) for b in bodies]
    assert any(r.allowed for r in results) and not all(r.allowed for r in results)


def test_requests_validate_against_the_schema():
    """The requests request_for builds are of the schema's shape: with the schema, Cedar answers alike."""
    deployment, exported, engine, decider = fixture("agency")
    schema = cedarpy.Schema.from_str(exported.schema)
    allowed = [p.body for p in universe("agency").sweep if native(deployment, decider, p.body)]
    assert len(allowed) > 50
    results = cedarpy.is_authorized_batch([engine.cedar_request(b) for b in allowed], engine.policy_set,
                                          engine.entities, schema=schema)
    assert all(r.allowed and not r.diagnostics.errors for r in results), [r.diagnostics.errors for r in results][:3]


# ---------------------------------------------------------------------------------------------- fixtures

@pytest.mark.parametrize("name", sorted(UNITS))
def test_every_fixture_agrees_on_the_sweep_and_the_witnesses(name):
    deployment, exported, engine, decider = fixture(name)
    found = universe(name)
    bodies = [p.body for p in [*found.sweep, *found.witness_probes]]
    assert_agree(deployment, exported, engine, decider, bodies)


@pytest.mark.parametrize("name", ["agency", "flawed-agency", "hostile-names", "rules/delegation-escalation/firing"])
def test_the_engines_slices_answer_as_the_whole_policy_set(name):
    """CedarEngine hands each request the policies its principal's roles can meet: the same decisions and
    the same determining policies as policies.cedar whole."""
    deployment, _, engine, decider = fixture(name)
    bodies = [p.body for p in universe(name).sweep if native(deployment, decider, p.body) is not None]
    whole = [engine.answer(r) for r in engine.authorize([engine.cedar_request(b) for b in bodies])]
    assert engine.decide_many(bodies) == whole
    assert len(engine._slices) > 1


@pytest.mark.parametrize("name", sorted(UNITS))
def test_the_fuzzer_finds_no_disagreement_on_any_fixture(name):
    """Every family of the fuzzer (in-policy, cross-tenant, chain, scope, fields, approval, ids, params,
    unicode, malformed) against a target that answers through Cedar, judged by decide."""
    deployment, _, engine, _ = fixture(name)
    result = run_campaign(deployment, cedar.target_for(deployment), max_examples=60, seed=13, progress=False,
                          universe=universe(name))
    assert not result.failures, "\n".join(
        f"{f.kind} ({f.family}, {f.probe.note}): {json.dumps(f.probe.body, ensure_ascii=False)} -> "
        f"{f.observed.allow} {f.observed.reason}\nCedar request: "
        f"{json.dumps(engine.cedar_request(f.probe.body)) if isinstance(f.probe.body, dict) else '-'}"
        for f in result.failures[:5])


def test_thousands_of_generated_calls_on_the_agency():
    deployment, exported, engine, decider = fixture("agency")
    bodies = [c.to_request(deployment) for c in sampled_domain(deployment, per_case=2)]
    assert len(bodies) > 5_000
    compared = assert_agree(deployment, exported, engine, decider, bodies)
    assert compared == len(bodies)


# ---------------------------------------------------------------------------------------------- random deployments

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deployments(), st.data())
def test_random_deployments_agree(d, data):
    exported = cedar.export(d)
    engine = cedar.CedarEngine(exported)
    routes = granted_routes(d)
    bodies = [data.draw(calls(d, routes)).to_request(d) for _ in range(25)]
    assert_agree(d, exported, engine, Decider(d), bodies)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deployments(), st.data())
def test_random_deployments_agree_on_the_fuzzers_families(d, data):
    exported = cedar.export(d)
    engine = cedar.CedarEngine(exported)
    found = Universe(d, solver=False, witnesses=False)
    bodies = [p.body for p in found.sweep[:200]]
    # the families mutate the sweep's calls, or the fuzzer's placeholder seed when there is none
    for name in fuzzing.families(http=False):
        bodies += [data.draw(fuzzing.family(found, name)).body for _ in range(4)]
    assert_agree(d, exported, engine, found.decider, bodies)


# ---------------------------------------------------------------------------------------------- conditions

def _condition_deployment(when: str, kind: str):
    """Two operations of one tool (`amount`/`to` on a, none on b), tenants with and without `domain`; the
    condition on a grant, on a role deny over an unconditional grant, or on a guardrail."""
    grant = {"tool": "crm", "operations": "*"}
    roles = {"r": {"grants": [{**grant, "when": when}] if kind == "grant" else [grant]}}
    if kind == "deny":
        roles["r"]["denies"] = [{"tool": "crm", "operations": "*", "when": when}]
    sections = {
        "tenants": {"acme": {"attributes": {"domain": "acme.com", "tier": 3}}, "globex": {"attributes": {"tier": "gold"}},
                 "initech": {"attributes": {"domain": "x*y.com"}}},
        "people": ["p"],
        "tools": {"crm": {"operations": {"a": {"effect": "read", "params": {"amount": "int", "to": "string"},
                                            "fields": ["stage", "notes"]},
                                      "b": {"effect": "write"}}}},
        "roles": roles,
        "agents": {"boss": {"roles": ["r"], "tenants": "*", "credentials": ["k"], "delegates_to": ["helper"]},
                "helper": {"roles": ["r"], "tenants": "*", "credentials": ["k"]}},
        "credentials": {"k": {"tools": "*", "tenants": "*", "store": "vault"}},
        "gates": {"g": {"approvers": ["p"]}, "bots": {"approvers": ["boss"]}},
        "workflows": {"w": {"tenant": "acme", "agent": "boss"}, "v": {"tenant": "globex", "agent": "boss"}},
    }
    if kind == "guardrail":
        sections["guardrails"] = [{"tool": "crm", "operations": "*", "when": when}]
    return build_deployment(**sections)


EDGE_AMOUNTS = (-(2**63), -(2**63) + 1, -5, -1, 0, 1, 4, 5, 6, 2**62, 2**63 - 2, 2**63 - 1)
EDGE_STRINGS = ("", "a", "b", "x@acme.com", "xacme.com", "@acme.com", "x@acme.comx", "a\\b", "x*y.com", "é@acme.com")
CONDITIONS = (
    "params.amount * 2 - 1 >= 9", "-params.amount < 5", "params.amount + params.amount > 0",
    "params.amount - 1 < 0", "params.amount * -3 <= 6", "9223372036854775807 - params.amount > 1",
    "params.amount > 1 || true", "!(params.amount > 1 && false)", "params.amount == null",
    "(call.delegated ? params.amount : 7) > 5",
    "params.to.endsWith(tenant.domain)", 'params.to.endsWith("@" + tenant.domain)',
    'params.to.startsWith("x@")', 'params.to.contains("a\\\\b")', 'params.to in ["a", "b"]',
    '!params.to.endsWith("@" + tenant.domain)', "has(tenant.domain) ? params.to.endsWith(tenant.domain) : true",
    'call.gate == null', 'call.gate == "g"', 'call.gate != "bots"', 'call.agent == "helper"',
    "call.tenant == call.home", 'call.effect == "read"', 'call.operation in ["b"]', "call.delegated",
    '"stage" in fields', "size(fields) <= 1", "1 in fields", "fields == fields || true",
    "tenant.tier > 2", 'tenant.tier == "gold"', "tenant.domain.size() > 7", 'tenant.domain.matches("^a")',
    "has(params.amount)", "has(call.gate)", "[1, params.amount] == [1, 2] || true",
)


@pytest.mark.parametrize("kind", ["grant", "deny", "guardrail"])
@pytest.mark.parametrize("when", CONDITIONS)
def test_each_condition_translates_exactly(when, kind):
    d = _condition_deployment(when, kind)
    exported = cedar.export(d)
    engine = cedar.CedarEngine(exported)
    bodies = [{"workflow": "w", "chain": ["boss"], "tool": "crm", "operation": "a", "tenant": "acme",
               "params": {"amount": amount, "to": to}} for amount in EDGE_AMOUNTS for to in EDGE_STRINGS]
    for wf, chain in (("w", ["boss"]), ("w", ["boss", "helper"]), ("v", ["boss"])):
        for tenant in ("acme", "globex", "initech"):
            for gate in (None, {"gate": "g", "by": "p"}, {"gate": "bots", "by": "boss"}):
                base = {"workflow": wf, "chain": chain, "tool": "crm", "tenant": tenant, "approval": gate}
                bodies.append({**base, "operation": "b"})
                bodies += [{**base, "operation": "a", "params": {"amount": amount, "to": "x@acme.com"}}
                           for amount in EDGE_AMOUNTS]
                bodies += [{**base, "operation": "a", "params": {"amount": 5, "to": to}} for to in EDGE_STRINGS]
                bodies += [{**base, "operation": "a", "params": {"amount": 5, "to": "x@acme.com"}, "fields": fields}
                           for fields in (["stage"], ["stage", "notes"])]
    if exported.gaps:  # the constructs Cedar lacks: reported, and never an allow decide refuses
        assert when in {"fields == fields || true", "[1, params.amount] == [1, 2] || true"}, exported.gaps
    compared = assert_agree(d, exported, engine, Decider(d), bodies)
    assert compared == len(bodies)


@pytest.mark.parametrize("when, construct", [
    ('params.to.matches("^a")', ".matches() has no Cedar equivalent"),
    ("params.amount / 2 > 1", "Cedar has no '/'"),
    ("params.amount % 2 == 1", "Cedar has no '%'"),
    ('params.to < "m"', "ordering strings"),
    ("size(params.to) > 3", "size() of a string"),
    ("params.amount * params.amount > 3", "a product of two variables"),
    ('params.to.contains(tenant.domain)', ".contains() of a computed string"),
    ('params.to.endsWith("*")', "holding '*'"),
    ('params.to.endsWith(call.agent)', ".endsWith() of a computed string"),
])
def test_a_construct_without_a_cedar_meaning_is_a_gap_that_denies(when, construct):
    for kind in ("grant", "deny", "guardrail"):
        d = _condition_deployment(when, kind)
        exported = cedar.export(d)
        assert [g.construct for g in exported.gaps] and construct in exported.gaps[0].construct, exported.gaps
        engine = cedar.CedarEngine(exported)
        bodies = [{"workflow": "w", "chain": ["boss"], "tool": "crm", "operation": op, "tenant": "acme",
                   "params": params} for op, params in (("b", {}), ("a", {"amount": 3, "to": "abc"}),
                                                         ("a", {"amount": 3, "to": "a*"}))]
        assert_agree(d, exported, engine, Decider(d), bodies, exact=False)
        answers = engine.decide_many(bodies)
        if kind == "grant":
            assert not any(a.allow for a in answers)  # the grant is left out
        else:
            assert not any(a.allow for a in answers[1:])  # the deny applies to every call it names


def test_matches_exports_with_exit_3_naming_the_grant(tmp_path):
    path = write_deployment(
        tmp_path, tenants={"acme": {"attributes": {"domain": "acme.com"}}},
        tools={"email": {"operations": {"send": {"effect": "send", "params": {"to": "string"}}}}},
        roles={"mailer": {"grants": [{"tool": "email", "operations": ["send"],
                                      "when": 'params.to.matches("^[a-z]+@acme\\\\.com$")'}]}},
        agents={"bot": {"roles": ["mailer"], "tenants": ["acme"], "credentials": ["k"]}},
        credentials={"k": {"tools": ["email"], "tenants": ["acme"], "store": "vault"}},
        workflows={"w": {"tenant": "acme", "agent": "bot"}})
    out = tmp_path / "out"
    code, _, err = run_cli("export", "cedar", str(path), "--output", str(out))
    assert code == 3, err
    line = next(line for line in err.splitlines() if "mailer grant #1" in line)
    assert line.startswith(f"{path}:") and ".matches() has no Cedar equivalent" in line and "left out" in line
    assert sorted(os.listdir(out)) == sorted(cedar.FILES)
    assert "permit" not in (out / "policies.cedar").read_text(encoding="utf-8").split("mailer grant #1")[-1]
    call = json.dumps({"workflow": "w", "chain": ["bot"], "tool": "email", "operation": "send", "tenant": "acme",
                       "params": {"to": "bob@acme.com"}})
    calls_file = tmp_path / "calls.jsonl"
    calls_file.write_text(call + "\n", encoding="utf-8")
    answers = {engine: json.loads(invoke_cli("decide", str(path), str(calls_file), "--engine", engine)[1])
               for engine in ("native", "cedar")}
    assert answers["native"]["allow"] is True and answers["cedar"]["allow"] is False  # fails closed


def test_a_bad_deployment_is_an_input_error(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("format: agentperm/v1\ntools: {crm: {operations: {read: {effect: nope}}}}\n", encoding="utf-8")
    code, _, err = run_cli("export", "cedar", str(broken), "--output", str(tmp_path / "out"))
    assert code == 2 and f"{broken}:2:" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------- the commands

def _suite_calls(name: str) -> list[dict]:
    import yaml

    found = []
    for suite in sorted((FIXTURES / f"{name}.tests").glob("*.y*ml")):
        data = yaml.safe_load(suite.read_text(encoding="utf-8"))
        found += [case["call"] for case in (data["cases"] if isinstance(data, dict) else data)]
    return found


@pytest.mark.parametrize("name", SUITES)
def test_decide_engines_agree_line_for_line(name, tmp_path):
    """`agentperm decide --engine cedar` and `--engine native`, as subprocesses, on the fixture's decision
    suite, its sweep and thousands of generated calls (and a malformed line): the same allow on every line."""
    deployment = fixture(name)[0]
    lines = [json.dumps(c, ensure_ascii=False) for c in _suite_calls(name)]
    lines += [json.dumps(p.body, ensure_ascii=False) for p in universe(name).sweep]
    lines += [json.dumps(c.to_request(deployment)) for c in sampled_domain(deployment, per_case=1)]
    lines.insert(3, "not json")
    assert len(lines) > 3_000
    path = tmp_path / "calls.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    runs = {engine: run_cli("decide", f"fixtures/{name}", str(path), "--engine", engine)
            for engine in ("native", "cedar")}
    assert runs["native"][0] == runs["cedar"][0] == 2
    native_answers, cedar_answers = ([json.loads(a) for a in runs[e][1].splitlines()] for e in ("native", "cedar"))
    assert len(native_answers) == len(cedar_answers) == len(lines)
    for number, (line, a, b) in enumerate(zip(lines, native_answers, cedar_answers, strict=True), start=1):
        assert ("error" in a) == ("error" in b) and a.get("error") == b.get("error"), (number, line)
        assert a.get("allow") == b.get("allow"), (number, line, a, b)
    assert sum(a.get("allow") is True for a in native_answers) > 100


@pytest.mark.parametrize("name", SUITES)
def test_a_decision_suite_passes_through_cedar(name):
    code, out, err = run_cli("test", f"fixtures/{name}", "--engine", "cedar")
    assert code == 0, out + err
    assert "passed against cedar" in out


def test_a_failing_case_fails_through_cedar_too(tmp_path):
    suite = tmp_path / "wrong.yaml"
    suite.write_text(json.dumps({"cases": [{"name": "sales may delete", "expect": "allow", "call": {
        "workflow": "acme-lead-followup", "chain": ["sales-agent"], "tool": "crm", "operation": "delete_contact",
        "tenant": "acme"}}]}), encoding="utf-8")
    code, out, _ = invoke_cli("test", "fixtures/agency", "--tests", str(suite), "--engine", "cedar")
    assert code == 1 and "cedar: deny" in out


# ---------------------------------------------------------------------------------------------- round trip

@pytest.mark.parametrize("name", sorted(UNITS))
def test_every_witness_of_a_violated_invariant_is_allowed_by_cedar(name):
    """Each witness a check reports, replayed as the decision-API request it prints, is allowed by Cedar
    as by decide. A witness through a gate with no person among its approvers (no-ungated-high-risk:
    such a gate is no real approval) prints `"by": null`, which the decision API reads as no approval:
    neither engine allows that request, and the two agree on it."""
    deployment, exported, engine, decider = fixture(name)
    with contextlib.chdir(REPO_ROOT):
        result = analyze(deployment, catalogue())
    violated = [inv for inv in result.invariants if inv.status == "violated"]
    witnesses = [w["call"] for inv in violated for w in inv.witnesses]
    unreal = [w for w in witnesses if w.get("approval") and w["approval"].get("by") is None]
    replayable = [w for w in witnesses if w not in unreal]
    for body, answer in zip(replayable, engine.decide_many(replayable), strict=True):
        assert answer.allow, explain(engine, body, answer, native(deployment, decider, body))
        assert native(deployment, decider, body)
    # the rest, and every class's call (the solver's, not replayed), decided alike
    assert_agree(deployment, exported, engine, decider, unreal + [c["call"] for inv in violated for c in inv.classes])
    if name in ("flawed-agency", "conditions/threshold-gap", "conditions/recipient-no-at"):
        assert replayable


# ---------------------------------------------------------------------------------------------- the encoding

def test_the_request_is_read_off_the_call_alone():
    _deployment, exported, _, _ = fixture("agency")
    call = {"workflow": "no-such", "chain": ["a", "b", "a"], "tool": "t/x", "operation": "o", "tenant": "?",
            "fields": ["f", "f"], "params": {"to": "bob@acme.com", "n": 2**63, "b": True, "x": 1.5},
            "approval": {"gate": "g", "by": None}}
    principal, action, resource, context = cedar.request_for(call, exported)
    assert principal == {"type": "Agent", "id": "a"} and action == {"type": "Action", "id": "call"}
    assert resource == {"type": "Operation", "id": "t/x/o"}  # two slashes: no operation of the deployment
    assert context["chain_distinct"] is False and context["fields_distinct"] is False
    assert context["field_count"] == 2 and len(context["hops"]) == 2
    assert context["params"]["n"] == {} and context["params"]["x"] == {} and context["params"]["b"] == {"bool": True}
    lengths = exported.suffix_lengths
    assert lengths and context["params"]["to"]["suffixes"] == sorted({"bob@acme.com"[-k:] for k in lengths if k <= 12})
    assert context["approval"] == {"gate": {"__entity": {"type": "Gate", "id": "g"}}}
    assert cedar.request_for({**call, "chain": []}, exported)[0] == {"type": "Agent", "id": ""}


def test_a_string_cedar_cannot_hold_is_denied():
    """A lone surrogate (valid JSON escape, no Unicode scalar) cannot reach Cedar: the engine denies."""
    _deployment, _, engine, _ = fixture("agency")
    body = {"workflow": "acme-lead-followup", "chain": ["sales-agent"], "tool": "email", "operation": "draft",
            "tenant": "acme", "params": {"to": "\ud800@x", "subject": "s"}}
    answer = engine.decide(body)
    assert answer.allow is False and "evaluation error" in answer.reason


@pytest.mark.parametrize("clause, family", [
    ("&& context.first == context.workflow.agent\n", "chain"),
    ("&& resource.fields.containsAll(context.fields)\n", "fields"),
])
def test_the_differential_check_catches_a_broken_export(clause, family):
    """The harness can fail: drop a clause of the structural forbid and the fuzzer's family finds a call
    Cedar allows and decide refuses."""
    deployment, exported, _, _ = fixture("agency")
    assert clause in exported.policies
    blocks = tuple((role, text.replace(clause, "")) for role, text in exported.blocks)
    engine = cedar.CedarEngine(cedar.Export(**{**exported.__dict__, "blocks": blocks}))

    def broken(request):
        parse_request(request, deployment)
        answer = engine.decide(request)
        return {"allow": answer.allow, "reason": answer.reason}

    result = run_campaign(deployment, broken, max_examples=200, seed=13, progress=False, universe=universe("agency"),
                          families=(family,), sweep=False)
    assert any(f.observed.allow is True for f in result.failures), result.failures


def test_python_hash_seed_does_not_matter_to_tags_and_sets():
    """Sets and tags are written sorted: the entities of a fixture are one text whatever the hash seed."""
    script = ("import sys; from analyzer.loader import load; from analyzer import cedar; "
              "sys.stdout.write(cedar.export(load(['fixtures/flawed-agency'])).entities_json)")
    texts = {subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                            check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("3", "4")}
    assert len(texts) == 1
