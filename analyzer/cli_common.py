"""What every command module of the CLI shares: exit codes, choices, writing output, loading, id checks.

It sits below ``analyzer.cli`` (the group) and the command modules it registers
(``analyzer.cli_harness`` and the others), so that imports run one way only.
"""

from __future__ import annotations

import click

EXIT_CLEAN, EXIT_FINDINGS, EXIT_INPUT, EXIT_UNKNOWN = 0, 1, 2, 3
SEVERITY_CHOICE = click.Choice(["low", "medium", "high", "critical"])
OUTPUT_FORMATS = ["text", "json", "sarif", "junit", "markdown"]  # check and diff


def write_output(text: str, output: str | None) -> None:
    """``text`` to the file ``output``, or to standard output when it is None."""
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        click.echo(text, nl=False)


def load_paths(paths):
    """The deployment of one or more paths (raises :class:`analyzer.errors.InputError`)."""
    from analyzer.loader import load

    return load(list(paths))


def require_ids(deployment, tool=None, operation=None, tenant=None, agent=None) -> None:
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
