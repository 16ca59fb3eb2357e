"""`agentperm tighten`: a proposal that keeps only used grants, proved to remove access only; the round trip."""

from __future__ import annotations

import importlib.util
import random

import httpx
from conftest import FIXTURES, invoke_cli

from analyzer.diff import diff
from analyzer.loader import load
from analyzer.server import make_app, running

WEEK = str(FIXTURES / "agency.audit" / "week.jsonl")


def test_tighten_writes_a_proved_proposal_keeping_comments(tmp_path):
    out = tmp_path / "tight"
    code, text, err = invoke_cli("tighten", "fixtures/agency", "--audit-log", WEEK, "--output", str(out))
    assert code == 0, text + err
    assert "proved:" in text and "-      - {tool: email, operations: [send], approval: outbound-review}" in text
    roles = (out / "roles.yaml").read_text(encoding="utf-8")
    assert "# goodwill refunds: small ones on the spot" in roles
    assert (out / "tools.yaml").read_text() == (FIXTURES / "agency" / "tools.yaml").read_text()
    old, new = load("fixtures/agency"), load(str(out))
    assert not diff(old, new).new_access
    assert sum(len(r.grants) for r in new.roles.values()) < sum(len(r.grants) for r in old.roles.values())
    code, _o, _e = invoke_cli("diff", "fixtures/agency", str(out))
    assert code == 0


def test_an_unreadable_log_line_refuses_to_tighten(tmp_path):
    log = tmp_path / "bad.jsonl"
    log.write_text("{oops\n", encoding="utf-8")
    code, _out, err = invoke_cli("tighten", "fixtures/agency", "--audit-log", str(log), "--output", str(tmp_path / "o"))
    assert code == 2 and "could not be read" in err and not (tmp_path / "o").exists()


def _week_requests(d):
    spec = importlib.util.spec_from_file_location("make_log", FIXTURES / "agency.audit" / "make_log.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.plan(d, random.Random(12))


def test_round_trip_serve_log_tighten_diff(tmp_path):
    """A hand-written deployment (not the MCP importer) → serve → its audit log → tighten → diff → serve again."""
    audit = tmp_path / "audit.jsonl"
    d = load("fixtures/agency")
    requests = _week_requests(d)
    with running(make_app(d, str(audit))) as url:
        allowed = [body for body in requests if httpx.post(f"{url}/v1/decide", json=body).json()["allow"]]
    assert allowed and len(audit.read_text().splitlines()) == len(requests)
    out = tmp_path / "tight"
    code, text, err = invoke_cli("tighten", "fixtures/agency", "--audit-log", str(audit), "--output", str(out))
    assert code == 0, text + err
    new = load(str(out))
    assert not diff(d, new).new_access
    with running(make_app(new)) as url:
        for body in allowed:
            assert httpx.post(f"{url}/v1/decide", json=body).json()["allow"], body


def test_a_proposal_with_new_findings_is_not_written(tmp_path):
    """Removing every gated grant leaves the gates unused: check finds that, so the proof fails (exit 1)."""
    audit = tmp_path / "audit.jsonl"
    d = load("fixtures/agency")
    with running(make_app(d, str(audit))) as url:
        assert httpx.post(f"{url}/v1/decide", json={
            "workflow": "acme-lead-followup", "chain": ["sales-agent"], "tool": "crm", "operation": "read_contacts",
            "tenant": "acme"}).json()["allow"]
    out = tmp_path / "tight"
    code, text, _err = invoke_cli("tighten", "fixtures/agency", "--audit-log", str(audit), "--output", str(out))
    assert code == 1 and "PROOF FAILED" in text and "unused-definition gate:" in text
    assert not out.exists()
