"""The reference decision as an in-process callable target: ``analyzer.harness.reference:decide``.

The deployment is the one named by the ``AGENTPERM_DEPLOYMENT`` environment variable
(``agentperm fuzz`` and ``replay`` set it to the deployment they test when it is unset); it
is loaded once. :func:`for_deployment` binds the same function to a deployment in Python.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from analyzer import model
from analyzer.decide import Decider, parse_request

ENV = "AGENTPERM_DEPLOYMENT"
_loaded: dict[str, Decider] = {}


def for_deployment(deployment: model.Deployment) -> Callable[[Any], dict]:
    """``request → {"allow", "reason"}``; raises MalformedCall (a ValueError, i.e. a 400) on malformed input."""
    decider = Decider(deployment)

    def decide(request: Any) -> dict:
        decision = decider.decide(parse_request(request, deployment))
        return {"allow": decision.allow, "reason": decision.reason}

    decide.__qualname__ = f"reference decision for {deployment.name}"
    return decide


def decide(request: Any) -> dict:
    """The reference decision for the deployment named by $AGENTPERM_DEPLOYMENT."""
    path = os.environ.get(ENV)
    if not path:
        raise RuntimeError(f"set {ENV} to the deployment to decide for")
    decider = _loaded.get(path)
    if decider is None:
        from analyzer.loader import load

        decider = _loaded[path] = Decider(load(path.split(os.pathsep)))
    decision = decider.decide(parse_request(request, decider.d))
    return {"allow": decision.allow, "reason": decision.reason}
