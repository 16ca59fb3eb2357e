"""The loader: every class of invalid input is reported with file:line:column, nothing crashes.

The invalid cases are the folders of ``fixtures/invalid/`` (discovered, see ``fixture_cases``);
each holds the offending files and an ``expected.yaml`` listing errors that must be reported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import re
import shutil
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml
from conftest import bench_generator
from fixture_cases import FIXTURES, invalid_cases, valid_units
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.errors import InputError, Loc
from analyzer.loader import load, load_text

REPO_ROOT = FIXTURES.parent
AGENTPERM = Path(sys.executable).parent / "agentperm"
CASES = invalid_cases()
UNITS = valid_units()
RENDERED = re.compile(r"^(?P<file>.+?):(?P<line>[1-9][0-9]*):(?P<column>[1-9][0-9]*): error: \S")


def _load_error(paths) -> InputError:
    with pytest.raises(InputError) as raised:
        load([str(p) for p in paths])
    return raised.value


def _same_file(shown: str, expected: Path) -> bool:
    return Path(shown).resolve() == expected.resolve()


# ---- fixtures/invalid: every expected error is reported where it is -------------------------

def test_every_class_of_load_error_has_a_case():
    # the discovery must find the catalogue; an empty glob would pass every parametrized test
    assert len(CASES) >= 22, [c.name for c in CASES]
    for case in CASES:
        assert case.files, f"{case.name}: no deployment files"
        assert case.errors, f"{case.name}: expected.yaml lists no error"
        assert case.schema in ("invalid", "n/a"), f"{case.name}: schema must be invalid or n/a"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_invalid_case_reports_expected_errors(case):
    error = _load_error(case.files)
    diagnostics = error.diagnostics
    assert diagnostics, "InputError without diagnostics"
    misses = []
    for want in case.errors:
        if not any(_same_file(d.loc.file, case.folder / want.file) and d.loc.line == want.line
                   and d.loc.column == want.column and want.contains in d.render() for d in diagnostics):
            misses.append(str(want))
    if misses:
        got = "\n  ".join(d.render() for d in diagnostics)
        pytest.fail(f"{case.name}: not reported:\n  " + "\n  ".join(misses) + f"\ngot:\n  {got}")


def test_every_invalid_case_renders_file_line_column():
    bad = []
    for case in CASES:
        for diagnostic in _load_error(case.files).diagnostics:
            rendered = diagnostic.render()
            match = RENDERED.match(rendered)
            if not match or not Path(match["file"]).name:
                bad.append(f"{case.name}: {rendered}")
    assert not bad, "errors without file:line:column:\n" + "\n".join(bad)


def test_hints_name_the_closest_id():
    by_name = {c.name: c for c in CASES}
    rendered = [d.render() for d in _load_error(by_name["unresolved-reference"].files).diagnostics]
    assert any("'crmm'" in r and "did you mean 'crm'?" in r for r in rendered), rendered
    rendered = [d.render() for d in _load_error(by_name["unknown-key"].files).diagnostics]
    assert any("did you mean 'rotation'?" in r for r in rendered), rendered


def test_all_errors_of_a_deployment_are_reported_together():
    text = (FIXTURES / "invalid" / "bad-enum" / "deployment.yaml").read_text(encoding="utf-8")
    text = text.replace("ttl: 15m", "ttl: 15 minutes").replace("tools: [crm]}", "tools: [crmm]}")
    with pytest.raises(InputError) as raised:
        load_text(text)
    messages = " | ".join(d.message for d in raised.value.diagnostics)
    for part in ("'destroy'", "bad duration", "'crmm'"):
        assert part in messages, messages


# ---- hostile input: bombs, junk, markup ------------------------------------------------------

def test_alias_bomb_refused_fast_and_small():
    bomb = FIXTURES / "invalid" / "alias-bomb" / "deployment.yaml"
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(InputError) as raised:
            load(str(bomb))
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "alias" in str(raised.value)
    # generous bounds that only catch a hang or an expansion; the refusal takes milliseconds
    assert elapsed < 5, f"alias bomb took {elapsed:.2f} s"
    assert peak < 50 * 1024 * 1024, f"alias bomb peaked at {peak / 1e6:.1f} MB"


def test_recursive_alias_is_an_input_error():
    with pytest.raises(InputError, match="recursive YAML alias"):
        load_text("format: agentperm/v1\ntenants: &t\n  acme: *t\n")


@pytest.mark.parametrize("depth", [50, 800, 5000])
@pytest.mark.parametrize("shape", ["list", "mapping"])
def test_deep_nesting_is_an_input_error_not_a_crash(shape, depth):
    # libyaml accepts up to 1000 nested flow levels; the loader must not recurse past Python's limit
    inner = "[" * depth + "]" * depth if shape == "list" else "{a: " * depth + "1" + "}" * depth
    text = f"format: agentperm/v1\ntenants:\n  acme:\n    attributes: {{deep: {inner}}}\n"
    with pytest.raises(InputError) as raised:
        load_text(text)
    assert all(d.loc.line >= 1 for d in raised.value.diagnostics)


def test_deep_nesting_through_aliases_is_an_input_error_not_a_crash():
    # each anchored node is first reached through a shallow alias (z, y), yet built where it is
    # written: x nests 3 × 190 levels, beyond any sane bound and beyond Python's recursion limit
    def nest(levels, inner):
        return "{a: " * levels + inner + "}" * levels

    x = nest(190, "&n1 " + nest(190, "&n0 " + nest(190, "1")))
    with pytest.raises(InputError) as raised:
        load_text(f"format: agentperm/v1\nx: {x}\ny: *n1\nz: *n0\n")
    assert any("nested" in d.message for d in raised.value.diagnostics), raised.value


SIZE_30MB = 30 * 1024 * 1024


def _junk(kind: str) -> bytes:
    rng = random.Random(30)
    if kind == "random-bytes":
        return rng.randbytes(SIZE_30MB)
    if kind == "yaml-punctuation":
        block = bytes(rng.choices(b"abcxyz0123 :-[]{}#&*!|>'\"%@,?\n\t", k=1 << 16))
        return block * (SIZE_30MB >> 16)
    return b"format: agentperm/v1\nx: " + b"a" * SIZE_30MB  # one giant scalar under an unknown key


@pytest.mark.parametrize("kind", ["random-bytes", "yaml-punctuation", "giant-scalar"])
def test_30mb_of_junk_is_refused_without_crashing(tmp_path, kind):
    junk = tmp_path / "junk.yaml"
    junk.write_bytes(_junk(kind))
    started = time.perf_counter()
    with pytest.raises(InputError) as raised:
        load(str(junk))
    assert time.perf_counter() - started < 20
    assert all(d.loc.file and d.loc.line >= 0 for d in raised.value.diagnostics)


MARKUP = "<script>alert(1)</script>"


def test_markup_in_names_is_kept_verbatim():
    text = f"""\
format: agentperm/v1
tenants:
  acme: {{name: "{MARKUP}", description: "a & b <b>bold</b> \\"quoted\\" {{{{ jinja }}}}"}}
people:
  dana: {{name: "<img src=x onerror=alert(1)>", email: "dana@example.com"}}
tools:
  kb:
    description: "]]><!-- -->"
    operations:
      search: {{effect: read, description: "{MARKUP}"}}
"""
    deployment = load_text(text)
    assert deployment.tenants["acme"].name == MARKUP
    assert deployment.tenants["acme"].description == 'a & b <b>bold</b> "quoted" {{ jinja }}'
    assert deployment.people["dana"].name == "<img src=x onerror=alert(1)>"
    assert deployment.tools["kb"].description == "]]><!-- -->"
    assert deployment.tools["kb"].operations["search"].description == MARKUP


# ---- paths, merge order, digest ------------------------------------------------------------

def test_nonexistent_path_is_an_input_error(tmp_path):
    missing = tmp_path / "nowhere"
    error = _load_error([missing])
    assert any("no such file" in d.message and d.loc.file.endswith("nowhere") for d in error.diagnostics)


def test_directory_without_yaml_is_an_input_error(tmp_path):
    (tmp_path / "README.md").write_text("no deployment here\n")
    (tmp_path / "deployment.json").write_text("{}\n")
    (tmp_path / ".hidden.yaml").write_text("format: agentperm/v1\n")
    error = _load_error([tmp_path])
    assert any("no *.yaml" in d.message for d in error.diagnostics), error.diagnostics


def _copy(files: list[Path], folder: Path, order) -> Path:
    folder.mkdir()
    for source in order(files):  # creation order differs; the loader must sort
        shutil.copyfile(source, folder / source.name)
    return folder


def test_merge_order_and_digest_do_not_depend_on_the_directory_listing(tmp_path):
    files = sorted((FIXTURES / "agency").glob("*.yaml"))
    first = load(str(_copy(files, tmp_path / "one", lambda f: f)))
    second = load(str(_copy(files, tmp_path / "two", lambda f: list(reversed(f)))))
    again = load(str(tmp_path / "one"))
    assert first.digest == second.digest == again.digest
    assert first.digest.startswith("sha256:") and len(first.digest) == len("sha256:") + 64
    assert [Path(f).name for f in first.files] == [f.name for f in files]
    assert [Path(f).name for f in second.files] == [f.name for f in files]
    assert list(first.agents) == list(second.agents) and list(first.tools) == list(second.tools)


def test_digest_changes_with_content(tmp_path):
    folder = _copy(sorted((FIXTURES / "agency").glob("*.yaml")), tmp_path / "d", lambda f: f)
    before = load(str(folder)).digest
    with open(folder / "people.yaml", "a", encoding="utf-8") as handle:
        handle.write("# a comment changes the bytes\n")
    assert load(str(folder)).digest != before


def test_digest_and_order_are_stable_across_processes(monkeypatch):
    # another hash seed in another process: set/dict ordering must not leak into the model
    script = ("import sys; from analyzer.loader import load; d = load(sys.argv[1]); "
              "print(d.digest, list(d.files), list(d.agents), list(d.tools), [g.loc for g in d.guardrails])")
    completed = subprocess.run([sys.executable, "-c", script, "fixtures/agency"], check=False, cwd=REPO_ROOT,
                               text=True, capture_output=True, timeout=60,
                               env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert completed.returncode == 0, completed.stderr
    monkeypatch.chdir(REPO_ROOT)
    here = load("fixtures/agency")
    assert completed.stdout.strip() == (f"{here.digest} {list(here.files)} {list(here.agents)} {list(here.tools)} "
                                        f"{[g.loc for g in here.guardrails]}")


def test_files_merge_recursively_in_path_order(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.yaml").write_text("nonsense: [\n")  # hidden folders are skipped
    (tmp_path / "a" / "z.yaml").write_text("format: agentperm/v1\ntenants:\n  acme: {name: First}\n")
    (tmp_path / "b.yaml").write_text("people:\n  dana: {name: Dana}\n")
    (tmp_path / "c.yml").write_text("tenants:\n  acme: {name: Second}\n")
    error = _load_error([tmp_path])
    [duplicate] = [d for d in error.diagnostics if "duplicate tenant id 'acme'" in d.message]
    assert duplicate.loc.file.endswith("c.yml") and (duplicate.loc.line, duplicate.loc.column) == (2, 3)
    assert "z.yaml:3:3" in duplicate.message  # the first definition, in the earlier file
    (tmp_path / "c.yml").write_text("tenants:\n  globex: {name: Second}\n")
    deployment = load(str(tmp_path))
    shown = [Path(f).resolve().relative_to(tmp_path.resolve()).as_posix() for f in deployment.files]
    assert shown == ["a/z.yaml", "b.yaml", "c.yml"]


# ---- mutated fixtures: the loader raises InputError or succeeds, nothing else ---------------

def _key_paths(value, path=()):
    """Every path to a mapping value or list item of a parsed file."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield path + (key,)
            yield from _key_paths(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield path + (index,)
            yield from _key_paths(item, path + (index,))


def _set(document, path, replace=None, drop=False):
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    if drop:
        del parent[path[-1]]
    else:
        parent[path[-1]] = replace


RETYPES = {"int": 7, "list": ["x", 1], "dict": {"k": "v"}, "none": None, "str": "yes", "bool": True,
           "float": 1.5, "bad-id": "bad id!"}


@st.composite
def mutations(draw):
    """(unit index, file index, mutated bytes) for one valid fixture file."""
    unit_index = draw(st.integers(0, len(UNITS) - 1))
    unit = UNITS[unit_index]
    file_index = draw(st.integers(0, len(unit.files) - 1))
    raw = unit.files[file_index].read_bytes()
    text = raw.decode("utf-8")
    kind = draw(st.sampled_from(["drop", "retype", "duplicate", "garbage-text", "garbage-bytes", "truncate"]))
    if kind in ("drop", "retype"):
        document = yaml.safe_load(text)
        paths = list(_key_paths(document))
        if not paths:
            return unit_index, file_index, raw[: len(raw) // 2]
        path = draw(st.sampled_from(paths))
        if kind == "drop":
            _set(document, path, drop=True)
        else:
            _set(document, path, RETYPES[draw(st.sampled_from(sorted(RETYPES)))])
        return unit_index, file_index, yaml.safe_dump(document, sort_keys=False).encode()
    if kind == "duplicate":
        lines = text.splitlines(keepends=True)
        keyed = [i for i, line in enumerate(lines) if re.match(r"^\s*[A-Za-z_][\w.-]*\s*:", line)]
        if not keyed:
            return unit_index, file_index, raw + raw
        index = draw(st.sampled_from(keyed))
        lines.insert(index + 1, lines[index])
        return unit_index, file_index, "".join(lines).encode()
    position = draw(st.integers(0, len(raw)))
    if kind == "garbage-text":
        junk = draw(st.text(alphabet=st.sampled_from(list(":-[]{}#&*!|>'\"%@,?\n\t ab\u00e9\ufeff0")),
                            min_size=1, max_size=20)).encode()
        return unit_index, file_index, raw[:position] + junk + raw[position:]
    if kind == "garbage-bytes":
        junk = draw(st.binary(min_size=1, max_size=20))
        return unit_index, file_index, raw[:position] + junk + raw[position:]
    return unit_index, file_index, raw[:position]


@pytest.fixture(scope="module")
def unit_copies(tmp_path_factory):
    """A writable copy of every valid unit, so one file can be replaced per example."""
    root = tmp_path_factory.mktemp("units")
    copies = []
    for index, unit in enumerate(UNITS):
        folder = root / str(index)
        folder.mkdir()
        copies.append([shutil.copyfile(f, folder / f.name) for f in unit.files])
    return copies


@contextlib.contextmanager
def mutated_unit(unit_copies, mutation):
    """The files of a unit copy with one of them replaced by the mutated bytes, restored after."""
    unit_index, file_index, mutated = mutation
    files = unit_copies[unit_index]
    target = Path(files[file_index])
    target.write_bytes(mutated)
    try:
        yield files
    finally:
        target.write_bytes(UNITS[unit_index].files[file_index].read_bytes())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=mutations())
def test_mutated_fixtures_raise_only_input_error(unit_copies, mutation):
    with mutated_unit(unit_copies, mutation) as files:
        try:
            load([str(f) for f in files])
        except InputError as error:
            assert error.diagnostics
            for diagnostic in error.diagnostics:
                assert diagnostic.loc.file, diagnostic
                assert diagnostic.loc.line >= 0 and diagnostic.loc.column >= 0, diagnostic
                assert diagnostic.message, diagnostic


# ---- the command line ---------------------------------------------------------------------

# a few cases through the real console script, started together (each process costs ~0.5 s);
# every case goes through the same click group in-process below
CLI_CASES = ["non-utf8", "duplicate-id-across-files"]


@pytest.fixture(scope="module")
def cli_runs():
    """case name → (exit code, stdout, stderr) of `agentperm check <its files>`, run concurrently."""
    runs = {}
    for name in CLI_CASES:
        [case] = [c for c in CASES if c.name == name]
        runs[name] = subprocess.Popen(
            [str(AGENTPERM), "check", *(p.relative_to(REPO_ROOT).as_posix() for p in case.files)],
            cwd=REPO_ROOT, text=True, encoding="utf-8", errors="replace",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # the folder as a user would pass it: expected.yaml is read too (and is itself not a deployment)
    runs["bad-duration/"] = subprocess.Popen(
        [str(AGENTPERM), "check", "fixtures/invalid/bad-duration"], cwd=REPO_ROOT, text=True,
        encoding="utf-8", errors="replace", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    results = {}
    for name, process in runs.items():
        stdout, stderr = process.communicate(timeout=120)
        results[name] = (process.returncode, stdout, stderr)
    return results


@pytest.mark.parametrize("name", CLI_CASES)
def test_cli_check_invalid_case_exits_2(cli_runs, name):
    [case] = [c for c in CASES if c.name == name]
    code, stdout, stderr = cli_runs[name]
    assert code == 2, (stdout, stderr)
    assert "Traceback" not in stderr and "Traceback" not in stdout
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert any(RENDERED.match(line) for line in lines), stderr
    for want in case.errors:
        prefix = f"{(case.folder / want.file).relative_to(REPO_ROOT).as_posix()}:{want.line}:{want.column}: error:"
        assert any(line.startswith(prefix) and want.contains in line for line in lines), (prefix, stderr)


def test_cli_check_case_directory_exits_2(cli_runs):
    code, _, stderr = cli_runs["bad-duration/"]
    assert code == 2 and "Traceback" not in stderr
    assert "fixtures/invalid/bad-duration/deployment.yaml:24:5: error: bad duration" in stderr


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_cli_group_reports_every_case_with_exit_2(case):
    from click.testing import CliRunner

    from analyzer.cli import main

    runner = CliRunner(mix_stderr=False) if "mix_stderr" in CliRunner.__init__.__code__.co_varnames else CliRunner()
    result = runner.invoke(main, ["check", *map(str, case.files)])
    assert result.exit_code == 2, (result.output, result.exception)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert errors and all(RENDERED.match(line) for line in errors), result.stderr


# ---- the fast YAML path: the same deployment, the same errors, positions found lazily ---------

def _same_value(a, b, where: str) -> None:
    """``a`` and ``b`` are the same model value, positions included (a LazyLoc is a Loc)."""
    if isinstance(a, Loc):
        assert isinstance(b, Loc), where
        assert a.to_json() == b.to_json() and str(a) == str(b) and a == b and hash(a) == hash(b), where
        return
    if isinstance(a, Mapping):  # positions: a lazy mapping on the fast path, a mappingproxy otherwise
        assert isinstance(b, Mapping), where
    else:
        assert type(a) is type(b), where
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            _same_value(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, Mapping):
        assert list(a) == list(b), where
        for key in a:
            _same_value(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, tuple):
        assert len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b)):
            _same_value(x, y, f"{where}[{index}]")
    else:
        assert a == b, where


def _same_deployment(fast, reference) -> None:
    for name in ("paths", "files", "digest", "format_loc", "tenants", "people", "tools", "roles", "agents",
                 "credentials", "gates", "workflows", "guardrails", "policy", "audit"):
        _same_value(getattr(fast, name), getattr(reference, name), name)


def _outcome(paths, fast: bool):
    try:
        return load([str(p) for p in paths], fast=fast)
    except InputError as error:
        return [d.render() for d in error.diagnostics]


def test_fast_and_reference_yaml_paths_load_every_fixture_alike():
    for unit in UNITS:
        fast, reference = _outcome(unit.files, True), _outcome(unit.files, False)
        if isinstance(reference, list):
            assert fast == reference, unit.name
        else:
            _same_deployment(fast, reference)


def test_fast_and_reference_yaml_paths_load_a_generated_deployment_alike(tmp_path):
    generator = bench_generator()
    generator.write(generator.generate(15), str(tmp_path))
    files = sorted(tmp_path.glob("*.yaml"))
    from analyzer.yamlsrc import parse_yaml
    assert all(parse_yaml(f.name, f.read_text(encoding="utf-8")).fast for f in files)  # not vacuous
    _same_deployment(load([str(f) for f in files]), load([str(f) for f in files], fast=False))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_invalid_cases_report_byte_identical_errors_on_both_yaml_paths(case):
    assert _outcome(case.files, True) == _outcome(case.files, False)


def test_loading_without_yaml_rs_gives_the_same_deployment(monkeypatch):
    from analyzer import yamlsrc

    files = sorted((FIXTURES / "flawed-agency").glob("*.yaml"))
    fast = load([str(f) for f in files])
    monkeypatch.setattr(yamlsrc, "yaml_rs", None)
    _same_deployment(fast, load([str(f) for f in files]))


def test_field_and_item_positions_are_read_only_mappings():
    deployment = load(str(FIXTURES / "flawed-agency"))
    agent = next(a for a in deployment.agents.values() if isinstance(a.tenants, tuple) and len(a.tenants) > 1)
    locs, items = agent.locs, agent.item_locs
    assert isinstance(locs, Mapping) and isinstance(items, Mapping)
    assert "tenants" in locs and "nonsense" not in locs and locs.get("nonsense") is None
    assert list(locs) == list(dict(locs)) and len(locs) == len(list(locs))
    assert locs["tenants"] is locs["tenants"]  # made once
    assert ("tenants", 1) in items and ("tenants", len(agent.tenants)) not in items and "tenants" not in items
    assert [key for key in items if key[0] == "tenants"] == [("tenants", i) for i in range(len(agent.tenants))]
    assert len(items) == len(list(items)) == len(dict(items))
    with pytest.raises(KeyError):
        locs["nonsense"]
    with pytest.raises(KeyError):
        items[("tenants", 99)]
    with pytest.raises(TypeError):
        locs["tenants"] = None  # type: ignore[index]
    first, second = items[("tenants", 0)], items[("tenants", 1)]
    assert first.line == second.line == locs["tenants"].line and first.column < second.column


def test_model_objects_are_what_their_dataclass_constructors_make():
    # the loader fills frozen dataclasses directly (faster): they must equal the real construction
    deployment = load(str(FIXTURES / "flawed-agency"))
    definitions = [d for section in ("tenants", "people", "tools", "roles", "agents", "credentials", "gates",
                                     "workflows") for d in getattr(deployment, section).values()]
    definitions += [op for tool in deployment.tools.values() for op in tool.operations.values()]
    definitions += [p for role in deployment.roles.values() for p in role.grants + role.denies]
    definitions += list(deployment.guardrails)
    for definition in definitions:
        remade = dataclasses.replace(definition)  # through __init__
        assert vars(remade).keys() == vars(definition).keys(), type(definition)
        assert remade == definition


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=mutations())
def test_mutated_fixtures_load_alike_on_both_yaml_paths(unit_copies, mutation):
    with mutated_unit(unit_copies, mutation) as files:
        fast, reference = _outcome(files, True), _outcome(files, False)
        if isinstance(reference, list):
            assert fast == reference
        else:
            _same_deployment(fast, reference)




def _starred_as_lists(text: str) -> str:
    """Every list-or-"*" value written "*" rewritten as ["*"] (a grant's ``tool`` is one id, not a list)."""
    return re.sub(r'(\b(?:operations|tenants|tools|covers|agents): )"\*"', r'\1["*"]', text)


def test_a_list_holding_star_means_star(tmp_path):
    """FORMAT §2: ``operations: ["*"]`` means ``operations: "*"``; so do the other "*"-or-list keys."""
    from conftest import invoke_cli

    source = REPO_ROOT / "fixtures" / "flawed-agency"
    starred = tmp_path / "flawed-agency"
    shutil.copytree(source, starred)
    rewritten = 0
    for path in sorted(starred.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        new = _starred_as_lists(text)
        rewritten += new != text
        path.write_text(new, encoding="utf-8")
    assert rewritten >= 3  # roles (operations), agents (tenants), credentials (tools, tenants)
    before, after = load([str(source)]), load([str(starred)])
    assert before.roles["platform-ops"].grants[0].operations == after.roles["platform-ops"].grants[0].operations == "*"

    def summary(path):
        import json

        code, out, _err = invoke_cli("check", str(path), "--format", "json")
        document = json.loads(out)
        return code, [(f["rule"], f["severity"], f["message"], f["subjects"], f["location"]["line"])
                      for f in document["findings"]], [(i["id"], i["status"]) for i in document["invariants"]]

    assert summary(source) == summary(starred)


def test_star_among_other_ids_in_a_list_is_star_and_schema_accepts_it():
    from analyzer.spec import json_schema

    deployment = load_text(
        'format: agentperm/v1\n'
        'tenants: {acme: {}}\n'
        'tools: {crm: {operations: {read: {effect: read}, wipe: {effect: delete}}}}\n'
        'roles: {ops: {grants: [{tool: crm, operations: ["*"]}], denies: [{tool: crm, operations: ["*", read]}]}}\n'
        'workflows: {}\n', "inline.yaml")
    assert deployment.roles["ops"].grants[0].operations == "*"
    assert deployment.roles["ops"].denies[0].operations == "*"
    jsonschema = pytest.importorskip("jsonschema")
    document = {"format": "agentperm/v1", "roles": {"ops": {"grants": [{"tool": "crm", "operations": ["*"]}]}}}
    jsonschema.validate(document, json_schema())
