"""`check --jobs N`: the proofs split across forked worker processes.

The workflows (sorted) are cut into consecutive shares of about equal weight. Each worker,
forked from the parent so that it inherits the deployment, the graph and the Prover,
enumerates its share's cases and runs every pending invariant over them, returning plain
:class:`analyzer.prover.Event` lists (witness dicts and unknown reasons). The parent merges the
shares in order, exactly as one serial pass over all cases would (:func:`merge_events`), so the
output is byte-identical to ``--jobs 1``. Any trouble with the pool raises; the Prover then
proves serially.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from analyzer import cases as cases_module
from analyzer.progress import NULL

SHARES_PER_JOB = 4  # more shares than workers, so that an unlucky heavy share does not leave one idle

_STATE: dict = {}  # what forked workers inherit: the prover and the jobs


def prove_split(prover, jobs) -> list[list]:
    """Events per job (in the order given), from ``prover.jobs`` worker processes."""
    if "fork" not in multiprocessing.get_all_start_methods():
        raise RuntimeError("the fork start method is not available here")
    d = prover.d
    shares = split(d, prover.jobs * SHARES_PER_JOB)
    if len(shares) < 2:
        raise RuntimeError("too few workflows to split")
    prover.pg  # noqa: B018 - built once here, shared by every worker through fork
    prover.decider  # noqa: B018
    results: list[list] = [[] for _ in jobs]
    _STATE.update(prover=prover, jobs=jobs)
    try:
        with prover.progress.stage(f"proofs ({prover.jobs} processes)", total=len(shares)) as stage:
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=min(prover.jobs, len(shares)), mp_context=context) as pool:
                futures = [pool.submit(_work, share) for share in shares]
                total = 0
                for future in futures:
                    events, count = future.result()
                    for index, found in enumerate(events):
                        results[index].extend(found)
                    total += count
                    stage.update(description=f"proofs: {total:,} cases ({prover.jobs} processes)")
                    stage.advance(1)
    finally:
        _STATE.clear()
    return results


def split(deployment, parts: int) -> list[list[str]]:
    """Sorted workflow ids cut into at most ``parts`` consecutive shares of about equal weight."""
    ids = sorted(deployment.workflows)
    weights = [max(1, cases_module.workflow_weight(deployment, deployment.workflows[w])) for w in ids]
    target = sum(weights) / max(1, parts)
    shares: list[list[str]] = []
    current: list[str] = []
    load = 0
    for wf_id, weight in zip(ids, weights):
        current.append(wf_id)
        load += weight
        if load >= target and len(shares) < parts - 1:
            shares.append(current)
            current, load = [], 0
    if current:
        shares.append(current)
    return shares


def _work(share: list[str]):
    prover = _STATE["prover"]
    prover.progress = NULL  # the parent's terminal belongs to the parent
    jobs = _STATE["jobs"]
    interest = cases_module.Interest.of_goals(job.goal for job in jobs)
    groups = list(cases_module.case_groups(prover.d, share, interest))
    events = [prover.events(job.goal, job.rule.never, groups) for job in jobs]
    return events, sum(len(tenants) for _, tenants in groups)
