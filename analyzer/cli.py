"""Command line: parse arguments, call the analyzer, print, map outcomes to exit codes. No logic here."""

from __future__ import annotations

import json
import sys

import click

from analyzer import __version__
from analyzer.errors import InputError

EXIT_CLEAN, EXIT_FINDINGS, EXIT_INPUT, EXIT_UNKNOWN = 0, 1, 2, 3
MAX_SHOWN_ERRORS = 200  # a file of junk can hold millions; the first ones say what is wrong
SEVERITY_CHOICE = click.Choice(["low", "medium", "high", "critical"])


class _Group(click.Group):
    """Usage errors exit 2 (click's default too) and input errors print every diagnostic, then exit 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InputError as exc:
            shown = exc.diagnostics[:MAX_SHOWN_ERRORS]
            for diagnostic in shown:
                click.echo(diagnostic.render(), err=True)
            if len(exc.diagnostics) > len(shown):
                click.echo(f"... and {len(exc.diagnostics) - len(shown)} more error(s)", err=True)
            click.echo(f"agentperm: {len(exc.diagnostics)} error(s) in the input; nothing was analysed", err=True)
            ctx.exit(EXIT_INPUT)


def _write(text: str, output: str | None) -> None:
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        click.echo(text, nl=False)


def _load(paths):
    from analyzer.loader import load

    return load(list(paths))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="agentperm")
def main() -> None:
    """agentperm: prove what AI agents can and cannot do before they run.

    Exit codes: 0 clean, 1 findings (or failed tests), 2 usage or input error,
    3 nothing violated but something undecided.
    """


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--rules", "rule_dirs", multiple=True, type=click.Path(), help="Extra rule directory (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
@click.option("--fail-on", type=SEVERITY_CHOICE, default="low", show_default=True,
              help="Exit 1 when a finding is at or above this severity.")
def check(paths, rule_dirs, fmt, output, fail_on):
    """Check deployments (files or directories) against every rule."""
    from analyzer.analysis import analyze
    from analyzer.render import jsonout, text
    from analyzer.rules import load_rules

    deployment = _load(paths)
    rules = load_rules(rule_dirs)
    result = analyze(deployment, rules)
    _write(jsonout.render_check(result) if fmt == "json" else text.render_check(result), output)
    sys.exit(result.exit_code(fail_on))


@main.command("who-can")
@click.argument("path", type=click.Path())
@click.option("--tool", required=True, help="Tool id.")
@click.option("--operation", help="Operation id (default: every operation of the tool).")
@click.option("--tenant", help="Only calls that reach this target tenant.")
def who_can(path, tool, operation, tenant):
    """Every agent that can call a tool, with the chain, role, grant and credential on the way."""
    from analyzer import query

    deployment = _load([path])
    _require(deployment, tool=tool, operation=operation, tenant=tenant)
    click.echo(query.render_who_can(deployment, query.who_can(deployment, tool, operation, tenant), tool,
                                    operation, tenant), nl=False)


@main.command()
@click.argument("path", type=click.Path())
@click.option("--agent", required=True, help="Agent id.")
@click.option("--tool", required=True, help="Tool id.")
@click.option("--operation", help="Operation id (default: every operation of the tool).")
def explain(path, agent, tool, operation):
    """Why an agent can or cannot call a tool's operations."""
    from analyzer import query

    deployment = _load([path])
    _require(deployment, tool=tool, operation=operation, agent=agent)
    click.echo(query.explain(deployment, agent, tool, operation), nl=False)


@main.command("diff")
@click.argument("old", type=click.Path())
@click.argument("new", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
def diff_command(old, new, fmt, output):
    """Every access NEW allows that OLD did not (exit 1 when there is any)."""
    from analyzer import diff
    from analyzer.render import jsonout

    result = diff.diff(_load([old]), _load([new]))
    _write(jsonout.dumps(result.to_json()) if fmt == "json" else diff.render_text(result), output)
    sys.exit(result.exit_code())


@main.command()
def schema():
    """Print the JSON Schema (draft-07) of the deployment format, for editors."""
    from analyzer.spec import json_schema

    click.echo(json.dumps(json_schema(), indent=2, sort_keys=True))


def _require(deployment, tool=None, operation=None, tenant=None, agent=None) -> None:
    """Unknown ids named on the command line are usage errors (exit 2), with the closest id."""
    from analyzer.spec import closest

    def missing(kind, value, table):
        hint = closest(value, table)
        suffix = f"; did you mean {hint!r}?" if hint else ""
        raise click.UsageError(f"unknown {kind} {value!r}{suffix}")

    if tool is not None and tool not in deployment.tools:
        missing("tool", tool, deployment.tools)
    if operation is not None and operation not in deployment.tools[tool].operations:
        missing(f"operation of {tool}", operation, deployment.tools[tool].operations)
    if tenant is not None and tenant not in deployment.tenants:
        missing("tenant", tenant, deployment.tenants)
    if agent is not None and agent not in deployment.agents:
        missing("agent", agent, deployment.agents)


if __name__ == "__main__":  # pragma: no cover
    main()
