"""How `agentperm check` scales: one table of stage timings per deployment size.

    .venv/bin/python bench/bench_check.py [--tenants 10,100,1000] [--sizes-doubling] [--profile N]

For every size it generates a deployment (bench/generate.py, violations on) into a temp
directory, then runs two fresh subprocesses, one after the other:

* stages: the json.loads floor (the same data converted once to JSON with libyaml, then
  parsed with json.loads: the cost of merely building the Python objects), then
  analyzer.loader.load, analyzer.graph.PermissionGraph, the structural rules (catalogue load
  + analyze() with only the structural rules) and the proofs (analyze() with only the
  invariants), each timed on its own;
* check: the whole pipeline end to end, as `agentperm check` runs it (load → graph →
  load_rules → analyze with every rule), timed once, with the process's peak RSS.

It only prints; there are no timed assertions anywhere. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TARGET_SECONDS = 60.0
TARGET_TENANTS = 1000
TARGET_DOUBLING = 2.3


# ---------------------------------------------------------------------------------------------
# Worker side (runs in a fresh interpreter)

def _peak_mb() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _split_rules(rules):
    structural = {k: r for k, r in rules.items() if not r.is_invariant}
    invariants = {k: r for k, r in rules.items() if r.is_invariant}
    return structural, invariants


def _summary(result) -> dict:
    return {"findings": len(result.findings),
            "invariants": {r.id: r.status for r in result.invariants}}


def json_floor(texts: list[str]) -> float:
    """The json.loads floor: seconds to parse the same data as JSON texts, best of 3 (GC on)."""
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        for text in texts:
            json.loads(text)
        best = min(best, time.perf_counter() - start)
    return best


def worker_stages(directory: str) -> dict:
    import glob

    import yaml

    import_s = _import_analyzer()
    from analyzer import loader
    from analyzer.analysis import analyze
    from analyzer.graph import PermissionGraph
    from analyzer.rules import load_rules

    # json.loads floor: convert once with libyaml, then time json.loads of the same data (best of 3)
    texts = []
    for path in sorted(glob.glob(os.path.join(directory, "*.yaml"))):
        with open(path, encoding="utf-8") as handle:
            texts.append(json.dumps(yaml.load(handle.read(), Loader=yaml.CSafeLoader)))
    json_s = json_floor(texts)

    cpu_s: dict[str, float] = {}
    start, cpu = time.perf_counter(), time.process_time()
    deployment = loader.load(directory)
    load_s = time.perf_counter() - start
    cpu_s["load"] = time.process_time() - cpu

    start, cpu = time.perf_counter(), time.process_time()
    graph = PermissionGraph(deployment)
    graph_s = time.perf_counter() - start
    cpu_s["graph"] = time.process_time() - cpu

    start, cpu = time.perf_counter(), time.process_time()
    rules = load_rules()
    structural, invariants = _split_rules(rules)
    structural_result = analyze(deployment, structural, graph=graph)
    rules_s = time.perf_counter() - start
    cpu_s["rules"] = time.process_time() - cpu

    start, cpu = time.perf_counter(), time.process_time()
    proof_result = analyze(deployment, invariants, graph=graph)
    proofs_s = time.perf_counter() - start
    cpu_s["proofs"] = time.process_time() - cpu

    breakdown = _breakdown(deployment, graph, rules) if os.environ.get("AGENTPERM_BENCH_BREAKDOWN") else None
    return {
        "breakdown": breakdown, "cpu_s": cpu_s,
        "json_s": json_s, "load_s": load_s, "graph_s": graph_s, "rules_s": rules_s, "proofs_s": proofs_s,
        "agents": len(deployment.agents), "tools": len(deployment.tools), "roles": len(deployment.roles),
        "grants": sum(len(r.grants) for r in deployment.roles.values()),
        "workflows": len(deployment.workflows), "credentials": len(deployment.credentials),
        "structural": _summary(structural_result), "proofs": _summary(proof_result),
        "json_bytes": sum(len(t) for t in texts), "peak_mb": _peak_mb(), "import_s": import_s,
    }


def _breakdown(deployment, graph, rules) -> dict:
    """Seconds per structural rule (each through analyze() alone), then the prover's case
    enumeration and each invariant on one shared Prover (as analyze() does)."""
    from analyzer.analysis import analyze
    from analyzer.graph import PermissionGraph
    from analyzer.prover import Prover

    times: dict[str, float] = {}
    structural, invariants = _split_rules(rules)
    for rule_id, rule in structural.items():
        fresh = PermissionGraph(deployment)  # cached properties (effective pairs, ...) start cold for each rule
        start = time.perf_counter()
        analyze(deployment, {rule_id: rule}, graph=fresh)
        times[rule_id] = time.perf_counter() - start
    prover = Prover(graph)
    start = time.perf_counter()
    cases = prover.all_cases
    times["prover: enumerate cases"] = time.perf_counter() - start
    for rule_id, rule in invariants.items():
        start = time.perf_counter()
        prover.prove(rule)
        times[f"prover: {rule_id}"] = time.perf_counter() - start
    return {"seconds": times, "cases": len(cases), "solver_questions": len(getattr(prover, "_cache", {}))}


def _pipeline(directory: str):
    from analyzer import loader
    from analyzer.analysis import analyze
    from analyzer.graph import PermissionGraph
    from analyzer.rules import load_rules

    deployment = loader.load(directory)
    graph = PermissionGraph(deployment)
    rules = load_rules()
    return analyze(deployment, rules, graph=graph)


def _import_analyzer() -> float:
    """Import everything the pipeline uses (z3 included) before any timing; returns the seconds spent."""
    import importlib

    start = time.perf_counter()
    for module in ("analyzer.loader", "analyzer.graph", "analyzer.rules", "analyzer.analysis", "analyzer.prover"):
        importlib.import_module(module)
    return time.perf_counter() - start


def worker_check(directory: str) -> dict:
    import_s = _import_analyzer()
    start, cpu_start = time.perf_counter(), time.process_time()
    result = _pipeline(directory)
    total_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    import analyzer

    return {"total_s": total_s, "cpu_s": cpu_s, "import_s": import_s, "code": os.path.dirname(analyzer.__file__), "peak_mb": _peak_mb(), **_summary(result)}


def worker_profile(directory: str, top: int) -> dict:
    import cProfile
    import io
    import pstats

    _import_analyzer()
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    _pipeline(directory)
    profiler.disable()
    total_s = time.perf_counter() - start
    report = []
    for sort in ("cumulative", "tottime"):
        buffer = io.StringIO()
        stats = pstats.Stats(profiler, stream=buffer)
        stats.sort_stats(sort).print_stats(top)
        text = buffer.getvalue()
        # keep the table, drop pstats' preamble lines up to the header
        lines = text.splitlines()
        head = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
        report.append(f"top {top} by {sort} time (profiled run: {total_s:.1f} s, profiler overhead included)")
        report.extend(line.rstrip() for line in lines[head:] if line.strip())
        report.append("")
    return {"total_s": total_s, "report": "\n".join(report)}


# ---------------------------------------------------------------------------------------------
# Driver side

#: Where the workers import `analyzer` from: the repository, or a frozen copy (--snapshot).
CODE_ROOT = ROOT


def code_digest(root: str) -> str:
    """A short digest of analyzer/**/*.py and rules/*.yaml, to tell measured code versions apart."""
    import hashlib

    digest = hashlib.sha256()
    for folder in ("analyzer", "rules"):
        for base, dirs, files in os.walk(os.path.join(root, folder)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith((".py", ".yaml", ".yml", ".html", ".j2")):
                    path = os.path.join(base, name)
                    digest.update(os.path.relpath(path, root).encode() + b"\0")
                    with open(path, "rb") as handle:
                        digest.update(handle.read())
    return digest.hexdigest()[:12]


def snapshot(into: str) -> str:
    """Copy analyzer/ and rules/ so that edits made during a long run do not mix code versions."""
    import shutil

    for folder in ("analyzer", "rules"):
        shutil.copytree(os.path.join(ROOT, folder), os.path.join(into, folder),
                        ignore=shutil.ignore_patterns("__pycache__"))
    return into


def run_worker(mode: str, directory: str, timeout: float | None, extra: list[str] = ()) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--worker", mode, "--dir", directory, *extra]
    env = dict(os.environ)
    env["PYTHONPATH"] = CODE_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env,
                              check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
        return {"error": f"worker {mode} exited {proc.returncode}: " + " | ".join(tail)}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def generate_into(tenants: int, seed: int, directory: str) -> tuple[float, dict]:
    sys.path.insert(0, HERE)
    import generate

    start = time.perf_counter()
    generated = generate.generate(tenants, seed=seed, violations=True)
    generate.write(generated, directory)
    return time.perf_counter() - start, generated.stats


def _fmt(value, spec: str = ".2f", width: int = 8) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-".rjust(width)
    if isinstance(value, str):
        return value.rjust(width)
    return format(value, spec).rjust(width)


COLUMNS = [("tenants", 7), ("agents", 7), ("grants", 7), ("json.loads s", 12), ("load s", 8), ("graph s", 8),
           ("rules s", 8), ("proofs s", 8), ("total s", 8), ("cpu s", 8), ("total/json", 10), ("scaling", 8), ("peak MB", 8)]


def print_table(rows: list[dict]) -> None:
    header = " ".join(name.rjust(width) for name, width in COLUMNS)
    print(header)
    print("-" * len(header))
    for row in rows:
        cells = [
            _fmt(row["tenants"], "d", 7), _fmt(row.get("agents"), "d", 7), _fmt(row.get("grants"), "d", 7),
            _fmt(row.get("json_s"), ".3f", 12), _fmt(row.get("load_s"), ".2f", 8), _fmt(row.get("graph_s"), ".2f", 8),
            _fmt(row.get("rules_s"), ".2f", 8), _fmt(row.get("proofs_s"), ".2f", 8),
            _fmt(row.get("total_s"), ".2f", 8), _fmt(row.get("cpu_s"), ".2f", 8),
            _fmt(row.get("ratio_json"), ".0f", 10),
            _fmt(row.get("scaling"), ".2f", 8), _fmt(row.get("peak_mb"), ".0f", 8),
        ]
        print(" ".join(cells))
        if row.get("error"):
            print(f"        ! {row['error']}")


def measure(tenants: int, seed: int, timeout: float | None, keep: str | None) -> dict:
    row: dict = {"tenants": tenants}
    with tempfile.TemporaryDirectory(prefix=f"agentperm-bench-{tenants}-") as tmp:
        directory = os.path.join(keep, f"tenants-{tenants}") if keep else tmp
        gen_s, stats = generate_into(tenants, seed, directory)
        row.update(gen_s=gen_s, agents=stats["agents"], grants=stats["grants"], bytes=stats["bytes"])
        print(f"[{tenants} tenants] generated {stats['agents']} agents, {stats['tools']} tools, {stats['roles']} roles, "
              f"{stats['grants']} grants, {stats['credentials']} credentials, {stats['workflows']} workflows "
              f"({stats['bytes'] / 1e6:.1f} MB YAML) in {gen_s:.1f} s", flush=True)
        stages = run_worker("stages", directory, timeout)
        if "error" in stages:
            row["error"] = "stages: " + stages["error"]
        else:
            row.update({k: stages[k] for k in ("json_s", "load_s", "graph_s", "rules_s", "proofs_s")})
            row["stages_peak_mb"] = stages["peak_mb"]
            row["detail"] = stages
            print(f"[{tenants} tenants] stages: load {stages['load_s']:.2f} s, graph {stages['graph_s']:.2f} s, "
                  f"rules {stages['rules_s']:.2f} s, proofs {stages['proofs_s']:.2f} s "
                  f"(cpu: {', '.join(f'{k} {v:.2f}' for k, v in stages['cpu_s'].items())}); "
                  f"invariants {stages['proofs']['invariants']}, "
                  f"{stages['structural']['findings'] + stages['proofs']['findings']} findings", flush=True)
            breakdown = stages.get("breakdown")
            if breakdown:
                slow = sorted(breakdown["seconds"].items(), key=lambda kv: -kv[1])
                print(f"[{tenants} tenants] breakdown ({breakdown['cases']} prover cases, "
                      f"{breakdown['solver_questions']} distinct solver questions): "
                      + ", ".join(f"{k} {v:.2f} s" for k, v in slow if v >= 0.01), flush=True)
        check = run_worker("check", directory, timeout)
        if "error" in check:
            row["error"] = (row.get("error", "") + "; check: " + check["error"]).lstrip("; ")
        else:
            row.update(total_s=check["total_s"], cpu_s=check["cpu_s"], peak_mb=check["peak_mb"], findings=check["findings"])
            print(f"[{tenants} tenants] check end to end: {check['total_s']:.2f} s, peak {check['peak_mb']:.0f} MB, "
                  f"{check['findings']} findings (imports, not timed: {check['import_s']:.2f} s; "
                  f"code from {check['code']})", flush=True)
    if row.get("total_s") and row.get("json_s"):
        row["ratio_json"] = row["total_s"] / row["json_s"]
    return row


def add_scaling(rows: list[dict]) -> None:
    """(t_big / t_small) / (n_big / n_small) against the previous measured size: 1.0 is linear."""
    previous = None
    for row in rows:
        if previous is not None and row.get("total_s") and previous.get("total_s"):
            row["scaling"] = (row["total_s"] / previous["total_s"]) / (row["tenants"] / previous["tenants"])
        if row.get("total_s"):
            previous = row


def _busy(row: dict) -> str:
    """A note when wall time ran well ahead of CPU time: other processes were competing for the CPUs."""
    if row.get("cpu_s") and row["total_s"] > 1.2 * row["cpu_s"]:
        return f"; machine busy: wall/CPU = {row['total_s'] / row['cpu_s']:.1f}"
    return ""


def verdicts(rows: list[dict], doubling_run: bool) -> list[str]:
    """The two target lines. Verdicts are on wall time (`total s`); CPU time is shown beside it."""
    lines = []
    by_size = {r["tenants"]: r for r in rows if r.get("total_s")}
    target = by_size.get(TARGET_TENANTS)
    if target:
        verdict = "PASS" if target["total_s"] < TARGET_SECONDS else "FAIL"
        cpu = f", {target['cpu_s']:.1f} s CPU" if target.get("cpu_s") else ""
        lines.append(f"{TARGET_TENANTS} tenants under {TARGET_SECONDS:.0f} s: {verdict} "
                     f"(measured {target['total_s']:.1f} s wall{cpu}{_busy(target)})")
    else:
        failed = next((r for r in rows if r["tenants"] == TARGET_TENANTS), None)
        if failed:
            lines.append(f"{TARGET_TENANTS} tenants under {TARGET_SECONDS:.0f} s: FAIL "
                         f"({failed.get('error', 'not measured')})")
        else:
            lines.append(f"{TARGET_TENANTS} tenants under {TARGET_SECONDS:.0f} s: n/a "
                         f"(not measured; add {TARGET_TENANTS} to --tenants)")
    half = TARGET_TENANTS // 2
    if half in by_size and TARGET_TENANTS in by_size:
        small, big = by_size[half], by_size[TARGET_TENANTS]
        ratio = big["total_s"] / small["total_s"]
        verdict = "PASS" if ratio <= TARGET_DOUBLING else "FAIL"
        cpu = (f"; on CPU time {big['cpu_s'] / small['cpu_s']:.2f}x"
               if big.get("cpu_s") and small.get("cpu_s") else "")
        lines.append(f"doubling costs <= {TARGET_DOUBLING}x : {verdict} "
                     f"(measured t({TARGET_TENANTS})/t({half}) = {ratio:.2f}x on wall time{cpu})")
    else:
        measured = sorted(by_size)
        if len(measured) >= 2:
            small, big = measured[-2], measured[-1]
            t_small, t_big = by_size[small]["total_s"], by_size[big]["total_s"]
            exponent = math.log(t_big / t_small) / math.log(big / small)
            doubling = 2 ** exponent
            verdict = "PASS" if doubling <= TARGET_DOUBLING else "FAIL"
            lines.append(f"doubling costs <= {TARGET_DOUBLING}x : {verdict} (estimated {doubling:.2f}x from "
                         f"{small}->{big} tenants, t ~ n^{exponent:.2f}; run --sizes-doubling to measure "
                         f"{half} vs {TARGET_TENANTS})")
        else:
            lines.append(f"doubling costs <= {TARGET_DOUBLING}x : n/a (needs two sizes)")
    busy = [r["tenants"] for r in rows if r.get("total_s") and _busy(r)]
    if busy:
        lines.append(f"note: wall time ran >20% ahead of CPU time at {', '.join(map(str, busy))} tenants: other "
                     "processes were using the CPUs, so wall-time ratios and verdicts are pessimistic")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", default="10,100,1000", help="comma-separated sizes (default 10,100,1000)")
    parser.add_argument("--sizes-doubling", action="store_true",
                        help=f"also run {TARGET_TENANTS // 2} and {TARGET_TENANTS} tenants and report their ratio")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per subprocess (default 3600)")
    parser.add_argument("--profile", type=int, metavar="N",
                        help="also profile one end-to-end check at N tenants (cProfile, top 15)")
    parser.add_argument("--profile-only", action="store_true", help="with --profile: skip the table")
    parser.add_argument("--top", type=int, default=15, help="rows of the profile (default 15)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time each structural rule and the prover's parts (stages subprocess)")
    parser.add_argument("--snapshot", action=argparse.BooleanOptionalAction, default=True,
                        help="measure a frozen copy of analyzer/ and rules/ taken at start (default: on), so "
                             "concurrent edits cannot mix code versions within one run")
    parser.add_argument("--keep", metavar="DIR", help="keep generated deployments under DIR/tenants-N")
    parser.add_argument("--json", metavar="FILE", help="also write the raw measurements as JSON")
    parser.add_argument("--worker", choices=["stages", "check", "profile"], help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        if args.worker == "stages":
            result = worker_stages(args.dir)
        elif args.worker == "check":
            result = worker_check(args.dir)
        else:
            result = worker_profile(args.dir, args.top)
        print(json.dumps(result))
        return 0

    if args.breakdown:
        os.environ["AGENTPERM_BENCH_BREAKDOWN"] = "1"
    try:
        sizes = sorted({int(s) for s in args.tenants.split(",") if s.strip()})
    except ValueError:
        parser.error("--tenants takes comma-separated integers, e.g. 10,100,1000")
    if args.sizes_doubling:
        sizes = sorted(set(sizes) | {TARGET_TENANTS // 2, TARGET_TENANTS})
    if any(s < 1 for s in sizes):
        parser.error("sizes must be at least 1")
    global CODE_ROOT
    frozen = tempfile.TemporaryDirectory(prefix="agentperm-bench-code-") if args.snapshot else None
    if frozen is not None:
        CODE_ROOT = snapshot(frozen.name)
    try:
        return _run(args, sizes)
    finally:
        if frozen is not None:
            frozen.cleanup()


def _run(args, sizes: list[int]) -> int:
    print(f"agentperm check benchmark: sizes {sizes}, seed {args.seed}, python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, analyzer code {code_digest(CODE_ROOT)}"
          f"{' (frozen copy)' if CODE_ROOT != ROOT else ''}", flush=True)

    rows: list[dict] = []
    if not args.profile_only:
        for size in sizes:
            rows.append(measure(size, args.seed, args.timeout, args.keep))
        add_scaling(rows)
        print()
        print_table(rows)
        print()
        for line in verdicts(rows, args.sizes_doubling):
            print(line)

    if args.profile:
        with tempfile.TemporaryDirectory(prefix=f"agentperm-profile-{args.profile}-") as tmp:
            generate_into(args.profile, args.seed, tmp)
            print(f"\nprofile of one end-to-end check at {args.profile} tenants:", flush=True)
            profile = run_worker("profile", tmp, args.timeout, ["--top", str(args.top)])
            print(profile.get("report") or profile.get("error"))

    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
