"""Findings of violated invariants are root causes: one per definition to fix, and fixing it removes it alone."""

from __future__ import annotations

import json
import pathlib

import pytest
import yaml
from conftest import FIXTURES, invoke_cli

from analyzer.analysis import analyze
from analyzer.loader import load
from analyzer.rules import load_rules

INVARIANTS = ("no-cross-tenant-reach", "no-ungated-high-risk")
FLAWED = FIXTURES / "flawed-agency"


def _proved(paths):
    rules = {k: r for k, r in load_rules().items() if r.id in INVARIANTS}
    return analyze(load([str(p) for p in paths]), rules)


def _identities(result) -> dict[tuple[str, str], frozenset]:
    """(rule, defining subject) → the witness classes it names."""
    return {(f.rule, f.root_cause["subject"]): frozenset(
        (a, t, o, x) for a, t, o, x in _classes_of(result, f)) for f in result.findings if f.root_cause}


def _classes_of(result, finding):
    inv = next(i for i in result.invariants if i.id == finding.rule)
    return [tuple(r["class"].values()) for r in inv.classes if finding.root_cause["subject"] in r["causes"]]


def _sections(folder: pathlib.Path) -> dict[str, tuple[pathlib.Path, dict]]:
    found = {}
    for path in sorted(folder.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for key in data:
            found[key] = (path, data)
    return found


def _fix(source: pathlib.Path, target: pathlib.Path, subject: str, real_gate: str) -> None:
    """Apply a finding's remediation to a copy of the deployment (the edit its message names)."""
    target.mkdir()
    sections = _sections(source)
    kind, _, ident = subject.partition(":")
    if kind == "grant":
        role, _, number = ident.rpartition("#")
        sections["roles"][1]["roles"][role]["grants"][int(number) - 1]["approval"] = real_gate
    elif kind == "credential":
        sections["credentials"][1]["credentials"][ident]["issued"] = "per-workflow"
    else:
        tool = sections["tools"][1]["tools"][ident]
        tool["tenancy"], tool["enforced_by"] = "per-tenant", "server"
    for path, data in {id(d): (p, d) for p, d in sections.values()}.values():
        (target / path.name).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def test_one_finding_per_root_cause_at_its_definition():
    result = _proved([FLAWED])
    d = load([str(FLAWED)])
    for inv in result.invariants:
        assert inv.status == "violated"
        causes = {c for record in inv.classes for c in record["causes"]}
        mine = [f for f in result.findings if f.rule == inv.id]
        assert len(mine) == len(causes) and {f.root_cause["subject"] for f in mine} == causes
        # every class has a cause, and the findings' classes together are every class
        assert {tuple(r["class"].values()) for r in inv.classes} == {c for f in mine for c in _classes_of(result, f)}
    for finding in result.findings:
        cause = finding.root_cause
        kind, _, ident = cause["subject"].partition(":")
        if kind == "grant":
            role, _, number = ident.rpartition("#")
            assert finding.location == d.roles[role].grants[int(number) - 1].loc
        elif kind == "credential":
            assert finding.location == d.credentials[ident].loc
        else:
            assert finding.location == d.tools[ident].loc
        assert str(finding.location) in cause["remediation"] or kind == "tool"
        assert all(ids == sorted(ids) for ids in cause["affected"].values())
        assert cause["classes"] == len(_classes_of(result, finding))
        shown = [finding.witness, *cause["examples"]]  # the witness (with its path), then the others
        ops = {(w["class"]["tool"], w["class"]["operation"]) for w in shown}
        assert len(ops) == len(shown) == min(len(cause["affected"]["operations"]), 8)
        assert cause["omitted"] == cause["classes"] - len(shown)
        assert finding.witness["path"] and not any("path" in w for w in cause["examples"])


def test_fixing_a_root_cause_removes_that_finding_alone(tmp_path):
    """The law: apply a finding's remediation to a copy, prove again: it is gone and the others stay."""
    before = _identities(_proved([FLAWED]))
    real_gate = min(load([str(FLAWED)]).real_gates)
    assert len(before) >= 8
    for number, (rule, subject) in enumerate(sorted(before)):
        fixed = tmp_path / f"fix{number}"
        _fix(FLAWED, fixed, subject, real_gate)
        after = _identities(_proved([fixed]))
        assert (rule, subject) not in after, (rule, subject)
        if subject.startswith("tool:"):
            # with tenancy on the server the credentials' reach counts, and may be named in its place
            assert set(before) - {(rule, subject)} <= set(after), subject
            continue
        assert set(after) == set(before) - {(rule, subject)}, subject
        if subject.startswith("grant:"):  # a grant's fix changes nobody else's classes
            assert all(after[k] == before[k] for k in after), subject


def test_witnesses_all_streams_every_class(tmp_path):
    out = tmp_path / "classes.jsonl"
    code, _out, err = invoke_cli("check", str(FLAWED), "--format", "json", "--output", str(tmp_path / "r.json"),
                                 "--witnesses", "all", "--witnesses-output", str(out))
    assert code == 1, err
    document = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    for inv in document["invariants"]:
        mine = [line for line in lines if line["invariant"] == inv["id"]]
        assert len(mine) == inv["witness_classes"] > len(inv["witnesses"])
        assert [m["class"] for m in mine] == sorted((m["class"] for m in mine),
                                                    key=lambda c: (c["agent"], c["tool"], c["operation"], c["tenant"]))
        assert all(m["causes"] and m["call"]["tool"] == m["class"]["tool"] for m in mine)


@pytest.mark.parametrize("option", [["--witnesses", "all"], ["--witnesses", "every"]])
def test_witnesses_all_needs_a_file(option):
    code, _out, err = invoke_cli("check", str(FLAWED), *option)
    assert code == 2 and "Traceback" not in err


def test_a_grant_suppression_keeps_matching_as_agents_are_added(tmp_path):
    copy = tmp_path / "d"
    sections = _sections(FLAWED)
    agents = sections["agents"][1]["agents"]
    agents["support-agent-2"] = dict(agents["support-agent"])
    workflows = sections["workflows"][1]["workflows"]
    first = next(k for k, v in workflows.items() if v["agent"] == "support-agent")
    workflows[first + "-2"] = dict(workflows[first], agent="support-agent-2")
    copy.mkdir()
    for path, data in {id(d): (p, d) for p, d in sections.values()}.values():
        (copy / path.name).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    rules = tmp_path / "s.yaml"
    rules.write_text("- {rule: no-ungated-high-risk, subject: 'grant:support#2', justification: SEC-9}\n",
                     encoding="utf-8")
    for folder in (FLAWED, copy):
        code, out, _err = invoke_cli("check", str(folder), "--format", "json", "--suppressions", str(rules))
        document = json.loads(out)
        (hit,) = [f for f in document["findings"] if (f.get("root_cause") or {}).get("subject") == "grant:support#2"]
        assert code == 1 and hit["suppressed"] and not [f for f in document["findings"] if f["rule"] == "unused-suppression"]
    grown = [f for f in json.loads(invoke_cli("check", str(copy), "--format", "json")[1])["findings"]
             if f.get("root_cause", {}).get("subject") == "grant:support#2"]
    assert "support-agent-2" in grown[0]["root_cause"]["affected"]["agents"]


def test_a_suppression_of_one_agent_fails_loudly_with_the_causes_to_name(tmp_path):
    rules = tmp_path / "s.yaml"
    rules.write_text("- {rule: no-ungated-high-risk, subject: 'agent:support-agent', justification: old}\n",
                     encoding="utf-8")
    code, out, _err = invoke_cli("check", str(FLAWED), "--suppressions", str(rules))
    assert code == 1
    assert "reports one finding per root cause" in out and "grant:support#2" in out


def test_on_a_messy_deployment_each_fix_removes_its_finding_alone(tmp_path):
    """bench/messy.py's deployment (random roles, gated and not, conditions, shared static keys):
    one finding per root cause, and a sample of remediations (grants and credentials, spread
    over the sorted findings) each remove their finding and change no other."""
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))
    try:
        import messy
    finally:
        sys.path.pop(0)
    source = tmp_path / "messy"
    messy.write(messy.data(10, seed=3), str(source))
    result = _proved([source])
    before = _identities(result)
    causes = {(inv.id, c) for inv in result.invariants for record in inv.classes for c in record["causes"]}
    assert set(before) == causes and len(result.findings) == len(before)
    grants = sorted(k for k in before if k[1].startswith("grant:"))
    credentials = sorted(k for k in before if k[1].startswith("credential:"))
    assert len(grants) >= 3 and len(credentials) >= 2
    sample = [grants[0], grants[len(grants) // 2], grants[-1], credentials[0], credentials[-1]]
    real_gate = min(load([str(source)]).real_gates)
    for number, (rule, subject) in enumerate(sample):
        fixed = tmp_path / f"fix{number}"
        _fix(source, fixed, subject, real_gate)
        after = _identities(_proved([fixed]))
        assert set(after) == set(before) - {(rule, subject)}, subject
        # the other findings of its invariant keep their classes; a key's reach also bounds the
        # tenants of the other invariant's classes (an ungated refund on a tenant it reached)
        assert all(after[k] == before[k] for k in after if k[0] == rule), subject
        assert all(after[k] <= before[k] for k in after), subject
