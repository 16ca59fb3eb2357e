"""A second correct enforcement endpoint, written from FORMAT §7 on the standard library alone.

It shares only the decision (:class:`analyzer.decide.Decider`) with the reference server: the HTTP
handling, the JSON reading and the checks of the request's shape are its own, and where §7 or
RFC 8259 leave a choice it takes the other one: it ignores a byte-order mark (RFC 8259 §8.1 allows
it) and refuses a ``null`` where §7 names a value (``fields``, ``params``, ``approval``, ``by``).
A fuzzer that flags it is raising a false alarm."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from analyzer.decide import Call, Decider

MAX_BODY = 1 << 20
REQUIRED_STRINGS = ("workflow", "tool", "operation", "tenant")


class Refused(Exception):
    pass


def _call_of(body, deployment) -> Call:
    if not isinstance(body, dict):
        raise Refused("not an object")
    for key in REQUIRED_STRINGS:
        if not isinstance(body.get(key), str):
            raise Refused(f"{key} must be a string")
    chain = body.get("chain")
    if not isinstance(chain, list) or any(not isinstance(a, str) for a in chain):
        raise Refused("chain must be a list of strings")
    fields = body.get("fields", [])
    if not isinstance(fields, list) or any(not isinstance(f, str) for f in fields):
        raise Refused("fields must be a list of strings")
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise Refused("params must be an object")
    gate = None
    if "approval" in body:
        approval = body["approval"]
        if not isinstance(approval, dict) or not isinstance(approval.get("gate"), str) \
                or not isinstance(approval.get("by"), str):
            raise Refused("approval must be {gate: string, by: string}")
        listed = deployment.gates.get(approval["gate"])
        if listed is not None and approval["by"] in listed.approvers and approval["by"] in deployment.people:
            gate = approval["gate"]
    return Call(body["workflow"], tuple(chain), body["tool"], body["operation"], body["tenant"],
                tuple(fields), params, gate)


def _no_constants(name):
    raise Refused(f"{name} is not JSON")


def serve(deployment) -> tuple[ThreadingHTTPServer, str]:
    """Start it on 127.0.0.1 (an ephemeral port) in a daemon thread: (server, decision URL)."""
    decider = Decider(deployment)
    lock = threading.Lock()  # the Decider fills its caches as calls arrive

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args):
            pass

        def _answer(self, status: int, document: dict) -> None:
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            if self.path != "/v1/decide":
                return self._answer(404, {"error": "not found"})
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                return self._answer(400, {"error": "bad length"})
            if length > MAX_BODY:
                return self._answer(413, {"error": "too large"})
            raw = self.rfile.read(length)
            try:
                text = raw.decode("utf-8")
                body = json.loads(text.removeprefix("\ufeff"), parse_constant=_no_constants)
                call = _call_of(body, deployment)
            except (UnicodeDecodeError, ValueError, RecursionError, Refused) as exc:
                return self._answer(400, {"error": str(exc)})
            with lock:
                decision = decider.decide(call)
            return self._answer(200, {"allow": decision.allow, "reason": decision.reason})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1/decide"
