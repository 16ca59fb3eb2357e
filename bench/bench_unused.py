"""`agentperm unused` on a 1,000,000-line audit log against the L deployment, beside json.loads of the same lines.

    python bench/bench_unused.py [--lines 1000000] [--tenants 1000]

Makes the L deployment with bench/generate.py and a log of allowed calls of its workflows
(through the reference server's audit code), then times, in the same run, (a) json.loads of
every line and (b) reading the log and computing the unused findings. Target: (b) within 5x of (a).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from analyzer import auditlog, unused
from analyzer.loader import load
from analyzer.rules import load_rules


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "generate.py"), "--tenants", str(args.tenants),
                        "--out", os.path.join(tmp, "L")], check=True, stdout=subprocess.DEVNULL)
        d = load(os.path.join(tmp, "L"))
        lines = []
        for wf in sorted(d.workflows.values(), key=lambda w: w.id):
            agent = d.agents[wf.agent]
            for role in agent.roles:
                for grant in d.roles[role].grants[:2]:
                    for _t, op in d.operations_of(grant)[:1]:
                        lines.append(json.dumps({"when": "2026-12-01T00:00:00.000Z", "outcome": "allow",
                                                 "who": [agent.id], "what": op.qualified, "tenant": wf.tenant,
                                                 "workflow": wf.id, "approval_counted": grant.approval,
                                                 "fields": [], "params": [], "grant": grant.label,
                                                 "reason": "bench", "risk": "low"}, sort_keys=True))
        path = os.path.join(tmp, "audit.jsonl")
        with open(path, "w", encoding="utf-8") as handle:
            handle.writelines(lines[i % len(lines)] + "\n" for i in range(args.lines))
        start = time.perf_counter()
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                json.loads(line)
        baseline = time.perf_counter() - start
        rules = load_rules()
        start = time.perf_counter()
        log = auditlog.read([path])
        result, _used = unused.run(d, log, rules)
        took = time.perf_counter() - start
        print(f"{args.lines} lines, {len(log.calls)} distinct calls, {len(result.findings)} findings")
        print(f"json.loads of every line: {baseline:.2f} s")
        print(f"agentperm unused:         {took:.2f} s  ({took / baseline:.2f}x json.loads; target within 5x)")


if __name__ == "__main__":
    main()
