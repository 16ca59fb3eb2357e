"""Native decisions beside Cedar's (issue 13): `Decider.decide` and cedarpy's `is_authorized_batch` on the
deployment's Cedar export, for the same calls in the same run, on one core, at S, M, L; then
`agentperm decide` end to end over a 100,000-line JSON-lines file (a subprocess, both engines).
Prints figures and PASS/FAIL lines against the targets; asserts nothing.

    .venv/bin/python bench/bench_cedar.py [--sizes S,M,L] [--calls 1000] [--lines 100000] [--cedar-lines 1000]

Targets: native >= 5x cedarpy batch; `agentperm decide` (native) >= 30,000 calls/s end to end.
Cedar evaluates every policy of the set for every request (one permit per grant: 50,000 at L), so its
rate falls with the deployment's size; the call counts for it are kept small by default.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_decide import calls_of  # the same calls as bench_decide.py

from analyzer import cedar
from analyzer.decide import Decider, parse_request
from analyzer.loader import load

SIZES = {"S": 10, "M": 100, "L": 1000}  # tenants, as bench/run.py defines them
AGENTPERM = ROOT / ".venv" / "bin" / "agentperm"
RATIO_TARGET, END_TO_END_TARGET = 5.0, 30_000


def timed(function, *args):
    start = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - start


def run_cli(*args) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run([str(AGENTPERM), *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          check=False)
    return time.perf_counter() - start, done.returncode


def measure(size: str, tenants: int, tmp: pathlib.Path, args) -> None:
    out = tmp / size
    subprocess.run([sys.executable, str(ROOT / "bench" / "generate.py"), "--tenants", str(tenants), "--out", str(out)],
                   check=True, capture_output=True)
    deployment, load_s = timed(load, [str(out)])
    exported, export_s = timed(cedar.export, deployment)
    engine, engine_s = timed(cedar.CedarEngine, exported)
    bodies = calls_of(deployment, args.calls)
    calls = [parse_request(b, deployment) for b in bodies]
    decider = Decider(deployment)
    for call in calls[:1000]:  # warm-up: the decider's records are made on first use
        decider.decide(call)
    passes = max(1, 20_000 // len(calls))  # the same calls, enough times to time them
    native_runs = []
    for _ in range(3):
        _, elapsed = timed(lambda: [decider.decide(c) for _ in range(passes) for c in calls])
        native_runs.append(elapsed)
    native_rate = len(calls) * passes / statistics.median(native_runs)
    decisions = [decider.decide(c) for c in calls]
    requests, build_s = timed(lambda: [engine.cedar_request(b) for b in bodies])
    engine.authorize(requests[:20])  # warm-up
    results, cedar_s = timed(engine.authorize, requests)
    cedar_rate = len(requests) / cedar_s
    engine.decide_many(bodies)  # the slices parsed (once per set of roles)
    sliced, sliced_s = timed(engine.decide_many, bodies)
    allowed = sum(d.allow for d in decisions)
    disagree = sum(d.allow != engine.answer(r).allow for d, r in zip(decisions, results, strict=True))
    disagree += sum(d.allow != a.allow for d, a in zip(decisions, sliced, strict=True))
    ratio = native_rate / cedar_rate
    print(f"{size}: {tenants} tenants, {len(deployment.agents)} agents, "
          f"{sum(len(r.grants) for r in deployment.roles.values())} grants; load {load_s:.2f} s, export {export_s:.2f} s "
          f"({len(exported.policies) / 1e6:.1f} MB policies, {len(exported.entities_json) / 1e6:.1f} MB entities, "
          f"{len(exported.gaps)} gaps), cedarpy parse {engine_s:.2f} s")
    print(f"   {len(calls)} calls ({allowed} allowed, {disagree} answered differently): "
          f"Decider.decide {native_rate:,.0f}/s, cedarpy is_authorized_batch {cedar_rate:,.0f}/s "
          f"(+ request_for {len(bodies) / build_s:,.0f}/s): native/cedar {ratio:.1f}x "
          f"{'PASS' if ratio >= RATIO_TARGET else 'FAIL'} (target >= {RATIO_TARGET:.0f}x); CedarEngine (the "
          f"policies of the principal's roles, request_for included) {len(bodies) / sliced_s:,.0f}/s")
    lines = list(itertools.islice(itertools.cycle(bodies), args.lines))
    path = tmp / f"{size}.jsonl"
    path.write_text("".join(json.dumps(b) + "\n" for b in lines), encoding="utf-8")
    empty = tmp / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    startup, _ = run_cli("decide", out, empty)  # interpreter, imports, loading the deployment
    wall, code = run_cli("decide", out, path)
    rate = len(lines) / wall
    print(f"   agentperm decide (native) over {len(lines):,} lines: {wall:.2f} s, {rate:,.0f} calls/s end to end "
          f"(exit {code}; start-up and load {startup:.2f} s, the lines alone {len(lines) / max(wall - startup, 1e-9):,.0f}"
          f"/s) {'PASS' if rate >= END_TO_END_TARGET and code == 0 else 'FAIL'} (target >= {END_TO_END_TARGET:,})")
    if args.cedar_lines:
        few = tmp / f"{size}-cedar.jsonl"
        few.write_text("".join(json.dumps(b) + "\n" for b in lines[:args.cedar_lines]), encoding="utf-8")
        cedar_start, _ = run_cli("decide", out, empty, "--engine", "cedar")
        cedar_wall, cedar_code = run_cli("decide", out, few, "--engine", "cedar")
        print(f"   agentperm decide --engine cedar over {args.cedar_lines:,} lines: {cedar_wall:.2f} s "
              f"(exit {cedar_code}; start-up, load, export and cedarpy parse {cedar_start:.2f} s), "
              f"{args.cedar_lines / cedar_wall:,.0f} calls/s end to end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="S,M,L")
    parser.add_argument("--calls", type=int, default=1_000, help="calls decided in-process by both engines")
    parser.add_argument("--lines", type=int, default=100_000, help="lines of the end-to-end file")
    parser.add_argument("--cedar-lines", type=int, default=1_000, help="lines for decide --engine cedar (0: skip)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})  # one core, inherited by the subprocesses
        print(f"pinned to CPU {core}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            measure(size, SIZES[size], pathlib.Path(tmp), args)


if __name__ == "__main__":
    main()
