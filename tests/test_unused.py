"""`agentperm unused`: findings from a decision audit log, golden outputs, and every skipped line counted."""

from __future__ import annotations

import json

from conftest import FIXTURES, invoke_cli

from analyzer import auditlog, unused
from analyzer.loader import load
from analyzer.rules import load_rules

AUDIT = FIXTURES / "agency.audit"
WEEK = str(AUDIT / "week.jsonl")


def test_the_golden_outputs_match():
    for fmt, name in (("text", "unused.txt"), ("json", "unused.json")):
        code, out, _err = invoke_cli("unused", "fixtures/agency", "--audit-log", WEEK, "--format", fmt)
        assert code == 1
        assert out == (AUDIT / name).read_text(encoding="utf-8"), f"{name} changed (python fixtures/agency.audit/"\
            "make_log.py, then regenerate the golden files)"


def test_every_grant_the_log_never_used_is_named():
    d = load("fixtures/agency")
    log = auditlog.read([WEEK])
    result, used = unused.run(d, log, load_rules())
    named = {(f.subjects[0], f.location) for f in result.findings if f.rule in ("unused-grant", "unused-approval-path")}
    for role in d.roles.values():
        for grant in role.grants:
            if (role.id, grant.index) not in used.grants:
                assert (f"role:{role.id}", grant.loc) in named, grant.label
    # and a used grant is never reported as wholly unused
    for f in result.findings:
        if f.rule == "unused-grant" and "no logged allowed call" in f.message:
            assert not any(f.location == g.loc for (r, i), _ in used.grants.items()
                           for g in [d.roles[r].grants[i]])


def test_check_does_not_run_the_audit_rules():
    _code, out, _err = invoke_cli("check", "fixtures/agency", "--format", "json")
    assert not [f for f in json.loads(out)["findings"] if f["rule"].startswith("unused-") and
                f["rule"] not in ("unused-definition", "unused-suppression")]


def test_a_fully_used_deployment_has_no_unused_grant(tmp_path):
    log = tmp_path / "all.jsonl"
    d = load("fixtures/agency")
    lines = []
    for role in d.roles.values():
        agent = next(a for a in d.agents.values() if role.id in a.roles)
        wf = next((w for w in d.workflows.values() if w.agent == agent.id), next(iter(d.workflows.values())))
        for grant in role.grants:
            for _t, op in d.operations_of(grant):
                lines.append(json.dumps({"outcome": "allow", "who": [agent.id], "what": op.qualified,
                                         "tenant": wf.tenant, "workflow": wf.id, "approval_counted": grant.approval,
                                         "fields": [], "grant": grant.label}))
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result, _used = unused.run(d, auditlog.read([str(log)]), load_rules())
    assert not [f for f in result.findings if f.rule in ("unused-grant", "unused-approval-path")]


def test_bad_lines_and_unknown_ids_are_counted_with_their_line_numbers(tmp_path):
    log = tmp_path / "bad.jsonl"
    good = (AUDIT / "week.jsonl").read_text(encoding="utf-8").splitlines()[1]
    unknown = json.loads(good) | {"workflow": "no-such-workflow"}
    log.write_text("\n".join([good, "{not json", json.dumps({"outcome": "allow"}), json.dumps(unknown),
                              '{"outcome": "allow", "who": 3, "what": "a.b", "tenant": "x", "workflow": "w"}',
                              json.dumps(json.loads(good) | {"who": json.loads(good)["who"][0]}),
                              json.dumps(json.loads(good) | {"fields": "email"})]) + "\n",
                   encoding="utf-8")
    code, _out, err = invoke_cli("unused", "fixtures/agency", "--audit-log", str(log))
    assert code == 1
    assert "5 unreadable line(s)" in err  # "who" and "fields" as strings are not lists of letters
    assert f"{log}:2: not JSON" in err and f"{log}:3: missing 'what'" in err and f"{log}:5:" in err
    assert f"{log}:6: a field has the wrong type" in err and f"{log}:7: a field has the wrong type" in err
    assert "1 line(s) naming ids the deployment lacks" in err and f"{log}:4: unknown workflow" in err


def test_since_filters_by_timestamp():
    log = auditlog.read([WEEK], auditlog.parse_since("2026-12-03"))
    assert log.before_since > 0 and sum(log.calls.values()) + log.before_since + log.malformed_requests == log.lines
    code, _out, err = invoke_cli("unused", "fixtures/agency", "--audit-log", WEEK, "--since", "yesterday")
    assert code == 2 and "--since" in err


def test_a_missing_log_is_an_input_error():
    code, _out, err = invoke_cli("unused", "fixtures/agency", "--audit-log", "no/such.jsonl")
    assert code == 2 and "no/such.jsonl" in err and "Traceback" not in err
