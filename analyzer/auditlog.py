"""Decision audit logs in: the reference server's JSON lines, streamed and folded into distinct calls.

One line is one decision (README, "Audit logs: unused and tighten"): ``when`` (RFC 3339, UTC),
``who`` (the chain), ``what`` (``tool.operation``), ``outcome`` (allow, deny or malformed),
``tenant``, ``workflow``, ``approval_counted`` (the gate that counted, or null), ``fields``
and, optionally, ``grant`` (the label of the grant that allowed it, ``"ROLE grant #N"``).
Lines are folded into distinct calls with a count as they are read, so a million lines cost
about one ``json.loads`` each. A line that does not parse, or lacks what a decision needs, is
counted with its line number, never dropped silently.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from analyzer.errors import Diagnostic, InputError, Loc

LINES_KEPT = 20  # line numbers kept per kind of problem; the count is always exact


@dataclass(frozen=True)
class LoggedCall:
    """A distinct logged decision; ``count`` lines said the same."""

    outcome: str
    workflow: str
    chain: tuple[str, ...]
    tool: str
    operation: str
    tenant: str
    gate: str | None
    fields: tuple[str, ...]
    grant: str | None


@dataclass
class Problems:
    """Lines of one kind that could not be used: exact count, the first locations."""

    count: int = 0
    where: list[tuple[str, int, str]] = field(default_factory=list)

    def add(self, file: str, line: int, why: str) -> None:
        self.count += 1
        if len(self.where) < LINES_KEPT:
            self.where.append((file, line, why))


@dataclass
class Log:
    calls: dict[LoggedCall, int] = field(default_factory=dict)
    first_line: dict[LoggedCall, tuple[str, int]] = field(default_factory=dict)
    lines: int = 0
    before_since: int = 0
    malformed_requests: int = 0  # lines recording a request the endpoint refused as malformed
    unreadable: Problems = field(default_factory=Problems)
    unknown_ids: Problems = field(default_factory=Problems)

    def allowed(self) -> dict[LoggedCall, int]:
        return {c: n for c, n in self.calls.items() if c.outcome == "allow"}


def parse_since(text: str) -> str:
    """``--since`` (a date or an RFC 3339 time) → the UTC instant as the log writes it."""
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r} is not a date (YYYY-MM-DD) or an RFC 3339 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return _canonical(moment)


def _canonical(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _when(value) -> str | None:
    """A line's ``when`` in the canonical form (fast for the server's own), or None."""
    if not isinstance(value, str):
        return None
    if len(value) == 24 and value[-1] == "Z" and value[10] == "T":
        return value
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return _canonical(moment)


_OUTCOMES = ("allow", "deny")


def read(files: Iterable[str], since: str | None = None) -> Log:
    """Stream every file into one :class:`Log`; raises InputError if a file cannot be read."""
    log = Log()
    problems = []
    for name in files:
        try:
            handle = open(name, encoding="utf-8", errors="strict")  # noqa: SIM115 - closed below
        except OSError as exc:
            problems.append(Diagnostic(Loc(name, 0, 0), f"cannot read the audit log: {exc.strerror}"))
            continue
        with handle:
            try:
                _read_one(handle, name, since, log)
            except UnicodeDecodeError as exc:
                problems.append(Diagnostic(Loc(name, 0, 0), f"the audit log is not UTF-8 ({exc.reason})"))
    if problems:
        raise InputError(problems)
    return log


def _read_one(handle, name: str, since: str | None, log: Log) -> None:
    loads, calls, first = json.loads, log.calls, log.first_line
    bad = log.unreadable.add
    number = 0
    for number, line in enumerate(handle, 1):
        if not line.strip():
            continue
        try:
            entry = loads(line)
            outcome = entry["outcome"]
            if outcome not in _OUTCOMES:
                if outcome == "malformed":
                    log.malformed_requests += 1
                    continue
                bad(name, number, f"unknown outcome {outcome!r}")
                continue
            if since is not None:
                when = _when(entry.get("when"))
                if when is None:
                    bad(name, number, "no RFC 3339 'when' to compare with --since")
                    continue
                if when < since:
                    log.before_since += 1
                    continue
            tool, _, operation = entry["what"].partition(".")
            approval = entry.get("approval_counted")
            fields = entry.get("fields") or ()
            grant = entry.get("grant")
            who = entry["who"]
            key = LoggedCall(outcome, entry["workflow"], tuple(who), tool, operation, entry["tenant"],
                             approval, tuple(fields), grant)
            # a string is iterable too: "who": "agent" must not become a chain of letters
            if not (isinstance(who, list) and isinstance(fields, (list, tuple)) and isinstance(key.workflow, str) and isinstance(key.tenant, str) and operation
                    and all(isinstance(a, str) for a in key.chain) and all(isinstance(f, str) for f in key.fields)
                    and isinstance(approval, (str, type(None))) and isinstance(grant, (str, type(None)))):
                bad(name, number, "a field has the wrong type")
                continue
        except ValueError as exc:
            bad(name, number, f"not JSON: {exc}")
            continue
        except KeyError as exc:
            bad(name, number, f"missing {exc.args[0]!r}")
            continue
        except (TypeError, AttributeError):
            bad(name, number, "not a decision record (a field has the wrong type)")
            continue
        if key in calls:
            calls[key] += 1
        else:
            calls[key] = 1
            first[key] = (name, number)
    log.lines += number


def unknown_ids(call: LoggedCall, deployment) -> str | None:
    """The first id of a logged call the deployment lacks, as a phrase, or None."""
    if call.workflow not in deployment.workflows:
        return f"unknown workflow {call.workflow!r}"
    for agent in call.chain:
        if agent not in deployment.agents:
            return f"unknown agent {agent!r}"
    if call.tool not in deployment.tools:
        return f"unknown tool {call.tool!r}"
    if call.operation not in deployment.tools[call.tool].operations:
        return f"unknown operation {call.tool}.{call.operation}"
    if call.tenant not in deployment.tenants:
        return f"unknown tenant {call.tenant!r}"
    if call.gate is not None and call.gate not in deployment.gates:
        return f"unknown gate {call.gate!r}"
    return None
