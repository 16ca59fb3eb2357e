"""Two callable targets for the suite tests: the reference decision and one blind to tenants."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

from analyzer.decide import Decider, parse_request
from analyzer.loader import load

AGENCY = Path(__file__).resolve().parent.parent / "fixtures" / "agency"


@functools.cache
def _decider() -> Decider:
    return Decider(load(str(AGENCY)))


def reference(request) -> dict:
    decider = _decider()
    decision = decider.decide(parse_request(request, decider.d))
    return {"allow": decision.allow, "reason": decision.reason}


def tenant_blind(request) -> dict:
    """Decides every call as if it targeted the workflow's own tenant."""
    decider = _decider()
    call = parse_request(request, decider.d)
    workflow = decider.d.workflows.get(call.workflow)
    if workflow is not None:
        call = dataclasses.replace(call, tenant=workflow.tenant)
    decision = decider.decide(call)
    return {"allow": decision.allow, "reason": decision.reason}
