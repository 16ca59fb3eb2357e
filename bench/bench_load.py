"""Loading alone: `analyzer.loader.load` against the json.loads floor of the same data.

    .venv/bin/python bench/bench_load.py DIR [--repeat N] [--reference] [--memory]

Prints, for the deployment in DIR: the json.loads floor (the same data as JSON, GC on, best
of 3, as bench/run.py measures it), then `load(DIR)` best of N (wall and CPU seconds, and the
ratio to the floor). ``--reference`` also times `load(DIR, fast=False)` (every file through
libyaml, as before yaml_rs). ``--memory`` measures peak memory of each in a fresh process
(resident set size, the process's own high-water mark), and the memory the loaded
Deployment keeps. Positions are not asked for here; ``--locs`` then resolves every
definition's position and times that too. Nothing is asserted: this prints numbers.
"""

from __future__ import annotations

import argparse
import gc
import glob
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import bench_check  # the json.loads floor, measured as bench/run.py does


def _json_floor(directory: str) -> tuple[float, int]:
    import yaml_rs

    texts = []
    for path in sorted(glob.glob(os.path.join(directory, "**", "*.y*ml"), recursive=True)):
        with open(path, encoding="utf-8") as handle:
            texts.append(json.dumps(yaml_rs.loads(handle.read(), parse_datetime=False)))
    return bench_check.json_floor(texts), sum(map(len, texts))


def _time_load(directory: str, fast: bool, repeat: int) -> tuple[float, float]:
    from analyzer import loader

    wall = cpu = float("inf")
    for _ in range(repeat):
        gc.collect()
        start, start_cpu = time.perf_counter(), time.process_time()
        deployment = loader.load(directory, fast=fast)
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
        del deployment
    return wall, cpu


def _every_loc(deployment) -> int:
    """Touch every definition's position and every field position (as a full diff would)."""
    count = 0
    sections = ("tenants", "people", "tools", "roles", "agents", "credentials", "gates", "workflows")
    for section in sections:
        for definition in getattr(deployment, section).values():
            count += definition.loc.line > 0
            for loc in definition.locs.values():
                count += loc.line > 0
    for role in deployment.roles.values():
        for perm in role.grants + role.denies:
            count += perm.loc.line > 0
    return count


def _high_water_mb() -> float:
    """This process's peak resident set size (VmHWM; ru_maxrss would count the parent's before exec)."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # pragma: no cover - not Linux


def _memory_child(directory: str, fast: bool) -> None:
    import tracemalloc

    from analyzer import loader

    before = _high_water_mb()
    deployment = loader.load(directory, fast=fast)
    peak_rss = _high_water_mb()  # the high-water mark of this load
    del deployment
    gc.collect()
    tracemalloc.start()  # again, traced: the peak of the load and what the Deployment keeps
    deployment = loader.load(directory, fast=fast)
    gc.collect()
    kept, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del deployment
    print(json.dumps({"rss_before_mb": before, "rss_peak_mb": peak_rss, "kept_mb": kept / 1e6,
                      "traced_peak_mb": peak / 1e6}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reference", action="store_true", help="also time the reference (libyaml) path")
    parser.add_argument("--memory", action="store_true", help="peak memory, each in a fresh process")
    parser.add_argument("--locs", action="store_true", help="also resolve every definition's position")
    parser.add_argument("--memory-child", choices=("fast", "reference"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        _memory_child(args.directory, args.memory_child == "fast")
        return
    floor, size = _json_floor(args.directory)
    print(f"json.loads floor: {floor:.3f} s ({size / 1e6:.1f} MB of JSON)")
    modes = [("fast", True)] + ([("reference", False)] if args.reference else [])
    for label, fast in modes:
        wall, cpu = _time_load(args.directory, fast, args.repeat)
        print(f"load ({label}): {wall:.3f} s wall, {cpu:.3f} s CPU (best of {args.repeat}) = "
              f"{wall / floor:.1f}x json.loads (CPU {cpu / floor:.1f}x)")
    if args.locs:
        from analyzer import loader

        deployment = loader.load(args.directory)
        start = time.perf_counter()
        count = _every_loc(deployment)
        print(f"every position of the fast load resolved: {count:,} in {time.perf_counter() - start:.3f} s")
    if args.memory:
        for label, _ in modes:
            out = subprocess.run([sys.executable, __file__, args.directory, "--memory-child", label],
                                 check=True, capture_output=True, text=True).stdout
            figures = json.loads(out.strip().splitlines()[-1])
            print(f"memory ({label}): peak RSS {figures['rss_peak_mb']:.0f} MB "
                  f"(from {figures['rss_before_mb']:.0f} MB after imports), "
                  f"traced peak {figures['traced_peak_mb']:.0f} MB, the Deployment keeps {figures['kept_mb']:.0f} MB")


if __name__ == "__main__":
    main()
