"""Command line of the enforcement-endpoint harness: serve, fuzz, replay, test.

Argument parsing and exit codes only; the work is in analyzer.server, analyzer.harness and
analyzer.suites. Registered on the main group by analyzer.cli.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile

import click

from analyzer.cli_common import EXIT_CLEAN, EXIT_INPUT, write_output

EXIT_FAILED, EXIT_USAGE = 1, EXIT_INPUT


def _load(path: str):
    from analyzer.loader import load

    return load([path])


def _emit(text: str, output: str | None) -> None:
    write_output(text, output)


def _default_reference_deployment(path: str) -> None:
    """`analyzer.harness.reference:decide` decides for the deployment under test unless told otherwise."""
    from analyzer.harness.reference import ENV

    os.environ.setdefault(ENV, path)


@click.command()
@click.argument("path", type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default).")
@click.option("--port", default=8181, show_default=True, type=click.IntRange(0, 65535))
@click.option("--audit-log", type=click.Path(dir_okay=False), help="Append one JSON line per decision to this file.")
def serve(path, host, port, audit_log):
    """Serve the reference decision endpoint (POST /v1/decide, GET /healthz) until Ctrl-C or SIGTERM."""
    from analyzer import server

    deployment = _load(path)
    try:  # a clear usage error now rather than a uvicorn traceback later
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise click.UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    if not server.is_loopback(host):
        click.echo(f"warning: listening on {host}, beyond loopback; the endpoint has no authentication of its "
                   "own, so put it behind one", err=True)
    click.echo(f"agentperm: deciding for {path} ({deployment.digest[:19]}) at http://{host}:{port}"
               f"{server.DECIDE_PATH}" + (f", audit log {audit_log}" if audit_log else ""), err=True)
    server.serve(deployment, host, port, audit_log)


@click.command()
@click.argument("path", type=click.Path())
@click.option("--target", required=True, help="The endpoint: a URL, or module:function for an in-process callable.")
@click.option("--max-examples", type=click.IntRange(0), default=None,
              help="Hypothesis examples, shared by the families of calls (default 300).")
@click.option("--seed", type=int, help="Random seed (default: derandomized, the same calls every run).")
@click.option("--timeout", type=click.FloatRange(min=0.001), default=5.0, show_default=True,
              help="Seconds to wait for each answer.")
@click.option("--save", "save_dir", default=".agentperm-fuzz", show_default=True, type=click.Path(file_okay=False),
              help="Directory for one JSON file per failure (for `agentperm replay`).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "junit"]), default="text", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
def fuzz(path, target, max_examples, seed, timeout, save_dir, fmt, output):
    """Fuzz an enforcement endpoint against the decision function (exit 1 on any mismatch)."""
    from analyzer.harness import fuzz as campaign
    from analyzer.harness.targets import TargetError

    deployment = _load(path)
    _default_reference_deployment(path)
    # Hypothesis caches what it learns under ./.hypothesis; a fuzz run leaves nothing in the user's tree
    scratch = None if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY") else tempfile.mkdtemp(prefix="agentperm-fuzz-")
    if scratch:
        os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = scratch
    try:
        result = campaign.run_campaign(deployment, target, campaign.DEFAULT_MAX_EXAMPLES if max_examples is None
                                       else max_examples, seed, timeout)
    except TargetError as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        if scratch:
            os.environ.pop("HYPOTHESIS_STORAGE_DIRECTORY", None)
            shutil.rmtree(scratch, ignore_errors=True)
    if result.failures and save_dir:
        campaign.save(result, save_dir)
    _emit(campaign.render(result, fmt), output)
    sys.exit(result.exit_code)


@click.command()
@click.argument("directory", type=click.Path())
@click.option("--target", required=True, help="The endpoint: a URL, or module:function.")
@click.option("--timeout", type=click.FloatRange(min=0.001), default=5.0, show_default=True)
def replay(directory, target, timeout):
    """Re-send the failures `fuzz` saved: FIXED or STILL FAILING for each (exit 1 if any still fails)."""
    from analyzer.harness import replay as replaying
    from analyzer.harness.targets import TargetError

    try:
        results = replaying.replay(directory, target, timeout)
    except TargetError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(replaying.render_text(results), nl=False)
    sys.exit(replaying.exit_code(results))


@click.command("test")
@click.argument("path", type=click.Path())
@click.option("--tests", "pattern", help="Glob of suite files (default: PATH.tests/*.yaml, beside the deployment).")
@click.option("--target", help="Also run every case against this endpoint (URL or module:function).")
@click.option("--timeout", type=click.FloatRange(min=0.001), default=5.0, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "junit"]), default="text", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
@click.option("--min-coverage", help="Fail below this percentage of grants, denies and guardrails covered.")
@click.option("--engine", type=click.Choice(["native", "cedar"]), default="native", show_default=True,
              help="Who decides the cases: analyzer.decide, or cedarpy on the deployment's Cedar export "
                   "(then a case's `reason`, decide's words, is not checked).")
def test_command(path, pattern, target, timeout, fmt, output, min_coverage, engine):
    """Run decision test suites against decide (or Cedar) and an endpoint; exit 1 on a failed case or low coverage."""
    from analyzer import suites
    from analyzer.harness.targets import TargetError

    minimum = None
    if min_coverage is not None:
        try:
            minimum = suites.parse_percent(min_coverage)
        except ValueError:
            raise click.BadParameter(f"{min_coverage!r} is not a percentage from 0 to 100",
                                     param_hint="--min-coverage") from None
    deployment = _load(path)
    pattern = pattern or suites.default_glob(path)
    files = suites.find_suites(pattern)
    if not files:
        raise click.UsageError(f"no decision test suites match {pattern} (suites live beside the deployment, in "
                               f"{suites.default_glob(path)}, or pass --tests GLOB)")
    cases = suites.load_cases(files)
    if target:
        _default_reference_deployment(path)
    try:
        result = suites.run(deployment, cases, target, timeout, engine)
    except TargetError as exc:
        raise click.UsageError(str(exc)) from None
    _emit(suites.render_junit(result) if fmt == "junit" else suites.render_text(result), output)
    low = minimum is not None and result.coverage + 1e-9 < minimum
    if low:
        click.echo(f"coverage {result.coverage:.1%} is below --min-coverage {minimum:.1%}", err=True)
    sys.exit(EXIT_FAILED if result.failed or low else EXIT_CLEAN)


COMMANDS = (serve, fuzz, replay, test_command)
