"""YAML text → values with positions: duplicate keys, aliases, tags, encodings."""

from __future__ import annotations

import pytest

from analyzer.errors import Loc
from analyzer.yamlsrc import YamlError, decode_text, parse_yaml


def _errors(text: str) -> list[str]:
    with pytest.raises(YamlError) as raised:
        parse_yaml("f.yaml", text)
    return [d.render() for d in raised.value.diagnostics]


def test_positions_are_one_based_for_keys_and_values():
    doc = parse_yaml("f.yaml", "tools:\n  crm:\n    operations: {read: {effect: read}}\n")
    assert doc.key_locs[("tools",)] == Loc("f.yaml", 1, 1)
    assert doc.key_locs[("tools", "crm")] == Loc("f.yaml", 2, 3)
    assert doc.key_locs[("tools", "crm", "operations", "read", "effect")] == Loc("f.yaml", 3, 25)
    assert doc.value_locs[("tools", "crm", "operations")] == Loc("f.yaml", 3, 17)
    # a path with no key of its own falls back to the nearest parent
    assert doc.loc(("tools", "crm", "missing", "deeper")) == Loc("f.yaml", 2, 3)


@pytest.mark.parametrize("text, where", [
    ("a: 1\na: 2\n", "f.yaml:2:1"),
    ("x: {a: 1, b: 2, a: 3}\n", "f.yaml:1:17"),
    ("x:\n  - {k: 1}\n  - {k: 1, k: 2}\n", "f.yaml:3:12"),
    ("x:\n  deep:\n    k: 1\n    j: 2\n    k: 3\n", "f.yaml:5:5"),
])
def test_duplicate_keys_anywhere_are_errors(text, where):
    errors = _errors(text)
    assert any(e.startswith(where) and "duplicate key" in e for e in errors), errors


def test_every_duplicate_is_reported_not_only_the_first():
    errors = _errors("a: 1\na: 2\nb: 1\nb: 2\n")
    assert sum("duplicate key" in e for e in errors) == 2, errors


def test_keys_keep_their_text():
    # `on`, `yes`, `007`, `1e3`, `null` are ids and field names here, never booleans or numbers
    doc = parse_yaml("f.yaml", "on: 1\nyes: 2\n007: 3\n1e3: 4\nnull: 5\n")
    assert list(doc.data) == ["on", "yes", "007", "1e3", "null"]


def test_values_are_typed_like_yaml():
    doc = parse_yaml("f.yaml", "a: yes\nb: 7\nc: ~\nd: '7'\ne: 2024-01-02\nf: 1.5\n")
    assert doc.data == {"a": True, "b": 7, "c": None, "d": "7", "e": "2024-01-02", "f": 1.5}


def test_merge_keys_explicit_keys_win():
    doc = parse_yaml("f.yaml", "base: &b {store: vault, ttl: 1h}\nx:\n  <<: *b\n  ttl: 15m\n")
    assert doc.data["x"] == {"ttl": "15m", "store": "vault"}


def test_small_aliases_are_fine():
    doc = parse_yaml("f.yaml", "t: &t [acme, globex]\na: {tenants: *t}\nb: {tenants: *t}\n")
    assert doc.data["a"]["tenants"] == doc.data["b"]["tenants"] == ["acme", "globex"]


def test_alias_bomb_refused_before_expansion():
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    errors = _errors("\n".join(lines) + "\n")
    assert any("alias bomb" in e for e in errors), errors


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: {c: *a}}\n", "- &x\n  - *x\n"])
def test_recursive_aliases_are_errors(text):
    assert any("recursive YAML alias" in e for e in _errors(text))


@pytest.mark.parametrize("text, message", [
    ("a: !!python/object:os.system ls\n", "unsupported YAML tag"),
    ("a: !!binary aGVsbG8=\n", "unsupported YAML tag"),
    ("a: 1\n---\nb: 2\n", "YAML syntax error"),
    ("a: [1, 2\n", "YAML syntax error"),
    ("a: b: c\n", "YAML syntax error"),
    ("a: *nowhere\n", "YAML syntax error"),
    ("{[a]: 1}\n", "mapping keys must be plain scalars"),
    ("x:\n  <<: [1, 2]\n", "merge"),
])
def test_unusual_yaml_is_a_located_error(text, message):
    errors = _errors(text)
    assert any(message in e for e in errors), errors
    assert all(e.startswith("f.yaml:") and e.split(":")[1].isdigit() for e in errors), errors


def test_control_character_is_located_where_it_is():
    # PyYAML raises a ReaderError (no mark, only a character offset) for these
    errors = _errors("a: 1\nb: x\x07y\n")
    assert len(errors) == 1 and "\n" not in errors[0], errors
    assert errors[0].startswith("f.yaml:2:5: error:") and "control character" in errors[0], errors


def test_bom_is_dropped():
    assert decode_text("f.yaml", "\ufeffa: 1\n".encode()) == "a: 1\n"


@pytest.mark.parametrize("raw, line, column", [(b"\xff", 1, 1), (b"a: caf\xe9\n", 1, 7),
                                                (b"a: 1\nb: \xc3\xa9\nc: \xc3(\n", 3, 4)])
def test_non_utf8_names_the_first_bad_byte(raw, line, column):
    with pytest.raises(YamlError) as raised:
        decode_text("f.yaml", raw)
    [diagnostic] = raised.value.diagnostics
    assert (diagnostic.loc.line, diagnostic.loc.column) == (line, column)
    assert "UTF-8" in diagnostic.message


def test_empty_and_comment_only_documents_are_none():
    assert parse_yaml("f.yaml", "").data is None
    assert parse_yaml("f.yaml", "# nothing\n").data is None
