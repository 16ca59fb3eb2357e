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


_LEAF = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(", ", ": ")).encode
_SCALARS = (str, int, float, bool, type(None))


def dumps(document) -> str:
    """Deterministic JSON: sorted keys, two-space indent, trailing newline.

    An array or object whose members are all scalars is written on one line (`[1, 2]`,
    `{"file": "roles.yaml", "line": 3}`): lists of thousands of ids stay one line each, and
    the whole is encoded by the C encoder but for the nesting."""
    parts: list[str] = []
    _encode(document, "", parts)
    parts.append("\n")
    return "".join(parts)


def _encode(value, indent: str, out: list[str]) -> None:
    if isinstance(value, dict):
        if not value or all(isinstance(v, _SCALARS) for v in value.values()):
            out.append(_LEAF(value))
            return
        inner = indent + "  "
        out.append("{\n")
        for number, key in enumerate(sorted(value)):
            if number:
                out.append(",\n")
            out.append(f"{inner}{_LEAF(str(key))}: ")
            _encode(value[key], inner, out)
        out.append(f"\n{indent}}}")
    elif isinstance(value, (list, tuple)):
        if not value or all(isinstance(v, _SCALARS) for v in value):
            out.append(_LEAF(value))
            return
        inner = indent + "  "
        out.append("[\n")
        for number, item in enumerate(value):
            if number:
                out.append(",\n")
            out.append(inner)
            _encode(item, inner, out)
        out.append(f"\n{indent}]")
    else:
        out.append(_LEAF(value))


def render_check(result: CheckResult) -> str:
    return dumps(check_document(result))
