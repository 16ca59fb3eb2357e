"""`agentperm diff`: exactly the access a change adds, nothing when access is only removed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

from analyzer import diff, loader
from analyzer.decide import Decider, parse_request

REPO = Path(__file__).resolve().parent.parent
AGENCY = REPO / "fixtures" / "agency"
SUPPORT_REFUND = '- {tool: billing, operations: [refund], when: "params.amount <= 50"}'


def _version(tmp_path: Path, name: str, edits: dict[str, tuple[str, str]]) -> Path:
    """A copy of the agency with textual edits: {file: (old, new)}."""
    target = tmp_path / name
    shutil.copytree(AGENCY, target)
    for file, (old, new) in edits.items():
        path = target / file
        text = path.read_text()
        assert old in text, f"{old!r} not in {file}"
        path.write_text(text.replace(old, new, 1))
    return target


def _diff(old: Path, new: Path) -> diff.DiffResult:
    return diff.diff(loader.load([str(old)]), loader.load([str(new)]))


def test_identical_versions_have_no_new_access():
    result = _diff(AGENCY, AGENCY)
    assert result.new_access == () and result.unknown == ()
    assert result.exit_code() == 0


def test_a_raised_refund_limit_is_new_access_exactly_above_the_old_limit(tmp_path):
    new = _version(tmp_path, "new", {"roles.yaml": (SUPPORT_REFUND, SUPPORT_REFUND.replace("<= 50", "<= 80"))})
    result = _diff(AGENCY, new)
    assert result.exit_code() == 1
    classes = {(a["class"]["agent"], a["class"]["tool"], a["class"]["operation"]) for a in result.new_access}
    assert classes == {("support-agent", "billing", "refund")}
    new_model, old_model = loader.load([str(new)]), loader.load([str(AGENCY)])
    for access in result.new_access:
        assert access["region"] == "51 <= amount <= 80", access["region"]
        assert 51 <= access["call"]["params"]["amount"] <= 80
        # the witness replays: NEW allows it, OLD refuses it
        assert Decider(new_model).decide(parse_request(access["call"], new_model)).allow
        assert not Decider(old_model).decide(parse_request(access["call"], old_model)).allow


def test_a_lowered_limit_only_removes_access(tmp_path):
    new = _version(tmp_path, "new", {"roles.yaml": (SUPPORT_REFUND, SUPPORT_REFUND.replace("<= 50", "<= 20"))})
    result = _diff(AGENCY, new)
    assert result.new_access == ()
    assert result.exit_code() == 0
    # and the other way round, the same change is new access
    assert _diff(new, AGENCY).new_access


def test_a_widened_static_credential_makes_another_tenant_reachable(tmp_path):
    old_block = "  support-billing:\n    tools: [billing]\n    tenants: [globex, umbrella]\n    issued: per-workflow\n"
    new_block = "  support-billing:\n    tools: [billing]\n    tenants: [globex, umbrella, acme]\n    issued: static\n"
    new = _version(tmp_path, "new", {"credentials.yaml": (old_block, new_block)})
    result = _diff(AGENCY, new)
    reached = {(a["class"]["workflow"], a["class"]["tenant"]) for a in result.new_access}
    assert reached, "widening a credential to static multi-tenant must add access"
    for access in result.new_access:
        assert access["class"]["agent"] == "support-agent"
        assert access["class"]["tool"] == "billing"
        home = loader.load([str(new)]).workflows[access["class"]["workflow"]].tenant
        assert access["class"]["tenant"] != home, "only other tenants are new"
    assert any(t == "acme" for _, t in reached)


def test_removing_a_grant_is_not_new_access(tmp_path):
    new = _version(tmp_path, "new", {"roles.yaml": ("      " + SUPPORT_REFUND + "\n", "")})
    assert _diff(AGENCY, new).new_access == ()


def test_cli_json_shape_and_exit_codes(tmp_path):
    new = _version(tmp_path, "new", {"roles.yaml": (SUPPORT_REFUND, SUPPORT_REFUND.replace("<= 50", "<= 80"))})
    code, out, err = run_cli("diff", str(AGENCY), str(new), "--format", "json")
    assert code == 1, err
    document = json.loads(out)
    assert document["format"] == "agentperm-diff/1"
    assert document["summary"]["new_access"] == len(document["new_access"]) > 0
    for access in document["new_access"]:
        assert set(access) >= {"call", "path", "class", "region"}
        assert all(step["reason"] for step in access["path"])
    code, out, _ = run_cli("diff", str(new), str(AGENCY))
    assert code == 0 and "no new access" in out


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_cli_no_change_exit_zero(fmt):
    code, _, err = run_cli("diff", str(AGENCY), str(AGENCY), "--format", fmt)
    assert code == 0, err
