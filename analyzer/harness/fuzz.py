"""The fuzz campaign: throw calls at an enforcement endpoint and compare with the oracle.

The oracle is :func:`analyzer.decide.parse_request` and :meth:`analyzer.decide.Decider.decide`
on the same body. A failure is

* ``enforcement-hole`` (critical): ``allow: true`` where the decision is deny;
* ``malformed-accepted``: a 2xx to malformed input (critical when it says ``allow: true``);
* ``server-error``: any 5xx (or an exception from a callable target);
* ``timeout``: no answer within the timeout;
* ``bad-response``: a 2xx whose ``allow`` is not a boolean, or a status that is neither 2xx nor 4xx;
* ``transport-error``: the connection failed after the campaign had started;
* ``broken-workflow``: ``allow: false`` (or a 4xx) where the decision is allow.

A 4xx to a well-formed call counts as a deny (FORMAT §7). The campaign runs in two phases:

1. the *sweep*: the deterministic boundary calls of :class:`~analyzer.harness.strategies.Universe`
   (every route, each param at each edge, each approval, field and other tenant, the
   witnesses of violated invariants) and, over HTTP, one oversized body;
2. *Hypothesis*: each family of adversarial calls runs as its own ``@given`` test with an
   equal share of ``max_examples``; a failing call raises, and Hypothesis shrinks it to a
   minimal one (one reproducer per failure kind and family).

Sweep failures are reported as found (boundary calls are minimal already), one per kind and
family, with the number of calls that failed alike.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from analyzer import model
from analyzer.decide import MalformedCall, parse_request
from analyzer.harness import strategies
from analyzer.harness.strategies import Probe, Universe
from analyzer.harness.targets import (
    DEFAULT_TIMEOUT,
    CallableTarget,
    HttpTarget,
    Observation,
    TargetError,
    resolve,
)
from analyzer.server import MAX_BODY_BYTES

#: Hypothesis examples per campaign, shared equally by the families; with the sweep, every
#: planted fault of tests/harness/faulty_servers.py is caught at this budget (in ~1 s in-process, a
#: few seconds over HTTP), and still at a third of it.
DEFAULT_MAX_EXAMPLES = 300
#: Calls per Hypothesis example, at most (at least half as many): a short batch amortises the
#: engine's overhead per example; the failure reported is the batch's failing call, shrunk.
BATCH = 8
DEFAULT_SAVE_DIR = ".agentperm-fuzz"
FAILURE_FORMAT = "agentperm-fuzz-failure/1"
RESULT_FORMAT = "agentperm-fuzz/1"

SEVERITY = {"enforcement-hole": "critical", "malformed-accepted": "high", "server-error": "high", "timeout": "high",
            "bad-response": "high", "transport-error": "high", "broken-workflow": "medium"}
KIND_ORDER = tuple(SEVERITY)


@dataclass(frozen=True)
class Expected:
    """What the oracle says of a probe: malformed (any 4xx is right) or a decision."""

    malformed: bool
    allow: bool = False
    reason: str = ""
    lenient: bool = False  # an oversized body: a 4xx is right too, whatever the decision

    def to_json(self) -> dict:
        if self.malformed:
            return {"malformed": True, "reason": self.reason}
        data = {"allow": self.allow, "reason": self.reason}
        if self.lenient:
            data["lenient"] = True
        return data

    @classmethod
    def from_json(cls, data: dict) -> Expected:
        return cls(bool(data.get("malformed")), bool(data.get("allow")), str(data.get("reason", "")),
                   bool(data.get("lenient")))

    def describe(self) -> str:
        if self.malformed:
            return f"malformed ({self.reason}): a 4xx"
        return ("allow" if self.allow else "deny") + f" ({self.reason})"


def expect(universe: Universe, probe: Probe) -> Expected:
    """The oracle's answer to one probe."""
    lenient = probe.padding > 0  # an oversized body may be refused whatever it asks
    if probe.raw is not None:
        from analyzer.decide import decode_body

        raw = probe.raw
        if raw.startswith(BOM):
            # RFC 8259 §8.1: a parser MAY ignore a byte-order mark; refusing the body is right too
            raw, lenient = raw[len(BOM):], True
        try:
            body = decode_body(raw)
        except MalformedCall as exc:
            return Expected(True, reason=str(exc))
    else:
        body = probe.body
    try:
        call = parse_request(body, universe.d)
    except MalformedCall as exc:
        return Expected(True, reason=str(exc))
    lenient = lenient or _null_where_optional(body)
    decision = universe.decider.decide(call)
    return Expected(False, decision.allow, decision.reason, lenient=lenient)


BOM = b"\xef\xbb\xbf"


def _null_where_optional(body: dict) -> bool:
    """A ``null`` standing for an optional value (``fields``, ``params``, ``approval``, ``approval.by``).

    §7 lets a call leave these out; whether ``null`` is the same as absent (the reference reads it
    so: no fields, no params, no approval, an approval by nobody, which counts as none) or a value
    of the wrong JSON type is not settled, so both a 400 and that decision are right. A value of
    the wrong non-null type (``approval.gate: 1``, ``fields: "x"``) is malformed: a 4xx is required."""
    if any(key in body and body[key] is None for key in ("fields", "params", "approval")):
        return True
    approval = body.get("approval")
    return isinstance(approval, dict) and "by" in approval and approval["by"] is None


def judge(expected: Expected, observed: Observation) -> str | None:
    """The failure kind of an answer, or None when the answer is right."""
    if observed.timeout:
        return "timeout"
    if observed.status is None:
        return "transport-error"
    status = observed.status
    if status >= 500:
        return "server-error"
    if 200 <= status < 300:
        if expected.malformed:
            return "malformed-accepted"
        if not isinstance(observed.allow, bool):
            return "bad-response"
        if observed.allow and not expected.allow:
            return "enforcement-hole"
        if expected.allow and not observed.allow:
            return "broken-workflow"
        return None
    if 400 <= status < 500:  # a rejection: a deny
        if expected.malformed or not expected.allow or expected.lenient:
            return None
        return "broken-workflow"
    return "bad-response"


@dataclass
class Failure:
    kind: str
    probe: Probe
    expected: Expected
    observed: Observation
    phase: str  # sweep | hypothesis
    count: int = 1  # calls of the sweep that failed alike

    @property
    def family(self) -> str:
        return self.probe.family

    @property
    def severity(self) -> str:
        if self.kind == "malformed-accepted":
            return "critical" if self.observed.allow is True else "medium"
        return SEVERITY[self.kind]

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.family)

    @property
    def message(self) -> str:
        seen = self.observed
        if self.kind == "enforcement-hole":
            return f"allow: true where the decision is deny: {self.expected.reason}"
        if self.kind == "broken-workflow":
            answer = f"HTTP {seen.status}" if seen.status != 200 else "allow: false"
            return f"{answer} where the decision is allow: {self.expected.reason}"
        if self.kind == "malformed-accepted":
            return f"HTTP {seen.status} (allow: {json.dumps(seen.allow)}) to malformed input: {self.expected.reason}"
        if self.kind == "server-error":
            return f"HTTP {seen.status}" + (f": {seen.error}" if seen.error else "")
        if self.kind == "bad-response":
            return f"HTTP {seen.status} with no boolean allow: {seen.text!r}"
        return seen.error or self.kind

    def to_json(self, target_label: str = "", curl_url: str = "", deployment: model.Deployment | None = None) -> dict:
        data = {"format": FAILURE_FORMAT, "kind": self.kind, "severity": self.severity, "family": self.family,
                "phase": self.phase, "message": self.message, "note": self.probe.note, "target": target_label,
                "request": self.probe.to_json(), "expected": self.expected.to_json(),
                "observed": self.observed.to_json(), "alike": self.count}
        if deployment is not None:
            data["deployment"] = {"paths": list(deployment.paths), "digest": deployment.digest}
        if curl_url:
            data["curl"] = curl(curl_url, self.probe)
        return data


@dataclass
class FuzzResult:
    deployment: model.Deployment
    target: str
    curl_url: str
    max_examples: int
    seed: int | None
    calls: int = 0
    elapsed: float = 0.0
    sweep: int = 0
    examples: dict[str, int] = field(default_factory=dict)  # calls made by each Hypothesis family
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    saved: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.calls / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0

    def sorted_failures(self) -> list[Failure]:
        return sorted(self.failures, key=lambda f: (KIND_ORDER.index(f.kind), f.family))


class _Meter:
    """A rich progress bar on stderr (only on a terminal): calls sent, failures, calls/s."""

    def __init__(self, total: int, enabled: bool):
        self.calls = 0
        self.failures = 0
        self.started = time.perf_counter()
        self.progress = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("[bold]fuzz[/] {task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TextColumn("{task.fields[failures]} failure(s)"),
                                     TextColumn("{task.fields[rate]:.0f} calls/s"), TimeElapsedColumn(),
                                     console=Console(stderr=True), transient=True)
            self.task = self.progress.add_task("sweep", total=total, failures=0, rate=0.0)
            self.progress.start()

    def phase(self, name: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=name)

    def advance(self, failed: bool) -> None:
        self.calls += 1
        self.failures += failed
        if self.progress is not None:
            rate = self.calls / max(time.perf_counter() - self.started, 1e-9)
            self.progress.update(self.task, advance=1, failures=self.failures, rate=rate)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


class _FailureRaised(Exception):
    """Raised inside the Hypothesis test so that it shrinks the call; one subclass per (kind, family)."""

    def __init__(self, failure: Failure):
        super().__init__(f"{failure.kind} [{failure.family}]: {failure.message}")
        self.failure = failure


_ERROR_CLASSES: dict[tuple[str, str], type[_FailureRaised]] = {}


def _error_class(key: tuple[str, str]) -> type[_FailureRaised]:
    # Hypothesis tells bugs apart by exception type and place: one type per kind and family
    if key not in _ERROR_CLASSES:
        name = "".join(part.title() for part in f"{key[0]}-{key[1]}".split("-") if part.isalnum())
        _ERROR_CLASSES[key] = type(name or "FuzzFailure", (_FailureRaised,), {})
    return _ERROR_CLASSES[key]


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def run_campaign(deployment: model.Deployment, target: str | Callable | HttpTarget | CallableTarget,
                 max_examples: int = DEFAULT_MAX_EXAMPLES, seed: int | None = None,
                 timeout: float = DEFAULT_TIMEOUT, progress: bool | None = None,
                 universe: Universe | None = None, families: tuple[str, ...] | None = None,
                 sweep: bool = True) -> FuzzResult:
    """Run a whole campaign against one target; raises TargetError when the target cannot be used."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    own_target = not isinstance(target, (HttpTarget, CallableTarget))
    endpoint = resolve(target, timeout) if own_target else target
    universe = universe or Universe(deployment)
    names = tuple(f for f in (families or strategies.families(endpoint.is_http))
                  if endpoint.is_http or f not in strategies.HTTP_ONLY_FAMILIES)
    fixed = list(universe.sweep) if sweep else []
    if sweep and endpoint.is_http and universe.seeds:
        body = universe.seeds[0]
        fixed.append(Probe("oversized", body, padding=MAX_BODY_BYTES + 1024 - len(json.dumps(body)),
                           note=f"an allowed call padded with spaces to over {MAX_BODY_BYTES} bytes"))
    share = max(1, max_examples // max(len(names), 1)) if max_examples > 0 else 0
    result = FuzzResult(deployment, endpoint.label, endpoint.curl_url(), max_examples, seed,
                        notes=list(universe.notes))
    meter = _Meter(len(fixed) + share * len(names) * BATCH * 3 // 4, sys.stderr.isatty() if progress is None else progress)
    found: dict[tuple[str, str], Failure] = {}
    started = time.perf_counter()

    def check(probe: Probe, phase: str) -> Failure | None:
        expected = expect(universe, probe)
        observed = endpoint.send(probe.payload(), probe.body)
        if meter.calls == 0 and observed.status is None and not observed.timeout:
            raise TargetError(f"cannot reach {endpoint.label}: {observed.error}")
        kind = judge(expected, observed)
        meter.advance(kind is not None)
        return Failure(kind, probe, expected, observed, phase) if kind else None

    try:
        for probe in fixed:
            failure = check(probe, "sweep")
            if failure is not None:
                if failure.key in found:
                    found[failure.key].count += 1
                else:
                    found[failure.key] = failure
        result.sweep = len(fixed)
        for index, name in enumerate(names if share else ()):
            meter.phase(name)
            before = meter.calls

            @settings(max_examples=share, database=None, deadline=None, derandomize=seed is None,
                      report_multiple_bugs=True, suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet,
                      phases=(Phase.generate, Phase.shrink), print_blob=False)
            @given(st.lists(strategies.family(universe, name), min_size=BATCH // 2, max_size=BATCH))
            def probe_endpoint(batch):
                for probe in batch:
                    failure = check(probe, "hypothesis")
                    if failure is not None:
                        raise _error_class(failure.key)(failure)

            if seed is not None:
                probe_endpoint = hypothesis_seed(seed * 1000 + index)(probe_endpoint)
            try:
                probe_endpoint()
            except TargetError:
                raise
            except Exception as exc:
                for leaf in _leaves(exc):
                    if isinstance(leaf, _FailureRaised):
                        found.setdefault(leaf.failure.key, leaf.failure)
                    elif isinstance(leaf, TargetError):
                        raise leaf from None
                    elif _is_hypothesis_error(leaf):
                        result.notes.append(f"{name}: {type(leaf).__name__}: {leaf}")
                    else:
                        raise
            result.examples[name] = meter.calls - before
    finally:
        meter.close()
        if own_target:
            endpoint.close()
    result.calls = meter.calls
    result.elapsed = time.perf_counter() - started
    result.failures = list(found.values())
    return result


def _is_hypothesis_error(exc: BaseException) -> bool:
    from hypothesis.errors import HypothesisException

    return isinstance(exc, HypothesisException)


# ---- saving and showing ---------------------------------------------------------------------------------

def curl(url: str, probe: Probe) -> str:
    """A shell command that sends the probe's body to the URL."""
    head = f"curl -sS -X POST {shlex.quote(url)} -H 'Content-Type: application/json'"
    if probe.raw is None and not probe.padding:
        text = json.dumps(probe.body, ensure_ascii=True)
        return f"{head} --data-binary {shlex.quote(text)}"
    if probe.raw is None:
        text = json.dumps(probe.body, ensure_ascii=True)
        return (f"{{ printf '%s' {shlex.quote(text)}; head -c {probe.padding} /dev/zero | tr '\\0' ' '; }} | "
                f"{head} --data-binary @-")
    octal = "".join(chr(b) if 32 <= b < 127 and b not in (92, 39) else f"\\0{b:03o}" for b in probe.raw)
    return f"printf '%b' '{octal}' | {head} --data-binary @-"


def save(result: FuzzResult, directory: str) -> list[str]:
    """One JSON file per failure in `directory` (created); returns the paths written."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    for failure in result.sorted_failures():
        digest = hashlib.sha256(failure.probe.payload()).hexdigest()[:12]
        path = os.path.join(directory, f"{failure.kind}-{failure.family}-{digest}.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(failure.to_json(result.target, result.curl_url, result.deployment), handle, indent=2,
                      sort_keys=True, ensure_ascii=False)
            handle.write("\n")
        paths.append(path)
    result.saved = paths
    return paths


def render_text(result: FuzzResult) -> str:
    headline = (f"agentperm fuzz: {result.calls} call(s) to {result.target} in {result.elapsed:.1f} s "
                f"({result.rate:.0f} calls/s): {result.sweep} in the boundary sweep, "
                f"{sum(result.examples.values())} from Hypothesis")
    lines = [headline]
    for note in result.notes:
        lines.append(f"  note: {note}")
    failures = result.sorted_failures()
    for index, failure in enumerate(failures):
        alike = f" (+{failure.count - 1} alike)" if failure.count > 1 else ""
        lines.append(f"FAIL {failure.severity} {failure.kind} [{failure.family}]{alike}: {failure.message}")
        if failure.probe.note:
            lines.append(f"  changed: {failure.probe.note}")
        lines.append(f"  expected: {failure.expected.describe()}")
        lines.append(f"  observed: {json.dumps(failure.observed.to_json(), ensure_ascii=False)}")
        lines.append(f"  reproduce: {curl(result.curl_url, failure.probe)}")
        if index < len(result.saved):
            lines.append(f"  saved: {result.saved[index]}")
    if failures:
        lines.append(f"{len(failures)} failure(s); exit 1")
    else:
        lines.append("no failures: every answer agrees with the decision function")
    return "\n".join(lines) + "\n"


def render_json(result: FuzzResult) -> str:
    data = {"format": RESULT_FORMAT,
            "deployment": {"paths": list(result.deployment.paths), "digest": result.deployment.digest},
            "target": result.target, "max_examples": result.max_examples, "seed": result.seed,
            "calls": result.calls, "sweep": result.sweep, "calls_by_family": result.examples,
            "elapsed_s": round(result.elapsed, 3), "calls_per_s": round(result.rate, 1),
            "failures": [f.to_json(result.target, result.curl_url) for f in result.sorted_failures()],
            "saved": result.saved, "notes": result.notes,
            "summary": {"failures": len(result.failures),
                        "by_severity": {s: sum(f.severity == s for f in result.failures)
                                        for s in ("critical", "high", "medium", "low")}}}
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_junit(result: FuzzResult) -> str:
    """One testcase per family (and one for the sweep); a failure element per failure."""
    from xml.etree import ElementTree as ET

    by_family: dict[str, list[Failure]] = {}
    for failure in result.sorted_failures():
        by_family.setdefault("sweep" if failure.phase == "sweep" else failure.family, []).append(failure)
    cases = ["sweep", *result.examples]
    suite = ET.Element("testsuite", name="agentperm fuzz", tests=str(len(cases)),
                       failures=str(sum(1 for c in cases if by_family.get(c))), errors="0",
                       time=f"{result.elapsed:.3f}")
    for name in cases:
        case = ET.SubElement(suite, "testcase", classname=f"agentperm.fuzz.{result.deployment.name}", name=name)
        for failure in by_family.get(name, ()):
            element = ET.SubElement(case, "failure", type=failure.kind,
                                    message=f"{failure.severity} {failure.kind}: {failure.message}")
            element.text = "\n".join([f"family: {failure.family}", f"changed: {failure.probe.note}",
                                      f"expected: {failure.expected.describe()}",
                                      f"observed: {json.dumps(failure.observed.to_json(), ensure_ascii=False)}",
                                      f"reproduce: {curl(result.curl_url, failure.probe)}"])
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def render(result: FuzzResult, fmt: str) -> str:
    return {"text": render_text, "json": render_json, "junit": render_junit}[fmt](result)


def probe_from_saved(data: dict) -> tuple[Probe, Expected]:
    """A saved failure file → the probe to resend and what the oracle said of it."""
    if data.get("format") != FAILURE_FORMAT:
        raise ValueError(f"not an agentperm fuzz failure (format {data.get('format')!r})")
    return Probe.from_json(data["request"]), Expected.from_json(data["expected"])


__all__ = ["DEFAULT_MAX_EXAMPLES", "DEFAULT_SAVE_DIR", "Expected", "Failure", "FuzzResult", "expect", "judge",
           "render", "run_campaign", "save"]
