"""agentperm import mcp: golden file import, live stdio import, mapping, inert descriptions, merge."""

from __future__ import annotations

import json
import pathlib
import sys

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.cli import main
from analyzer.loader import load, load_text
from analyzer.mcp_import import McpImportError, map_tools, render, tools_of_json
from analyzer.risk import declared_risk

FIX = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "mcp"
SOURCES = sorted(FIX.glob("*_tools.json"))


def _run(*args):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_file_import_is_golden(source):
    result = _run("import", "mcp", str(source), "--tool", "github")
    assert result.exit_code == 0, result.output
    golden = source.with_name(source.name.replace("_tools.json", ".expected.yaml"))
    assert result.output == golden.read_text("utf-8")


def test_live_stdio_import_equals_file_import():
    source = FIX / "github_tools.json"
    live = _run("import", "mcp", f"stdio:{sys.executable} {FIX / 'server.py'}", "--tool", "github",
                "--timeout", "20")
    assert live.exit_code == 0, live.output
    assert live.output == _run("import", "mcp", str(source), "--tool", "github").output


def test_output_loads_and_risk_follows_annotations():
    deployment = load([str(FIX / "github.expected.yaml")])
    ops = deployment.tools["github"].operations
    risks = {i: declared_risk(op, deployment.policy) for i, op in ops.items()}
    assert risks["get_me"] == risks["list_issues"] == "low"
    assert risks["merge_pull_request"] == risks["run_workflow"] == risks["delete_file"] == "high"
    assert ops["create_branch"].effect == "write" and ops["create_issue"].effect == "send"
    assert ops["create_issue"].external
    check = _run("check", str(FIX / "github.expected.yaml"), "--format", "json")
    assert check.exit_code in (0, 1), check.output


def test_unmodelled_properties_are_named_in_comments():
    text = (FIX / "github.expected.yaml").read_text("utf-8")
    assert "not modelled, a grant cannot constrain: assignees (array), milestone (number)" in text
    assert "server declared no annotations" in text


@pytest.mark.parametrize("text,message", [
    ("not json", "not JSON"), ("{}", "not a tools/list"), ('[{"description": "x"}]', "with a name"),
    ('[{"name": "a b"}, {"name": "a_b"}]', "both map to id"), ('[{"name": "!!!"}]', "no valid id"),
])
def test_malformed_lists_exit_2(tmp_path, text, message):
    path = tmp_path / "t.json"
    path.write_text(text)
    result = _run("import", "mcp", str(path), "--tool", "t")
    assert result.exit_code == 2 and message in result.output


def test_server_that_does_not_start_exits_2():
    result = _run("import", "mcp", "stdio:/nonexistent/mcp-server", "--tool", "t", "--timeout", "5")
    assert result.exit_code == 2 and "error:" in result.output


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                               max_size=3), max_leaves=10)
_base = json.loads((FIX / "github_tools.json").read_text("utf-8"))["result"]["tools"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(_base) - 1), st.sampled_from(["name", "annotations", "inputSchema", "description",
                                                        "properties", "required"]), _json)
def test_mutated_tool_lists_raise_only_our_error(index, key, value):
    tools = json.loads(json.dumps(_base))
    if key in ("properties", "required"):
        tools[index]["inputSchema"][key] = value
    else:
        tools[index][key] = value
    try:
        text = render("t", map_tools(tools))
    except McpImportError:
        return
    load_text(text)


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=60) | st.sampled_from(["a\n---\nroles: {x: 1}", "# c\n'\"", "<b>&</b>\r\n  - x: y"]))
def test_hostile_descriptions_stay_inert(description):
    text = render("t", map_tools([{"name": "op", "description": description}]))
    ops = load_text(text).tools["t"].operations
    assert list(ops) == ["op"]
    assert ops["op"].description == (description or None) or not description.strip()


def test_json_rpc_result_and_bare_list_are_one_list():
    tools = [{"name": "x"}]
    assert tools_of_json(json.dumps(tools)) == tools_of_json(json.dumps({"tools": tools})) == \
        tools_of_json(json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}}))


def test_reimport_keeps_edits_and_reports_changes(tmp_path):
    out = tmp_path / "github.yaml"
    src = tmp_path / "t.json"
    tools = json.loads((FIX / "github_tools.json").read_text("utf-8"))["result"]["tools"]
    src.write_text(json.dumps(tools))
    assert _run("import", "mcp", str(src), "--tool", "github", "--output", str(out)).exit_code == 0
    edited = out.read_text("utf-8").replace(
        "      run_workflow:\n", "      run_workflow:\n        risk: medium\n", 1)
    out.write_text(edited)
    src.write_text(json.dumps([t for t in tools if t["name"] != "get_me"] + [{"name": "new_tool"}]))
    result = CliRunner().invoke(
        main, ["import", "mcp", str(src), "--tool", "github", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "added by the server: github.new_tool" in result.stderr
    assert "removed by the server (dropped): github.get_me" in result.stderr
    ops = load([str(out)]).tools["github"].operations
    assert ops["run_workflow"].risk == "medium" and "get_me" not in ops


def test_live_streamable_http_import_equals_file_import():
    import socket
    import subprocess
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, str(FIX / "server.py"), "--http", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # wait until the port accepts, not a fixed sleep
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        live = _run("import", "mcp", f"http://127.0.0.1:{port}/mcp", "--tool", "github", "--timeout", "15")
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert live.exit_code == 0, live.output
    assert live.output == (FIX / "github.expected.yaml").read_text("utf-8")


def test_http_source_off_loopback_is_refused():
    result = _run("import", "mcp", "http://example.com/mcp", "--tool", "t", "--timeout", "5")
    assert result.exit_code == 2 and "loopback" in result.output


def test_merge_into_a_broken_file_names_its_position(tmp_path):
    """The existing file is read as the loader reads YAML: a syntax error is exit 2 at line:column."""
    out = tmp_path / "github.yaml"
    out.write_text("format: agentperm/v1\ntools:\n  github: [\n", encoding="utf-8")
    result = _run("import", "mcp", str(FIX / "github_tools.json"), "--tool", "github", "--output", str(out))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"cannot merge into {out}" in result.stderr and f"{out}:4:" in result.stderr
    assert out.read_text("utf-8").endswith("[\n")  # left as it was
