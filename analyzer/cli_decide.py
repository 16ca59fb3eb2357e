"""Command line of concrete decisions: `agentperm decide`, through analyzer.decide or through Cedar.

Argument parsing, streaming and exit codes only; the decision is analyzer.decide's (native) or
cedarpy's on analyzer.cedar's export (cedar). Registered on the main group by analyzer.cli.
"""

from __future__ import annotations

import json
import sys

import click

from analyzer.cli_common import EXIT_CLEAN, EXIT_INPUT, load_paths


def _decoder():
    """The server's strict reading of a request (analyzer.decide.decode_json), with a shortcut for the
    common line: one without a byte-order mark and with fewer brackets than the nesting bound cannot
    nest past it, so json.loads alone (NaN and the like still refused) gives decode_json's value without
    its walk over the whole value. Anything the shortcut refuses goes through decode_json, whose error
    is the answer."""
    from analyzer.decide import MAX_JSON_DEPTH, decode_json

    def refuse(_name):
        raise ValueError

    loads = json.JSONDecoder(parse_constant=refuse).decode

    def decode(line: str):
        if line.count("{") + line.count("[") < MAX_JSON_DEPTH and not line.startswith("\ufeff"):
            try:
                return loads(line)
            except (ValueError, RecursionError):
                pass
        return decode_json(line)

    return decode


def _answers(decider, lines):
    """(answer, malformed) for each (line number, text) in order; a line that is not a call is an error answer."""
    from analyzer.decide import MalformedCall, parse_request

    decide, deployment, decode = decider.decide, decider.d, _decoder()
    for number, line in lines:
        try:
            call = parse_request(decode(line), deployment)  # strict JSON, exactly as the server reads it
        except MalformedCall as exc:
            yield {"error": str(exc), "line": number}, True
            continue
        decision = decide(call)
        yield {"allow": decision.allow, "reason": decision.reason}, False


def _cedar_answers(engine, deployment, lines):
    """The same answers through Cedar: each line is read and checked exactly as for native (a malformed
    line is the same error), and the well-formed ones go to cedarpy in batches, in order."""
    from analyzer.decide import MalformedCall, parse_request

    decode = _decoder()
    pending: list = []  # (the call, or None) and (its error answer, or None), in line order

    def flush():
        answers = iter(engine.decide_many([body for body, _ in pending if body is not None]))
        for body, error in pending:
            if body is None:
                yield error, True
            else:
                answer = next(answers)
                yield {"allow": answer.allow, "reason": answer.reason}, False
        pending.clear()

    for number, line in lines:
        try:
            body = decode(line)
            parse_request(body, deployment)  # only to refuse what native refuses; Cedar decides the rest
        except MalformedCall as exc:
            pending.append((None, {"error": str(exc), "line": number}))
        else:
            pending.append((body, None))
        if len(pending) >= engine.BATCH:
            yield from flush()
    yield from flush()


def _calls(text: str):
    """(line number, text) of each call: a file of one JSON object over several lines is one call
    (at line 1), anything else is JSON lines, blank lines skipped."""
    stripped = text.strip()
    if stripped.startswith("{") and "\n" in stripped:
        try:
            json.loads(stripped)
        except ValueError:
            pass  # not one object: JSON lines, answered line by line
        else:
            return [(1, stripped)]
    return [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]


@click.command()
@click.argument("path", type=click.Path())
@click.argument("calls", required=False, default="-")
@click.option("--engine", type=click.Choice(["native", "cedar"]), default="native", show_default=True,
              help="native: analyzer.decide (FORMAT §4); cedar: cedarpy on the deployment's Cedar export, "
                   "built in memory (README, Enforcing with Cedar).")
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="json", show_default=True)
def decide(path, calls, engine, fmt):
    """Decide calls of the FORMAT §7 shape: one answer per call, in order (JSON lines by default).

    CALLS is a JSON file of one call or JSON lines of many; `-` or absent reads standard input.
    Exit 2 if any line was malformed (answered {"error", "line"}), else 0.
    """
    deployment = load_paths([path])  # an InputError: the CLI group lists it and exits 2
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
    dumps, quote = json.dumps, json.encoder.encode_basestring_ascii
    if engine == "cedar":
        from analyzer.cedar import CedarEngine

        answers = _cedar_answers(CedarEngine.of(deployment), deployment, _calls(text))
    else:
        from analyzer.decide import Decider

        answers = _answers(Decider(deployment), _calls(text))
    for answer, bad in answers:
        malformed |= bad
        if fmt == "json":  # an answer's bytes as json.dumps(answer, sort_keys=True) writes them, faster
            out.append(f'{{"allow": {"true" if answer["allow"] else "false"}, "reason": {quote(answer["reason"])}}}'
                       if not bad else dumps(answer, sort_keys=True))
        elif bad:
            out.append(f"line {answer['line']}: error: {answer['error']}")
        else:
            out.append(("allow: " if answer["allow"] else "deny: ") + answer["reason"])
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    sys.exit(EXIT_INPUT if malformed else EXIT_CLEAN)


COMMANDS = (decide,)
