"""``agentperm export cedar``: the deployment as Cedar files (thin CLI; the work is analyzer.cedar's)."""

from __future__ import annotations

import os
import sys

import click

from analyzer.cli_common import EXIT_CLEAN, EXIT_INPUT, EXIT_UNKNOWN, load_paths


@click.group("export")
def export_group():
    """Write the deployment in another policy language."""


@export_group.command("cedar")
@click.argument("path", type=click.Path())
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False),
              help="Directory for schema.cedarschema, policies.cedar and entities.json (created if missing).")
def export_cedar(path, output):
    """Cedar schema, policies and entities that decide every call as `agentperm decide` does.

    Exit 0 when every condition was translated; 3 when some has no Cedar equivalent (each is
    listed with its file:line:column: a grant left out, a deny kept unconditional, so Cedar
    denies those calls); 2 on an input error. The files are written either way.
    """
    from analyzer import cedar

    exported = cedar.export(load_paths([path]))  # an InputError: the CLI group lists it and exits 2
    try:
        os.makedirs(output, exist_ok=True)
        for name, text in exported.files().items():
            with open(os.path.join(output, name), "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
    except OSError as exc:
        click.echo(f"agentperm: cannot write {output}: {exc}", err=True)
        sys.exit(EXIT_INPUT)
    for gap in exported.gaps:
        click.echo(gap.render(), err=True)
    written = ", ".join(os.path.join(output, name) for name in cedar.FILES)
    click.echo(f"agentperm: wrote {written}", err=True)
    if exported.gaps:
        click.echo(f"agentperm: {len(exported.gaps)} condition(s) have no Cedar equivalent; Cedar denies the calls "
                   "they decide (exit 3)", err=True)
        sys.exit(EXIT_UNKNOWN)
    sys.exit(EXIT_CLEAN)


COMMANDS = (export_group,)
