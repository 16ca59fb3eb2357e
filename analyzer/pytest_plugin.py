"""pytest plugin (entry point ``agentperm``): test an enforcement endpoint from a project's own suite.

* ``agentperm_server``: a fixture factory; ``url = agentperm_server("deploy/")`` starts the
  reference server for that deployment on a free loopback port in a thread and returns its
  base URL (``http://127.0.0.1:PORT``); every server started is stopped after the test.
* :func:`run_fuzz`: ``run_fuzz("deploy/", target)`` runs the fuzz campaign against a URL,
  ``module:function`` or callable and raises ``AssertionError`` listing every failure.

Everything heavy is imported when used, so the plugin costs nothing to projects that do not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture
def agentperm_server() -> Iterator[Callable[..., str]]:
    """``start(path, audit_log=None) -> base URL`` of a reference server, stopped after the test."""
    from analyzer.loader import load
    from analyzer.server import ServerThread, make_app

    started: list[ServerThread] = []

    def start(path: str | Any, audit_log: str | None = None) -> str:
        deployment = load([str(path)]) if not hasattr(path, "workflows") else path
        server = ServerThread(make_app(deployment, audit_log)).start()
        started.append(server)
        return server.url

    yield start
    for server in started:
        server.stop()


def run_fuzz(path: Any, target: Any, **options) -> Any:
    """Fuzz `target` against the deployment at `path` (or a loaded Deployment); AssertionError on failures.

    Options are those of :func:`analyzer.harness.fuzz.run_campaign` (max_examples, seed,
    timeout, ...); progress is off. Returns the FuzzResult when there is no failure.
    """
    from analyzer.harness.fuzz import render_text, run_campaign
    from analyzer.loader import load

    deployment = load([str(path)]) if not hasattr(path, "workflows") else path
    options.setdefault("progress", False)
    result = run_campaign(deployment, target, **options)
    if result.failures:
        raise AssertionError(f"{len(result.failures)} enforcement failure(s) against {result.target}:\n"
                             + render_text(result))
    return result
