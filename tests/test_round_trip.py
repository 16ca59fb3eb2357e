"""The whole way through (issue 12): tools imported from an MCP server's list → check → serve →
its audit log → tighten → diff proves the proposal removes access only, and the logged calls
still pass."""

from __future__ import annotations

import httpx
from conftest import FIXTURES, invoke_cli

from analyzer.diff import diff
from analyzer.loader import load
from analyzer.server import make_app, running

REST = """\
tenants:
  acme: {name: Acme}
people:
  dana: {name: Dana}
roles:
  maintainer:
    grants:
      - {tool: github, operations: [%(ops)s]}
agents:
  repo-agent: {roles: [maintainer], tenants: [acme], credentials: [gh-token]}
credentials:
  gh-token: {tools: [github], tenants: [acme], issued: per-workflow, store: vault, ttl: 15m, rotation: 30d}
workflows:
  acme-triage: {tenant: acme, agent: repo-agent, tools: [github]}
audit:
  sink: append-only
"""

EXAMPLE = {"int": 1, "string": "x", "bool": False}


def test_import_check_serve_log_tighten_diff(tmp_path):
    deployment = tmp_path / "deployment"
    deployment.mkdir()
    code, _out, err = invoke_cli("import", "mcp", FIXTURES / "mcp" / "github_tools.json", "--tool", "github",
                                 "--output", deployment / "tools.yaml")
    assert code == 0, err
    tools = load(str(deployment / "tools.yaml")).tools["github"]
    reads = sorted(op for op, o in tools.operations.items() if o.effect == "read")
    assert len(reads) >= 3
    used, unused = reads[:-1], reads[-1]
    (deployment / "rest.yaml").write_text(REST % {"ops": ", ".join(reads)}, encoding="utf-8")

    code, _out, err = invoke_cli("check", deployment)
    assert code in (0, 1), err
    before = load(str(deployment))

    audit = tmp_path / "audit.jsonl"
    calls = []
    for op_id in used:
        op = tools.operations[op_id]
        params = {name: (kind.values[0] if kind.kind == "enum" else EXAMPLE[kind.kind]) for name, kind in op.params.items()}
        calls.append({"workflow": "acme-triage", "chain": ["repo-agent"], "tool": "github", "operation": op_id,
                      "tenant": "acme", "params": params})
    with running(make_app(before, str(audit))) as url:
        for body in calls:
            assert httpx.post(f"{url}/v1/decide", json=body).json()["allow"], body

    code, out, err = invoke_cli("unused", deployment, "--audit-log", audit)
    assert code == 1 and "unused-grant" in out and unused in out, out + err

    tight = tmp_path / "tight"
    code, out, err = invoke_cli("tighten", deployment, "--audit-log", audit, "--output", tight)
    assert code == 0, out + err
    after = load(str(tight))
    assert after.roles["maintainer"].grants[0].operations == tuple(used)
    assert not diff(before, after).new_access
    assert diff(after, before).new_access  # and the proposal did remove something
    with running(make_app(after)) as url:
        for body in calls:
            assert httpx.post(f"{url}/v1/decide", json=body).json()["allow"], body
