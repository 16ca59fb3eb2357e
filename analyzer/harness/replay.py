"""Re-send the failures a fuzz campaign saved, and say for each whether it is FIXED or STILL FAILING.

Each saved file holds the request and what the oracle expected of it when it was saved; the
replay judges the new answer against that expectation (see :func:`analyzer.harness.fuzz.judge`).
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass

from analyzer.errors import Diagnostic, InputError, Loc
from analyzer.harness import reference
from analyzer.harness.fuzz import Expected, curl, judge, probe_from_saved
from analyzer.harness.strategies import Probe
from analyzer.harness.targets import DEFAULT_TIMEOUT, Observation, resolve


@dataclass(frozen=True)
class Replayed:
    path: str
    saved: dict
    probe: Probe
    expected: Expected
    observed: Observation
    kind: str | None  # the failure now, None when fixed, "skipped" when it cannot be sent
    url: str = ""  # where a curl command should send it

    @property
    def fixed(self) -> bool:
        return self.kind is None


def load_saved(directory: str) -> list[tuple[str, dict]]:
    """Every saved failure in a directory, sorted by name; raises InputError on unreadable files."""
    if not os.path.isdir(directory):
        raise InputError([Diagnostic(Loc(directory, 0, 0), "no such directory of saved failures")])
    found, problems = [], []
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
            probe_from_saved(data)
            found.append((path, data))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problems.append(Diagnostic(Loc(path, 0, 0), f"not a saved fuzz failure: {exc}"))
    if problems:
        raise InputError(problems)
    return found


def replay(directory: str, target, timeout: float = DEFAULT_TIMEOUT) -> list[Replayed]:
    saved = load_saved(directory)
    if saved and not os.environ.get(reference.ENV):
        paths = saved[0][1].get("deployment", {}).get("paths")
        if paths:  # for analyzer.harness.reference:decide
            os.environ[reference.ENV] = os.pathsep.join(paths)
    endpoint = resolve(target, timeout)
    results = []
    try:
        for path, data in saved:
            probe, expected = probe_from_saved(data)
            if probe.http_only and not endpoint.is_http:
                observed = Observation(None, error="a body that is not JSON can only be sent over HTTP")
                results.append(Replayed(path, data, probe, expected, observed, "skipped", endpoint.curl_url()))
                continue
            observed = endpoint.send(probe.payload(), probe.body)
            results.append(Replayed(path, data, probe, expected, observed, judge(expected, observed),
                                    endpoint.curl_url()))
    finally:
        endpoint.close()
    return results


def render_text(results: list[Replayed]) -> str:
    if not results:
        return "no saved failures to replay\n"
    lines = []
    for r in results:
        was = f"{r.saved.get('kind')} [{r.saved.get('family')}]"
        if r.kind == "skipped":
            lines.append(f"SKIPPED        {os.path.basename(r.path)}: {was}: {r.observed.error}")
        elif r.fixed:
            lines.append(f"FIXED          {os.path.basename(r.path)}: was {was}; now {_answer(r.observed)}, "
                         f"expected {r.expected.describe()}")
        else:
            lines.append(f"STILL FAILING  {os.path.basename(r.path)}: {r.kind}: now {_answer(r.observed)}, "
                         f"expected {r.expected.describe()}")
            lines.append(f"  reproduce: {curl(r.url, r.probe)}")
    still = sum(1 for r in results if not r.fixed and r.kind != "skipped")
    lines.append(f"{len(results)} saved failure(s): {sum(r.fixed for r in results)} fixed, {still} still failing")
    return "\n".join(lines) + "\n"


def _answer(observed: Observation) -> str:
    if observed.status is None:
        return observed.error or "no answer"
    if isinstance(observed.allow, bool):
        return f"HTTP {observed.status} allow: {json.dumps(observed.allow)}"
    return f"HTTP {observed.status}"


def exit_code(results: list[Replayed]) -> int:
    return 1 if any(not r.fixed and r.kind != "skipped" for r in results) else 0
