"""The reference enforcement endpoint: FORMAT.md §7 over HTTP (starlette + uvicorn).

`POST /v1/decide` answers ``200 {"allow", "reason"}`` through :func:`analyzer.decide.parse_request`
and one :class:`analyzer.decide.Decider` built at start-up; ``400 {"error"}`` for malformed input,
``413`` for a body over the limit. It never answers 5xx: anything unexpected is a deny with the
reason "internal error", logged. Each decision is one JSON line in the audit log: who (the
chain), what (tool.operation), when (UTC), outcome, tenant, workflow, approval, the fields and
the names of the params, never their values (a param may carry personal data or a secret).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from analyzer import model
from analyzer.decide import Call, Decider, Decision, MalformedCall, decode_body, parse_request

DECIDE_PATH = "/v1/decide"
MAX_BODY_BYTES = 1024 * 1024  # a call is a few hundred bytes; 1 MiB leaves room for long params

log = logging.getLogger("agentperm.server")


class BodyTooLarge(Exception):
    pass


def decide_request(decider: Decider, body: Any) -> tuple[Call, Decision]:
    """A decoded request → (call, decision); raises MalformedCall. The in-process reference target."""
    call = parse_request(body, decider.d)
    return call, decider.decide(call)


class AuditLog:
    """Append-only JSON lines, one per decision, flushed as written; safe across threads."""

    def __init__(self, path: str, clock: Callable[[], datetime.datetime] | None = None):
        self.path = path
        self.clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self._lock = threading.Lock()
        self._handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - held for the server's life

    def record(self, entry: dict) -> None:
        line = json.dumps({"when": self.clock().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                           **entry}, sort_keys=True, ensure_ascii=True)
        with self._lock:
            self._handle.write(line + "\n")
            self._handle.flush()

    def close(self) -> None:
        with self._lock:
            self._handle.close()


def audit_entry(body: Any, call: Call | None, decision: Decision | None, outcome: str, reason: str) -> dict:
    """What the audit log keeps of one request: who, what, outcome, tenant, workflow, approval; no param values."""
    if call is not None:
        approval = body.get("approval") if isinstance(body, dict) else None
        return {"who": list(call.chain), "what": f"{call.tool}.{call.operation}", "outcome": outcome,
                "tenant": call.tenant, "workflow": call.workflow,
                "approval": {"gate": approval.get("gate"), "by": approval.get("by")}
                if isinstance(approval, dict) else None,
                "approval_counted": call.gate, "fields": list(call.fields),
                "params": sorted(call.params or {}), "reason": reason,
                "grant": decision.grant.label if decision and decision.allow and decision.grant else None,
                "risk": decision.risk if decision else None}
    # malformed input: whatever identifying strings it has, nothing else
    picked = body if isinstance(body, dict) else {}

    def text(key):
        value = picked.get(key)
        return value if isinstance(value, str) else None

    chain = picked.get("chain")
    return {"who": [a for a in chain if isinstance(a, str)] if isinstance(chain, list) else None,
            "what": f"{text('tool')}.{text('operation')}" if text("tool") and text("operation") else None,
            "outcome": outcome, "tenant": text("tenant"), "workflow": text("workflow"), "approval": None,
            "reason": reason}


def make_app(deployment: model.Deployment, audit_log: str | None = None, max_body: int = MAX_BODY_BYTES,
             clock: Callable[[], datetime.datetime] | None = None) -> Starlette:
    """The reference server as an ASGI app (tests drive it with TestClient or httpx's ASGI transport)."""
    decider = Decider(deployment)
    audit = AuditLog(audit_log, clock) if audit_log else None

    def record(body, call, decision, outcome, reason) -> None:
        if audit is not None:
            audit.record(audit_entry(body, call, decision, outcome, reason))

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise MalformedCall("invalid Content-Length")
            if int(declared) > max_body:
                raise BodyTooLarge
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                raise BodyTooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    async def decide_endpoint(request: Request) -> Response:
        body: Any = None
        try:
            try:
                raw = await read_body(request)
            except BodyTooLarge:
                record(None, None, None, "malformed", "body too large")
                return JSONResponse({"error": f"the request body exceeds {max_body} bytes"}, status_code=413)
            body = decode_body(raw)
            call, decision = decide_request(decider, body)
        except MalformedCall as exc:
            _safe(record, body, None, None, "malformed", str(exc))
            return JSONResponse({"error": str(exc)}, status_code=400)
        except ClientDisconnect:
            return Response(status_code=400)
        except Exception:
            log.exception("internal error while deciding a request")
            _safe(record, body, None, None, "deny", "internal error")
            return JSONResponse({"allow": False, "reason": "internal error"})
        outcome = "allow" if decision.allow else "deny"
        try:
            record(body, call, decision, outcome, decision.reason)
        except Exception:
            log.exception("could not write the audit log")
            return JSONResponse({"allow": False, "reason": "internal error: the decision could not be audited"})
        return JSONResponse({"allow": decision.allow, "reason": decision.reason})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "deployment": deployment.digest})

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    async def crash(request: Request, exc: Exception) -> Response:
        log.exception("internal error", exc_info=exc)
        return JSONResponse({"allow": False, "reason": "internal error"})

    @contextlib.asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            if audit is not None:
                audit.close()

    app = Starlette(routes=[Route(DECIDE_PATH, decide_endpoint, methods=["POST"]),
                            Route("/healthz", healthz, methods=["GET"])],
                    exception_handlers={HTTPException: http_error, Exception: crash}, lifespan=lifespan)
    app.state.decider = decider
    return app


def _safe(record, *args) -> None:
    try:
        record(*args)
    except Exception:
        log.exception("could not write the audit log")


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def serve(deployment: model.Deployment, host: str = "127.0.0.1", port: int = 8181, audit_log: str | None = None,
          log_level: str = "info") -> None:
    """Run the reference server until SIGINT or SIGTERM (uvicorn shuts down gracefully)."""
    import uvicorn

    uvicorn.run(make_app(deployment, audit_log), host=host, port=port, log_level=log_level, server_header=False,
                access_log=False, timeout_graceful_shutdown=5)


class ServerThread:
    """A uvicorn server on a free loopback port in a daemon thread (tests, the pytest plugin)."""

    def __init__(self, app, host: str = "127.0.0.1"):
        import uvicorn

        # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
        # without it every answer (headers, then body) waits ~40 ms for a delayed ACK
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.host, self.port = self.sock.getsockname()[:2]
        config = uvicorn.Config(app, log_level="warning", access_log=False, server_header=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True,
                                       name=f"agentperm-server-{self.port}")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the agentperm server did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()


@contextlib.contextmanager
def running(app) -> Iterator[str]:
    """``with running(make_app(d)) as url:`` a live server at ``url`` for the block."""
    server = ServerThread(app).start()
    try:
        yield server.url
    finally:
        server.stop()
