"""CEL conditions: parsing, rejection, references, unparse, and the compiled evaluator.

The compiled closures are checked against `reference_eval`, a plain recursive interpreter
written here from the semantics in analyzer/conditions.py's docstring.
"""

from __future__ import annotations

import functools
import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.conditions import (
    VARIABLES,
    Binary,
    Call,
    CelEvalError,
    CelSyntaxError,
    Comprehension,
    Cond,
    Expr,
    Has,
    Ident,
    Index,
    ListExpr,
    Lit,
    MapExpr,
    Select,
    Unary,
    compile_cel,
    evaluate,
    parse_cel,
    references,
    unparse,
)


def make_env(*, params=None, call=None, fields=None, tenant=None) -> dict:
    """A call environment with plausible defaults; pass a keyword to replace one part."""
    return {
        "params": {"amount": 10, "to": "bob@acme.com", "flag": True, "tags": ["a", "b"]} if params is None else params,
        "call": {"tool": "crm", "operation": "update_deal", "delegated": False, "tenant": "acme", "home": "acme"}
        if call is None else call,
        "fields": ["stage", "notes"] if fields is None else fields,
        "tenant": {"id": "acme", "domain": "acme.com"} if tenant is None else tenant,
    }


def run(source: str, env: dict | None = None):
    return evaluate(compile_cel(parse_cel(source)), make_env() if env is None else env)


ERROR = object()     # expected outcome: CelEvalError


def outcome(source: str, env: dict | None = None):
    try:
        return run(source, env)
    except CelEvalError:
        return ERROR


def same(a, b) -> bool:
    """Type-strict equality: True is not 1, 1 is not 1.0."""
    return tagged(a) == tagged(b)


def tagged(value):
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return (type(value).__name__, value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("double", repr(value))
    if isinstance(value, list | tuple):
        return ("list", tuple(tagged(v) for v in value))
    if isinstance(value, dict):
        return ("map", tuple(sorted((repr(tagged(k)), tagged(v)) for k, v in value.items())))
    if value is ERROR:
        return ("error",)
    raise TypeError(value)


# ---------------------------------------------------------------------------------------------- constructs

CONSTRUCTS = [
    # (source, node type at the root, value on make_env())
    ("42", Lit, 42),
    ("-7", Lit, -7),
    ("0x1F", Lit, 31),
    ("1.5e3", Lit, 1500.0),
    ('"a\\tb\\u00e9\\x41\\101\\""', Lit, 'a\tbéAA"'),
    ("r'\\d+'", Lit, "\\d+"),
    ("'''two\nlines'''", Lit, "two\nlines"),
    ("true", Lit, True),
    ("null", Lit, None),
    ("fields", Ident, ["stage", "notes"]),
    ("params.amount", Select, 10),
    ("params.tags[1]", Index, "b"),
    ('tenant["domain"]', Index, "acme.com"),
    ("[1, params.amount]", ListExpr, [1, 10]),
    ('{"k": params.amount, 2: "two"}', MapExpr, {"k": 10, 2: "two"}),
    ("!params.flag", Unary, False),
    ("-params.amount", Unary, -10),
    ("- 5", Unary, -5),
    ("params.flag || false", Binary, True),
    ("params.flag && false", Binary, False),
    ("params.amount == 10", Binary, True),
    ("params.to != null", Binary, True),
    ("params.amount < 11", Binary, True),
    ("params.amount <= 10", Binary, True),
    ("params.amount > 10", Binary, False),
    ("params.amount >= 10", Binary, True),
    ('"stage" in fields', Binary, True),
    ('"domain" in tenant', Binary, True),
    ("params.amount + 5", Binary, 15),
    ('"a" + "b"', Binary, "ab"),
    ("fields + ['x']", Binary, ["stage", "notes", "x"]),
    ("params.amount - 15", Binary, -5),
    ("params.amount * 3", Binary, 30),
    ("-7 / 2", Binary, -3),
    ("-7 % 2", Binary, -1),
    ("7 % -2", Binary, 1),
    ("7.0 / 2.0", Binary, 3.5),
    ("params.flag ? 'yes' : 'no'", Cond, "yes"),
    ("has(params.amount)", Has, True),
    ("has(params.nope)", Has, False),
    ("has(params.amount.x)", Has, False),       # params.amount is not a map
    ("size(fields)", Call, 2),
    ("params.to.size()", Call, 12),
    ("size(tenant)", Call, 2),
    ('size("é")', Call, 1),
    ('int("-12")', Call, -12),
    ("int(params.amount)", Call, 10),
    ("string(params.amount)", Call, "10"),
    ("string(false)", Call, "false"),
    ('params.to.startsWith("bob")', Call, True),
    ('params.to.endsWith("@" + tenant.domain)', Call, True),
    ('params.to.contains("@acme")', Call, True),
    ('params.to.matches("acme")', Call, True),            # partial match, like re.search
    ('params.to.matches("^acme")', Call, False),
    ("params.to.matches(call.tool)", Call, False),        # computed pattern
    ('fields.all(f, f.size() > 4)', Comprehension, True),
    ('fields.exists(f, f == "notes")', Comprehension, True),
    ('fields.exists_one(f, f.startsWith("s"))', Comprehension, True),
    ('fields.map(f, f + "!")', Comprehension, ["stage!", "notes!"]),
    ('fields.filter(f, f != "stage")', Comprehension, ["notes"]),
    ('tenant.all(k, k.size() > 1)', Comprehension, True),          # a map iterates its keys
    ('fields.exists(v, [1, 2].exists(v, v == 2))', Comprehension, True),   # the inner v shadows the outer
]


@pytest.mark.parametrize("source,node_type,expected", CONSTRUCTS, ids=[c[0] for c in CONSTRUCTS])
def test_construct_parses_and_evaluates(source, node_type, expected):
    expr = parse_cel(source)
    assert type(expr) is node_type
    assert same(evaluate(expr, make_env()), expected)
    assert same(run(unparse(expr)), expected)


EVAL_ERRORS = [
    "params.missing", "params.amount.x", "params.tags[2]", "params.tags[-1]", "params.tags[true]",
    'tenant["nope"]', "fields[0][0]", '1 + "a"', '"a" < 1', "1 < 1.0", "!5", '-"a"', "1 / 0", "1 % 0",
    "1.5 % 2.0", "true == 1", '1 == "1"', "true + true", "size(1)", 'int("1_000")', 'int(" 1")', "int(true)",
    "int(1.5)", "string(1.5)", "string(null)", "params.amount.startsWith('1')", "params.to.matches(1)",
    'params.to.matches("(" + "")', "params.amount.all(x, true)", "fields.all(f, 1)", "fields.filter(f, 1)",
    "fields.exists_one(f, f)", "1 ? 2 : 3", "[1] < [2]", '{"a": 1, "a": 2}', "{1.5: 1}", '1.5 in {"a": 1}',
    "1 in 1", "params.amount[0]", "nothing_bound_here",
]


@pytest.mark.parametrize("source", EVAL_ERRORS)
def test_evaluation_error(source):
    expr = parse_cel(source, variables=None)
    with pytest.raises(CelEvalError):
        evaluate(expr, make_env())


@pytest.mark.parametrize("expr", ["9223372036854775807 + 1", "-9223372036854775808 - 1", "4611686018427387904 * 2",
                                  "-9223372036854775808 / -1", "-9223372036854775808 % -1",
                                  "-(-9223372036854775807 - 1)"])
def test_int_arithmetic_leaving_64_bits_is_an_overflow_error(expr):
    """CEL's int is 64-bit (FORMAT §2): an overflow is an error, so a grant's `when` fails closed."""
    assert outcome(expr) is ERROR


def test_ints_reach_both_64_bit_ends_and_bool_is_not_int():
    assert run("9223372036854775806 + 1") == 9223372036854775807
    assert run("-9223372036854775807 - 1") == -9223372036854775808
    assert run("-9223372036854775807 / -1") == 9223372036854775807
    assert outcome("[1, 2][true]") is ERROR
    assert run("{1: 'int'}[1]") == "int" and outcome("{1: 'int'}[true]") is ERROR
    assert run("true in {1: 2}") is False


def test_null_equality_and_nested_equality():
    assert run("null == null") is True
    assert run("params.amount == null") is False
    assert run("[1, [2, 'x']] == [1, [2, 'x']]") is True
    assert run("{'a': [1]} == {'a': [1]}") is True
    assert run("{'a': 1} == {'b': 1}") is False
    assert run("[1] == [1, 2]") is False


def test_double_division_is_ieee():
    assert run("1.0 / 0.0") == math.inf
    assert run("-1.0 / 0.0") == -math.inf
    assert math.isnan(run("0.0 / 0.0"))


def test_regex_is_re2():
    # RE2's \d is ASCII only; Python's re would match the Arabic-Indic digit.
    env = make_env(params={"to": "٣"})
    assert run(r'params.to.matches("\\d")', env) is False
    assert run('"ab".matches("(?i)A")') is True


def test_a_lone_surrogate_is_an_evaluation_error_not_a_crash():
    env = make_env(params={"to": "\ud800"})
    assert outcome('params.to.matches("a")', env) is ERROR


def test_missing_variable_is_an_evaluation_error():
    with pytest.raises(CelEvalError, match="no value for variable 'tenant'"):
        evaluate(parse_cel("tenant.id == 'a'"), {"params": {}})


def test_evaluation_error_carries_position():
    with pytest.raises(CelEvalError) as info:
        run("params.amount > 1 &&\n  params.missing == 2")
    assert info.value.pos == (2, 3)
    assert str(info.value).startswith("2:3: ")


def test_evaluate_accepts_a_compiled_condition_or_an_ast():
    expr = parse_cel("params.amount <= 50")
    compiled = compile_cel(expr)
    assert evaluate(compiled, make_env()) is True
    assert evaluate(expr, make_env(params={"amount": 51})) is False
    assert compiled(make_env(params={"amount": 50})) is True


# ---------------------------------------------------------------------------------------------- absorption

E = "params.missing == 1"      # evaluates to an error (no such key)
N = "1"                        # not a bool

ABSORPTION = [
    (f"false && {E}", False), (f"{E} && false", False), (f"true && {E}", ERROR), (f"{E} && true", ERROR),
    (f"{E} && {E}", ERROR), (f"false && {N}", False), (f"{N} && false", False), (f"true && {N}", ERROR),
    (f"{N} && true", ERROR), ("true && true", True),
    (f"true || {E}", True), (f"{E} || true", True), (f"false || {E}", ERROR), (f"{E} || false", ERROR),
    (f"{E} || {E}", ERROR), (f"true || {N}", True), (f"{N} || true", True), (f"false || {N}", ERROR),
    ("false || false", False),
    (f"({E} || true) && ({E} || true)", True), (f"!({E} && false)", True),
    (f"true ? 1 : {E}", 1), (f"false ? {E} : 2", 2), (f"({E}) ? 1 : 2", ERROR), ("1 ? 2 : 3", ERROR),
    ("[0, 1].all(x, 10 / x > 100)", False), ("[1, 0].all(x, 10 / x > 100)", False),
    ("[0, 1].all(x, 10 / x > 0)", ERROR), ("[0, 1].exists(x, 10 / x == 10)", True),
    ("[1, 0].exists(x, 10 / x == 10)", True), ("[0, 1].exists(x, 10 / x == 5)", ERROR),
    ("[0, 1].exists_one(x, 10 / x == 10)", ERROR), ("[0, 1].map(x, 10 / x)", ERROR),
    ('1 in ["a", 1]', True), ('1 in [1, "a"]', True), ('1 in ["a"]', ERROR), ("1 in []", False),
    ('null in ["a"]', False),
    ('[1, "a"] == [2, 3]', False), ('["a", 1] == [3, 2]', False), ('[1, "a"] == [1, 3]', ERROR),
    (f"has(params.missing) || {E}", ERROR), (f"!has(params.missing) || {E}", True),
]


@pytest.mark.parametrize("source,expected", ABSORPTION, ids=[a[0] for a in ABSORPTION])
def test_error_absorption(source, expected):
    assert same(outcome(source), expected)


# ---------------------------------------------------------------------------------------------- rejection

REJECTIONS = [
    # (source, line, column, words in the message)
    ('params.to == b"abc"', 1, 14, "bytes literals"),
    ("params.amount > 1u", 1, 17, "unsigned integer"),
    ("dyn(params.amount) > 1", 1, 1, "dyn"),
    ('call.tool == "x" &&\n  timestamp("2024-01-01T00:00:00Z") != null', 2, 3, "timestamps"),
    ('duration("1h") != null', 1, 1, "durations"),
    ("type(params.amount) == int", 1, 1, "type()"),
    ("double(params.amount) > 1.0", 1, 1, "double()"),
    ("foo(1)", 1, 1, "function foo() is not supported"),
    ("params.to.lowerAscii() == 'a'", 1, 11, "method .lowerAscii() is not supported"),
    ("params.to.size(1) > 0", 1, 11, ".size() takes 0 arguments"),
    ("params.to.startsWith() ", 1, 11, ".startsWith() takes 1 argument"),
    ("size(params.to, 1)", 1, 1, "size() takes 1 argument"),
    ('matches(params.to, "a")', 1, 1, "write x.matches(...)"),
    ("all(fields, f, true)", 1, 1, "is a method"),
    ("params.to.has(x)", 1, 11, "write has(x)"),
    ("has(params)", 1, 5, "has() needs a field selection"),
    ('has(params["x"])', 1, 5, "has() needs a field selection"),
    ("has(params.a, params.b)", 1, 1, "has() takes 1 argument"),
    ("Msg{a: 1}", 1, 1, "message construction"),
    (".params.amount > 1", 1, 1, "leading-dot"),
    ("paramz.amount > 1", 1, 1, "unknown variable 'paramz'"),
    ("call.tool == 'x' &&\n   foo.bar", 2, 4, "unknown variable 'foo'"),
    ("fields.all(f, g)", 1, 15, "unknown variable 'g'"),
    ("fields.map(f, f != 'a', f)", 1, 8, "map(v, p, e)"),
    ("fields.all(f.x, true)", 1, 12, "must be a variable name"),
    ("fields.exists(f)", 1, 8, ".exists() takes 2 arguments"),
    ("fields.all(if, true)", 1, 12, "reserved"),
    ('params.to == "\\q"', 1, 14, "invalid escape sequence '\\q'"),
    ('params.to == "\\ud800"', 1, 14, "not a Unicode scalar value"),
    ("params.x > 1e999", 1, 12, "out of range"),
    ('params.to.matches("(")', 1, 19, "invalid pattern"),
    ('params.to.matches("(a)\\\\1")', 1, 19, "backreferences"),
    ("params.to.matches('(?P<n>a)(?P=n)')", 1, 19, "named backreferences"),
    ('params.to.matches("(?=a)")', 1, 19, "lookaround (?=...)"),
    ('params.to.matches("a(?!b)")', 1, 19, "lookaround (?!...)"),
    ('params.to.matches("(?<=a)b")', 1, 19, "lookaround (?<=...)"),
    ("call.tool == 'x' ||\n  params.to.matches(r'(?<!a)b')", 2, 21, "lookaround (?<!...)"),
    ("params.amount >", 1, 16, "unexpected end of expression"),
    ("params.amount $ 1", 1, 15, "unexpected character '$'"),
    ("(params.amount > 1", 1, 19, "expected ')'"),
    ('params.to == "abc', 1, 14, "unterminated string"),
    ("params.amount ) 1", 1, 15, "unexpected ')'"),
    ("", 1, 1, "unexpected end of expression"),
    ("call.tool ==\n  'x' &&", 2, 9, "unexpected end of expression"),
    ("true &&\n  false false", 2, 9, "unexpected 'false'"),
    (" || ".join(["true"] * 200), 1, 1, "nests more than"),
]


@pytest.mark.parametrize("source,line,column,words", REJECTIONS, ids=[r[3] for r in REJECTIONS])
def test_rejected_at_parse_with_position(source, line, column, words):
    with pytest.raises(CelSyntaxError) as info:
        parse_cel(source)
    error = info.value
    assert words in error.message
    assert (error.line, error.column) == (line, column)
    assert str(error).startswith(f"{line}:{column}: ")


def test_deep_but_bounded_nesting_is_accepted():
    assert run(" || ".join(["false"] * 100) + " || true") is True
    assert run("(" * 60 + "1" + ")" * 60) == 1


def test_parse_accepts_other_variables_when_asked():
    assert parse_cel("risk == 'high'", variables=VARIABLES | {"risk"}) == Binary("==", Ident("risk"), Lit("high"))
    assert parse_cel("anything.at.all", variables=None) == Select(Select(Ident("anything"), "at"), "all")


def test_positions_are_one_based_and_ignored_by_equality():
    expr = parse_cel("params.flag &&\n  call.tool == true")
    assert expr.pos == (1, 1)
    assert expr.right.pos == (2, 3)
    assert expr.right.right.pos == (2, 16)          # bool literals keep their position too
    assert expr == Binary("&&", Select(Ident("params"), "flag"), Binary("==", Select(Ident("call"), "tool"), Lit(True)))


def test_literal_equality_is_type_strict():
    assert Lit(True) != Lit(1)
    assert Lit(1) != Lit(1.0)
    assert Lit(0.0) != Lit(-0.0)
    assert Lit("a") == Lit("a", pos=(3, 4))
    assert len({Lit(True), Lit(1), Lit(1.0)}) == 3


# ---------------------------------------------------------------------------------------------- references

REFERENCES = [
    ("params.amount > 1 && call.tool == 'crm'", {("params", "amount"), ("call", "tool")}),
    ("size(fields) > 0", {("fields", None)}),
    ('params["amount"] > 1', {("params", None)}),
    ("has(params.x)", {("params", "x")}),
    ("params.a.b == 1", {("params", "a")}),
    ("tenant.domain.size() > 3", {("tenant", "domain")}),
    ("fields.all(f, f.startsWith(tenant.id))", {("fields", None), ("tenant", "id")}),
    ('fields.exists(params, params == "a") || params.x', {("fields", None), ("params", "x")}),
    ("[1].map(v, v.x).size() == 1", set()),
    ("true", set()),
]


@pytest.mark.parametrize("source,expected", REFERENCES, ids=[r[0] for r in REFERENCES])
def test_references(source, expected):
    assert references(parse_cel(source)) == frozenset(expected)


# ---------------------------------------------------------------------------------------------- unparse

@pytest.mark.parametrize("source,canonical", [
    ("params.amount<=50", "params.amount <= 50"),
    ("(a - b) - c", "a - b - c"),
    ("a - (b - c)", "a - (b - c)"),
    ("(a || b) && c", "(a || b) && c"),
    ("a ? (b ? 1 : 2) : c ? 3 : 4", "a ? (b ? 1 : 2) : c ? 3 : 4"),
    ("-(5)", "- 5"),
    ("-(-5)", "--5"),
    ("(-5).size()", "(-5).size()"),
    ("!(a && b)", "!(a && b)"),
    ("'it\\'s'", "\"it's\""),
    ("{'k': [1, 2.5, null]}", '{"k": [1, 2.5, null]}'),
    ("x.filter(v, v > 1).map(v, v * 2)", "x.filter(v, v > 1).map(v, v * 2)"),
])
def test_unparse_canonical(source, canonical):
    expr = parse_cel(source, variables=None)
    assert unparse(expr) == canonical
    assert parse_cel(canonical, variables=None) == expr


NAMES = ("call", "params", "fields", "tenant", "v", "w")
FIELDS = ("amount", "to", "domain", "x", "size", "all", "matches")
PATTERNS = ("a", "^a$", "[0-9]+", "@acme\\.com$", "(?i)x|y", "")


def _finite_floats():
    return st.floats(allow_nan=False, allow_infinity=False)


_LITERALS = st.one_of(
    st.integers(-(10 ** 20), 10 ** 20), _finite_floats(), st.booleans(), st.none(),
    st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=8),
).map(Lit)


def _extend(children):
    non_string_literal = children.filter(lambda e: not (isinstance(e, Lit) and isinstance(e.value, str)))
    pattern = st.one_of(non_string_literal, st.sampled_from(PATTERNS).map(Lit))
    select = st.builds(Select, children, st.sampled_from(FIELDS))
    return st.one_of(
        select,
        st.builds(Index, children, children),
        st.lists(children, max_size=3).map(lambda items: ListExpr(tuple(items))),
        st.lists(st.tuples(children, children), max_size=2).map(lambda entries: MapExpr(tuple(entries))),
        st.builds(Unary, st.sampled_from(["!", "-"]), children),
        st.builds(Binary, st.sampled_from(["||", "&&", "==", "!=", "<", "<=", ">", ">=", "in", "+", "-", "*",
                                           "/", "%"]), children, children),
        st.builds(Cond, children, children, children),
        st.builds(Has, select),
        st.builds(lambda name, arg: Call(name, None, (arg,)), st.sampled_from(["size", "int", "string"]), children),
        st.builds(lambda target: Call("size", target, ()), children),
        st.builds(lambda name, target, arg: Call(name, target, (arg,)),
                  st.sampled_from(["startsWith", "endsWith", "contains"]), children, children),
        st.builds(lambda target, arg: Call("matches", target, (arg,)), children, pattern),
        st.builds(Comprehension, st.sampled_from(["all", "exists", "exists_one", "map", "filter"]), children,
                  st.sampled_from(["v", "w"]), children),
    )


ASTS = st.recursive(st.one_of(_LITERALS, st.sampled_from(NAMES).map(Ident)), _extend, max_leaves=12)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ASTS)
def test_unparse_round_trips(expr):
    text = unparse(expr)
    parsed = parse_cel(text, variables=NAMES)
    assert parsed == expr, text
    assert unparse(parsed) == text


# ---------------------------------------------------------------------------------------------- agreement

def _tag(value) -> str:
    if value is None:
        return "null"
    for python_type, name in ((bool, "bool"), (int, "int"), (float, "double"), (str, "string"),
                              ((list, tuple), "list"), (dict, "map")):
        if isinstance(value, python_type):
            return name
    raise CelEvalError(f"unsupported {type(value).__name__}")


def _attempt(thunk):
    try:
        return thunk()
    except CelEvalError as exc:
        return exc


def _ref_equal(a, b) -> bool:
    ta, tb = _tag(a), _tag(b)
    if "null" in (ta, tb):
        return ta == tb
    if ta != tb:
        raise CelEvalError("==: different types")
    if ta == "list":
        if len(a) != len(b):
            return False
        results = [_attempt(lambda x=x, y=y: _ref_equal(x, y)) for x, y in zip(a, b)]
    elif ta == "map":
        if {(_tag(k), k) for k in a} != {(_tag(k), k) for k in b}:
            return False
        results = [_attempt(lambda k=k: _ref_equal(a[k], b[k])) for k in a]
    else:
        return a == b
    if any(r is False for r in results):
        return False
    if any(isinstance(r, CelEvalError) for r in results):
        raise CelEvalError("==: element error")
    return True


def reference_eval(node: Expr, env: dict):
    """A plain recursive interpreter of the documented semantics, to check the compiled closures against."""
    ev = functools.partial(reference_eval, env=env)
    if isinstance(node, Lit):
        return node.value
    if isinstance(node, Ident):
        if node.name not in env:
            raise CelEvalError("unbound")
        return env[node.name]
    if isinstance(node, Select):
        container = ev(node.operand)
        if _tag(container) != "map" or node.field not in container:
            raise CelEvalError("select")
        return container[node.field]
    if isinstance(node, Has):
        container = ev(node.select.operand)
        return _tag(container) == "map" and node.select.field in container
    if isinstance(node, Index):
        container, key = ev(node.operand), ev(node.index)
        if _tag(container) == "list" and _tag(key) == "int" and 0 <= key < len(container):
            return container[key]
        if _tag(container) == "map" and _tag(key) in ("int", "string", "bool"):
            for stored, value in container.items():
                if _tag(stored) == _tag(key) and stored == key:
                    return value
        raise CelEvalError("index")
    if isinstance(node, ListExpr):
        return [ev(item) for item in node.items]
    if isinstance(node, MapExpr):
        result = {}
        for k, v in node.entries:
            key, value = ev(k), ev(v)
            if _tag(key) not in ("int", "string", "bool") or key in result:
                raise CelEvalError("map key")
            result[key] = value
        return result
    if isinstance(node, Unary):
        value = ev(node.operand)
        if node.op == "!" and _tag(value) == "bool":
            return not value
        if node.op == "-" and _tag(value) in ("int", "double"):
            return -value
        raise CelEvalError("unary")
    if isinstance(node, Binary):
        return _ref_binary(node, ev)
    if isinstance(node, Cond):
        test = ev(node.test)
        if _tag(test) != "bool":
            raise CelEvalError("?:")
        return ev(node.then) if test else ev(node.orelse)
    if isinstance(node, Call):
        return _ref_call(node, ev)
    if isinstance(node, Comprehension):
        return _ref_comprehension(node, env)
    raise AssertionError(node)


def _ref_binary(node: Binary, ev):
    op = node.op
    if op in ("&&", "||"):
        decisive = op == "||"
        sides = [_attempt(lambda side=side: ev(side)) for side in (node.left, node.right)]
        if any(s is decisive for s in sides):
            return decisive
        if all(s is (not decisive) for s in sides):
            return not decisive
        raise CelEvalError(op)
    a, b = ev(node.left), ev(node.right)
    ta, tb = _tag(a), _tag(b)
    if op == "==":
        return _ref_equal(a, b)
    if op == "!=":
        return not _ref_equal(a, b)
    if op == "in":
        if tb == "list":
            results = [_attempt(lambda y=y: _ref_equal(a, y)) for y in b]
            if any(r is True for r in results):
                return True
            if any(isinstance(r, CelEvalError) for r in results):
                raise CelEvalError("in")
            return False
        if tb == "map" and ta in ("int", "string", "bool"):
            return any(_tag(k) == ta and k == a for k in b)
        raise CelEvalError("in")
    if ta != tb:
        raise CelEvalError(op)
    if op in ("<", "<=", ">", ">=") and ta in ("int", "double", "string"):
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    if op == "+" and ta in ("int", "double", "string", "list"):
        return list(a) + list(b) if ta == "list" else a + b
    if op in ("-", "*") and ta in ("int", "double"):
        return a - b if op == "-" else a * b
    if op in ("/", "%") and ta == "int":
        if b == 0:
            raise CelEvalError("zero")
        quotient = a // b                   # floor; CEL truncates toward zero
        if quotient < 0 and quotient * b != a:
            quotient += 1
        return quotient if op == "/" else a - b * quotient
    if op == "/" and ta == "double":
        if b == 0.0:
            return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a) * math.copysign(1.0, b)
        return a / b
    raise CelEvalError(op)


def _ref_call(node: Call, ev):
    if node.target is None:
        (value,) = [ev(arg) for arg in node.args]
        kind = _tag(value)
        if node.function == "size" and kind in ("string", "list", "map"):
            return len(value)
        if node.function == "int" and kind == "int":
            return value
        if node.function == "int" and kind == "string" and re.fullmatch(r"[+-]?[0-9]+", value):
            return int(value)
        if node.function == "string" and kind in ("string", "int"):
            return str(value)
        if node.function == "string" and kind == "bool":
            return "true" if value else "false"
        raise CelEvalError(node.function)
    target = ev(node.target)
    if node.function == "size":
        if _tag(target) in ("string", "list", "map"):
            return len(target)
        raise CelEvalError("size")
    (arg,) = [ev(a) for a in node.args]
    if _tag(target) != "string" or _tag(arg) != "string":
        raise CelEvalError(node.function)
    if node.function == "startsWith":
        return target[:len(arg)] == arg
    if node.function == "endsWith":
        return len(arg) == 0 or target[-len(arg):] == arg
    if node.function == "contains":
        return target.find(arg) >= 0
    try:       # the agreement test only uses patterns on which Python's re and RE2 agree
        return re.search(arg, target) is not None
    except re.error:
        raise CelEvalError("pattern") from None


def _ref_comprehension(node: Comprehension, env: dict):
    container = reference_eval(node.target, env)
    if _tag(container) not in ("list", "map"):
        raise CelEvalError("range")
    elements = list(container)

    def body(element):
        return reference_eval(node.body, {**env, node.var: element})
    if node.macro in ("all", "exists"):
        decisive = node.macro == "exists"
        results = [_attempt(lambda e=e: body(e)) for e in elements]
        if any(r is decisive for r in results):
            return decisive
        if all(r is (not decisive) for r in results):
            return not decisive
        raise CelEvalError(node.macro)
    results = [body(e) for e in elements]
    if node.macro == "map":
        return results
    if any(_tag(r) != "bool" for r in results):
        raise CelEvalError(node.macro)
    if node.macro == "exists_one":
        return results.count(True) == 1
    return [e for e, keep in zip(elements, results) if keep]


# Typed expression generators, so that a good share of random expressions evaluate without error;
# "wild" nodes combine any kinds to exercise the error paths.
SMALL_INTS = st.integers(-6, 6)
WORDS = st.sampled_from(["", "a", "ab", "acme", "acme.com", "bob@acme.com", "B", "é", "12", "-3"])
SAFE_PATTERNS = ["a", "^a", "com$", "[0-9]+", "@acme\\.com$", "b|é", "(", "^$"]


def _sel(root, name):
    return Select(Ident(root), name)


_LEAVES = {
    "int": st.one_of(SMALL_INTS.map(Lit), st.just(_sel("params", "amount")), st.just(Call("size", None, (Ident("fields"),)))),
    "string": st.one_of(WORDS.map(Lit), st.sampled_from([_sel("params", "to"), _sel("call", "tool"),
                                                         _sel("tenant", "domain"), _sel("tenant", "id"), Ident("v")])),
    "bool": st.one_of(st.booleans().map(Lit), st.sampled_from([_sel("params", "flag"), _sel("call", "delegated"),
                                                              Has(_sel("params", "amount"))])),
    "list": st.sampled_from([Ident("fields"), _sel("params", "tags"), ListExpr((Lit("a"), Lit(1))), ListExpr(())]),
    "other": st.sampled_from([Lit(None), Lit(1.5), Lit(-0.0), Ident("tenant"), MapExpr(((Lit("a"), Lit(1)),)),
                              _sel("params", "missing")]),
}
KINDS = tuple(_LEAVES)


@functools.cache
def typed(kind: str, depth: int):
    if depth == 0:
        return _LEAVES[kind]
    sub = functools.partial(typed, depth=depth - 1)
    anything = st.sampled_from(KINDS).flatmap(sub)
    cond = st.builds(Cond, sub("bool"), sub(kind), sub(kind))
    if kind == "int":
        options = [
            st.builds(Binary, st.sampled_from(["+", "-", "*", "/", "%"]), sub("int"), sub("int")),
            st.builds(Unary, st.just("-"), sub("int")),
            st.builds(lambda x: Call("size", None, (x,)), st.one_of(sub("string"), sub("list"))),
            st.builds(lambda x: Call("size", x, ()), sub("string")),
            st.builds(lambda x: Call("int", None, (x,)), st.one_of(sub("string"), sub("int"))),
            st.builds(lambda i: Index(ListExpr((Lit(3), Lit(4))), i), sub("int")),
        ]
    elif kind == "string":
        options = [
            st.builds(Binary, st.just("+"), sub("string"), sub("string")),
            st.builds(lambda x: Call("string", None, (x,)), st.one_of(sub("int"), sub("bool"))),
            st.builds(Index, sub("list"), sub("int")),
        ]
    elif kind == "bool":
        options = [
            st.builds(Binary, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), sub("int"), sub("int")),
            st.builds(Binary, st.sampled_from(["<", ">=", "==", "!="]), sub("string"), sub("string")),
            st.builds(Binary, st.sampled_from(["&&", "||"]), sub("bool"), sub("bool")),
            st.builds(Unary, st.just("!"), sub("bool")),
            st.builds(Binary, st.just("in"), sub("string"), st.one_of(sub("list"), st.just(Ident("tenant")))),
            st.builds(lambda n, t, a: Call(n, t, (a,)), st.sampled_from(["startsWith", "endsWith", "contains"]),
                      sub("string"), sub("string")),
            st.builds(lambda t, p: Call("matches", t, (p,)), sub("string"),
                      st.one_of(st.sampled_from(SAFE_PATTERNS).map(Lit), sub("string"))),
            st.builds(lambda m, t, b: Comprehension(m, t, "v", b), st.sampled_from(["all", "exists", "exists_one"]),
                      sub("list"), sub("bool")),
            st.builds(Binary, st.sampled_from(["==", "!=", "in", "<", "&&", "||"]), anything, anything),
        ]
    elif kind == "list":
        options = [
            st.builds(lambda t, b: Comprehension("filter", t, "v", b), sub("list"), sub("bool")),
            st.builds(lambda t, b: Comprehension("map", t, "v", b), sub("list"), sub("string")),
            st.builds(Binary, st.just("+"), sub("list"), sub("list")),
            st.lists(sub("string"), max_size=3).map(lambda items: ListExpr(tuple(items))),
        ]
    else:
        options = [
            st.builds(Binary, st.sampled_from(["+", "-", "*", "/", "%", "<"]), anything, anything),
            st.builds(Unary, st.sampled_from(["!", "-"]), anything),
            st.builds(Select, anything, st.sampled_from(["a", "id", "amount"])),
            st.builds(Has, st.builds(Select, anything, st.sampled_from(["a", "id"]))),
            st.builds(Index, anything, anything),
            st.builds(lambda k, v: MapExpr(((k, v),)), anything, anything),
            st.builds(lambda x: Call("size", None, (x,)), anything),
        ]
    return st.one_of(_LEAVES[kind], cond, *options)


ENVIRONMENTS = st.builds(
    lambda params, call, fields, tenant: make_env(params=params, call=call, fields=fields, tenant=tenant),
    st.fixed_dictionaries({}, optional={"amount": SMALL_INTS, "to": WORDS, "flag": st.booleans(),
                                        "tags": st.lists(WORDS, max_size=3)}),
    st.fixed_dictionaries({"tool": WORDS, "delegated": st.booleans()}),
    st.lists(WORDS, max_size=3),
    st.fixed_dictionaries({"id": WORDS, "domain": WORDS}),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(KINDS).flatmap(lambda kind: typed(kind, 3)), ENVIRONMENTS)
def test_compiled_agrees_with_reference_interpreter(expr, env):
    expected = _attempt(lambda: reference_eval(expr, env))
    actual = _attempt(lambda: compile_cel(expr)(env))
    if isinstance(expected, CelEvalError) or isinstance(actual, CelEvalError):
        assert isinstance(expected, CelEvalError) and isinstance(actual, CelEvalError), (unparse(expr), actual)
    else:
        assert same(actual, expected), unparse(expr)
