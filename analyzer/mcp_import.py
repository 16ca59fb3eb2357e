"""MCP ``tools/list`` results into an agentperm tool: pure mapping, no SDK import here.

Every choice is written as a YAML comment on the operation it concerns. Fail closed:
absent annotations take the MCP spec's defaults (readOnlyHint false, destructiveHint true,
openWorldHint true), so a tool that declares nothing becomes ``delete`` (high risk).
Optional MCP properties become params too (FORMAT params are all required): a grant's
``when`` on them sees the value the call supplies; the comment names them.
"""

from __future__ import annotations

import json
import re

import yaml

from analyzer import spec

ID_RE = spec.ID_RE
_DEFAULTS = {"readOnlyHint": False, "destructiveHint": True, "openWorldHint": True}  # MCP spec
_SIMPLE = {"integer": "int", "string": "string", "boolean": "bool"}


class McpImportError(Exception):
    """A tool list that cannot be imported (malformed, unreachable server): exit 2."""


def tools_of_json(text: str, source: str = "<input>") -> list[dict]:
    """The Tool objects of a JSON-RPC response, its ``result``, or a bare list."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise McpImportError(f"{source}:{error.lineno}:{error.colno}: not JSON: {error.msg}") from None
    if isinstance(data, dict) and "result" in data:
        data = data["result"]
    if isinstance(data, dict) and "tools" in data:
        data = data["tools"]
    if not isinstance(data, list):
        raise McpImportError(f"{source}: not a tools/list result (expected a list of tools)")
    return data


def operation_id(name: str) -> str:
    """A FORMAT §1 id for an MCP tool name: other characters become ``_``."""
    ident = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    ident = re.sub(r"^[^A-Za-z0-9]+", "", ident)[:128]
    if not ident or not ID_RE.fullmatch(ident):
        raise McpImportError(f"tool name {name!r} maps to no valid id")
    return ident


def _effect(tool: dict) -> tuple[str, bool, str]:
    ann = tool.get("annotations")
    if ann is None:
        ann, note = {}, "the server declared no annotations; spec defaults apply (destructive)"
    elif not isinstance(ann, dict):
        raise McpImportError(f"tool {tool['name']!r}: annotations is not an object")
    else:
        declared = ", ".join(f"{k}={ann[k]}" for k in sorted(ann) if k.endswith("Hint")) or "no hints"
        absent = [f"{k}={v}" for k, v in _DEFAULTS.items() if not isinstance(ann.get(k), bool)]
        note = f"annotations: {declared}" + (f"; spec defaults: {', '.join(absent)}" if absent else "")
    def hint(key, default):
        value = ann.get(key, default)
        return value if isinstance(value, bool) else default
    if hint("readOnlyHint", False):
        return "read", False, note + " -> read"
    if hint("destructiveHint", True):
        return "delete", False, note + " -> delete"
    if hint("openWorldHint", True):
        return "send", True, note + " -> send, external"
    return "write", False, note + " -> write"


def _params(tool: dict) -> tuple[dict, list[str], list[str]]:
    schema = tool.get("inputSchema", {})
    if not isinstance(schema, dict):
        raise McpImportError(f"tool {tool['name']!r}: inputSchema is not an object")
    props = schema.get("properties") or {}
    required = schema.get("required") or []
    if not isinstance(props, dict) or not isinstance(required, list):
        raise McpImportError(f"tool {tool['name']!r}: inputSchema properties/required malformed")
    params, skipped, optional = {}, [], []
    for key in sorted(props, key=str):
        prop = props[key]
        if not isinstance(key, str) or not ID_RE.fullmatch(key) or not isinstance(prop, dict):
            skipped.append(f"{key} (name or schema not modelled)")
            continue
        kind = prop.get("type")
        enum = prop.get("enum")
        if kind == "string" and isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
            params[key] = sorted(set(enum))
        elif isinstance(kind, str) and kind in _SIMPLE and enum is None:
            params[key] = _SIMPLE[kind]
        else:
            skipped.append(f"{key} ({kind if isinstance(kind, str) else 'untyped/anyOf'})")
            continue
        if key not in required:
            optional.append(key)
    return params, skipped, optional


def map_tools(tools: list) -> dict[str, dict]:
    """operation id -> {op: mapping, comments: [...], name: original}; raises McpImportError."""
    out, names = {}, {}
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not tool["name"]:
            raise McpImportError(f"tool #{index}: not a Tool object with a name")
        ident = operation_id(tool["name"])
        if ident in names:
            raise McpImportError(f"tools {names[ident]!r} and {tool['name']!r} both map to id {ident!r}")
        names[ident] = tool["name"]
        effect, external, note = _effect(tool)
        params, skipped, optional = _params(tool)
        op = {"effect": effect}
        if external:
            op["external"] = True
        if params:
            op["params"] = params
        desc = tool.get("description")
        if isinstance(desc, str) and desc:
            op["description"] = desc
        comments = [f"MCP tool {json.dumps(tool['name'])}", note]
        if optional:
            comments.append("optional in MCP, modelled as params (a call that omits one is denied): " + ", ".join(optional))
        if skipped:
            comments.append("not modelled, a grant cannot constrain: " + ", ".join(skipped))
        out[ident] = {"op": op, "comments": comments, "name": tool["name"]}
    return out


def merge(mapped: dict, existing: dict | None) -> tuple[dict, list[str], list[str]]:
    """Keep the user's effect/external/risk/params of ids already in ``existing``; (mapped, added, removed)."""
    existing = existing or {}
    for ident, entry in mapped.items():
        old = existing.get(ident)
        if isinstance(old, dict):
            for key in ("effect", "external", "risk", "params", "high_risk_when", "data", "fields"):
                if key in old:
                    entry["op"][key] = old[key]
                elif key in ("external", "params"):
                    entry["op"].pop(key, None)
            entry["comments"].append("kept the existing file's edits (merge by id)")
    return mapped, sorted(set(mapped) - set(existing)), sorted(set(existing) - set(mapped))


def _comment(text: str) -> str:
    """One comment line: whitespace collapsed, anything outside printable ASCII escaped (inert)."""
    flat = " ".join(text.split())
    return "# " + "".join(c if " " <= c <= "~" else c.encode("unicode_escape").decode("ascii") for c in flat)


def render(tool_id: str, mapped: dict) -> str:
    """The agentperm YAML text (deterministic, sorted); every scalar dumped by PyYAML so it stays inert."""
    lines = ["format: agentperm/v1", "tools:", f"  {tool_id}:", "    operations:"]
    for ident in sorted(mapped):
        entry = mapped[ident]
        lines += ["      " + _comment(c) for c in entry["comments"]]
        body = yaml.safe_dump({ident: entry["op"]}, sort_keys=True, default_flow_style=False,
                              allow_unicode=False, width=100)
        lines += [("      " + line).rstrip() for line in body.splitlines()]
    return "\n".join(lines) + "\n"
