"""The declared shape and its JSON Schema (`agentperm schema`) agree with the loader.

Every valid fixture file validates against the schema, file by file; every invalid case whose
``expected.yaml`` says ``schema: invalid`` is rejected by it; cases marked ``n/a`` (references,
cross-file rules, CEL, encoding, YAML syntax) are ones the schema cannot see, so it accepts
every file of them that parses.
"""

from __future__ import annotations

import json

import jsonschema
import pytest
from fixture_cases import invalid_cases, valid_units

from analyzer import model, spec
from analyzer.errors import InputError
from analyzer.loader import load
from analyzer.yamlsrc import YamlError, parse_yaml

SCHEMA = spec.json_schema()
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)
CASES = invalid_cases()
UNITS = valid_units()


UNPARSEABLE = object()


def _parse(path):
    """A file as the analyzer reads it (keys kept as text, like a YAML 1.2 editor); an empty file is None."""
    try:
        return parse_yaml(path.name, path.read_bytes().decode("utf-8")).data
    except (UnicodeDecodeError, YamlError):
        return UNPARSEABLE


def _schema_errors(data) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in sorted(VALIDATOR.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))]


def test_schema_is_valid_draft_07():
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert json.loads(json.dumps(SCHEMA)) == SCHEMA  # plain JSON, as `agentperm schema` prints it


def test_schema_closes_every_record():
    # a key outside the format is an error for the loader, so the schema must say so too
    open_objects = []

    def walk(node, where):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node and node.get("additionalProperties") is not False:
                open_objects.append(where)
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}/{index}")

    walk(SCHEMA, "#")
    assert not open_objects, open_objects


def test_valid_fixtures_are_discovered():
    names = {u.name for u in UNITS}
    assert {"agency", "flawed-agency"} <= names, names
    assert any(n.startswith("rules/") and n.endswith("/firing") for n in names), names
    assert any(n.startswith("rules/") and n.endswith("/clean") for n in names), names
    assert any(n.startswith("conditions/") for n in names), names


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_valid_fixture_loads_and_every_file_validates(unit):
    try:
        load([str(f) for f in unit.files])
    except InputError as error:  # fixtures outside fixtures/invalid are deployments that load
        pytest.fail(f"{unit.name} does not load:\n{error}")
    problems = []
    for file in unit.files:
        data = _parse(file)
        problems += [f"{file.name}: {p}" for p in _schema_errors(data)]
    assert not problems, "the schema rejects a deployment the loader accepts:\n" + "\n".join(problems)


@pytest.mark.parametrize("case", [c for c in CASES if c.schema == "invalid"], ids=lambda c: c.name)
def test_schema_rejects_invalid_case(case):
    rejected = [f.name for f in case.files if (data := _parse(f)) is not UNPARSEABLE and _schema_errors(data)]
    assert rejected, f"{case.name}: the schema accepts every file, though expected.yaml says schema: invalid"


@pytest.mark.parametrize("case", [c for c in CASES if c.schema == "n/a"], ids=lambda c: c.name)
def test_schema_cannot_see_na_case(case):
    # keeps expected.yaml honest: an error the schema could catch must be marked invalid
    seen = {f.name: _schema_errors(data) for f in case.files if (data := _parse(f)) is not UNPARSEABLE}
    assert not any(seen.values()), f"{case.name} is marked n/a but the schema rejects: {seen}"


# ---- conversion details the schema mirrors ---------------------------------------------------

@pytest.mark.parametrize("text, seconds", [("15m", 900), ("1h", 3600), ("30d", 2_592_000), ("0s", 0),
                                           ("never", None)])
def test_durations(text, seconds):
    assert spec.parse_duration(text) == model.Duration(text, seconds)


@pytest.mark.parametrize("text", ["15 minutes", "15", "1.5h", "-1h", "1w", "", "Never", "1h30m"])
def test_bad_durations(text):
    assert spec.parse_duration(text) is None
    duration_schema = {"$schema": SCHEMA["$schema"],
                       **SCHEMA["properties"]["credentials"]["additionalProperties"]["properties"]["ttl"]}
    assert list(jsonschema.Draft7Validator(duration_schema).iter_errors(text))


@pytest.mark.parametrize("ident, ok", [("crm", True), ("a", True), ("A.b_c-9", True), ("x" * 128, True),
                                       ("x" * 129, False), ("bad id!", False), ("-lead", False),
                                       ("_lead", False), ("", False), ("caf\u00e9", False)])
def test_ids_in_converter_and_schema(ident, ok):
    problems = []
    spec.SECTIONS["people"].convert({ident: {}}, ("people",), lambda *a: problems.append(a))
    assert (not problems) == ok
    assert (not _schema_errors({"people": {ident: {}}})) == ok


def test_unknown_key_suggests_the_closest():
    problems = []
    spec.FILE.convert({"tool": {}}, (), lambda path, message, hint: problems.append((path, message, hint)))
    assert problems == [(("tool",), "unknown key 'tool' in file", "did you mean 'tools'?")]
