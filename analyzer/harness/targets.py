"""Where probes go: an HTTP endpoint (FORMAT §7) or an in-process callable.

An HTTP target is a URL; one without a path gets ``/v1/decide``. It is driven by one
``httpx.Client`` (keep-alive), with a per-call timeout.

A callable target is ``module:function`` (the current directory is importable) or any Python
callable. It takes the decoded request (usually a dict; malformed probes pass whatever JSON
value they hold) and answers like the endpoint would:

* returns a mapping with a boolean ``"allow"`` (and a ``"reason"``): a ``200``;
* raises ``ValueError`` (``analyzer.decide.MalformedCall`` is one): a ``400``, a rejection;
* raises anything else: a ``500``, a crash.

Bodies that are not JSON (and oversized ones) only make sense over HTTP; callables do not
receive them. ``analyzer.harness.reference:decide`` is the reference decision as a callable.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

DEFAULT_TIMEOUT = 5.0
CURL_URL = "http://127.0.0.1:8181/v1/decide"  # where `agentperm serve` listens by default


class TargetError(Exception):
    """The target cannot be used at all (bad spec, import error, nothing listening): a usage error."""


@dataclass(frozen=True)
class Observation:
    """What a target answered: an HTTP status (emulated for callables) and the decision, if any."""

    status: int | None
    allow: Any = None  # the "allow" value as answered (not necessarily a bool)
    reason: str | None = None
    error: str | None = None  # a transport error or an exception, in words
    timeout: bool = False
    elapsed: float = 0.0
    text: str | None = None  # the start of the response body

    def to_json(self) -> dict:
        data = {"status": self.status, "allow": self.allow, "reason": self.reason}
        if self.error:
            data["error"] = self.error
        if self.timeout:
            data["timeout"] = True
        if self.text is not None and not isinstance(self.allow, bool):
            data["body"] = self.text
        data["elapsed_ms"] = round(self.elapsed * 1000, 1)
        return data


class HttpTarget:
    is_http = True

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT):
        import httpx

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise TargetError(f"not an http(s) URL: {url!r}")
        if parts.path in ("", "/"):
            parts = parts._replace(path="/v1/decide")
        self.url = urlunsplit(parts)
        self.label = self.url
        self.timeout = timeout
        self._httpx = httpx
        # Requests go straight to the transport (one keep-alive connection pool): a decision endpoint
        # sets no cookies and a redirect is an answer to judge, not to follow, and skipping the
        # client's cookie and redirect handling halves the cost of a call.
        self.transport = httpx.HTTPTransport(retries=0)
        self.client = httpx.Client(transport=self.transport, timeout=timeout, follow_redirects=False,
                                   headers={"content-type": "application/json", "accept": "application/json"})

    def send(self, payload: bytes, body: Any = None) -> Observation:
        httpx = self._httpx
        started = time.perf_counter()
        try:
            response = self.transport.handle_request(self.client.build_request("POST", self.url, content=payload))
            try:
                response.read()
            finally:
                response.close()
        except httpx.TimeoutException as exc:
            return Observation(None, error=f"no answer within {self.timeout:g} s ({type(exc).__name__})",
                               timeout=True, elapsed=time.perf_counter() - started)
        except httpx.HTTPError as exc:
            return Observation(None, error=f"{type(exc).__name__}: {exc}", elapsed=time.perf_counter() - started)
        elapsed = time.perf_counter() - started
        text = response.text[:500]
        allow = reason = None
        try:
            data = response.json()
        except ValueError:
            data = None
        if isinstance(data, dict):
            allow, reason = data.get("allow"), data.get("reason") or data.get("error")
        return Observation(response.status_code, allow, reason if isinstance(reason, str) else None,
                           elapsed=elapsed, text=text)

    def curl_url(self) -> str:
        return self.url

    def close(self) -> None:
        self.client.close()


class CallableTarget:
    is_http = False

    def __init__(self, function: Callable[[Any], Any], label: str | None = None, timeout: float = DEFAULT_TIMEOUT):
        self.function = function
        self.label = label or getattr(function, "__qualname__", repr(function))
        self.timeout = timeout
        self._warm = False  # the first call may load a deployment: it is not held to the timeout

    def send(self, payload: bytes, body: Any = None) -> Observation:
        # the callable sees what a server would decode: a private copy, after a JSON round trip
        request = json.loads(payload)
        timeout, self._warm = (self.timeout if self._warm else None), True
        started = time.perf_counter()
        try:
            answer = self.function(request)
        except ValueError as exc:
            return _timed(Observation(400, reason=str(exc)), started, timeout)
        except Exception as exc:  # noqa: BLE001 - a crash is what we are looking for
            return _timed(Observation(500, error=f"{type(exc).__name__}: {exc}"), started, timeout)
        if not isinstance(answer, Mapping):
            return _timed(Observation(200, text=repr(answer)[:500]), started, timeout)
        reason = answer.get("reason")
        return _timed(Observation(200, answer.get("allow"), reason if isinstance(reason, str) else None,
                                  text=repr(dict(answer))[:500]), started, timeout)

    def curl_url(self) -> str:
        return CURL_URL

    def close(self) -> None:
        return None


def _timed(observation: Observation, started: float, timeout: float | None) -> Observation:
    elapsed = time.perf_counter() - started
    if timeout is not None and elapsed > timeout:
        return Observation(None, error=f"answered after {elapsed:.1f} s, over the {timeout:g} s timeout",
                           timeout=True, elapsed=elapsed)
    return Observation(observation.status, observation.allow, observation.reason, observation.error,
                       observation.timeout, elapsed, observation.text)


def resolve(spec: str | Callable, timeout: float = DEFAULT_TIMEOUT) -> HttpTarget | CallableTarget:
    """A target from a URL, ``module:function``, or a callable."""
    if callable(spec):
        return CallableTarget(spec, timeout=timeout)
    if not isinstance(spec, str) or not spec:
        raise TargetError("a target is a URL or module:function")
    if spec.startswith(("http://", "https://")):
        return HttpTarget(spec, timeout)
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise TargetError(f"not a URL or module:function: {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is a usage error here
        raise TargetError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    function: Any = module
    for part in attribute.split("."):
        function = getattr(function, part, None)
    if not callable(function):
        raise TargetError(f"{module_name} has no callable {attribute!r}")
    return CallableTarget(function, label=spec, timeout=timeout)
