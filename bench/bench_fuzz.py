"""How fast the fuzzer checks calls: in-process, over HTTP on loopback, beside decide's own rate.

    .venv/bin/python bench/bench_fuzz.py [--deployment fixtures/agency] [--max-examples 300] [--http-calls 2000]

Four numbers, calls per second:

* decide: the oracle alone (parse_request + Decider.decide) on the boundary sweep's calls;
* check, in-process: send + oracle + judge for the same calls through the callable target
  ``analyzer.harness.reference:decide`` (module:function), no Hypothesis;
* campaign, in-process: a whole ``agentperm fuzz`` campaign (sweep + Hypothesis) against it;
* HTTP, loopback: the same checks, then a campaign, against ``agentperm serve`` started in a
  subprocess on 127.0.0.1 and a free port (bounded by --http-calls, stopped afterwards).

Targets: at least 2,000 calls/s checked in-process and 300 calls/s over HTTP. It only prints;
there are no timed assertions anywhere.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

TARGET_IN_PROCESS = 2000
TARGET_HTTP = 300


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def _checks(universe, target, probes) -> tuple[int, float, int]:
    from analyzer.harness.fuzz import expect, judge

    started = time.perf_counter()
    failures = 0
    for probe in probes:
        observed = target.send(probe.payload(), probe.body)
        failures += judge(expect(universe, probe), observed) is not None
    return len(probes), time.perf_counter() - started, failures


def _start_server(deployment: str, port: int) -> subprocess.Popen:
    import httpx

    command = [sys.executable, "-c", "from analyzer.cli import main; main()", "serve", deployment,
               "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited: {process.stderr.read().decode(errors='replace')}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.05)
    process.terminate()
    raise SystemExit("the server did not start within 20 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployment", default=os.path.join(ROOT, "fixtures", "agency"))
    parser.add_argument("--max-examples", type=int, default=300)
    parser.add_argument("--http-calls", type=int, default=2000, help="upper bound on the HTTP checks")
    args = parser.parse_args()

    from analyzer.decide import Decider, parse_request
    from analyzer.harness import reference
    from analyzer.harness.fuzz import run_campaign
    from analyzer.harness.strategies import Universe
    from analyzer.harness.targets import HttpTarget, resolve
    from analyzer.loader import load

    os.environ.setdefault(reference.ENV, args.deployment)
    deployment = load(args.deployment)
    started = time.perf_counter()
    universe = Universe(deployment)
    print(f"deployment {args.deployment}: {len(universe.routes)} routes, {len(universe.sweep)} sweep calls "
          f"(universe built in {time.perf_counter() - started:.2f} s)")
    probes = list(universe.sweep)
    bodies = [p.body for p in probes]

    decider = Decider(deployment)
    rounds = max(1, 5000 // max(len(bodies), 1))
    started = time.perf_counter()
    for _ in range(rounds):
        for body in bodies:
            decider.decide(parse_request(body, deployment))
    decide_rate = _rate(rounds * len(bodies), time.perf_counter() - started)

    target = resolve("analyzer.harness.reference:decide")
    count, seconds, failures = _checks(universe, target, probes * rounds)
    check_rate = _rate(count, seconds)
    result = run_campaign(deployment, target, max_examples=args.max_examples, universe=universe, progress=False)
    rows = [("decide (the oracle alone)", decide_rate, None),
            ("check, in-process (module:function)", check_rate, TARGET_IN_PROCESS),
            (f"campaign, in-process ({result.calls} calls)", result.rate, None)]
    if failures or result.failures:
        print(f"warning: the reference callable disagreed with decide ({failures + len(result.failures)})")

    port = _free_port()
    server = _start_server(args.deployment, port)
    try:
        http = HttpTarget(f"http://127.0.0.1:{port}")
        bounded = probes[: args.http_calls]
        count, seconds, failures = _checks(universe, http, bounded)
        rows.append((f"check, HTTP loopback ({count} calls)", _rate(count, seconds), TARGET_HTTP))
        examples = max(0, min(args.max_examples, (args.http_calls - count) // 4))
        result = run_campaign(deployment, http, max_examples=examples, universe=universe, progress=False,
                              sweep=False)
        rows.append((f"campaign, HTTP loopback ({result.calls} calls)", result.rate, None))
        http.close()
        if failures or result.failures:
            print(f"warning: the reference server disagreed with decide ({failures + len(result.failures)})")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()

    width = max(len(name) for name, _, _ in rows)
    print(f"{'':{width}}  calls/s   vs decide   target")
    for name, rate, target_rate in rows:
        verdict = "" if target_rate is None else (f">= {target_rate}: " + ("met" if rate >= target_rate else "MISSED"))
        print(f"{name:{width}}  {rate:8.0f}   {rate / decide_rate:8.1%}   {verdict}")


if __name__ == "__main__":
    main()
