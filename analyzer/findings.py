"""The one finding type every renderer reads, and the result of a whole check."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from analyzer.errors import Loc
from analyzer.graph import Step

SEVERITIES = ("critical", "high", "medium", "low")
SEVERITY_RANK = {name: rank for rank, name in enumerate(reversed(SEVERITIES))}  # low 0 … critical 3


@dataclass(frozen=True)
class Hit:
    """What a check reports; the engine adds the rule's id and severity."""

    message: str
    subjects: tuple[str, ...]
    location: Loc
    path: tuple[Step, ...] = ()
    severity: str | None = None  # a check may raise or lower its rule's severity for this case
    witness: Any = field(default=None, compare=False, hash=False)


@dataclass(frozen=True)
class Suppression:
    rule: str
    subject: str
    justification: str
    expires: str | None
    loc: Loc | None = None


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    message: str
    subjects: tuple[str, ...]
    location: Loc
    path: tuple[Step, ...] = ()
    witness: Any = field(default=None, compare=False, hash=False)
    suppressed: Suppression | None = None
    #: for a finding that stands for many affected calls: {"subject", "remediation", "classes",
    #: "affected": {kind: sorted ids}, "examples": [witness], "omitted"} (see analyzer.rootcause)
    root_cause: Any = field(default=None, compare=False, hash=False)

    def sort_key(self):
        return (-SEVERITY_RANK[self.severity], self.rule, self.location, self.subjects, self.message)

    def to_json(self) -> dict:
        data = {
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
            "subjects": list(self.subjects),
            "location": self.location.to_json(),
            "path": [step.to_json() for step in self.path],
            "witness": self.witness,
            "suppressed": None,
        }
        if self.witness is not None and "path" in self.witness and self.root_cause is not None:
            # the witness's path is the finding's "path": written once
            data["witness"] = {k: v for k, v in self.witness.items() if k != "path"}
        if self.root_cause is not None:
            # the locations of affected definitions are SARIF's relatedLocations; the JSON has the lists
            data["root_cause"] = {k: v for k, v in self.root_cause.items() if k not in ("related", "related_omitted")}
        if self.suppressed is not None:
            data["suppressed"] = {"justification": self.suppressed.justification,
                                  "expires": self.suppressed.expires}
        return data


#: witnesses of an invariant written in its JSON (one per root cause, sorted; each root cause's
#: finding carries its own, and ``check --witnesses all`` writes every class)
WITNESSES_SHOWN = 25


@dataclass(frozen=True)
class InvariantResult:
    """The outcome of one proof (or of a rule that could not run): proved, violated or unknown."""

    id: str
    status: str  # proved | violated | unknown
    witnesses: tuple[dict, ...] = ()  # the representatives of its root causes, each replayed, with a path
    reason: str | None = None
    #: every witness class, sorted: {"class", "causes", "call"} (the solver's call, not replayed)
    classes: tuple[dict, ...] = field(default=(), compare=False)

    def to_json(self) -> dict:
        shown = list(self.witnesses[:WITNESSES_SHOWN])
        data = {"id": self.id, "status": self.status, "witnesses": shown, "reason": self.reason}
        if self.status == "violated":
            data["witness_classes"] = len(self.classes)
            if len(self.witnesses) > len(shown):  # every root cause's finding carries its own witness
                data["witnesses_omitted"] = len(self.witnesses) - len(shown)
        return data


@dataclass(frozen=True)
class CheckResult:
    deployment_paths: tuple[str, ...]
    digest: str
    invariants: tuple[InvariantResult, ...]
    findings: tuple[Finding, ...]
    rules_run: tuple[str, ...] = ()

    def active(self) -> list[Finding]:
        return [f for f in self.findings if f.suppressed is None]

    def summary(self) -> dict:
        counts = {name: 0 for name in SEVERITIES}
        for finding in self.active():
            counts[finding.severity] += 1
        statuses = {"proved": 0, "violated": 0, "unknown": 0}
        for inv in self.invariants:
            statuses[inv.status] += 1
        return {
            "findings": len(self.active()),
            "suppressed": len(self.findings) - len(self.active()),
            "by_severity": counts,
            "invariants": statuses,
            "rules_run": len(self.rules_run),
        }

    def exit_code(self, fail_on: str = "low") -> int:
        """0 clean, 1 findings at or above ``fail_on``, 3 nothing violated but something unknown."""
        threshold = SEVERITY_RANK[fail_on]
        if any(SEVERITY_RANK[f.severity] >= threshold for f in self.active()):
            return 1
        if any(inv.status == "unknown" for inv in self.invariants):
            return 3
        return 0
