"""Command line: parse arguments, call the analyzer, print, map outcomes to exit codes. No logic here."""

from __future__ import annotations

import json
import sys

import click

from analyzer import __version__
from analyzer.cli_common import (  # noqa: F401 - EXIT_* are the CLI's public names
    EXIT_CLEAN,
    EXIT_FINDINGS,
    EXIT_INPUT,
    EXIT_UNKNOWN,
    OUTPUT_FORMATS,
    SEVERITY_CHOICE,
)
from analyzer.cli_common import load_paths as _load
from analyzer.cli_common import require_ids as _require
from analyzer.cli_common import write_output as _write
from analyzer.errors import InputError

MAX_SHOWN_ERRORS = 200  # a file of junk can hold millions; the first ones say what is wrong


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


def _iso_date(_ctx, _param, value):
    """``--date YYYY-MM-DD`` as a date; the real date when absent (the only clock agentperm reads)."""
    import datetime

    from analyzer.suppressions import parse_date

    if value is None:
        return datetime.date.today()
    parsed = parse_date(value)
    if parsed is None:
        raise click.BadParameter(f"{value!r} is not a date YYYY-MM-DD")
    return parsed


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
@click.option("--format", "fmt", type=click.Choice(OUTPUT_FORMATS), default=None,
              help="Output format (default: the config's, else text).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
@click.option("--fail-on", type=SEVERITY_CHOICE, default=None,
              help="Exit 1 when a finding is at or above this severity (default: the config's, else low).")
@click.option("--suppressions", "suppressions_file", type=click.Path(dir_okay=False),
              help="Suppressions file (default: agentperm-suppressions.yaml beside the first PATH, when present).")
@click.option("--date", "today", callback=_iso_date, metavar="YYYY-MM-DD",
              help="The day suppression expiry is judged on (default: today).")
@click.option("--report", "report_file", type=click.Path(dir_okay=False),
              help="Also write the HTML audit report to this file (dated with --date).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, metavar="N",
              help="Worker processes for the proofs of large deployments (default: the cores available, "
                   "used only past 50 million estimated cases, where splitting may pay).")
@click.option("--witnesses", "witnesses", type=click.Choice(["summary", "all"]), default="summary",
              show_default=True, help="all: also write every witness class of each violated invariant "
              "(JSON lines, streamed) to --witnesses-output; the findings show a few per root cause.")
@click.option("--witnesses-output", type=click.Path(dir_okay=False), metavar="FILE",
              help="Where --witnesses all writes (- for standard output, when --output is a file).")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr (it is only shown on a terminal).")
def check(paths, rule_dirs, fmt, output, fail_on, suppressions_file, today, report_file, jobs, witnesses,
          witnesses_output, quiet):
    """Check deployments (files or directories) against every rule.

    Defaults of --format, --fail-on, --rules and --suppressions come from agentperm.yaml beside the
    deployment, else [tool.agentperm] of the nearest pyproject.toml; flags win."""
    from analyzer import suppressions
    from analyzer.analysis import analyze, with_suppressions
    from analyzer.progress import for_cli
    from analyzer.render.formats import render_check
    from analyzer.rules import load_rules

    if (witnesses == "all") != (witnesses_output is not None):
        raise click.UsageError("--witnesses all and --witnesses-output FILE go together")
    if witnesses_output == "-" and output in (None, "-"):
        raise click.UsageError("--witnesses-output - needs --output FILE: both would go to standard output")
    fmt, fail_on, rule_dirs, suppressions_file = _with_config(paths, fmt, fail_on, rule_dirs, suppressions_file)
    progress = for_cli(quiet)
    try:
        with progress.stage("load"):
            deployment = _load(paths)
        rules = load_rules(rule_dirs)
        entries = suppressions.for_check(paths, suppressions_file)
        with progress.stage("graph"):
            graph = _graph(deployment)
        result = with_suppressions(analyze(deployment, rules, graph, progress=progress, jobs=jobs or _cores(),
                                           parallel_threshold=_parallel_threshold(jobs)),
                                   entries, today, rules)
        with progress.stage("report"):
            rendered = render_check(result, fmt, rules, fail_on)
        _write(rendered, output)
        if witnesses_output is not None:
            with progress.stage("witness classes"):
                _write_classes(result, witnesses_output)
        if report_file:
            with progress.stage("report (HTML)"):
                _write_report(report_file, result, graph, rules, today, fail_on)
    finally:
        progress.close()
    sys.exit(result.exit_code(fail_on))


def _write_classes(result, path: str) -> None:
    """Every witness class of each violated invariant, one JSON object per line, written as it goes."""
    import json

    handle = sys.stdout if path == "-" else None
    try:
        if handle is None:
            handle = open(path, "w", encoding="utf-8", newline="\n")  # noqa: SIM115 - closed below
        for inv in result.invariants:
            handle.writelines(json.dumps({"invariant": inv.id, **record}, sort_keys=True, ensure_ascii=False) + "\n"
                              for record in inv.classes)
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc}") from None
    finally:
        if handle is not None and handle is not sys.stdout:
            handle.close()
    if path != "-":
        click.echo(f"agentperm: witness classes written to {path}", err=True)


def _with_config(paths, fmt, fail_on, rule_dirs, suppressions_file):
    """The command line's values, each left unset taken from the config file, then the default."""
    from analyzer import config

    found = config.find(paths)
    return (fmt or found.format or "text", fail_on or found.fail_on or "low", tuple(rule_dirs) or found.rules,
            suppressions_file or found.suppressions)


def _parallel_threshold(jobs: int | None) -> int:
    """--jobs asked for: split whatever is large enough; left at its default: only what is very large."""
    from analyzer import prover

    return prover.AUTO_PARALLEL_THRESHOLD if jobs is None else prover.PARALLEL_THRESHOLD


def _cores() -> int:
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="The HTML file to write.")
@click.option("--rules", "rule_dirs", multiple=True, type=click.Path(), help="Extra rule directory (repeatable).")
@click.option("--fail-on", type=SEVERITY_CHOICE, default=None,
              help="The severity at which the report's verdict is FAIL (default: the config's, else low).")
@click.option("--suppressions", "suppressions_file", type=click.Path(dir_okay=False),
              help="Suppressions file (default: agentperm-suppressions.yaml beside the first PATH, when present).")
@click.option("--date", "today", callback=_iso_date, metavar="YYYY-MM-DD",
              help="The report's date, also the day suppression expiry is judged on (default: today).")
def report(paths, output, rule_dirs, fail_on, suppressions_file, today):
    """Write the HTML audit report of deployments (exit 0 once written, whatever it finds)."""
    from analyzer import suppressions
    from analyzer.analysis import analyze, with_suppressions
    from analyzer.rules import load_rules

    _fmt, fail_on, rule_dirs, suppressions_file = _with_config(paths, "text", fail_on, rule_dirs, suppressions_file)
    deployment = _load(paths)
    rules = load_rules(rule_dirs)
    entries = suppressions.for_check(paths, suppressions_file)
    graph = _graph(deployment)
    result = with_suppressions(analyze(deployment, rules, graph), entries, today, rules)
    _write_report(output, result, graph, rules, today, fail_on)
    sys.exit(EXIT_CLEAN)


@main.command()
@click.argument("path", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["dot", "svg", "json"]), default="dot", show_default=True)
@click.option("--tenant", help="Only what this tenant's workflows and agents reach.")
@click.option("--agent", help="Only this agent's neighbourhood.")
@click.option("--highlight", "highlight_rule", metavar="RULE",
              help="Draw the paths of this rule's findings in red (runs that rule).")
@click.option("--rules", "rule_dirs", multiple=True, type=click.Path(), help="Extra rule directory (repeatable).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
def graph(path, fmt, tenant, agent, highlight_rule, rule_dirs, output):
    """The permission graph as DOT, SVG (through Graphviz's dot) or JSON."""
    from analyzer.render import dot as dotrender
    from analyzer.render.jsonout import dumps

    deployment = _load([path])
    _require(deployment, tenant=tenant, agent=agent)
    pg = _graph(deployment)
    highlight = dotrender.Highlight()
    if highlight_rule:
        from analyzer.analysis import analyze
        from analyzer.rules import load_rules

        rules = load_rules(rule_dirs)
        if highlight_rule not in rules:
            from analyzer.spec import closest

            hint = closest(highlight_rule, rules)
            raise click.UsageError(f"unknown rule {highlight_rule!r}" + (f"; did you mean {hint!r}?" if hint else ""))
        result = analyze(deployment, {highlight_rule: rules[highlight_rule]}, pg)
        highlight = dotrender.highlight_of(result.findings, pg)
    if fmt == "json":
        _write(dumps(dotrender.graph_json(pg, tenant=tenant, agent=agent, highlight=highlight)), output)
        return
    title = f"Permission graph of {deployment.name}" + (f", tenant {tenant}" if tenant else "") + (
        f", agent {agent}" if agent else "")
    source = dotrender.dot_source(pg, tenant=tenant, agent=agent, highlight=highlight, title=title)
    if fmt == "dot":
        _write(source, output)
        return
    try:
        svg = dotrender.svg_of(source)
    except dotrender.DotMissing as exc:
        click.echo(f"agentperm: {exc}", err=True)
        dot_output = _with_suffix(output, ".dot") if output else None
        _write(source, dot_output)
        if dot_output:
            click.echo(f"agentperm: DOT written to {dot_output}", err=True)
        sys.exit(EXIT_INPUT)
    _write(svg + "\n", output)


def _graph(deployment):
    from analyzer.graph import PermissionGraph

    return PermissionGraph(deployment)


def _with_suffix(path: str, suffix: str) -> str:
    import os

    root, ext = os.path.splitext(path)
    return (root if ext else path) + suffix


def _write_report(path, result, graph, rules, today, fail_on) -> None:
    """The HTML report, and the files that go beside it (the graph's DOT)."""
    import os

    from analyzer.render.html import render_report

    rendered = render_report(result, graph, rules, version=__version__, date=today.isoformat() if today else None,
                             fail_on=fail_on, report_name=os.path.basename(path))
    try:
        rendered.write(path)  # the HTML, the graph's DOT (streamed), and the folder of full data when parts collapsed
    except OSError as exc:
        error = click.ClickException(f"cannot write the report: {exc}")
        error.exit_code = EXIT_INPUT
        raise error from exc
    for note in rendered.notes:
        click.echo(f"agentperm: {note}", err=True)
    click.echo(f"agentperm: report written to {path}", err=True)


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
@click.option("--format", "fmt", type=click.Choice(OUTPUT_FORMATS), default="text", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr (it is only shown on a terminal).")
def diff_command(old, new, fmt, output, quiet):
    """Every access NEW allows that OLD did not (exit 1 when there is any)."""
    from analyzer import diff
    from analyzer.progress import for_cli
    from analyzer.render.formats import render_diff

    progress = for_cli(quiet)
    try:
        with progress.stage("load"):
            before, after = _load([old]), _load([new])
        result = diff.diff(before, after, progress=progress)
    finally:
        progress.close()
    _write(render_diff(result, fmt), output)
    sys.exit(result.exit_code())


@main.command()
def schema():
    """Print the JSON Schema (draft-07) of the deployment format, for editors."""
    from analyzer.spec import json_schema

    click.echo(json.dumps(json_schema(), indent=2, sort_keys=True))


# the commands kept in modules of their own, each exporting COMMANDS; they import only analyzer.cli_common
from analyzer import cli_audit, cli_decide, cli_export, cli_harness, cli_import

for _module in (cli_harness, cli_audit, cli_decide, cli_import, cli_export):
    for _command in _module.COMMANDS:
        main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
