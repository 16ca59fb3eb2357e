"""The messy benchmark of issue 10: `agentperm check --format json` on messy deployments.

    .venv/bin/python bench/bench_messy.py [--sizes S,M,L] [--seed 1] [--timeout 900] [--keep DIR]
    .venv/bin/python bench/run.py --messy [--sizes S,M,L,XL]      # the same, from the main benchmark

Sizes (bench/messy.py): S = 10 tenants, M = 100, L = 1,000, XL = 10,000 (opt-in); 10 agents
per tenant, N/5 roles of 25 grants. For each size, in order:

1. generate the deployment into a temp directory (its files are JSON, which is YAML: the
   json.loads floor reads the very same texts), and time `json.loads` of them, best of 3;
2. check: a fresh subprocess runs `agentperm check DIR --format json --output FILE` through
   the CLI's entry point (analyzer.cli.main, in-process, after the imports), from DIR's parent
   with DIR relative, as a user runs it from a repository: wall time, CPU time, peak RSS
   (VmHWM); the JSON written is then read for its size, findings and witness classes;
3. classes (S, M, L): another subprocess runs the same check with `--witnesses all`, and the
   classes it streams are counted by the causes they name: the number of distinct causes is
   the number of root causes, which the findings of the invariants must equal.

Nothing asserts a time: the table and the PASS/FAIL lines are printed, and the exit code is 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import bench_check  # the code snapshot helpers
import messy
from run import _hwm_mb, _reset_hwm  # peak RSS of the check, as run.py measures its own

SIZES = {"S": 10, "M": 100, "L": 1000, "XL": 10000}
DEFAULT_SIZES = "S,M,L"
INVARIANTS = ("no-cross-tenant-reach", "no-ungated-high-risk")

# targets of issue 10
L_CHECK_S = 10.0
L_CHECK_JSON = 60.0
L_OUTPUT_MB = 20.0
XL_CHECK_S = 180.0
XL_PEAK_MB = 8192.0


# ---- worker side (a fresh interpreter) ----------------------------------------------------------

def worker(directory: str, out: str, classes: str | None) -> None:
    import importlib

    start = time.perf_counter()
    for module in ("analyzer.loader", "analyzer.graph", "analyzer.rules", "analyzer.analysis", "analyzer.prover",
                   "analyzer.decide", "analyzer.cli", "analyzer.render.formats", "analyzer.render.jsonout"):
        importlib.import_module(module)
    from analyzer import cli

    imports = time.perf_counter() - start
    argv = ["check", directory, "--format", "json", "--output", out]
    if classes:
        argv += ["--witnesses", "all", "--witnesses-output", classes]
    _reset_hwm()
    cpu, start = time.process_time(), time.perf_counter()
    code = None
    try:
        cli.main.main(args=argv, prog_name="agentperm", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
    wall = time.perf_counter() - start
    print(json.dumps({"s": wall, "cpu_s": time.process_time() - cpu, "peak_mb": _hwm_mb(), "imports_s": imports,
                      "exit": code}))


def run_worker(directory: str, out: str, classes: str | None, timeout: float) -> dict:
    """The check in a fresh interpreter, run from the deployment's parent directory with a
    relative path, as a user runs it from a repository (the paths in the output are that short)."""
    command = [sys.executable, os.path.abspath(__file__), "--worker", "--dir", os.path.basename(directory),
               "--out", os.path.abspath(out)]
    if classes:
        command += ["--classes", os.path.abspath(classes)]
    env = dict(os.environ)
    env["PYTHONPATH"] = bench_check.CODE_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              cwd=os.path.dirname(os.path.abspath(directory)), env=env, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-6:]
        return {"error": f"check exited {proc.returncode}: " + " | ".join(tail)}
    return json.loads(lines[-1])


# ---- parent side --------------------------------------------------------------------------------

def _floor(directory: str) -> tuple[float, float]:
    texts = []
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), encoding="utf-8") as handle:
            texts.append(handle.read())
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for text in texts:
            json.loads(text)
        best = min(best, time.perf_counter() - start)
    return best, sum(len(t.encode("utf-8")) for t in texts) / 1e6


def measure(size: str, seed: int, timeout: float, keep: str | None) -> dict:
    tenants = SIZES[size]
    row: dict = {"size": size, "tenants": tenants}
    work = tempfile.mkdtemp(prefix=f"agentperm-messy-{size}-")
    try:
        directory = os.path.join(keep, size) if keep else os.path.join(work, "deployment")
        start = time.perf_counter()
        data = messy.data(tenants, seed)
        messy.write(data, directory)
        row.update(agents=len(data["agents"]), grants=sum(len(r["grants"]) for r in data["roles"].values()),
                   generate_s=time.perf_counter() - start)
        del data
        row["json_s"], row["input_mb"] = _floor(directory)
        out = os.path.join(work, "result.json")
        check = run_worker(directory, out, None, timeout)
        row["check"] = check
        if "error" not in check:
            row["output_mb"] = os.path.getsize(out) / 1e6
            with open(out, encoding="utf-8") as handle:
                doc = json.load(handle)
            findings = doc["findings"]
            row["findings"] = len(findings)
            row["invariant_findings"] = sum(1 for f in findings if f["rule"] in INVARIANTS)
            row["classes"] = sum(inv.get("witness_classes", 0) for inv in doc["invariants"])
            row["statuses"] = {inv["id"]: inv["status"] for inv in doc["invariants"]}
            del doc, findings
        print(f"  {size}: check {_cell(check, 's')} s wall, {_cell(check, 'cpu_s')} s CPU, "
              f"peak {_cell(check, 'peak_mb', 0)} MB, {row.get('output_mb', 0):.1f} MB of JSON, "
              f"{row.get('findings', '?')} findings, {row.get('classes', '?')} witness classes "
              f"(imports {check.get('imports_s', 0):.1f} s, not counted)", flush=True)
        if size != "XL" and "error" not in check:
            lines = os.path.join(work, "classes.jsonl")
            counted = run_worker(directory, os.path.join(work, "again.json"), lines, timeout)
            if "error" in counted:
                row["causes_error"] = counted["error"]
            else:
                causes, classes = set(), 0
                with open(lines, encoding="utf-8") as handle:
                    for line in handle:
                        record = json.loads(line)
                        classes += 1
                        causes.update((record["invariant"], c) for c in record["causes"])
                row["root_causes"], row["streamed_classes"] = len(causes), classes
                row["with_classes_s"] = counted["s"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return row


def _cell(record: dict, key: str, digits: int = 2) -> str:
    if "error" in record:
        return "err"
    return f"{record[key]:,.{digits}f}"


def print_table(rows: list[dict]) -> None:
    head = ["size", "tenants", "agents", "grants", "input MB", "json.loads s", "check s", "cpu s", "check/json",
            "peak MB", "JSON MB", "findings", "inv. findings", "root causes", "witness classes"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        check = row.get("check", {})
        ratio = f"{check['s'] / row['json_s']:.0f}x" if "s" in check else "-"
        cells = [row["size"], f"{row['tenants']:,}", f"{row.get('agents', 0):,}", f"{row.get('grants', 0):,}",
                 f"{row.get('input_mb', 0):.1f}", f"{row.get('json_s', 0):.3f}", _cell(check, "s"),
                 _cell(check, "cpu_s"), ratio, _cell(check, "peak_mb", 0), f"{row.get('output_mb', 0):.1f}",
                 f"{row.get('findings', '-')}", f"{row.get('invariant_findings', '-')}",
                 f"{row.get('root_causes', '-')}", f"{row.get('classes', '-'):,}" if "classes" in row else "-"]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    for row in rows:
        if "error" in row.get("check", {}):
            print(f"{row['size']}: {row['check']['error']}")
        if "causes_error" in row:
            print(f"{row['size']} (--witnesses all): {row['causes_error']}")


def verdicts(rows: list[dict], asked: list[str]) -> list[str]:
    by = {row["size"]: row for row in rows}
    lines = []

    def mark(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    def measured(size: str) -> dict | None:
        """The size's row when its check ran; else a line saying why not."""
        row = by.get(size)
        if row is None:
            lines.append(f"messy {size}: not run (add --sizes ...,{size})")
        elif "error" in row["check"]:
            lines.append(f"messy {size}: FAIL ({row['check']['error']})")
        else:
            return row
        return None

    row = measured("L")
    if row is not None:
        check = row["check"]
        ratio = check["s"] / row["json_s"]
        lines.append(f"messy L check under {L_CHECK_S:.0f} s: {mark(check['s'] < L_CHECK_S)} "
                     f"(measured {check['s']:.2f} s wall, {check['cpu_s']:.2f} s CPU)")
        lines.append(f"messy L check under {L_CHECK_JSON:.0f}x json.loads: {mark(ratio < L_CHECK_JSON)} "
                     f"(measured {ratio:.0f}x: {check['s']:.2f} s against {row['json_s']:.3f} s)")
        lines.append(f"messy L JSON output under {L_OUTPUT_MB:.0f} MB: {mark(row['output_mb'] < L_OUTPUT_MB)} "
                     f"(measured {row['output_mb']:.1f} MB)")
        if "root_causes" in row:
            same = row["invariant_findings"] == row["root_causes"] and row["streamed_classes"] == row["classes"]
            lines.append(f"messy L findings = root causes: {mark(same)} ({row['invariant_findings']} findings of the "
                         f"invariants, {row['root_causes']} distinct causes over {row['streamed_classes']:,} "
                         f"streamed classes; {row['findings']} findings in all)")
        if check["s"] > 1.2 * check["cpu_s"]:
            lines.append("note: wall time ran more than 20% ahead of CPU time: other processes shared the CPUs")
    row = measured("XL")
    if row is not None:
        check = row["check"]
        lines.append(f"messy XL check under {XL_CHECK_S:.0f} s and {XL_PEAK_MB / 1024:.0f} GB: "
                     f"{mark(check['s'] < XL_CHECK_S and check['peak_mb'] < XL_PEAK_MB)} "
                     f"(measured {check['s']:.1f} s, {check['peak_mb']:,.0f} MB)")
    return lines


def run(sizes: str, seed: int = 1, timeout: float = 900, keep: str | None = None, snapshot: bool = True) -> int:
    asked = [s.strip().upper() for s in sizes.split(",") if s.strip()]
    if not asked or any(s not in SIZES for s in asked):
        raise SystemExit(f"--sizes takes a comma-separated list of {', '.join(SIZES)}")
    asked = sorted(set(asked), key=list(SIZES).index)
    frozen = tempfile.TemporaryDirectory(prefix="agentperm-messy-code-") if snapshot else None
    if frozen is not None:
        bench_check.CODE_ROOT = bench_check.snapshot(frozen.name)
    try:
        print(f"agentperm messy benchmark (issue 10): sizes {', '.join(f'{s}={SIZES[s]} tenants' for s in asked)}; "
              f"seed {seed}; python {sys.version.split()[0]}; {os.cpu_count()} CPUs; analyzer code "
              f"{bench_check.code_digest(bench_check.CODE_ROOT)}{' (frozen copy)' if frozen else ''}", flush=True)
        rows = [measure(size, seed, timeout, keep) for size in asked]
    finally:
        if frozen is not None:
            frozen.cleanup()
    print()
    print_table(rows)
    print()
    for line in verdicts(rows, asked):
        print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help=f"among {','.join(SIZES)} (default {DEFAULT_SIZES})")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900, help="seconds per check subprocess (default 900)")
    parser.add_argument("--keep", metavar="DIR", help="keep the generated deployments under DIR/<size>/")
    parser.add_argument("--snapshot", action=argparse.BooleanOptionalAction, default=True,
                        help="measure a frozen copy of analyzer/ and rules/ taken at start (default: on)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--classes", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.dir, args.out, args.classes)
        return 0
    return run(args.sizes, args.seed, args.timeout, args.keep, args.snapshot)


if __name__ == "__main__":
    raise SystemExit(main())
