"""Suppressions: accepted findings, each with a justification and an optional expiry date.

A suppressions file (``agentperm-suppressions.yaml`` beside the deployment by default, or
``--suppressions FILE``) is a list of entries, bare or under a ``suppressions:`` key::

    suppressions:
      - rule: shared-credential
        subject: credential:agency-master-key
        justification: "one broker key until the vault migration (SEC-142)"
        expires: 2025-09-30

A finding is suppressed when its rule is the entry's ``rule`` and the entry's ``subject`` is
among its subjects. Suppressed findings stay in every output, marked, and do not count for
the exit code. An entry whose ``expires`` date is before "today" no longer suppresses: the
finding fires again and says so. An entry that matches no finding is itself reported, as a
finding of the built-in rule ``unused-suppression``, so stale entries do not pile up.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import replace

from analyzer import spec
from analyzer.errors import Diagnostic, InputError, Loc
from analyzer.findings import Finding, Suppression
from analyzer.loader import SUPPRESSIONS_FILE, beside_deployment, display_name
from analyzer.yamlsrc import YamlError, read_yaml_file

#: The file looked for beside (or inside) the first deployment path; the loader skips it.
DEFAULT_FILE = SUPPRESSIONS_FILE
UNUSED_RULE = "unused-suppression"
DATE_RE = re.compile(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
SUBJECT_RE = re.compile(r"\A[a-z]+:\S+\Z")

ENTRY = spec.Record({
    "rule": spec.Text(description="the rule id the finding has"),
    "subject": spec.Text(description="one subject of the finding, kind:id (credential:ops-key)"),
    "justification": spec.Text(description="why the finding is accepted; shown in every output"),
    "expires": spec.Text(description="YYYY-MM-DD; from the day after, the finding fires again"),
}, required=("rule", "subject", "justification"), what="suppression")


def default_path(deployment_paths) -> str | None:
    """``agentperm-suppressions.yaml`` inside the first path when it is a directory, beside it when a file."""
    return beside_deployment(deployment_paths, DEFAULT_FILE)


def parse_date(text: str) -> dt.date | None:
    """A ``YYYY-MM-DD`` calendar date, or None when the text is not one."""
    if not isinstance(text, str) or not DATE_RE.match(text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def load(path: str) -> tuple[Suppression, ...]:
    """Read and validate a suppressions file; raises InputError listing every problem with file:line:col."""
    name = display_name(path)
    try:
        doc = read_yaml_file(path, name)
    except YamlError as exc:
        raise InputError(exc.diagnostics) from None
    problems: list[Diagnostic] = []

    def report(at, message, hint=None):
        problems.append(Diagnostic(doc.loc(at), message, hint))

    data, base = doc.data, ()
    if isinstance(data, dict):
        for key in data:
            if key != "suppressions":
                report((key,), f"unknown key {key!r} in a suppressions file", "allowed: suppressions")
        data, base = data.get("suppressions", []), ("suppressions",)
    if data is None:
        data = []
    if not isinstance(data, list):
        report(base, "a suppressions file is a list of {rule, subject, justification, expires} entries")
        raise InputError(problems)
    entries: list[Suppression] = []
    seen: dict[tuple[str, str], Loc] = {}
    for index, item in enumerate(data):
        at = base + (index,)
        before = len(problems)
        value = ENTRY.convert(item, at, report)
        if value is None or len(problems) > before:
            continue
        if not value["justification"].strip():
            report(at + ("justification",), "a suppression needs a justification that is not empty",
                   "say why the finding is accepted, and who accepted it")
            continue
        if not SUBJECT_RE.match(value["subject"]):
            report(at + ("subject",), f"subject {value['subject']!r} is not kind:id",
                   "for example credential:ops-key or agent:sales-agent")
            continue
        expires = value.get("expires")
        if expires is not None and parse_date(expires) is None:
            report(at + ("expires",), f"expires {expires!r} is not a date YYYY-MM-DD", "for example 2025-12-31")
            continue
        loc = doc.value_loc(at)
        key = (value["rule"], value["subject"])
        if key in seen:
            report(at, f"suppression of {key[0]} for {key[1]} is listed twice (first at {seen[key]})",
                   "keep one entry")
            continue
        seen[key] = loc
        entries.append(Suppression(value["rule"], value["subject"], value["justification"].strip(), expires, loc))
    if problems:
        raise InputError(problems)
    return tuple(entries)


def apply(findings, suppressions, today: dt.date, unused_severity: str | None = "low") -> list[Finding]:
    """Mark the findings the entries suppress; report expired entries in the message and unused entries.

    Pure: ``today`` is passed in. ``unused_severity`` is the severity of ``unused-suppression``
    findings, or None when that rule is disabled. Returns the findings in their sort order.
    """
    used: set[Suppression] = set()
    result: list[Finding] = []
    for finding in findings:
        matching = [s for s in suppressions if s.rule == finding.rule and s.subject in finding.subjects]
        used.update(matching)
        live = [s for s in matching if s.expires is None or parse_date(s.expires) >= today]
        if live:
            result.append(replace(finding, suppressed=live[0]))
        elif matching:
            gone = matching[0]
            result.append(replace(finding, message=f"{finding.message} (suppression expired on {gone.expires}: "
                                                   f"{gone.justification})"))
        else:
            result.append(finding)
    fired = {f.rule for f in findings}
    for entry in suppressions:  # written for one witness class, before findings were one per root cause
        if entry not in used and (hint := _per_class_hint(entry, findings)) is not None:
            used.add(entry)  # never silently: reported even when unused-suppression is disabled
            result.append(Finding(UNUSED_RULE, unused_severity or "low", hint, (f"rule:{entry.rule}", entry.subject),
                                  entry.loc or Loc("", 0, 0)))
    if unused_severity is not None:
        for entry in suppressions:
            if entry in used:
                continue
            why = "no finding has this subject" if entry.rule in fired else f"rule {entry.rule} has no finding"
            expired = f"; it expired on {entry.expires}" if entry.expires and parse_date(entry.expires) < today \
                else ""
            result.append(Finding(UNUSED_RULE, unused_severity,
                                  f"suppression of {entry.rule} for {entry.subject} matches nothing ({why}){expired}: "
                                  "remove it, or fix its rule or subject",
                                  (f"rule:{entry.rule}", entry.subject), entry.loc or Loc("", 0, 0)))
    result.sort(key=Finding.sort_key)
    return result


_AFFECTED_KINDS = {"agent": "agents", "tenant": "tenants", "workflow": "workflows"}


def _per_class_hint(entry: Suppression, findings) -> str | None:
    """For an entry naming an agent, tenant or workflow of an invariant whose findings are root
    causes: the message that says so and names the root-cause subjects to suppress instead."""
    kind, _, ident = entry.subject.partition(":")
    lists = _AFFECTED_KINDS.get(kind)
    if lists is None:
        return None
    causes = sorted(f.root_cause["subject"] for f in findings if f.rule == entry.rule and f.root_cause is not None
                    and ident in f.root_cause["affected"][lists])
    if not causes:
        return None
    return (f"suppression of {entry.rule} for {entry.subject} matches nothing: {entry.rule} reports one finding "
            f"per root cause (the definition to fix), not per {kind}; {entry.subject} is affected by "
            f"{', '.join(causes)}: suppress those subjects instead, or fix them")


def for_check(deployment_paths, explicit: str | None = None) -> tuple[Suppression, ...]:
    """The entries for ``agentperm check``: ``explicit`` (which must exist), else the default file when present."""
    if explicit is not None:
        if not os.path.isfile(explicit):
            raise InputError([Diagnostic(Loc(display_name(explicit), 0, 0), "no such suppressions file",
                                         f"the default is {DEFAULT_FILE} beside the deployment")])
        return load(explicit)
    default = default_path(deployment_paths)
    return load(default) if default is not None and os.path.isfile(default) else ()
