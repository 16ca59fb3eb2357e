"""`agentperm decide` throughput (issue 13): the decision function on one core at S, M, L, and the
command end to end over a 100,000-line JSON-lines file. Prints figures and PASS/FAIL against the
30,000 calls/s end-to-end target; asserts nothing.

    .venv/bin/python bench/bench_decide.py [--sizes S,M,L] [--lines 100000]

The comparison with cedarpy on the Cedar export is bench/bench_cedar.py (it reuses this module's calls).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analyzer.decide import Decider, parse_request
from analyzer.loader import load

SIZES = {"S": 10, "M": 100, "L": 1000}  # tenants, as bench/run.py defines them
TARGET = 30_000


def calls_of(deployment, limit):
    """Calls cycling over workflow × tool × operation × (home, another tenant): allowed and denied ones."""
    tenants = sorted(deployment.tenants)
    out = []
    for wf in sorted(deployment.workflows.values(), key=lambda w: w.id):
        for tool in sorted(deployment.tools.values(), key=lambda t: t.id):
            for op in sorted(tool.operations.values(), key=lambda o: o.id):
                params = {n: (1 if k.kind == "int" else True if k.kind == "bool"
                              else k.values[0] if k.kind == "enum" else "x") for n, k in op.params.items()}
                for tenant in (wf.tenant, tenants[0]):
                    out.append({"workflow": wf.id, "chain": [wf.agent], "tool": tool.id, "operation": op.id,
                                "tenant": tenant, "fields": list(op.fields[:1]), "params": params})
                    if len(out) >= limit:
                        return out
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="S,M,L")
    parser.add_argument("--lines", type=int, default=100_000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            out = pathlib.Path(tmp) / size
            subprocess.run([sys.executable, str(ROOT / "bench" / "generate.py"), "--tenants", str(SIZES[size]),
                            "--out", str(out)], check=True, capture_output=True)
            deployment = load([str(out)])
            sample = calls_of(deployment, 20_000)
            calls = list(itertools.islice(itertools.cycle(sample), args.lines))
            decider = Decider(deployment)
            parsed = [parse_request(c, deployment) for c in calls]
            start = time.perf_counter()
            allowed = sum(decider.decide(c).allow for c in parsed)
            rate = len(parsed) / (time.perf_counter() - start)
            path = pathlib.Path(tmp) / f"{size}.jsonl"
            path.write_text("".join(json.dumps(c) + "\n" for c in calls), encoding="utf-8")
            start = time.perf_counter()
            done = subprocess.run([str(ROOT / ".venv" / "bin" / "agentperm"), "decide", str(out), str(path)],
                                  stdout=subprocess.DEVNULL, check=False)
            end_to_end = len(calls) / (time.perf_counter() - start)
            verdict = "PASS" if end_to_end >= TARGET and done.returncode == 0 else "FAIL"
            print(f"{size}: {len(deployment.tenants)} tenants, {len(calls)} calls ({allowed} allowed); "
                  f"Decider.decide {rate:,.0f} calls/s; agentperm decide end to end {end_to_end:,.0f} calls/s "
                  f"(exit {done.returncode}) {verdict} (target {TARGET:,})")


if __name__ == "__main__":
    main()
