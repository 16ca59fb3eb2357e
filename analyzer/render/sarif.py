"""SARIF 2.1.0 for GitHub code scanning (and any other SARIF viewer).

One run; ``tool.driver.rules`` holds every rule that ran with its catalogue text, results
point at repo-relative files with 1-based lines and columns, and every result carries a
``partialFingerprints`` entry that ignores line numbers and message wording, so an alert
survives unrelated edits above it. Undecided invariants are tool notifications. Nothing
here reads the clock: the same result renders to the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from urllib.parse import quote

from analyzer import __version__
from analyzer.errors import Loc
from analyzer.findings import CheckResult, Finding
from analyzer.render.jsonout import dumps

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://agentperm.dev/"
SRCROOT = "%SRCROOT%"
FINGERPRINT_KEY = "agentpermFingerprint/v1"
MAX_RESULTS = 25_000  # GitHub code scanning's limit of results per run
LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}
# GitHub maps these scores to its own critical (>= 9.0) / high (>= 7.0) / medium (>= 4.0) / low bands.
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0"}

# `diff` reports access, not a catalogue rule, so its one descriptor is defined with the renderer.
NEW_ACCESS = {
    "id": "new-access",
    "title": "Access the change grants",
    "description": "An agent can make a call in the new deployment that the old deployment refused: the "
                   "workflow, agent, tool, operation and target tenant of each newly allowed access class, "
                   "with a concrete call that the new policy allows and the old one does not.",
    "help": "Review each new access class: confirm the agent needs it, on that tenant, under those "
            "conditions. If not, narrow the grant, credential or workflow that the path names.",
}


def _name(rule_id: str) -> str:
    """``shared-credential`` → ``SharedCredential`` (SARIF's human-readable rule name)."""
    return "".join(part[:1].upper() + part[1:] for part in rule_id.replace("_", "-").split("-") if part)


def artifact_location(file: str, root: str = ".") -> dict:
    """A repo-relative POSIX uri under ``%SRCROOT%`` when the file is inside ``root``, else a file: URI."""
    absolute = os.path.abspath(file)
    try:
        relative = os.path.relpath(absolute, os.path.abspath(root))
    except ValueError:  # another drive on Windows
        relative = None
    if relative is None or relative == ".." or relative.startswith(".." + os.sep):
        return {"uri": Path(absolute).as_uri()}
    return {"uri": quote(Path(relative).as_posix(), safe="/"), "uriBaseId": SRCROOT}


def physical_location(loc: Loc, root: str = ".") -> dict | None:
    if not loc.file:
        return None
    physical: dict = {"artifactLocation": artifact_location(loc.file, root)}
    if loc.line >= 1:
        region = {"startLine": loc.line}
        if loc.column >= 1:
            region["startColumn"] = loc.column
        physical["region"] = region
    return physical


def _location(loc: Loc | None, root: str, message: str | None = None) -> dict:
    location: dict = {}
    physical = physical_location(loc, root) if loc is not None else None
    if physical is not None:
        location["physicalLocation"] = physical
    if message is not None:
        location["message"] = {"text": message}
    return location


def _identity(witness) -> dict | None:
    """The witness's access class (and workflow): stable across edits, unlike solver-chosen values."""
    if not isinstance(witness, dict):
        return None
    identity = dict(witness.get("class") or {})
    call = witness.get("call")
    if isinstance(call, dict) and "workflow" in call:
        identity["workflow"] = call["workflow"]
    return identity or None


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def fingerprints(findings) -> list[str]:
    """One fingerprint per finding: sha256 of rule id, sorted subjects and the witness's access class.

    Lines, columns and messages are left out so an edit elsewhere does not move an alert;
    findings that would still collide (two wildcard grants of one role) are told apart by
    their order within that group, which only a reordering of those same findings changes.
    """
    # a root cause is its defining subject: agents added to a deployment leave its fingerprint alone
    keys = [(f.rule, tuple(sorted(f.subjects)),
             json.dumps(None if f.root_cause is not None else _identity(f.witness), sort_keys=True))
            for f in findings]
    order = sorted(range(len(findings)), key=lambda i: (keys[i], findings[i].location, findings[i].message))
    ordinal: dict[int, int] = {}
    seen: dict[tuple, int] = {}
    for index in order:
        ordinal[index] = seen.get(keys[index], 0)
        seen[keys[index]] = ordinal[index] + 1
    return [_digest(rule, list(subjects), identity, ordinal[i]) for i, (rule, subjects, identity) in enumerate(keys)]


def _help(rule) -> dict:
    references = list(rule.references)
    text = f"{rule.rationale}\n\nRemediation: {rule.remediation}"
    markdown = f"**Why it matters.** {rule.rationale}\n\n**How to fix it.** {rule.remediation}"
    if references:
        text += "\n\nReferences:\n" + "\n".join(f"- {r}" for r in references)
        markdown += "\n\n**References**\n\n" + "\n".join(f"- {r}" for r in references)
    return {"text": text, "markdown": markdown}


def _descriptor(rule_id: str, rule, is_invariant: bool) -> dict:
    if rule is None:  # a finding of a rule the catalogue does not describe: keep the result, say little
        return {"id": rule_id, "name": _name(rule_id), "shortDescription": {"text": rule_id},
                "properties": {"tags": ["security"], "precision": "medium"}}
    return {
        "id": rule.id,
        "name": _name(rule.id),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.description},
        "help": _help(rule),
        "defaultConfiguration": {"level": LEVEL[rule.severity]},
        "properties": {
            "tags": [rule.category, "security"],
            "security-severity": SECURITY_SEVERITY[rule.severity],
            # invariants are proved by the solver and every witness replayed; structural rules read definitions
            "precision": "very-high" if is_invariant else "high",
            "problem.severity": LEVEL[rule.severity] if LEVEL[rule.severity] != "note" else "recommendation",
        },
    }


def _code_flow(path, root: str) -> list[dict]:
    steps = [{"location": _location(step.loc, root, step.reason)} for step in path]
    return [{"threadFlows": [{"locations": steps}]}]


def _result(finding: Finding, rule_index: int, fingerprint: str, root: str) -> dict:
    result: dict = {
        "ruleId": finding.rule,
        "ruleIndex": rule_index,
        "level": LEVEL[finding.severity],
        "message": {"text": finding.message},
        "locations": [_location(finding.location, root)],
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint},
        "properties": {"severity": finding.severity, "subjects": list(finding.subjects),
                       "security-severity": SECURITY_SEVERITY[finding.severity]},
    }
    if finding.path:
        related = [{"id": number, **_location(step.loc, root, step.reason)}
                   for number, step in enumerate(finding.path, 1) if step.loc is not None]
        if related:
            result["relatedLocations"] = related
        result["codeFlows"] = _code_flow(finding.path, root)
    cause = finding.root_cause
    if cause is not None:
        more = [{"id": len(result.get("relatedLocations", ())) + number, **_location(
                    Loc(r["location"]["file"], r["location"]["line"], r["location"]["column"]), root,
                    f"affected: {r['subject']}")}
                for number, r in enumerate(cause["related"], 1)]
        if more:
            result.setdefault("relatedLocations", []).extend(more)
        result["properties"].update({
            "rootCause": cause["subject"], "remediation": cause["remediation"], "witnessClasses": cause["classes"],
            "affected": {kind: len(ids) for kind, ids in cause["affected"].items()},
            "relatedLocationsOmitted": cause["related_omitted"]})
    if isinstance(finding.witness, dict) and "call" in finding.witness:
        result["properties"]["witness"] = finding.witness["call"]
        if finding.witness.get("region"):
            result["properties"]["region"] = finding.witness["region"]
    if finding.suppressed is not None:
        suppression: dict = {"kind": "external", "status": "accepted",
                             "justification": finding.suppressed.justification}
        if finding.suppressed.loc is not None:
            suppression["location"] = _location(finding.suppressed.loc, root)
        if finding.suppressed.expires:
            suppression["properties"] = {"expires": finding.suppressed.expires}
        result["suppressions"] = [suppression]
    return result


def _log(driver_rules: list[dict], results: list[dict], notifications: list[dict]) -> dict:
    driver = {"name": "agentperm", "version": __version__, "semanticVersion": __version__,
              "informationUri": INFORMATION_URI, "rules": driver_rules}
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": driver},
            "invocations": [{"executionSuccessful": True, "toolExecutionNotifications": notifications}],
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }


def check_document(result: CheckResult, rules: dict, root: str = ".") -> dict:
    """The SARIF log of a check, as a dict (see :func:`render_check`)."""
    invariant_ids = {inv.id for inv in result.invariants}
    rule_ids = sorted(set(result.rules_run) | {f.rule for f in result.findings} | invariant_ids)
    index = {rule_id: i for i, rule_id in enumerate(rule_ids)}
    driver_rules = []
    for rule_id in rule_ids:
        rule = rules.get(rule_id)
        is_invariant = rule.is_invariant if rule is not None else rule_id in invariant_ids
        driver_rules.append(_descriptor(rule_id, rule, is_invariant))
    prints = fingerprints(result.findings)
    kept = list(zip(result.findings, prints, strict=True))
    capped = None
    if len(kept) > MAX_RESULTS:  # GitHub refuses a run past 25,000 results: keep the most severe, say so
        kept.sort(key=lambda pair: pair[0].sort_key())
        capped = {"results": len(kept), "kept": MAX_RESULTS,
                  "note": f"{len(kept) - MAX_RESULTS} lowest-severity result(s) left out; see --format json"}
        kept = kept[:MAX_RESULTS]
    results = [_result(f, index[f.rule], fp, root) for f, fp in kept]
    notifications = [{
        "level": "warning",
        "message": {"text": f"{inv.id}: undecided: {inv.reason or 'no reason given'}"},
        "descriptor": {"id": "undecided"},
        "associatedRule": {"id": inv.id, "index": index[inv.id]},
    } for inv in result.invariants if inv.status == "unknown"]
    log = _log(driver_rules, results, notifications)
    if capped is not None:
        log["runs"][0]["properties"] = {"capped": capped}
    return log


def render_check(result: CheckResult, rules: dict, root: str = ".") -> str:
    """SARIF 2.1.0 JSON of a check: ``rules`` is the catalogue (id → Rule), ``root`` the repository root."""
    return dumps(check_document(result, rules, root))


def _new_access_descriptor() -> dict:
    return {
        "id": NEW_ACCESS["id"],
        "name": _name(NEW_ACCESS["id"]),
        "shortDescription": {"text": NEW_ACCESS["title"]},
        "fullDescription": {"text": NEW_ACCESS["description"]},
        "help": {"text": NEW_ACCESS["help"], "markdown": NEW_ACCESS["help"]},
        "defaultConfiguration": {"level": "warning"},
        "properties": {"tags": ["least-privilege", "security"], "security-severity": SECURITY_SEVERITY["medium"],
                       "precision": "very-high"},
    }


def access_message(access: dict) -> str:
    c = access["class"]
    return (f"{c['agent']} can call {c['tool']}.{c['operation']} on tenant {c['tenant']} in workflow "
            f"{c['workflow']} ({access['region']}); before: {access['old']}")


def diff_document(result, root: str = ".") -> dict:
    """The SARIF log of ``agentperm diff``: one ``new-access`` result per newly allowed access class."""
    from analyzer.graph import Step

    results = []
    for access in result.new_access:
        loc = access["location"]
        path = tuple(Step(s["from"], s["to"], s["kind"], s["reason"],
                          Loc(**s["location"]) if s.get("location") else None) for s in access["path"])
        item = {
            "ruleId": NEW_ACCESS["id"],
            "ruleIndex": 0,
            "level": "warning",
            "message": {"text": access_message(access)},
            "locations": [_location(Loc(loc["file"], loc["line"], loc["column"]), root)],
            "partialFingerprints": {FINGERPRINT_KEY: _digest(NEW_ACCESS["id"], access["class"])},
            "properties": {"class": access["class"], "witness": access["call"], "region": access["region"]},
        }
        if path:
            related = [{"id": n, **_location(s.loc, root, s.reason)} for n, s in enumerate(path, 1) if s.loc]
            if related:
                item["relatedLocations"] = related
            item["codeFlows"] = _code_flow(path, root)
        results.append(item)
    notifications = [{"level": "warning", "message": {"text": f"undecided: {text}"},
                      "descriptor": {"id": "undecided"}} for text in result.unknown]
    return _log([_new_access_descriptor()], results, notifications)


def render_diff(result, root: str = ".") -> str:
    return dumps(diff_document(result, root))
