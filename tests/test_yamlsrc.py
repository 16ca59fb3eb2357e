"""YAML text → values with positions: duplicate keys, aliases, tags, encodings."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import bench_generator
from hypothesis import given, settings
from hypothesis import strategies as st

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


# ---- the fast path (yaml_rs) reads exactly as the reference path (libyaml) ------------------
#
# parse_yaml takes the fast path when it can; parse_yaml(..., fast=False) is the reference. The
# fast path must give the same data (types included), the same errors and, found lazily, the
# same position for every path, or else decline and let the reference path read the file.

REPO = Path(__file__).resolve().parent.parent
FIXTURE_FILES = sorted(p for p in (REPO / "fixtures").rglob("*")
                       if p.is_file() and p.suffix in (".yaml", ".yml"))


def _strictly_equal(a, b) -> bool:
    """Equal and of the same types all the way down (True is not 1, 1 is not 1.0, "1" is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_strictly_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_strictly_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def _read(name: str, text: str, fast: bool):
    try:
        return parse_yaml(name, text, fast=fast)
    except YamlError as exc:
        return [d.render() for d in exc.diagnostics]


def _questions(reference) -> list[tuple]:
    """Every path with a position, and paths just below them that do not exist."""
    paths = set(reference.key_marks) | set(reference.value_marks)
    missing = {p + (part,) for p in paths for part in ("no-such-key", 0, 7)} - paths
    return sorted(paths | missing | {(), ("no-such-key",), ("no", "such", "path")}, key=repr)


def _same_reading(name: str, text: str) -> str:
    """Assert the fast path reads ``text`` as the reference path; say which path answered how:
    'error' (both refused it), 'reference' (the fast path declined), 'scanner' (fast, positions
    from the line scanner) or 'libyaml' (fast, the scanner gave up and libyaml gave positions)."""
    reference = _read(name, text, fast=False)
    fast = _read(name, text, fast=True)
    if isinstance(reference, list):
        assert fast == reference, f"{name}: errors differ"
        return "error"
    assert not isinstance(fast, list), f"{name}: the fast path refused what the reference path read: {fast}"
    assert _strictly_equal(fast.data, reference.data), f"{name}: data differs"
    if not fast.fast:
        return "reference"
    for path in _questions(reference):
        for value in (False, True):
            got = fast.value_loc(path) if value else fast.loc(path)
            want = reference.value_loc(path) if value else reference.loc(path)
            assert (got.file, got.line, got.column) == (want.file, want.line, want.column), \
                f"{name}: {'value_loc' if value else 'loc'}{path}: fast {got}, reference {want}"
    return "libyaml" if fast.positions.gave_up else "scanner"


def test_fast_path_reads_every_fixture_file_as_the_reference_path():
    assert len(FIXTURE_FILES) >= 150, len(FIXTURE_FILES)  # the discovery found the fixtures
    how: dict[str, list[str]] = {}
    for path in FIXTURE_FILES:
        name = path.relative_to(REPO).as_posix()
        try:
            text = decode_text(name, path.read_bytes())
        except YamlError:
            how.setdefault("undecodable", []).append(name)
            continue
        how.setdefault(_same_reading(name, text), []).append(name)
    # not vacuous: most files take the fast path, and the scanner finds their positions itself
    fast = len(how.get("scanner", ())) + len(how.get("libyaml", ()))
    assert fast >= 0.9 * len(FIXTURE_FILES), {k: len(v) for k, v in how.items()}
    assert len(how.get("scanner", ())) >= 0.95 * fast, how.get("libyaml")
    assert len(how.get("error", ())) >= 3  # fixtures/invalid/*: the same errors


def test_fast_path_reads_a_generated_deployment_with_the_scanner_alone():
    generated = bench_generator().generate(12)
    for name, text in sorted(generated.files.items()):
        assert _same_reading(name, text) == "scanner", name


TRICKY_SCALARS = [
    "yes", "no", "on", "off", "On", "OFF", "y", "n", "Yes", "true", "True", "TRUE", "false", "FALSE", "tRUE",
    "null", "Null", "NULL", "~", "", "0777", "0o17", "0O17", "0x1f", "0X1F", "0b101", "0B1", "1_000", "_1", "1__0",
    "08", "007", "+12", "-0", "0", "12", "-7", "99999999999999999999", "1e3", "1E3", "1.0e+3", "1.5", ".5", "1.",
    "._5", ".inf", "-.inf", ".NaN", "1:30", "190:20:30", "1:2.5", "2026-01-01", "2026-01-01 10:00:00",
    "2026-01-01T10:00:00Z", "12:30:00", "=", "<<", "*", "!=", "a b", "acme-00000", "crm.read", "a:b", "http://x",
    "a#b", "é", "日本", "😀", "x!", "wow !", "say \"hi\"", "it's", "a, b", "-x", "?x", ":x", "@x", "%x", "`x",
]


def _forms(scalar: str) -> list[str]:
    """A scalar written plain (whether or not that is valid YAML), single- and double-quoted."""
    double = scalar.replace("\\", "\\\\").replace('"', '\\"')
    return [scalar, "'" + scalar.replace("'", "''") + "'", f'"{double}"']


@pytest.mark.parametrize("scalar", TRICKY_SCALARS)
def test_tricky_scalars_read_alike_as_values_keys_and_items(scalar):
    for form in _forms(scalar):
        for text in (f"k: {form}\n", f"{form}: v\n", f"- {form}\n", f"k: [{form}, x]\n", f"k: {{{form}: {form}}}\n",
                     f"a:\n  b: {form}\n  c: 1\n"):
            _same_reading("f.yaml", text)


def test_fast_path_declines_what_yaml_1_1_reads_otherwise():
    # unquoted, these are YAML 1.1 booleans / numbers the fast reader reads as text or otherwise
    for text in ("k: yes\n", "k: on\n", "k: 0777\n", "k: 1:30\n", "k: 1e3\n", "k: 0o17\n", "k: 1.5\n",
                 "k: &a x\nj: *a\n", "a: {<<: {b: 1}}\n", "k: a\tb\n", "k: \"multi\n  line\"\n", "k: a :b\n"):
        assert not parse_yaml("f.yaml", text).fast, text
    for text in ("k: =\n", "k: !foo x\n", "a: 1\n---\nb: 2\n", "k: [a, !t b]\n", "k: [:x]\n"):  # refused
        with pytest.raises(YamlError):
            parse_yaml("f.yaml", text)
    # `"yes"` quoted too: the fast reader's value cannot tell the quotes, and unquoted it would differ
    assert not parse_yaml("f.yaml", 'k: "yes"\n').fast
    # quoted numbers (the fast reader would read them unquoted as numbers), or text that cannot
    # be anything else: the fast path takes them
    for text in ("k: '0777'\n", 'k: "1e3"\n', 'k: "7"\n', "on: 1\n", "k: true\n", "k: ~\n",
                 'when: "call.tenant != call.home"\ntools: "*"\n', "k: [a, b]\n", 'k: say "hi"\n', "k: 12\n"):
        assert parse_yaml("f.yaml", text).fast, text


def test_without_yaml_rs_every_file_takes_the_reference_path(monkeypatch):
    from analyzer import yamlsrc

    monkeypatch.setattr(yamlsrc, "yaml_rs", None)
    doc = parse_yaml("f.yaml", "tools:\n  crm: {tenancy: shared}\n")
    assert not doc.fast and doc.data == {"tools": {"crm": {"tenancy": "shared"}}}
    assert doc.loc(("tools", "crm", "tenancy")) == Loc("f.yaml", 2, 9)


@pytest.mark.parametrize("text", ['a:\n  "b\\tc": 1\n  d: 2\n', "a:\n  b: {p: , q: 2}\n  c: 3\n",
                                  "a:\n  b: [p: 1, q]\n"])
def test_scanner_gives_up_on_what_it_does_not_read_and_libyaml_answers(text):
    # an escaped key, an empty flow value, a pair in a flow sequence: the fast path reads the
    # file; the scanner does not follow these, and positions come from libyaml
    assert _same_reading("f.yaml", text) == "libyaml"


def test_what_libyaml_continues_at_any_indentation_takes_the_reference_path():
    # libyaml reads these next lines whatever their indentation; the line scanner could not
    for text in ("a:\n  - {tool: w\neb: x}\nb: 1\n", "a:\n  b: [x,\n     y]\n", 'a:\n  b: "x\n  y"\n'):
        assert _same_reading("f.yaml", text) in ("reference", "error"), text


# ---- hypothesis: random small documents of tricky scalars --------------------------------------

_KEYS = ["a", "b", "on", "yes", "007", "1e3", "null", "~", "k k", "x:y", "true", "<<", "=", "0x1f", "é"]


@st.composite
def _scalar_text(draw, keys=False):
    scalar = draw(st.sampled_from(_KEYS if keys else TRICKY_SCALARS))
    return draw(st.sampled_from(_forms(scalar)))


@st.composite
def _node(draw, indent: int, depth: int):
    """(lines, inline): a block node as the lines after `key:`, or an inline value."""
    kinds = ["scalar", "scalar", "flow-seq", "flow-map", "block-scalar", "continued"]
    kind = draw(st.sampled_from(kinds + ["map", "seq", "map"] if depth < 3 else kinds))
    pad = " " * indent
    if kind == "scalar":
        return None, draw(_scalar_text())
    if kind == "flow-seq":
        return None, "[" + ", ".join(draw(st.lists(_scalar_text(), max_size=3))) + "]"
    if kind == "flow-map":
        pairs = draw(st.lists(st.tuples(_scalar_text(keys=True), _scalar_text()), max_size=3))
        return None, "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    if kind == "block-scalar":
        header = draw(st.sampled_from(["|", ">", "|-", ">+"]))
        lines = [f"{pad}  {draw(st.sampled_from(TRICKY_SCALARS))}" for _ in range(draw(st.integers(1, 2)))]
        return lines, header
    if kind == "continued":  # a plain scalar continued on the next line
        return [f"{pad}  {draw(st.sampled_from(TRICKY_SCALARS))}"], draw(st.sampled_from(["word", "a b", "7"]))
    lines = []
    for _ in range(draw(st.integers(1, 3))):
        child_lines, inline = draw(_node(indent + 2, depth + 1))
        lead = f"{pad}{draw(_scalar_text(keys=True))}:" if kind == "map" else f"{pad}-"
        if inline is not None:
            lines.append(f"{lead} {inline}" + draw(st.sampled_from(["", "", " # c"])))
            lines += child_lines or []
        else:
            lines.append(lead)
            lines += child_lines
        if draw(st.integers(0, 4)) == 0:
            lines.append(draw(st.sampled_from(["", pad + "# comment", "   ", "# at column 0"])))
    return lines, None


@st.composite
def _documents(draw):
    lines, inline = draw(_node(0, 0))
    text = "\n".join(([inline] if inline is not None else []) + (lines or []))
    return text + draw(st.sampled_from(["\n", "", "\n\n"]))


@settings(max_examples=300, deadline=None)
@given(text=_documents())
def test_random_documents_read_alike(text):
    _same_reading("f.yaml", text)


def test_lazy_positions_behave_as_plain_locs():
    import copy
    import dataclasses
    import pickle

    from analyzer.errors import Diagnostic

    doc = parse_yaml("f.yaml", "a:\n  b: [x, y]\n")
    assert doc.fast
    lazy, plain = doc.loc(("a", "b")), Loc("f.yaml", 2, 3)
    assert type(lazy) is not Loc and isinstance(lazy, Loc)
    assert lazy == plain and plain == lazy and (lazy != plain) is False and hash(lazy) == hash(plain)
    assert str(lazy) == str(plain) and repr(lazy) == repr(plain) and lazy.to_json() == plain.to_json()
    assert {plain: 1}[doc.loc(("a", "b"))] == 1
    item = doc.value_loc(("a", "b", 1))
    assert sorted([Loc("f.yaml", 2, 14), item, Loc("f.yaml", 1, 1), lazy]) == \
        [Loc("f.yaml", 1, 1), plain, Loc("f.yaml", 2, 10), Loc("f.yaml", 2, 14)]
    assert lazy < Loc("f.yaml", 2, 4) <= item and item > lazy >= plain
    for made in (pickle.loads(pickle.dumps(doc.loc(("a",)))), copy.copy(doc.loc(("a",))),
                 copy.deepcopy(doc.loc(("a",)))):
        assert type(made) is Loc and made == Loc("f.yaml", 1, 1)
    problem = Diagnostic(doc.loc(("a", "b")), "m")
    assert problem == Diagnostic(plain, "m") and problem.render() == "f.yaml:2:3: error: m"
    assert dataclasses.asdict(problem)["loc"] == {"file": "f.yaml", "line": 2, "column": 3}


def test_a_lazy_position_is_found_once_and_only_when_read():
    from analyzer import yamlsrc

    doc = parse_yaml("f.yaml", "a:\n  b: 1\n")
    asked = []
    resolve = doc.positions.resolve
    doc.positions.resolve = lambda request: asked.append(request) or resolve(request)
    loc = doc.loc(("a", "b"))
    assert asked == [] and loc.file == "f.yaml"
    assert (loc.line, loc.column, loc.line) == (2, 3, 2)
    assert asked == [(("a", "b"), False)]
    assert isinstance(doc.positions, yamlsrc.Positions) and not doc.positions.gave_up


@pytest.mark.parametrize("levels", [198, 199, 200, 201, 202])
def test_nesting_bound_is_the_same_on_both_paths(levels):
    # the reference path refuses collections nested beyond MAX_DEPTH; the fast one must decline
    lines = [" " * (2 * i) + "a:" for i in range(levels)] + [" " * (2 * levels) + "b: 1"]
    assert _same_reading("f.yaml", "\n".join(lines) + "\n") in ("scanner", "error")
    sequences = "\n".join(" " * (2 * i) + "-" for i in range(levels)) + "\n" + " " * (2 * levels) + "- x\n"
    assert _same_reading("f.yaml", sequences) in ("scanner", "error", "reference")
