"""`agentperm unused` and `agentperm tighten`: decision audit logs in, unused access and least privilege out."""

from __future__ import annotations

import click

from analyzer.cli_common import EXIT_CLEAN, EXIT_FINDINGS, EXIT_INPUT, write_output

_LOGS = click.option("--audit-log", "audit_logs", multiple=True, required=True, type=click.Path(dir_okay=False),
                     help="A decision audit log (JSON lines); repeat for several.")
_SINCE = click.option("--since", default=None, help="Only lines at or after this date or RFC 3339 time (UTC).")


def _read(paths, audit_logs, since):
    """(deployment, log, rules); an InputError goes up to the CLI group, which lists it and exits 2."""
    from analyzer import auditlog
    from analyzer.cli_common import load_paths
    from analyzer.rules import load_rules

    try:
        moment = auditlog.parse_since(since) if since else None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    return load_paths(paths), auditlog.read(audit_logs, moment), load_rules()


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@_LOGS
@_SINCE
@click.option("--format", "fmt", type=click.Choice(["text", "json", "sarif"]), default="text", show_default=True)
@click.option("--output", "-o", default=None, type=click.Path(dir_okay=False), help="Write the report here.")
def unused(paths, audit_logs, since, fmt, output):
    """Grants, agents, credentials, workflows and approval paths no logged allowed call used."""
    from analyzer import unused as unused_module
    from analyzer.render.formats import render_check

    deployment, log, rules = _read(paths, audit_logs, since)
    result, used = unused_module.run(deployment, log, rules)
    click.echo(unused_module.log_report(log, used), err=True, nl=False)
    write_output(render_check(result, fmt, rules), output)
    raise SystemExit(EXIT_FINDINGS if result.active() else EXIT_CLEAN)


@click.command()
@click.argument("path", type=click.Path(exists=True))
@_LOGS
@_SINCE
@click.option("--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="The directory to write the proposed deployment to (must not exist or be empty).")
@click.option("--timeout", default=10_000, show_default=True, help="Solver timeout per case for the diff, ms.")
def tighten(path, audit_logs, since, out_dir, timeout):
    """Write a copy of PATH keeping only the grants the logs used, and prove it removes access only."""
    from analyzer import tighten as tighten_module
    from analyzer import unused as unused_module

    deployment, log, rules = _read((path,), audit_logs, since)
    used = unused_module.usage(deployment, log)
    click.echo(unused_module.log_report(log, used), err=True, nl=False)
    if log.unreadable.count:
        click.echo(f"error: {log.unreadable.count} line(s) of the audit log could not be read; a proposal built "
                   "without them could remove access that was used", err=True)
        raise SystemExit(EXIT_INPUT)
    report = tighten_module.tighten(deployment, path, log, used, out_dir, rules, timeout_ms=timeout)
    click.echo(report.render(), nl=False)
    raise SystemExit(EXIT_CLEAN if report.proved else EXIT_FINDINGS)


COMMANDS = (unused, tighten)
