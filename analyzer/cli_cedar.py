"""Command line of concrete decisions: `agentperm decide`.

Argument parsing, streaming and exit codes only; the decision is analyzer.decide's. Registered
on the main group by analyzer.cli.
"""

from __future__ import annotations

import json
import sys

import click

from analyzer.cli_common import EXIT_CLEAN, EXIT_INPUT, load_paths


def _answers(decider, parse, lines):
    """(answer, malformed) for each non-blank line, in order; a line that is not a call is an error answer."""
    decide = decider.decide
    deployment = decider.d
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            call = parse(json.loads(line), deployment)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError and MalformedCall are ValueErrors
            yield {"error": str(exc), "line": number}, True
            continue
        decision = decide(call)
        yield {"allow": decision.allow, "reason": decision.reason}, False


def _calls(text: str):
    """A file of one JSON call (possibly over several lines), or JSON lines of many."""
    stripped = text.strip()
    if stripped.startswith("{") and "\n" in stripped:
        try:
            return [json.dumps(json.loads(stripped))]
        except ValueError:
            pass  # JSON lines, answered line by line
    return text.splitlines()


@click.command()
@click.argument("path", type=click.Path())
@click.argument("calls", required=False, default="-")
@click.option("--engine", type=click.Choice(["native"]), default="native", show_default=True,
              help="native: analyzer.decide (FORMAT §4).")
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="json", show_default=True)
def decide(path, calls, engine, fmt):
    """Decide calls of the FORMAT §7 shape: one answer per call, in order (JSON lines by default).

    CALLS is a JSON file of one call or JSON lines of many; `-` or absent reads standard input.
    Exit 2 if any line was malformed (answered {"error", "line"}), else 0.
    """
    from analyzer.decide import Decider, parse_request

    decider = Decider(load_paths([path]))  # an InputError: the CLI group lists it and exits 2
    try:
        if calls == "-":
            text = sys.stdin.read()
        else:
            with open(calls, encoding="utf-8") as handle:
                text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        click.echo(f"{calls}: {exc}", err=True)
        sys.exit(EXIT_INPUT)
    out, malformed = [], False
    dumps = json.dumps
    for answer, bad in _answers(decider, parse_request, _calls(text)):
        malformed |= bad
        if fmt == "json":
            out.append(dumps(answer, sort_keys=True))
        elif bad:
            out.append(f"line {answer['line']}: error: {answer['error']}")
        else:
            out.append(("allow: " if answer["allow"] else "deny: ") + answer["reason"])
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    sys.exit(EXIT_INPUT if malformed else EXIT_CLEAN)


COMMANDS = (decide,)
