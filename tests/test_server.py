"""The reference enforcement endpoint (analyzer/server.py): FORMAT §7 over HTTP."""

from __future__ import annotations

import datetime
import json
import signal
import socket
import subprocess
import sys
import time
import warnings

import httpx
import pytest
from conftest import FIXTURES, REPO_ROOT, run_cli

with warnings.catch_warnings():  # starlette suggests httpx2 for its TestClient; httpx is what we have
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from analyzer.decide import Decider, parse_request
from analyzer.loader import load
from analyzer.server import MAX_BODY_BYTES, ServerThread, make_app, running

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the same, when a client is made

READ = {"workflow": "acme-lead-followup", "chain": ["sales-agent"], "tool": "crm", "operation": "read_contacts",
        "tenant": "acme"}
SEND = {"workflow": "acme-lead-followup", "chain": ["sales-agent"], "tool": "email", "operation": "send",
        "tenant": "acme", "params": {"to": "buyer@prospect.example", "subject": "secret plans"},
        "approval": {"gate": "outbound-review", "by": "dana"}}
FIXED_CLOCK = datetime.datetime(2024, 7, 1, 12, 0, 0, tzinfo=datetime.UTC)


@pytest.fixture(scope="module")
def agency():
    return load(str(FIXTURES / "agency"))


@pytest.fixture
def client(agency):
    with TestClient(make_app(agency)) as test_client:
        yield test_client


def test_an_allowed_call_is_200_allow_true_with_the_reason(client):
    response = client.post("/v1/decide", json=READ)
    assert response.status_code == 200
    assert response.json()["allow"] is True
    assert "sales grant #1" in response.json()["reason"]


@pytest.mark.parametrize("change", [
    {"workflow": "no-such-workflow"}, {"tenant": "globex"}, {"tool": "CRM"}, {"chain": ["research-agent"]},
    {"tenant": "\u0430cme"}, {"chain": ["sales-agent", "sales-agent"]}, {"fields": ["stage"]},
])
def test_unknown_ids_and_calls_outside_the_policy_are_200_allow_false(client, change):
    response = client.post("/v1/decide", json={**READ, **change})
    assert response.status_code == 200
    assert response.json()["allow"] is False
    assert response.json()["reason"]


@pytest.mark.parametrize("body", [
    b"", b"{", b"not json", b"[]", b'"call"', b"null", b"\xff\xfe", b'{"a": NaN}', b"\xef\xbb\xbf{}",
    json.dumps({k: v for k, v in READ.items() if k != "tenant"}).encode(),
    json.dumps({**READ, "chain": "sales-agent"}).encode(),
    json.dumps({**READ, "tenant": 7}).encode(),
    json.dumps({**READ, "fields": "stage"}).encode(),
    json.dumps({**READ, "params": []}).encode(),
    json.dumps({**READ, "approval": "yes"}).encode(),
    b"[" * 100_000,
], ids=lambda b: repr(b[:20]))
def test_malformed_input_is_400_with_an_error(client, body):
    response = client.post("/v1/decide", content=body)
    assert response.status_code == 400
    assert "error" in response.json() and "allow" not in response.json()


def test_the_answers_are_those_of_the_decision_function(client, agency):
    from analyzer.harness.strategies import Universe

    decider = Decider(agency)
    for probe in Universe(agency, solver=False, witnesses=False).sweep[:300]:
        expected = decider.decide(parse_request(probe.body, agency))
        answer = client.post("/v1/decide", json=probe.body).json()
        assert answer == {"allow": expected.allow, "reason": expected.reason}


def test_a_body_over_the_limit_is_413(client):
    padded = json.dumps(READ).encode() + b" " * MAX_BODY_BYTES
    response = client.post("/v1/decide", content=padded)
    assert response.status_code == 413

    def chunks():  # no Content-Length: the limit holds while streaming
        yield json.dumps(READ).encode()
        for _ in range(20):
            yield b" " * (64 * 1024)

    assert client.post("/v1/decide", content=chunks()).status_code == 413


def test_a_body_just_under_the_limit_is_decided(agency):
    with TestClient(make_app(agency, max_body=4096)) as small:
        body = json.dumps(READ).encode()
        assert small.post("/v1/decide", content=body + b" " * (4096 - len(body))).json()["allow"] is True
        assert small.post("/v1/decide", content=body + b" " * (4097 - len(body))).status_code == 413


def test_an_internal_error_is_a_deny_never_a_5xx(agency, caplog):
    app = make_app(agency)

    def explode(call):
        raise RuntimeError("boom")

    app.state.decider.decide = explode
    with TestClient(app, raise_server_exceptions=False) as failing:
        response = failing.post("/v1/decide", json=READ)
    assert response.status_code == 200
    assert response.json() == {"allow": False, "reason": "internal error"}
    assert "internal error" in caplog.text


def test_healthz_and_json_errors_for_other_routes(client, agency):
    assert client.get("/healthz").json() == {"status": "ok", "deployment": agency.digest}
    assert client.get("/v1/decide").status_code == 405
    assert client.get("/v1/decide").json()["error"]
    assert client.post("/elsewhere", json=READ).status_code == 404


def test_the_audit_log_has_one_line_per_decision_without_param_values(agency, tmp_path):
    log = tmp_path / "audit.jsonl"
    with TestClient(make_app(agency, audit_log=str(log), clock=lambda: FIXED_CLOCK)) as audited:
        audited.post("/v1/decide", json=SEND)
        audited.post("/v1/decide", json={**READ, "tenant": "globex"})
        audited.post("/v1/decide", content=b"{")
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert [line["outcome"] for line in lines] == ["allow", "deny", "malformed"]
    first = lines[0]
    assert first["who"] == ["sales-agent"] and first["what"] == "email.send"
    assert first["when"] == "2024-07-01T12:00:00.000Z"
    assert first["tenant"] == "acme" and first["workflow"] == "acme-lead-followup"
    assert first["approval"] == {"gate": "outbound-review", "by": "dana"}
    assert first["params"] == ["subject", "to"]  # names only
    text = log.read_text(encoding="utf-8")
    assert "secret plans" not in text and "buyer@prospect.example" not in text
    assert lines[1]["tenant"] == "globex" and "reach" in lines[1]["reason"]


def test_an_allow_that_cannot_be_audited_is_not_given(agency, tmp_path, monkeypatch):
    from analyzer import server as server_module

    def disk_full(self, entry):
        raise OSError("No space left on device")

    with TestClient(make_app(agency, audit_log=str(tmp_path / "audit.jsonl"))) as audited:
        monkeypatch.setattr(server_module.AuditLog, "record", disk_full)
        response = audited.post("/v1/decide", json=READ)
    assert response.status_code == 200
    assert response.json()["allow"] is False
    assert "audit" in response.json()["reason"]


def test_a_real_server_on_loopback_answers_and_stops(agency):
    server = ServerThread(make_app(agency)).start()
    try:
        assert server.host == "127.0.0.1"
        with httpx.Client() as http:
            for _ in range(3):  # keep-alive
                assert http.post(f"{server.url}/v1/decide", json=READ).json()["allow"] is True
    finally:
        server.stop()
    assert not server.thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{server.url}/v1/decide", json=READ, timeout=1)


def test_running_is_a_context_manager(agency):
    with running(make_app(agency)) as url:
        assert httpx.get(f"{url}/healthz").status_code == 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_serve_command_listens_on_loopback_and_shuts_down_on_sigterm(tmp_path):
    port = _free_port()
    log = tmp_path / "audit.jsonl"
    process = subprocess.Popen([sys.executable, "-c", "from analyzer.cli import main; main()", "serve",
                                str(FIXTURES / "agency"), "--port", str(port), "--audit-log", str(log)],
                               cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        assert httpx.post(f"http://127.0.0.1:{port}/v1/decide", json=READ).json()["allow"] is True
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    # uvicorn finishes the shutdown, then lets SIGTERM end the process as it would have
    assert process.returncode in (0, -signal.SIGTERM), stderr
    assert f"127.0.0.1:{port}" in stderr and "Application shutdown complete" in stderr
    assert json.loads(log.read_text(encoding="utf-8").splitlines()[0])["outcome"] == "allow"


def test_serve_on_a_port_in_use_is_a_usage_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, _, err = run_cli("serve", str(FIXTURES / "agency"), "--port", str(busy.getsockname()[1]))
    assert code == 2
    assert "cannot listen" in err


def test_serve_with_an_invalid_deployment_exits_2():
    code, _, err = run_cli("serve", str(FIXTURES / "invalid" / "bad-id"))
    assert code == 2
    assert "error" in err
