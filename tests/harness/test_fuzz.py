"""The fuzzer (analyzer/harness): it catches every planted fault at its default budget, reports
nothing against the faithful endpoint, shrinks, saves and replays what it finds."""

from __future__ import annotations

import json
import os

import faulty_servers
import pytest
from conftest import FIXTURES, invoke_cli, run_cli

from analyzer.harness import strategies
from analyzer.harness.fuzz import DEFAULT_MAX_EXAMPLES, Expected, judge, render, run_campaign, save
from analyzer.harness.replay import exit_code, replay
from analyzer.harness.strategies import Probe, Universe
from analyzer.harness.targets import CallableTarget, Observation, TargetError, resolve
from analyzer.server import ServerThread, make_app

HERE = os.path.dirname(os.path.abspath(__file__))
CLI_ENV = {"PYTHONPATH": HERE + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.fixture(scope="module")
def agency():
    return faulty_servers.agency()


@pytest.fixture(scope="module")
def universe(agency):
    return Universe(agency)


# ---- the model-derived calls ---------------------------------------------------------------------------

def test_int_params_get_both_sides_of_every_threshold(universe):
    amounts = set(universe.values[("billing", "refund")]["amount"])
    assert {49, 50, 51, 99, 100, 101, 4999, 5000, 5001} <= amounts
    assert {19999, 20000, 20001} <= set(universe.values[("billing", "create_invoice")]["amount"])


def test_string_params_satisfy_and_just_miss_each_suffix_test(universe):
    recipients = set(universe.values[("email", "send")]["to"])
    assert {"x@acme.com", "xacme.com", "x@globex.com", "xglobex.com", "x@acme.com.evil"} <= recipients


def test_routes_cover_every_workflow_and_delegation_chain(agency, universe):
    assert {r.workflow for r in universe.routes} == set(agency.workflows)
    chains = {r.chain for r in universe.routes}
    assert ("sales-agent", "research-agent") in chains and ("support-agent", "research-agent") in chains


def test_the_sweep_holds_allowed_calls_and_their_near_misses(universe):
    families = {p.family for p in universe.sweep}
    assert {"in-policy", "cross-tenant", "fields", "approval", "scope"} <= families
    assert universe.allowed and universe.approved


def test_a_large_deployment_is_swept_within_a_bound(agency, monkeypatch):
    monkeypatch.setattr(strategies, "MAX_SWEEP", 50)
    bounded = Universe(agency, solver=False, witnesses=False)
    assert len(bounded.sweep) == 50
    assert any("limited to 50" in note for note in bounded.notes)


def test_witnesses_of_violated_invariants_are_swept():
    from analyzer.loader import load

    flawed = Universe(load(str(FIXTURES / "conditions" / "threshold-gap" / "deployment.yaml")))
    witnesses = [p for p in flawed.sweep if p.family == "witness"]
    assert witnesses and all(flawed.decide(p.body) for p in witnesses)


def _drawn(universe, name: str) -> list:
    from hypothesis import HealthCheck, given, settings

    seen = []

    @settings(max_examples=15, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(strategies.family(universe, name))
    def draw(probe):
        probe.payload()
        seen.append(probe)

    draw()
    return seen


@pytest.mark.parametrize("name", strategies.FAMILIES)
def test_every_family_draws_probes_of_its_name(universe, name):
    seen = _drawn(universe, name)
    assert seen and {p.family for p in seen} == {name}


@pytest.mark.parametrize("text", ["acme", "sales-agent", "7"])
def test_id_variants_differ_from_the_id(text):
    variants = [v for _, v in strategies._variants(text)]
    assert any(v != text for v in variants)
    if text.isalpha():  # a Cyrillic letter drawn like a Latin one
        assert any(not v.isascii() and v.lower() != text for v in variants)
    if text == "acme":
        assert "\u0430cme" in variants


# ---- the oracle ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("expected, observed, kind", [
    (Expected(False, False), Observation(200, True), "enforcement-hole"),
    (Expected(False, True), Observation(200, False), "broken-workflow"),
    (Expected(False, True), Observation(400), "broken-workflow"),
    (Expected(False, False), Observation(400), None),
    (Expected(False, False), Observation(403), None),
    (Expected(False, True), Observation(200, True), None),
    (Expected(True), Observation(400), None),
    (Expected(True), Observation(413), None),
    (Expected(True), Observation(200, False), "malformed-accepted"),
    (Expected(True), Observation(200, True), "malformed-accepted"),
    (Expected(False, False), Observation(500), "server-error"),
    (Expected(True), Observation(502), "server-error"),
    (Expected(False, False), Observation(200, "yes"), "bad-response"),
    (Expected(False, False), Observation(302), "bad-response"),
    (Expected(False, False), Observation(None, timeout=True), "timeout"),
    (Expected(False, False), Observation(None, error="reset"), "transport-error"),
    (Expected(False, True, lenient=True), Observation(413), None),
])
def test_judge(expected, observed, kind):
    assert judge(expected, observed) == kind


def test_a_callable_that_answers_too_late_is_a_timeout():
    import time

    def slow(request):
        time.sleep(0.03)
        return {"allow": False}

    target = CallableTarget(slow, timeout=0.01)
    assert not target.send(b"{}").timeout  # the first call may load things: it has no timeout
    observed = target.send(b"{}")
    assert observed.timeout and judge(Expected(False, False), observed) == "timeout"


def test_callable_conventions():
    def answer(request):
        if request == "bad":
            raise ValueError("malformed")
        if request == "crash":
            raise KeyError("x")
        return {"allow": True, "reason": "ok"} if request == "ok" else ["not", "a", "mapping"]

    target = CallableTarget(answer)
    assert target.send(b'"bad"').status == 400
    assert target.send(b'"crash"').status == 500
    assert target.send(b'"ok"').allow is True
    assert judge(Expected(False, False), target.send(b'"list"')) == "bad-response"


def test_target_specs():
    assert resolve("http://127.0.0.1:9").url == "http://127.0.0.1:9/v1/decide"
    assert resolve("http://127.0.0.1:9/custom/decide").url == "http://127.0.0.1:9/custom/decide"
    assert resolve("faulty_servers:reference").label == "faulty_servers:reference"
    for bad in ("nothing", "no_such_module_xyz:f", "faulty_servers:no_such_function", "ftp://x"):
        with pytest.raises(TargetError):
            resolve(bad)


# ---- the campaign -------------------------------------------------------------------------------------

def test_the_faithful_endpoint_passes_at_the_default_budget(agency, universe):
    result = run_campaign(agency, faulty_servers.reference, universe=universe, progress=False)
    assert result.failures == []
    assert result.sweep == len(universe.sweep)
    assert set(result.examples) == set(strategies.families(http=False))
    assert result.calls > result.sweep + DEFAULT_MAX_EXAMPLES
    assert result.exit_code == 0


@pytest.mark.parametrize("fault", sorted(faulty_servers.FAULTS))
def test_every_planted_fault_is_caught_at_the_default_budget(agency, universe, fault):
    result = run_campaign(agency, faulty_servers.FAULTS[fault], universe=universe, progress=False)
    kinds = {f.kind for f in result.failures}
    assert faulty_servers.EXPECTED_KIND[fault] in kinds, render(result, "text")
    assert result.exit_code == 1


def test_hypothesis_shrinks_a_failure_to_one_change(agency, universe):
    result = run_campaign(agency, faulty_servers.case_insensitive_ids, universe=universe, progress=False,
                          sweep=False, families=("ids",))
    (failure,) = result.failures
    body = failure.probe.body
    assert failure.phase == "hypothesis" and failure.kind == "enforcement-hole"
    # the shrunk call is an allowed one with exactly one id changed in case
    restored = {k: (v.lower() if isinstance(v, str) else v) for k, v in body.items()}
    restored["chain"] = [a.lower() for a in body["chain"]]
    assert universe.decide(restored) and not universe.decide(body)


def test_the_faithful_server_passes_over_http(agency, universe):
    server = ServerThread(make_app(agency)).start()
    try:
        result = run_campaign(agency, server.url, max_examples=60, universe=universe, progress=False)
    finally:
        server.stop()
    assert result.failures == [], render(result, "text")
    assert "non-json" in result.examples
    assert result.sweep == len(universe.sweep) + 1  # and one oversized body, over HTTP only


def test_a_planted_fault_is_caught_over_http(agency, universe):
    server = ServerThread(faulty_servers.app(faulty_servers.crashes_on_non_ascii)).start()
    try:
        result = run_campaign(agency, server.url, universe=universe, progress=False)  # the default budget
    finally:
        server.stop()
    assert "server-error" in {f.kind for f in result.failures}
    failure = next(f for f in result.failures if f.kind == "server-error")
    assert failure.observed.status == 500
    assert not failure.probe.payload().isascii()


def test_a_server_that_allows_what_it_cannot_parse_is_caught_over_http(agency, universe):
    server = ServerThread(faulty_servers.app(faulty_servers.allows_malformed)).start()
    try:
        result = run_campaign(agency, server.url, max_examples=40, universe=universe, progress=False, sweep=False,
                              families=("non-json", "malformed"))
    finally:
        server.stop()
    assert {("malformed-accepted", "non-json"), ("malformed-accepted", "malformed")} <= {f.key for f in
                                                                                          result.failures}
    assert all(f.severity == "critical" for f in result.failures)


def test_nothing_listening_is_a_target_error(agency, universe):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TargetError):
        run_campaign(agency, f"http://127.0.0.1:{port}", max_examples=5, universe=universe, progress=False)


def test_outputs_and_saved_reproducers(agency, universe, tmp_path):
    result = run_campaign(agency, faulty_servers.allows_malformed, max_examples=30, universe=universe,
                          progress=False, sweep=False, families=("malformed",))
    paths = save(result, str(tmp_path))
    assert len(paths) == len(result.failures) >= 1
    with open(paths[0], encoding="utf-8") as handle:
        saved = json.load(handle)
    assert saved["format"] == "agentperm-fuzz-failure/1"
    assert saved["expected"]["malformed"] is True and saved["observed"]["allow"] is True
    assert saved["curl"].startswith("curl -sS -X POST http://127.0.0.1:8181/v1/decide")
    text = render(result, "text")
    assert "FAIL critical malformed-accepted [malformed]" in text and "curl " in text
    data = json.loads(render(result, "json"))
    assert data["format"] == "agentperm-fuzz/1" and data["summary"]["failures"] == len(result.failures)
    from xml.etree import ElementTree as ET

    suite = ET.fromstring(render(result, "junit"))
    assert suite.get("failures") == "1" and suite.find(".//failure") is not None

    still = replay(str(tmp_path), faulty_servers.allows_malformed)
    assert [r.fixed for r in still] == [False] * len(paths) and exit_code(still) == 1
    fixed = replay(str(tmp_path), faulty_servers.reference)
    assert all(r.fixed for r in fixed) and exit_code(fixed) == 0


def test_a_non_json_reproducer_replays_over_http(agency, universe, tmp_path):
    probe = Probe("non-json", raw=b'{"workflow": \xff', note="invalid UTF-8")
    expected = Expected(True, reason="not UTF-8")
    from analyzer.harness.fuzz import Failure, FuzzResult

    result = FuzzResult(agency, "t", "http://127.0.0.1:8181/v1/decide", 1, None,
                        failures=[Failure("malformed-accepted", probe, expected, Observation(200, True), "x")])
    save(result, str(tmp_path))
    good = ServerThread(make_app(agency)).start()
    bad = ServerThread(faulty_servers.app(faulty_servers.allows_malformed)).start()
    try:
        assert exit_code(replay(str(tmp_path), good.url)) == 0
        assert exit_code(replay(str(tmp_path), bad.url)) == 1
        skipped = replay(str(tmp_path), faulty_servers.allows_malformed)  # not sendable to a callable
        assert [r.kind for r in skipped] == ["skipped"] and exit_code(skipped) == 0
    finally:
        good.stop()
        bad.stop()


# ---- the commands -------------------------------------------------------------------------------------

@pytest.fixture
def reference_env(monkeypatch):
    """The in-process commands set $AGENTPERM_DEPLOYMENT; keep that from leaking into other tests."""
    from analyzer.harness.reference import ENV

    monkeypatch.setenv(ENV, str(FIXTURES / "agency"))


def test_fuzz_then_replay_with_the_console_script(tmp_path):
    save_dir = tmp_path / "found"
    code, out, err = run_cli("fuzz", "fixtures/agency", "--target", "faulty_servers:approver_not_checked",
                             "--max-examples", "20", "--save", str(save_dir), env=CLI_ENV)
    assert code == 1, err
    assert "enforcement-hole" in out and "curl -sS -X POST" in out
    assert list(save_dir.glob("enforcement-hole-*.json"))
    code, out, _ = run_cli("replay", str(save_dir), "--target", "analyzer.harness.reference:decide")
    assert code == 0 and "FIXED" in out and "STILL FAILING" not in out


def test_replay_says_still_failing_against_the_faulty_target(tmp_path, reference_env):
    code, _, _ = invoke_cli("fuzz", "fixtures/agency", "--target", "faulty_servers:tenant_check_skipped",
                            "--max-examples", "0", "--save", str(tmp_path))
    assert code == 1 and list(tmp_path.glob("*.json"))
    code, out, _ = invoke_cli("replay", str(tmp_path), "--target", "faulty_servers:tenant_check_skipped")
    assert code == 1 and "STILL FAILING" in out and "FIXED" not in out
    code, out, _ = invoke_cli("replay", str(tmp_path), "--target", "faulty_servers:reference")
    assert code == 0 and "FIXED" in out


def test_fuzz_command_passes_the_reference_and_speaks_json_and_junit(tmp_path, reference_env):
    code, out, err = invoke_cli("fuzz", "fixtures/agency", "--target", "analyzer.harness.reference:decide",
                                "--max-examples", "20", "--seed", "3", "--format", "json", "--save", str(tmp_path))
    assert code == 0, err
    data = json.loads(out)
    assert data["failures"] == [] and data["seed"] == 3 and data["calls"] > data["sweep"] > 0
    assert not list(tmp_path.iterdir())  # nothing to save
    code, out, _ = invoke_cli("fuzz", "fixtures/agency", "--target", "analyzer.harness.reference:decide",
                              "--max-examples", "0", "--format", "junit")
    assert code == 0 and out.startswith("<?xml")


def test_fuzz_command_usage_errors(reference_env):
    code, _, err = invoke_cli("fuzz", "fixtures/agency", "--target", "no_such_module_xyz:decide")
    assert code == 2 and "cannot import" in err
    code, _, err = invoke_cli("replay", "no/such/dir", "--target", "analyzer.harness.reference:decide")
    assert code == 2 and "no such directory" in err


# ---- where §7 and RFC 8259 leave a choice, either answer passes ---------------------------------------

def _allowed_body(universe) -> dict:
    """An allowed call that needs no approval (a copy)."""
    return json.loads(json.dumps(next(b for b in universe.allowed if not b.get("approval"))))


def test_a_byte_order_mark_may_be_ignored_or_refused(universe):
    from analyzer.harness.fuzz import expect

    body = _allowed_body(universe)
    assert universe.decide(body)
    probe = Probe("non-json", raw=b"\xef\xbb\xbf" + json.dumps(body).encode(), note="byte-order mark")
    expected = expect(universe, probe)
    assert not expected.malformed and expected.allow and expected.lenient
    assert judge(expected, Observation(200, allow=True)) is None   # ignored, as RFC 8259 §8.1 allows
    assert judge(expected, Observation(400)) is None                # refused
    assert judge(expected, Observation(200, allow=False)) == "broken-workflow"


@pytest.mark.parametrize("edit", ["by", "approval", "fields", "params"])
def test_null_where_a_value_is_optional_may_be_read_as_absent_or_refused(universe, edit):
    from analyzer.harness.fuzz import expect

    body = _allowed_body(universe)
    if edit == "by":
        body["approval"] = {"gate": "finance-approval", "by": None}
    else:
        body[edit] = None
    expected = expect(universe, Probe("malformed", body))
    assert not expected.malformed and expected.lenient
    assert judge(expected, Observation(400)) is None
    assert judge(expected, Observation(200, allow=expected.allow)) is None


def test_a_wrong_non_null_type_in_approval_must_be_refused(universe):
    from analyzer.harness.fuzz import expect

    body = _allowed_body(universe)
    body["approval"] = {"gate": 1, "by": "x"}
    expected = expect(universe, Probe("malformed", body))
    assert expected.malformed
    assert judge(expected, Observation(200, allow=False)) == "malformed-accepted"
    assert judge(expected, Observation(400)) is None


def test_an_independently_written_correct_endpoint_passes(agency, universe):
    """No false alarm against a second correct endpoint that takes the other side of every choice."""
    import plain_endpoint

    server, url = plain_endpoint.serve(agency)
    try:
        for seed in (1, 2):
            result = run_campaign(agency, url, max_examples=150, seed=seed, universe=universe, progress=False)
            assert result.failures == [], render(result, "text")
            assert "non-json" in result.examples
    finally:
        server.shutdown()


def test_every_family_runs_on_a_deployment_with_no_route():
    """With no workflow there is no call to mutate: the families start from a placeholder seed
    carrying every key they edit (a KeyError here once stopped the fields family)."""
    from conftest import build_deployment
    from hypothesis import given, settings
    from hypothesis import strategies as st

    deployment = build_deployment(tenants=["acme"], workflows={})
    universe = Universe(deployment, solver=False, witnesses=False)
    assert not universe.sweep
    drawn = set()

    @given(st.data())
    @settings(max_examples=10, deadline=None)
    def every_family(data):
        for name in strategies.families(http=True):
            probe = data.draw(strategies.family(universe, name))
            assert isinstance(probe, Probe)
            drawn.add(name)
    every_family()
    assert drawn == set(strategies.families(http=True))
