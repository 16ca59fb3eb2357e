"""Planted faults: enforcement endpoints for fixtures/agency that each get one thing wrong.

Every fault is a small variation of the reference decision (analyzer.decide), the kind of
mistake a hand-written enforcement layer makes. Each is a callable target
(``faulty_servers:<name>``, request → {"allow", "reason"}, ValueError for a 400) and, through
:func:`app`, an HTTP endpoint. The fuzzer must catch every one within its default budget.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
import tempfile
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from analyzer import reach
from analyzer.decide import Decider, MalformedCall, decode_body, parse_request
from analyzer.loader import load

AGENCY = Path(__file__).resolve().parents[2] / "fixtures" / "agency"


@functools.cache
def agency():
    return load(str(AGENCY))


@functools.cache
def agency_with(file: str, old: str, new: str):
    """fixtures/agency with a piece of text of one file changed everywhere (a policy evaluated wrongly)."""
    folder = Path(tempfile.mkdtemp(prefix="agentperm-fault-")) / "agency"
    shutil.copytree(AGENCY, folder)
    path = folder / file
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {file}"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return load(str(folder))


@functools.cache
def decider(variant: str = "reference") -> Decider:
    if variant == "reference":
        return Decider(agency())
    if variant == "refund-limit":  # `amount <= 50` checked as `amount <= 51`
        return Decider(agency_with("roles.yaml", "params.amount <= 50", "params.amount <= 51"))
    if variant == "guardrail-limit":  # the refund ceiling `amount > 5000` checked as `amount > 5001`
        return Decider(agency_with("guardrails.yaml", "params.amount > 5000", "params.amount > 5001"))
    if variant == "recipient-domain":  # `to.endsWith("@" + domain)` checked as `to.endsWith(domain)`
        return Decider(agency_with("roles.yaml", 'params.to.endsWith("@" + tenant.domain)',
                                   "params.to.endsWith(tenant.domain)"))
    if variant == "no-denies":
        class NoDenies(Decider):
            def _denies(self, agent, home, tool, operation):
                return iter(())
        return NoDenies(agency())
    raise KeyError(variant)


def _answer(decision) -> dict:
    return {"allow": decision.allow, "reason": decision.reason}


def reference(request) -> dict:
    """The faithful endpoint."""
    d = decider()
    return _answer(d.decide(parse_request(request, d.d)))


# ---- the faults -------------------------------------------------------------------------------------

def tenant_check_skipped(request) -> dict:
    """Decides as if the target tenant were always the workflow's own."""
    d = decider()
    call = parse_request(request, d.d)
    wf = d.d.workflows.get(call.workflow)
    if wf is not None and call.tenant in d.d.tenants:
        call = dataclasses.replace(call, tenant=wf.tenant)
    return _answer(d.decide(call))


def approver_not_checked(request) -> dict:
    """Counts an approval for a gate whoever gave it."""
    d = decider()
    call = parse_request(request, d.d)
    approval = request.get("approval")
    if isinstance(approval, dict) and approval.get("gate") in d.d.gates:
        call = dataclasses.replace(call, gate=approval["gate"])
    return _answer(d.decide(call))


def denies_ignored(request) -> dict:
    """Applies grants only: role denies and guardrails are never looked at."""
    d = decider("no-denies")
    return _answer(d.decide(parse_request(request, d.d)))


def field_limits_ignored(request) -> dict:
    """Decides without the call's fields, so a grant's `fields` never limits anything."""
    d = decider()
    call = parse_request(request, d.d)
    return _answer(d.decide(dataclasses.replace(call, fields=())))


def refund_limit_off_by_one(request) -> dict:
    """The self-service refund limit `amount <= 50` evaluated as `amount <= 51`."""
    d = decider("refund-limit")
    return _answer(d.decide(parse_request(request, d.d)))


def guardrail_off_by_one(request) -> dict:
    """The refund ceiling `amount > 5000` evaluated as `amount > 5001`."""
    d = decider("guardrail-limit")
    return _answer(d.decide(parse_request(request, d.d)))


def case_insensitive_ids(request) -> dict:
    """Looks ids up without regard to case."""
    d = decider()
    if isinstance(request, dict):
        request = dict(request)
        for key in ("workflow", "tool", "operation", "tenant"):
            if isinstance(request.get(key), str):
                request[key] = request[key].lower()
        if isinstance(request.get("chain"), list):
            request["chain"] = [a.lower() if isinstance(a, str) else a for a in request["chain"]]
    return _answer(d.decide(parse_request(request, d.d)))


def crashes_on_non_ascii(request) -> dict:
    """Encodes the request as ASCII somewhere on the way: a crash (a 500) on any other character."""
    text = json.dumps(request, ensure_ascii=False)
    if not text.isascii():
        raise RuntimeError("'ascii' codec can't encode a character of the request")
    return reference(request)


def allows_malformed(request) -> dict:
    """Lets through what it cannot parse."""
    try:
        return reference(request)
    except MalformedCall:
        return {"allow": True, "reason": "could not parse the call; allowing"}


def chain_not_checked(request) -> dict:
    """Checks only that the acting agent can act in the workflow, not the chain that reached it."""
    d = decider()
    call = parse_request(request, d.d)
    wf = d.d.workflows.get(call.workflow)
    if wf is not None and call.chain:
        shortest = reach.chains(d.d, wf).get(call.chain[-1])
        if shortest is not None:
            call = dataclasses.replace(call, chain=shortest)
    return _answer(d.decide(call))


def recipient_domain_without_at(request) -> dict:
    """Keeps mail in the client's domain with `endsWith(domain)`, so `x@evilacme.com` passes for acme.com."""
    d = decider("recipient-domain")
    return _answer(d.decide(parse_request(request, d.d)))


FAULTS = {
    "tenant_check_skipped": tenant_check_skipped,
    "approver_not_checked": approver_not_checked,
    "denies_ignored": denies_ignored,
    "field_limits_ignored": field_limits_ignored,
    "refund_limit_off_by_one": refund_limit_off_by_one,
    "guardrail_off_by_one": guardrail_off_by_one,
    "case_insensitive_ids": case_insensitive_ids,
    "crashes_on_non_ascii": crashes_on_non_ascii,
    "allows_malformed": allows_malformed,
    "chain_not_checked": chain_not_checked,
    "recipient_domain_without_at": recipient_domain_without_at,
}

# The failure kind each fault must show.
EXPECTED_KIND = {
    "tenant_check_skipped": "enforcement-hole",
    "approver_not_checked": "enforcement-hole",
    "denies_ignored": "enforcement-hole",
    "field_limits_ignored": "enforcement-hole",
    "refund_limit_off_by_one": "enforcement-hole",
    "guardrail_off_by_one": "enforcement-hole",
    "case_insensitive_ids": "enforcement-hole",
    "crashes_on_non_ascii": "server-error",
    "allows_malformed": "malformed-accepted",
    "chain_not_checked": "enforcement-hole",
    "recipient_domain_without_at": "enforcement-hole",
}


def app(function) -> Starlette:
    """An HTTP endpoint around a callable: ValueError → 400, any other exception → 500."""

    async def decide(request: Request):
        try:
            body = decode_body(await request.body())
        except MalformedCall as exc:
            if function is allows_malformed:
                return JSONResponse({"allow": True, "reason": "could not parse the call; allowing"})
            return JSONResponse({"error": str(exc)}, status_code=400)
        try:
            return JSONResponse(function(body))
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except Exception as exc:  # noqa: BLE001 - the planted 500
            return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=500)

    return Starlette(routes=[Route("/v1/decide", decide, methods=["POST"])])


__all__ = ["EXPECTED_KIND", "FAULTS", "app", "reference"]
