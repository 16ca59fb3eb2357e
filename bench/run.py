"""The scale benchmark of issue 6: sizes S, M, L, XL, every stage, one table, PASS/FAIL per target.

    .venv/bin/python bench/run.py [--sizes S,M,L] [--timeout 900] [--json FILE]
    .venv/bin/python bench/run.py --sizes S,M,L,XL            # XL (10,000 tenants) is opt-in: it is long
    .venv/bin/python bench/run.py --messy [--sizes S,M,L]     # the messy deployments of issue 10 instead

Sizes (bench/generate.py, violations on, so witnesses are produced): S = 10 tenants, M = 100,
L = 1,000, XL = 10,000; 10 agents and 1-3 workflows per tenant. For each size, in order:

1. generate: a fresh subprocess writes the deployment into a temp directory, and the same
   data as JSON beside it (for the json.loads floor); the parent then copies the deployment
   with one role edited (one `when: "params.amount <= 50"` threshold raised to 80) for `diff`;
2. check: a fresh subprocess runs `agentperm check DIR` through the CLI's own entry point
   (analyzer.cli.main, in-process, after the imports), exactly as the command does it minus
   interpreter start-up and imports: wall time, CPU time, peak RSS;
3. stages: another fresh subprocess times each stage on the same objects: json.loads floor,
   load, graph, structural rules, proofs, the HTML report (rendered and written to a temp
   file), `diff` after the one role edit (the edited copy's load is timed apart), then decide
   throughput (20,000 calls sampled from the prover's structural cases, on one core) and the
   fuzzer's in-process check rate on the same calls (bench_fuzz's measurement).

Nothing asserts a time: the table and the PASS/FAIL lines are printed, and the exit code is 0.
--timeout bounds each size (all of its subprocesses together); a size that runs out says so in
the table, with whatever stages finished. See bench/README.md for every column.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import bench_check  # the code snapshot and peak-RSS helpers (bench_check itself is unchanged)

SIZES = {"S": 10, "M": 100, "L": 1000, "XL": 10000}
DEFAULT_SIZES = "S,M,L"
DECIDE_CALLS = 20_000
FUZZ_CALLS = 5_000

# targets of issue 6
L_CHECK_S = 10.0
L_CHECK_JSON = 60.0
L_PEAK_MB = 2048.0
XL_CHECK_S = 180.0
XL_PEAK_MB = 8192.0
XL_OVER_L = 12.0
L_DIFF_S = 3.0
L_REPORT_MB = 10.0
L_REPORT_S = 5.0
L_DECIDE_PER_S = 50_000

# the one role edit for `diff`: raise one ungated threshold (new access for 51 <= amount <= 80)
EDIT_FROM = 'when: "params.amount <= 50"}'
EDIT_TO = 'when: "params.amount <= 80"}'


# ---------------------------------------------------------------------------------------------
# Worker side: each runs in a fresh interpreter and appends one JSON line per finished step to
# its results file, so a worker killed at the timeout still leaves what it measured.

class _Results:
    def __init__(self, path: str):
        self.path = path

    def put(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=str) + "\n")
            handle.flush()


def _hwm_mb() -> float:
    """Peak RSS of this process so far (VmHWM; ru_maxrss where /proc is missing)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return bench_check._peak_mb()


def _children_mb() -> float:
    """The largest peak RSS among this process's finished children (helper processes, e.g. parallel provers)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _reset_hwm() -> bool:
    """Restart VmHWM at the current RSS (Linux >= 4.0), so each stage gets its own peak."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _cpu_children() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class _Stage:
    """Times one stage: wall, CPU (this process and its helper processes), peak RSS of the stage."""

    def __init__(self, results: _Results, name: str, **extra):
        self.results, self.name, self.extra = results, name, extra

    def __enter__(self):
        import gc

        gc.collect()
        self.resettable = _reset_hwm()
        self.cpu, self.child_cpu = time.process_time(), _cpu_children()
        self.start = time.perf_counter()
        return self

    def __exit__(self, kind, exc, tb):
        wall = time.perf_counter() - self.start
        record = {"stage": self.name, "s": wall, "cpu_s": time.process_time() - self.cpu
                  + _cpu_children() - self.child_cpu, "peak_mb": _hwm_mb(),
                  "peak_is_stage": self.resettable, "children_peak_mb": _children_mb(), **self.extra}
        if exc is not None:
            record["error"] = f"{kind.__name__}: {exc}"
        self.results.put(record)
        return False  # errors propagate: the worker reports them and stops


def _imports() -> float:
    import importlib

    start = time.perf_counter()
    for module in ("analyzer.loader", "analyzer.graph", "analyzer.rules", "analyzer.analysis", "analyzer.prover",
                   "analyzer.diff", "analyzer.decide", "analyzer.cli", "analyzer.render.html",
                   "analyzer.render.formats"):
        importlib.import_module(module)
    return time.perf_counter() - start


def worker_generate(tenants: int, seed: int, directory: str, json_dir: str, results: _Results) -> None:
    """Write the deployment, and the same data as JSON for the json.loads floor.

    The JSON is taken from the generator's own dictionaries (each section as emit_section receives
    it) rather than by parsing the YAML back, which costs minutes at XL; files it does not cover are
    parsed with libyaml, and small files are checked to parse to exactly the same data."""
    import generate
    import yaml

    sections: dict[str, str] = {}
    emit = generate.emit_section

    def capture(header, section, items):
        sections[section] = json.dumps({section: items})
        return emit(header, section, items)

    generate.emit_section = capture
    start = time.perf_counter()
    try:
        generated = generate.generate(tenants, seed=seed, violations=True)
    finally:
        generate.emit_section = emit
    generate.write(generated, directory)
    stats, violations = generated.stats, generated.violations
    gen_s = time.perf_counter() - start
    del generated
    start = time.perf_counter()
    os.makedirs(json_dir, exist_ok=True)
    json_bytes, parsed = 0, []
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".yaml"):
            continue
        path = os.path.join(directory, name)
        text = sections.pop(name[:-5], None)
        if text is None or os.path.getsize(path) <= 2_000_000:
            with open(path, encoding="utf-8") as handle:
                data = yaml.load(handle.read(), Loader=yaml.CSafeLoader)
            if text is None or json.loads(text) != data:
                text = json.dumps(data)
                parsed.append(name)
        json_bytes += len(text)
        with open(os.path.join(json_dir, name[:-5] + ".json"), "w", encoding="utf-8") as handle:
            handle.write(text)
    results.put({"stage": "generate", "s": gen_s, "json_convert_s": time.perf_counter() - start,
                 "json_bytes": json_bytes, "json_from_yaml": parsed, "stats": stats, "violations": violations})


def worker_check(directory: str, results: _Results) -> None:
    """`agentperm check DIR` through the CLI entry point, in-process after the imports."""
    import_s = _imports()
    from analyzer.cli import main as cli_main

    out = os.path.join(tempfile.mkdtemp(prefix="agentperm-run-check-"), "result.txt")
    code = None
    with _Stage(results, "check", import_s=import_s) as stage:
        try:
            cli_main.main(args=["check", directory, "--output", out], prog_name="agentperm", standalone_mode=True)
        except SystemExit as exc:
            code = exc.code
        stage.extra["exit_code"] = code
    with open(out, encoding="utf-8") as handle:
        tail = [line for line in handle.read().splitlines() if line.strip()][-1:]
    shutil.rmtree(os.path.dirname(out), ignore_errors=True)
    import analyzer

    results.put({"stage": "check-summary", "exit_code": code, "last_line": tail[0] if tail else "",
                 "code": os.path.dirname(analyzer.__file__)})


def _merged(structural, proofs):
    """One CheckResult from the two partial analyses (as analyze() with every rule would give)."""
    from dataclasses import replace

    from analyzer.findings import Finding

    return replace(proofs, findings=tuple(sorted((*structural.findings, *proofs.findings), key=Finding.sort_key)),
                   invariants=tuple(sorted((*structural.invariants, *proofs.invariants), key=lambda r: r.id)),
                   rules_run=tuple(sorted({*structural.rules_run, *proofs.rules_run})))


def worker_stages(directory: str, json_dir: str, new_dir: str, seed: int, results: _Results) -> None:
    import gc

    import_s = _imports()
    from analyzer import __version__, loader
    from analyzer import diff as diffmod
    from analyzer.analysis import analyze
    from analyzer.graph import PermissionGraph
    from analyzer.render.html import Streamed, attachment_name, render_report
    from analyzer.rules import load_rules

    results.put({"stage": "imports", "s": import_s})

    # json.loads floor: the same data, already JSON, parsed with json.loads (best of 3)
    texts = []
    for name in sorted(os.listdir(json_dir)):
        with open(os.path.join(json_dir, name), encoding="utf-8") as handle:
            texts.append(handle.read())
    results.put({"stage": "json", "s": bench_check.json_floor(texts), "json_bytes": sum(len(t) for t in texts)})
    del texts

    with _Stage(results, "load"):
        deployment = loader.load(directory)
    results.put({"stage": "shape", "agents": len(deployment.agents), "tenants": len(deployment.tenants),
                 "tools": len(deployment.tools), "roles": len(deployment.roles),
                 "grants": sum(len(r.grants) for r in deployment.roles.values()),
                 "credentials": len(deployment.credentials), "workflows": len(deployment.workflows)})
    with _Stage(results, "graph"):
        graph = PermissionGraph(deployment)
    with _Stage(results, "rules") as stage:
        rules = load_rules()
        structural_rules = {k: r for k, r in rules.items() if not r.is_invariant}
        structural = analyze(deployment, structural_rules, graph=graph)
        stage.extra["findings"] = len(structural.findings)
    with _Stage(results, "proofs") as stage:
        invariant_rules = {k: r for k, r in rules.items() if r.is_invariant}
        proofs = analyze(deployment, invariant_rules, graph=graph)
        stage.extra.update(findings=len(proofs.findings),
                           invariants={r.id: r.status for r in proofs.invariants},
                           witnesses=sum(len(r.witnesses) for r in proofs.invariants))
    result = _merged(structural, proofs)
    del structural, proofs

    # decide and the fuzzer's rate next, then the report, and diff last: the slowest stages come
    # last, so a size that runs out of --timeout still has every figure measured before them
    _decide_stages(deployment, seed, results)
    gc.collect()

    # the HTML report, as `agentperm check --report FILE.html` writes it (the DOT beside it too)
    folder = tempfile.mkdtemp(prefix="agentperm-run-report-")
    try:
        # the HTML and the summaries' full data (report.files/), then apart the whole graph's DOT,
        # which is streamed beside it: `check --report` writes both, the target is the HTML's
        with _Stage(results, "report") as stage:
            rendered = render_report(result, graph, rules, version=__version__, date="2025-01-01", fail_on="low",
                                     report_name="report.html")
            path = os.path.join(folder, "report.html")
            streamed = {n: a for n, a in rendered.attachments.items() if isinstance(a, Streamed)}
            for name in streamed:
                del rendered.attachments[name]
            rendered.write(path)
            sizes = {n: os.path.getsize(os.path.join(folder, n)) for n in rendered.attachments}
            stage.extra.update(html_mb=os.path.getsize(path) / 1e6, notes=list(rendered.notes),
                               beside_mb=sum(sizes.values()) / 1e6, beside_files=len(sizes),
                               dot_name=attachment_name("report.html"))
        with _Stage(results, "report-dot") as dot_stage:
            for name, content in streamed.items():
                with open(os.path.join(folder, name), "w", encoding="utf-8") as handle:
                    content.write_to(handle)
            dot_stage.extra.update(dot_mb=sum(os.path.getsize(os.path.join(folder, n)) for n in streamed) / 1e6,
                                   files=sorted(streamed))
        del rendered, streamed
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    del result

    # diff after one role edit: the edited copy's load is timed apart from diff itself
    with _Stage(results, "diff-load"):
        edited = loader.load(new_dir)
    with _Stage(results, "diff") as stage:
        changed = diffmod.diff(deployment, edited)
        stage.extra.update(new_access=len(changed.new_access), unknown=len(changed.unknown),
                           exit_code=changed.exit_code())


def _sample_cases(deployment, rng: random.Random, count: int):
    """A uniform sample (reservoir) of the prover's structural cases; reach.routes when that API is gone."""
    try:
        from analyzer.prover import cases as structural_cases

        source, items = "analyzer.prover.cases", ((c.workflow.id, c.chain, c.tool, c.operation, c.tenant, c.grants)
                                                  for c in structural_cases(deployment))
    except ImportError:
        from analyzer.reach import routes

        source, items = "analyzer.reach.routes", ((r.workflow.id, r.chain, r.tool, r.operation,
                                                   min(r.tenants), (r.grant,)) for r in routes(deployment))
    sample, seen = [], 0
    for item in items:
        seen += 1
        if len(sample) < count:
            sample.append(item)
        else:
            slot = rng.randrange(seen)
            if slot < count:
                sample[slot] = item
    return source, seen, sample


INTS = (0, 1, 25, 50, 51, 80, 100, 101, 250, 500, 501, 5000, 5001)


def _calls(deployment, rng: random.Random, count: int):
    """`count` well-formed calls on structural cases: declared params of the right types (values
    around the generator's thresholds), a subset of the operation's fields, and the gate of a gated
    grant about two times in three when there is one."""
    from analyzer.decide import Call

    source, seen, sample = _sample_cases(deployment, rng, count)
    calls = []
    for index in range(count):
        workflow, chain, tool, op, tenant, grants = sample[index % len(sample)] if sample else (None,) * 6
        if workflow is None:
            break
        domain = deployment.tenants[tenant].attributes.get("domain", "example.com") \
            if tenant in deployment.tenants else "example.com"
        params = {}
        for name, kind in sorted(op.params.items()):
            if kind.kind == "int":
                params[name] = rng.choice(INTS)
            elif kind.kind == "bool":
                params[name] = rng.random() < 0.5
            elif kind.kind == "enum":
                params[name] = rng.choice(kind.values)
            elif name == "to":
                params[name] = rng.choice((f"ops@{domain}", "someone@elsewhere.example"))
            else:
                params[name] = f"text-{rng.randrange(1000)}"
        fields = tuple(rng.sample(list(op.fields), rng.randint(0, len(op.fields)))) if op.fields else ()
        gates = sorted({g.approval for g in grants if g.approval})
        gate = rng.choice(gates) if gates and rng.random() < 0.67 else None
        calls.append(Call(workflow, tuple(chain), tool.id, op.id, tenant, fields, params, gate))
    return source, seen, calls


def _decide_stages(deployment, seed: int, results: _Results) -> None:
    from analyzer.decide import Decider

    start = time.perf_counter()
    rng = random.Random(seed)
    source, cases_seen, calls = _calls(deployment, rng, DECIDE_CALLS)
    prepare_s = time.perf_counter() - start
    start = time.perf_counter()
    decider = Decider(deployment)
    build_s = time.perf_counter() - start
    pinned, cores = None, None
    if hasattr(os, "sched_setaffinity"):  # one core, as the target says (restored after the fuzzer's rate)
        cores = os.sched_getaffinity(0)
        pinned = min(cores)
        os.sched_setaffinity(0, {pinned})
    try:
        _rates(deployment, decider, calls, source, cases_seen, prepare_s, build_s, pinned, results)
    finally:
        if cores is not None:
            os.sched_setaffinity(0, cores)


def _rates(deployment, decider, calls, source, cases_seen, prepare_s, build_s, pinned, results: _Results) -> None:
    import statistics

    decide = decider.decide
    for call in calls[:1000]:  # warm-up (CEL closures, dict resizes)
        decide(call)
    rates, cpu_rates, allowed = [], [], 0
    for _ in range(3):
        start, cpu = time.perf_counter(), time.process_time()
        allowed = sum(1 for call in calls if decide(call).allow)
        rates.append(len(calls) / (time.perf_counter() - start))
        cpu_rates.append(len(calls) / max(time.process_time() - cpu, 1e-9))
    results.put({"stage": "decide", "per_s": statistics.median(rates), "rates": rates, "calls": len(calls),
                 "per_cpu_s": statistics.median(cpu_rates),
                 "allowed": allowed, "source": source, "cases": cases_seen, "prepare_s": prepare_s,
                 "decider_build_s": build_s, "cpu": pinned, "peak_mb": _hwm_mb()})

    # the fuzzer's in-process check (bench_fuzz: send to a module:function target + oracle + judge)
    from types import SimpleNamespace

    from analyzer.harness import reference
    from analyzer.harness.strategies import Probe
    from analyzer.harness.targets import resolve

    saved = list(sys.path)
    import bench_fuzz  # inserts the repository at sys.path[0]; analyzer is already imported from CODE_ROOT
    sys.path[:] = saved

    probes = [Probe("sweep", body=call.to_request(deployment)) for call in calls[:FUZZ_CALLS]]
    universe = SimpleNamespace(d=deployment, decider=decider)
    target = resolve(reference.for_deployment(deployment))
    bench_fuzz._checks(universe, target, probes[:200])  # warm-up
    count, seconds, failures = bench_fuzz._checks(universe, target, probes)
    results.put({"stage": "fuzz", "per_s": count / seconds if seconds > 0 else math.inf, "calls": count,
                 "failures": failures})


def _worker_main(args) -> int:
    results = _Results(args.results)
    try:
        if args.worker == "generate":
            worker_generate(args.tenants_n, args.seed, args.dir, args.json_dir, results)
        elif args.worker == "check":
            worker_check(args.dir, results)
        else:
            worker_stages(args.dir, args.json_dir, args.new_dir, args.seed, results)
    except BaseException as exc:  # noqa: BLE001 - tell the parent what stopped the worker, then fail
        import traceback

        results.put({"stage": "error", "error": f"{type(exc).__name__}: {exc}",
                     "traceback": traceback.format_exc(limit=6)})
        return 1
    return 0


# ---------------------------------------------------------------------------------------------
# Driver side

def _process_tree(pid: int) -> list[int]:
    """The process and its descendants (Linux /proc; just the process elsewhere)."""
    pids, index = [pid], 0
    while index < len(pids):
        current = pids[index]
        index += 1
        try:
            threads = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for thread in threads:
            try:
                with open(f"/proc/{current}/task/{thread}/children", encoding="ascii") as handle:
                    pids.extend(int(child) for child in handle.read().split())
            except (OSError, ValueError):
                pass
    return pids


def _pss_mb(pid: int) -> float:
    """Proportional set size: private pages plus a share of pages shared with other processes (such as
    the copy-on-write pages a forked worker shares with its parent), so a tree's PSS adds up."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def _run_worker(mode: str, argv: list[str], deadline: float, on_record,
                memory: dict | None = None) -> tuple[list[dict], str | None]:
    """Run one worker until it ends or the deadline; returns its records and an error (or None).

    While the worker has helper processes (forked provers, say), the summed PSS of its process tree
    is sampled at each poll and its maximum is put in ``memory["tree_pss_peak_mb"]``: adding RSS
    would count the pages a forked worker shares with its parent twice."""
    started = time.monotonic()
    if deadline - started <= 0:
        return [], "not run: the size's --timeout was used up"
    handle, results_path = tempfile.mkstemp(prefix=f"agentperm-run-{mode}-", suffix=".jsonl")
    os.close(handle)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (bench_check.CODE_ROOT, HERE, env.get("PYTHONPATH")) if p)
    command = [sys.executable, os.path.abspath(__file__), "--worker", mode, "--results", results_path, *argv]
    records: list[dict] = []
    error = None
    offset = 0
    with tempfile.TemporaryFile() as stderr:
        # its own session, so that at the deadline it and its helper processes (dot, provers) go together
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
                                start_new_session=True)
        try:
            while True:
                finished = proc.poll() is not None
                with open(results_path, "rb") as results:
                    results.seek(offset)
                    chunk = results.read()
                complete = chunk[: chunk.rfind(b"\n") + 1]
                offset += len(complete)
                for line in complete.decode("utf-8").splitlines():
                    record = json.loads(line)
                    records.append(record)
                    on_record(record)
                if finished:
                    break
                pause = 0.2
                if memory is not None:
                    tree = _process_tree(proc.pid)
                    if len(tree) > 1:
                        sampled = time.perf_counter()
                        memory["helpers"] = max(memory.get("helpers", 0), len(tree) - 1)
                        memory["tree_pss_peak_mb"] = max(memory.get("tree_pss_peak_mb", 0.0),
                                                         sum(_pss_mb(p) for p in tree))
                        memory["samples"] = memory.get("samples", 0) + 1
                        # reading smaps_rollup walks page tables (~25 ms per GB): keep it under 10% of a core
                        pause = max(0.1, 9 * (time.perf_counter() - sampled))
                if time.monotonic() > deadline:
                    error = f"timed out after {time.monotonic() - started:.0f} s"
                    break
                time.sleep(pause)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # the worker's own process group only
                proc.wait()
            os.unlink(results_path)
        if error is None and proc.returncode != 0:
            failed = next((r for r in records if r.get("stage") == "error"), None)
            if failed:
                error = failed["error"]
            else:
                stderr.seek(0)
                tail = stderr.read().decode("utf-8", "replace").strip().splitlines()[-4:]
                error = f"worker {mode} exited {proc.returncode}: " + " | ".join(tail)
    return records, error


def snapshot(into: str) -> str:
    """bench_check's frozen copy of analyzer/ and rules/, plus the report templates the HTML stage reads."""
    bench_check.snapshot(into)
    shutil.copytree(os.path.join(ROOT, "reports", "templates"), os.path.join(into, "reports", "templates"))
    return into


def edit_one_role(directory: str, into: str) -> str:
    """A copy of the deployment with one role edited: the first ungated `params.amount <= 50` grant of
    a role some agent holds becomes `<= 80`. Unchanged files are hard links (copies where that fails)."""
    os.makedirs(into, exist_ok=True)
    for name in os.listdir(directory):
        if name != "roles.yaml":
            try:
                os.link(os.path.join(directory, name), os.path.join(into, name))
            except OSError:
                shutil.copy2(os.path.join(directory, name), os.path.join(into, name))
    with open(os.path.join(directory, "agents.yaml"), encoding="utf-8") as handle:
        held = set(re.findall(r"[\w.-]+", " ".join(re.findall(r"^\s+roles: \[(.*)\]", handle.read(), re.MULTILINE))))
    with open(os.path.join(directory, "roles.yaml"), encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    role, what = None, None
    for index, line in enumerate(lines):
        header = re.match(r"^  ([\w.-]+):\s*$", line)
        if header:
            role = header.group(1)
        elif role in held and EDIT_FROM in line:
            lines[index] = line.replace(EDIT_FROM, EDIT_TO)
            what = f"role {role} (roles.yaml line {index + 1}): params.amount <= 50 -> <= 80"
            break
    if what is None:
        raise RuntimeError(f"no held role has a grant with {EDIT_FROM!r} to edit")
    with open(os.path.join(into, "roles.yaml"), "w", encoding="utf-8", newline="\n") as handle:
        handle.write("\n".join(lines))
    return what


def _progress(label: str):
    def show(record: dict) -> None:
        stage = record.get("stage")
        if stage == "generate":
            s = record["stats"]
            print(f"[{label}] generated {s['agents']} agents, {s['tools']} tools, {s['roles']} roles, "
                  f"{s['grants']} grants ({s['grants_with_when']} with when, {s['gated_grants']} gated), "
                  f"{s['credentials']} credentials, {s['workflows']} workflows, {s['delegations']} delegations, "
                  f"{s['bytes'] / 1e6:.1f} MB YAML in {record['s']:.1f} s (JSON copy {record['json_convert_s']:.1f} s)",
                  flush=True)
        elif stage == "check":
            print(f"[{label}] check end to end: {record['s']:.2f} s wall, {record['cpu_s']:.2f} s CPU, peak "
                  f"{record['peak_mb']:.0f} MB (imports before the clock: {record['import_s']:.2f} s), "
                  f"exit {record.get('exit_code')}", flush=True)
        elif stage == "check-summary":
            print(f"[{label}]   {record['last_line']}  (code from {record['code']})", flush=True)
        elif stage == "json":
            print(f"[{label}] json.loads floor {record['s']:.3f} s ({record['json_bytes'] / 1e6:.1f} MB JSON)",
                  flush=True)
        elif stage in ("load", "graph", "rules", "proofs", "report", "report-dot", "diff-load", "diff"):
            extra = ""
            if stage == "proofs":
                extra = f"; invariants {record.get('invariants')}, {record.get('witnesses')} witnesses"
            elif stage == "rules":
                extra = f"; {record.get('findings')} structural findings"
            elif stage == "report":
                extra = (f"; {record.get('html_mb', 0):.1f} MB HTML, {record.get('beside_mb', 0):.1f} MB in "
                         f"{record.get('beside_files', 0)} files of full data beside it")
            elif stage == "report-dot":
                extra = f"; the whole graph's DOT beside the report, {record.get('dot_mb', 0):.1f} MB"
            elif stage == "diff":
                extra = f"; {record.get('new_access')} new access classes, {record.get('unknown')} undecided"
            print(f"[{label}] {stage}: {record['s']:.2f} s wall, {record['cpu_s']:.2f} s CPU, stage peak "
                  f"{record['peak_mb']:.0f} MB{extra}" + (f"  ! {record['error']}" if record.get("error") else ""),
                  flush=True)
        elif stage == "decide":
            cpu = f", {record['per_cpu_s']:,.0f} per CPU second" if record.get("per_cpu_s") else ""
            print(f"[{label}] decide: {record['per_s']:,.0f}/s on one core{cpu} (median of 3 x {record['calls']:,} calls "
                  f"from {record['cases']:,} cases of {record['source']}; {record['allowed']:,} allowed)", flush=True)
        elif stage == "fuzz":
            print(f"[{label}] fuzzer check, in-process: {record['per_s']:,.0f} calls/s ({record['calls']:,} calls, "
                  f"{record['failures']} disagreements)", flush=True)
    return show


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def measure(label: str, seed: int, timeout: float, keep: str | None) -> dict:
    tenants = SIZES[label]
    row: dict = {"size": label, "tenants": tenants, "errors": []}
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    row["loadavg_start"] = _loadavg()
    with tempfile.TemporaryDirectory(prefix=f"agentperm-run-{label}-") as tmp:
        base = os.path.join(keep, label) if keep else tmp
        directory, json_dir, new_dir = (os.path.join(base, p) for p in ("deployment", "json", "edited"))
        show = _progress(label)

        records, error = _run_worker("generate", ["--tenants-n", str(tenants), "--seed", str(seed), "--dir", directory,
                                                  "--json-dir", json_dir], deadline, show)
        gen = next((r for r in records if r["stage"] == "generate"), None)
        if gen is None:
            row["errors"].append(f"generate: {error}")
            row["status"] = "timeout" if error and "timed out" in error else "error"
            return row
        row.update(generate=gen, agents=gen["stats"]["agents"])
        row["edit"] = edit_one_role(directory, new_dir)
        print(f"[{label}] diff edit: {row['edit']}", flush=True)

        check_started = time.monotonic()
        memory: dict = {}
        records, error = _run_worker("check", ["--dir", directory], deadline, show, memory)
        row["check_worker_s"] = time.monotonic() - check_started
        row["check_memory"] = memory
        if memory.get("helpers"):
            print(f"[{label}] check used {memory['helpers']} helper process(es): peak summed PSS of the process "
                  f"tree {memory['tree_pss_peak_mb']:.0f} MB ({memory['samples']} samples)", flush=True)
        for record in records:
            if record["stage"] in ("check", "check-summary"):
                row[record["stage"]] = record
        if error:
            row["errors"].append(f"check: {error}")

        records, error = _run_worker("stages", ["--dir", directory, "--json-dir", json_dir, "--new-dir", new_dir,
                                                "--seed", str(seed)], deadline, show)
        row["stages"] = {r["stage"]: r for r in records if r.get("stage") not in ("error",)}
        if error:
            row["errors"].append(f"stages: {error}")
    row["wall_s"] = time.monotonic() - started
    row["loadavg_end"] = _loadavg()
    row["status"] = ("timeout" if any("timed out" in e or "not run" in e for e in row["errors"])
                     else "error" if row["errors"] else "ok")
    return row


# ---------------------------------------------------------------------------------------------
# The table and the verdicts

def _get(row: dict, *path):
    value = row
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def figures(row: dict) -> dict:
    stages = row.get("stages", {})
    check = row.get("check") or {}
    json_s = _get(stages, "json", "s")
    check_s = check.get("s")
    peak = check.get("peak_mb")  # the check process's own peak RSS (VmHWM, exact)
    tree = (row.get("check_memory") or {}).get("tree_pss_peak_mb")
    if peak is not None and tree:
        peak = max(peak, tree)  # with helper processes: the sampled peak of the whole tree's PSS
    return {
        "agents": row.get("agents"), "json": json_s, "load": _get(stages, "load", "s"),
        "graph": _get(stages, "graph", "s"), "rules": _get(stages, "rules", "s"),
        "proofs": _get(stages, "proofs", "s"), "check": check_s,
        "check_json": check_s / json_s if check_s and json_s else None,
        "report": _get(stages, "report", "s"), "report_mb": _get(stages, "report", "html_mb"),
        "report_dot": _get(stages, "report-dot", "s"),
        "diff": _get(stages, "diff", "s"), "decide": _get(stages, "decide", "per_s"),
        "fuzz": _get(stages, "fuzz", "per_s"), "peak": peak,
        "check_cpu": check.get("cpu_s"), "helpers": bool((row.get("check_memory") or {}).get("helpers")),
    }


COLUMNS = [  # (header, key, format, width)
    ("size", None, None, 4), ("agents", "agents", "d", 7), ("json.loads s", "json", ".3f", 12),
    ("load s", "load", ".2f", 7), ("graph s", "graph", ".2f", 7), ("rules s", "rules", ".2f", 7),
    ("proofs s", "proofs", ".2f", 8), ("check s", "check", ".2f", 8), ("cpu s", "check_cpu", ".2f", 7), ("check/json", "check_json", ".0f", 10),
    ("report s", "report", ".2f", 8), ("report MB", "report_mb", ".1f", 9), ("DOT s", "report_dot", ".2f", 6), ("diff s", "diff", ".2f", 7),
    ("decide/s", "decide", ",.0f", 9), ("fuzz/s", "fuzz", ",.0f", 7), ("peak MB", "peak", ".0f", 7),
]


def print_table(rows: list[dict]) -> None:
    print(" ".join(h.rjust(w) for h, _, _, w in COLUMNS))
    print("-" * (sum(w for *_, w in COLUMNS) + len(COLUMNS) - 1))
    for row in rows:
        f = figures(row)
        missing = "t/o" if row.get("status") == "timeout" else ("err" if row.get("status") == "error" else "-")
        cells = [row["size"].rjust(4)]
        for _, key, spec, width in COLUMNS[1:]:
            value = f.get(key)
            text = missing if value is None else format(value, spec)
            if key == "peak" and value is not None and f["helpers"]:
                text += "+"
            cells.append(text.rjust(width))
        print(" ".join(cells))
        for error in row.get("errors", ()):
            print(f"     ! {error}")
    loads = ", ".join(f"{r['size']} {r['loadavg_start']:.1f} -> {r['loadavg_end']:.1f}" for r in rows
                      if r.get("loadavg_start") is not None and r.get("loadavg_end") is not None)
    if loads:
        busy = any(max(r["loadavg_start"], r["loadavg_end"]) > (os.cpu_count() or 1) for r in rows
                   if r.get("loadavg_start") is not None and r.get("loadavg_end") is not None)
        print(f"load average (1 min) at the start and end of each size, on {os.cpu_count()} CPUs: {loads}"
              + (". Above the CPU count, other processes shared the machine: wall times are inflated, CPU times "
                 "much less." if busy else " (the machine was otherwise idle)."))


def _decide_detail(row: dict, rate: float, fuzz: float | None) -> str:
    cpu = _get(row, "stages", "decide", "per_cpu_s")
    text = f"measured {rate:,.0f}/s wall" + (f", {cpu:,.0f} per CPU second" if cpu else "")
    if cpu and cpu > 1.2 * rate:
        text += " (the core was shared with other processes: wall is pessimistic)"
    if fuzz:
        text += f"; the fuzzer's in-process check on the same calls: {fuzz:,.0f} calls/s"
    return text


def _peak_detail(row: dict) -> str:
    memory = row.get("check_memory") or {}
    if not memory.get("helpers"):
        return ""
    return (f": the check process's own peak RSS {_get(row, 'check', 'peak_mb') or 0:.0f} MB, the peak summed PSS "
            f"with its {memory['helpers']} helper process(es) {memory['tree_pss_peak_mb']:.0f} MB")


def _mark(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def verdicts(rows: list[dict], asked: list[str]) -> list[str]:
    by = {r["size"]: r for r in rows}
    lines: list[str] = []

    def absent(size: str) -> str | None:
        if size not in asked:
            return f"not run (add --sizes {','.join(asked + [size])})"
        row = by.get(size)
        if row is None:
            return "not run"
        return None

    def missing(size: str, what: str) -> str:
        row = by[size]
        reason = "; ".join(row.get("errors", ())) or "not measured"
        return f"FAIL ({what} not measured: {reason})"

    # L
    why = absent("L")
    f = figures(by["L"]) if why is None else {}
    line = f"L  full check under {L_CHECK_S:.0f} s wall ({os.cpu_count()} cores here)"
    if why:
        lines.append(f"L: {line[3:]}: {why}")
    else:
        lines.append(f"{line}: " + (f"{_mark(f['check'] < L_CHECK_S)} (measured {f['check']:.2f} s, "
                                     f"{f['check_cpu']:.2f} s CPU)" if f["check"] is not None else missing("L", "check")))
    checks = [
        (f"check at most {L_CHECK_JSON:.0f}x json.loads", "check_json",
         lambda v: (v <= L_CHECK_JSON, f"measured {v:.0f}x: {f['check']:.2f} s / {f['json']:.3f} s")),
        (f"peak memory under {L_PEAK_MB / 1024:.0f} GB", "peak",
         lambda v: (v < L_PEAK_MB, f"measured {v:.0f} MB{_peak_detail(by['L'])}")),
        (f"diff after one role edit under {L_DIFF_S:.0f} s", "diff",
         lambda v: (v < L_DIFF_S, (f"measured {v:.2f} s; loading the edited copy, not counted: "
                                   f"{_get(by['L'], 'stages', 'diff-load', 's') or 0:.2f} s"))),
        (f"HTML report under {L_REPORT_MB:.0f} MB", "report_mb",
         lambda v: (v < L_REPORT_MB, f"measured {v:.1f} MB")),
        (f"HTML report rendered in under {L_REPORT_S:.0f} s", "report",
         lambda v: (v < L_REPORT_S, (f"measured {v:.2f} s; the whole graph's DOT streamed beside it, not counted: "
                                     f"{_get(by['L'], 'stages', 'report-dot', 's') or 0:.2f} s, "
                                     f"{_get(by['L'], 'stages', 'report-dot', 'dot_mb') or 0:.0f} MB"))),
        (f"decide at least {L_DECIDE_PER_S:,} decisions/s on one core", "decide",
         lambda v: (v >= L_DECIDE_PER_S, _decide_detail(by["L"], v, f.get("fuzz")))),
    ]
    for text, key, judge in checks:
        if why:
            lines.append(f"L: {text}: {why}")
        elif f.get(key) is None:
            lines.append(f"L  {text}: {missing('L', key)}")
        else:
            ok, detail = judge(f[key])
            lines.append(f"L  {text}: {_mark(ok)} ({detail})")

    # XL
    why = absent("XL")
    text = f"full check completes under {XL_CHECK_S / 60:.0f} min and {XL_PEAK_MB / 1024:.0f} GB"
    if why:
        lines.append(f"XL: {text}: {why}")
        lines.append(f"XL: time(XL) / time(L) at most {XL_OVER_L:.0f}: {why}")
        return lines
    g = figures(by["XL"])
    unfinished = None  # seconds the XL check ran (imports included) before the deadline stopped it
    if g["check"] is None and any(e.startswith("check: timed out") for e in by["XL"].get("errors", ())):
        unfinished = by["XL"].get("check_worker_s")
    if unfinished:
        lines.append(f"XL {text}: FAIL (not finished after {unfinished:.0f} s, when its --timeout stopped it)")
    elif g["check"] is None:
        lines.append(f"XL {text}: {missing('XL', 'check')}")
    else:
        ok = g["check"] < XL_CHECK_S and g["peak"] is not None and g["peak"] < XL_PEAK_MB
        lines.append(f"XL {text}: {_mark(ok)} (measured {g['check']:.1f} s, {g['check_cpu']:.1f} s CPU, "
                     f"peak {g['peak'] or 0:.0f} MB{_peak_detail(by['XL'])})")
    if unfinished and f.get("check"):
        lines.append(f"XL time(XL) / time(L) at most {XL_OVER_L:.0f}: FAIL (more than {unfinished / f['check']:.0f}: "
                     f"XL not finished after {unfinished:.0f} s, L took {f['check']:.2f} s)")
    elif "L" not in by or f.get("check") is None or g["check"] is None:
        lines.append(f"XL time(XL) / time(L) at most {XL_OVER_L:.0f}: FAIL (needs both checks measured)"
                     if "L" in asked else f"XL: time(XL) / time(L) at most {XL_OVER_L:.0f}: not run (add L to --sizes)")
    else:
        ratio = g["check"] / f["check"]
        lines.append(f"XL time(XL) / time(L) at most {XL_OVER_L:.0f}: {_mark(ratio <= XL_OVER_L)} "
                     f"(measured {ratio:.1f}: {g['check']:.1f} s / {f['check']:.2f} s)")
    return lines


def _timeouts(parser, text: str) -> dict[str, float]:
    """`900` or `900,XL=600`: the default for every size, then overrides."""
    limits: dict[str, float] = {}
    default = 900.0
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            if "=" in part:
                size, value = part.split("=", 1)
                if size.strip().upper() not in SIZES:
                    raise ValueError(size)
                limits[size.strip().upper()] = float(value)
            else:
                default = float(part)
    except ValueError:
        parser.error("--timeout takes SECONDS, optionally followed by SIZE=SECONDS overrides (900,XL=600)")
    return {size: limits.get(size, default) for size in SIZES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES,
                        help=f"comma-separated among {','.join(SIZES)} (default {DEFAULT_SIZES}; XL is opt-in)")
    parser.add_argument("--timeout", default="900", metavar="SECONDS[,SIZE=SECONDS...]",
                        help="seconds per size, all of its subprocesses together (default 900); "
                             "per-size overrides after a comma, e.g. 900,XL=600")
    parser.add_argument("--json", metavar="FILE", help="also write every measurement as JSON")
    parser.add_argument("--seed", type=int, default=1, help="generator and call-sampling seed (default 1)")
    parser.add_argument("--keep", metavar="DIR", help="keep the generated deployments under DIR/<size>/")
    parser.add_argument("--snapshot", action=argparse.BooleanOptionalAction, default=True,
                        help="measure a frozen copy of analyzer/ and rules/ taken at start (default: on)")
    parser.add_argument("--messy", action="store_true",
                        help="run the messy benchmark of issue 10 (bench/bench_messy.py) on the sizes instead")
    parser.add_argument("--worker", choices=["generate", "check", "stages"], help=argparse.SUPPRESS)
    parser.add_argument("--results", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--json-dir", help=argparse.SUPPRESS)
    parser.add_argument("--new-dir", help=argparse.SUPPRESS)
    parser.add_argument("--tenants-n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker_main(args)

    asked = [s.strip().upper() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in asked if s not in SIZES]
    if unknown or not asked:
        parser.error(f"--sizes takes a comma-separated list of {', '.join(SIZES)}")
    asked = sorted(set(asked), key=list(SIZES).index)
    timeouts = _timeouts(parser, args.timeout)
    if args.messy:
        import bench_messy

        return bench_messy.run(",".join(asked), args.seed, max(timeouts[s] for s in asked), args.keep, args.snapshot)

    frozen = tempfile.TemporaryDirectory(prefix="agentperm-run-code-") if args.snapshot else None
    if frozen is not None:
        bench_check.CODE_ROOT = snapshot(frozen.name)
    try:
        limits = ", ".join(f"{s} {timeouts[s]:.0f} s" for s in asked)
        print(f"agentperm scale benchmark (issue 6): sizes {', '.join(f'{s}={SIZES[s]} tenants' for s in asked)}; "
              f"seed {args.seed}; timeout per size: {limits}; python {sys.version.split()[0]}; "
              f"{os.cpu_count()} CPUs; analyzer code {bench_check.code_digest(bench_check.CODE_ROOT)}"
              f"{' (frozen copy)' if frozen else ''}", flush=True)
        rows = [measure(size, args.seed, timeouts[size], args.keep) for size in asked]
    finally:
        if frozen is not None:
            frozen.cleanup()
    print()
    print_table(rows)
    print()
    for line in verdicts(rows, asked):
        print(line)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"sizes": rows, "verdicts": verdicts(rows, asked)}, handle, indent=2, sort_keys=True,
                      default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
