"""`agentperm decide`: one answer per call, in order, equal to analyzer.decide; malformed lines exit 2."""

from __future__ import annotations

import itertools
import json
import pathlib

from click.testing import CliRunner
from conftest import invoke_cli

from analyzer.cli import main
from analyzer.decide import Decider, parse_request
from analyzer.loader import load

ROOT = pathlib.Path(__file__).resolve().parent.parent
AGENCY = ROOT / "fixtures" / "agency"


def _calls(deployment):
    """Every workflow × its agent × tool × operation × tenant, plus unknown ids: allowed and denied calls."""
    for wf, tool, tenant in itertools.product(sorted(deployment.workflows.values(), key=lambda w: w.id),
                                              sorted(deployment.tools.values(), key=lambda t: t.id),
                                              [*sorted(deployment.tenants), "no-such-tenant"]):
        for op in sorted(tool.operations.values(), key=lambda o: o.id):
            params = {name: (1 if kind.kind == "int" else True if kind.kind == "bool"
                             else kind.values[0] if kind.kind == "enum" else "x@acme.com")
                      for name, kind in op.params.items()}
            yield {"workflow": wf.id, "chain": [wf.agent], "tool": tool.id, "operation": op.id,
                   "tenant": tenant, "fields": list(op.fields[:1]), "params": params}
    yield {"workflow": "no-such-workflow", "chain": ["x"], "tool": "t", "operation": "o", "tenant": "t"}


def _run(args, stdin=None):
    return CliRunner().invoke(main, ["decide", *args], input=stdin)


def test_decide_answers_equal_the_decision_function_line_for_line():
    deployment = load([str(AGENCY)])
    decider = Decider(deployment)
    calls = list(_calls(deployment))
    result = _run([str(AGENCY)], "\n".join(json.dumps(c) for c in calls) + "\n")
    assert result.exit_code == 0, result.output
    answers = [json.loads(line) for line in result.output.splitlines()]
    expected = [decider.decide(parse_request(c, deployment)) for c in calls]
    assert [a["allow"] for a in answers] == [d.allow for d in expected]
    assert [a["reason"] for a in answers] == [d.reason for d in expected]
    assert any(a["allow"] for a in answers) and not all(a["allow"] for a in answers)


def test_a_malformed_line_is_answered_with_its_number_and_exits_2():
    good = json.dumps(next(_calls(load([str(AGENCY)]))))
    result = _run([str(AGENCY), "-"], f"{good}\nnot json\n\n[1]\n{good}\n")
    assert result.exit_code == 2
    answers = [json.loads(line) for line in result.output.splitlines()]
    assert len(answers) == 4
    assert "allow" in answers[0] and "allow" in answers[3]
    assert answers[1]["line"] == 2 and answers[2]["line"] == 4
    assert "error" in answers[1] and "error" in answers[2]


def test_a_file_of_one_pretty_printed_call(tmp_path):
    call = next(_calls(load([str(AGENCY)])))
    path = tmp_path / "call.json"
    path.write_text(json.dumps(call, indent=2), encoding="utf-8")
    result = _run([str(AGENCY), str(path)])
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) == 1
    assert "allow" in json.loads(result.output)


def test_text_format_and_bad_input_paths(tmp_path):
    call = json.dumps(next(_calls(load([str(AGENCY)]))))
    text = _run([str(AGENCY), "--format", "text"], call + "\n")
    assert text.exit_code == 0 and text.output.startswith(("allow: ", "deny: "))
    missing = _run([str(AGENCY), str(tmp_path / "absent.jsonl")])
    assert missing.exit_code == 2 and "Traceback" not in missing.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("format: agentperm/v1\nnot_a_section: {}\n", encoding="utf-8")
    assert _run([str(broken)], call).exit_code == 2


def test_lines_are_read_as_strictly_as_the_server_reads_them(tmp_path):
    """NaN, a byte-order mark or nesting past the bound are malformed here as at /v1/decide."""
    good = ('{"workflow": "acme-lead-followup", "chain": ["sales-agent"], "tool": "crm", '
            '"operation": "read_contacts", "tenant": "acme"}')
    lines = [good, good.replace('"tenant": "acme"', '"tenant": "acme", "params": {"x": NaN}'), "\ufeff" + good,
             "[" * 100 + "]" * 100]
    calls = tmp_path / "calls.jsonl"
    calls.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, _err = invoke_cli("decide", str(AGENCY), str(calls))
    answers = [json.loads(line) for line in out.splitlines()]
    assert code == 2 and "allow" in answers[0]
    assert [a.get("line") for a in answers[1:]] == [2, 3, 4]
    assert "NaN" in answers[1]["error"] and "byte-order mark" in answers[2]["error"]
    assert "nests too deeply" in answers[3]["error"]
