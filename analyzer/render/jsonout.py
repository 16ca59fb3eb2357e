"""JSON output in the shape of FORMAT.md §8 (`agentperm-result/1`)."""

from __future__ import annotations

import json

from analyzer.findings import CheckResult

RESULT_FORMAT = "agentperm-result/1"


def check_document(result: CheckResult) -> dict:
    return {
        "format": RESULT_FORMAT,
        "deployment": {"paths": list(result.deployment_paths), "digest": result.digest},
        "invariants": [inv.to_json() for inv in result.invariants],
        "findings": [finding.to_json() for finding in result.findings],
        "summary": result.summary(),
    }


def dumps(document) -> str:
    """Deterministic JSON: sorted keys, two-space indent, trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_check(result: CheckResult) -> str:
    return dumps(check_document(result))
