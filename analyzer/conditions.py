"""CEL conditions: one AST, a fast concrete evaluator here, a Z3 translation elsewhere.

`parse_cel` turns the text of a `when`, `high_risk_when` or `never` condition into the
frozen AST below (every node knows its 1-based line and column in the expression text).
`compile_cel` turns an AST into nested Python closures, once; `evaluate` runs them on an
environment mapping `call`, `params`, `fields` and `tenant` to plain Python values (dicts,
lists or tuples, str, int, bool, float, None). The Z3 translator mirrors the semantics
written down here; where the two disagree, this docstring is the contract.

Values and types
    null (None), bool, int, double (float), string, list (list or tuple), map (any Mapping).
    bool is not int: `true == 1` is an error, `true` is not an index.
    Any other Python value reaching an operator is an evaluation error.

Integers
    Unbounded Python ints. Documented deviation from CEL: no int64 overflow error, and
    literals of any size are accepted. `/` truncates toward zero and `%` takes the sign of
    the dividend (`-7 / 2 == -3`, `-7 % 2 == -1`, `7 % -2 == 1`); a zero divisor is an
    error. `+ - * / %` and `< <= > >=` need both operands of the same type: int with
    int; `+` also string with string (concatenation) and list with list; `+ - * /` and
    comparisons also double with double (IEEE, `x / 0.0` is ±inf or nan, `%` is not
    defined on doubles). Strings compare by code point. No implicit conversion:
    `1 + "a"`, `"a" < 1`, `1 < 1.0`, `-"a"` are errors.

Equality
    `==` / `!=` need operands of the same type, except that anything may be compared with
    null (`x == null` is false for a non-null x, `null == null` is true). Lists are equal
    when they have the same length and their elements are pairwise equal, maps when they
    have the same keys and equal values; element comparisons combine like `&&` below
    (a false pair wins over an erroring pair, so the result does not depend on order).

Logic
    `!x` needs a bool. `&&` and `||` follow CEL's commutative error absorption, where an
    error or a non-bool operand counts as "error": `false && E` and `E && false` are false,
    `true || E` and `E || true` are true; otherwise an error in either operand propagates
    (the left one's when both err). `c ? a : b` needs a bool `c` and evaluates only the
    chosen branch.

Membership
    `x in list` is exactly `x == e1 || x == e2 || ...` with the rules above: true if some
    element equals x, else an error if some comparison erred, else false. `k in map` tests
    the keys: true iff the map has a key of the same type and value (k must be an int,
    string or bool).

Selection and indexing
    `a.b` needs a map with key "b" (missing key: error). `has(a.b)` is true iff `a` is a
    map holding key "b"; it is false when `a` is not a map and an error only when `a`
    itself errs. `list[i]` needs an int 0 <= i < size; `map[k]` needs the key (an int,
    string or bool key of the same type). Map literals reject duplicate keys at run time.

Functions (anything else is rejected by `parse_cel`)
    size(x) and x.size(): length of a string (code points), list or map.
    int(x): int unchanged; string of optional sign and ASCII decimal digits; else error.
    string(x): string unchanged; int in decimal; bool as "true" / "false"; else error.
    s.startsWith(t), s.endsWith(t), s.contains(t): strings only.
    s.matches(re): RE2 (the google-re2 engine that CEL implementations use), partial
    match like re.search: `"abc".matches("b")` is true. A literal pattern is checked at
    parse (no backreferences, no lookaround, valid RE2) and compiled once; a computed
    pattern is compiled through a small cache, and an invalid one is an evaluation error.
    Macros, on a list (its elements) or a map (its keys), with a bound variable:
    all(v, p) is the `&&` of p over the elements and exists(v, p) the `||`, with the same
    absorption; exists_one(v, p) is true iff p is true for exactly one element (any error
    propagates); map(v, e) is the list of e; filter(v, p) keeps the elements where p is
    true. The predicate must be bool.

Positions
    Every node's `pos` is where its text starts (a binary operation: its left operand; a
    method call: its target). Errors point at the offending token where there is one.

Rejected at parse, with the construct named: unsigned and bytes literals, message
construction (`T{f: v}`), leading-dot names, unknown variables (anything but `call`,
`params`, `fields`, `tenant` and comprehension variables), every function and method not
listed above (dyn, type, timestamp, duration, double, uint, bytes, matches(s, re) as a
global, map(v, p, e), ...), `has()` on anything but a field selection, invalid string
escapes, non-finite float literals, and expressions nested deeper than MAX_DEPTH.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import celpy.celparser
import lark
import lark.exceptions
import re2

__all__ = [
    "GLOBAL_FUNCTIONS",
    "MACROS",
    "MAX_DEPTH",
    "METHODS",
    "VARIABLES",
    "Binary",
    "Call",
    "CelEvalError",
    "CelSyntaxError",
    "Comprehension",
    "Cond",
    "Expr",
    "Has",
    "Ident",
    "Index",
    "ListExpr",
    "Lit",
    "MapExpr",
    "Select",
    "Unary",
    "compile_cel",
    "evaluate",
    "parse_cel",
    "references",
    "unparse",
]

VARIABLES = frozenset({"call", "params", "fields", "tenant"})
GLOBAL_FUNCTIONS = {"size": 1, "int": 1, "string": 1}          # name -> number of arguments
METHODS = {"size": 0, "startsWith": 1, "endsWith": 1, "contains": 1, "matches": 1}
MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
MAX_DEPTH = 150     # AST nesting; keeps every recursive walker (here and in the Z3 translator) far from Python's limit

_RESERVED = frozenset({
    "as", "break", "const", "continue", "else", "for", "function", "if", "import", "let", "loop", "package",
    "namespace", "return", "var", "void", "while", "in", "true", "false", "null",
})
_UNSUPPORTED_HINTS = {
    "dyn": "dynamic typing (dyn) is not supported",
    "type": "type() is not supported",
    "timestamp": "timestamps are not supported",
    "duration": "durations are not supported",
    "double": "double() conversion is not supported",
    "uint": "unsigned integers are not supported",
    "bytes": "bytes are not supported",
}


# ---------------------------------------------------------------------------------------------- errors

class CelSyntaxError(Exception):
    """A condition that cannot be parsed or uses an unsupported construct; line/column are 1-based."""

    def __init__(self, message: str, line: int, column: int):
        super().__init__(f"{line}:{column}: {message}")
        self.message = message
        self.line = line
        self.column = column


class CelEvalError(Exception):
    """A runtime error: missing key, type mismatch, division by zero, bad regex, ..."""

    def __init__(self, message: str, pos: tuple[int, int] | None = None):
        located = pos is not None and pos != (0, 0)
        super().__init__(f"{pos[0]}:{pos[1]}: {message}" if located else message)
        self.message = message
        self.pos = pos


# ---------------------------------------------------------------------------------------------- AST

@dataclasses.dataclass(frozen=True)
class Expr:
    """Base of every node; `pos` is (line, column), 1-based in the expression, and ignored by ==."""

    pos: tuple[int, int] = dataclasses.field(default=(0, 0), compare=False, kw_only=True, repr=False)


@dataclasses.dataclass(frozen=True, eq=False)
class Lit(Expr):
    """A literal: int, float, str, bool or None (null). Equality is type-strict: Lit(True) != Lit(1)."""

    value: object

    def _key(self) -> tuple:
        value = self.value
        return (type(value), repr(value) if isinstance(value, float) else value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Lit):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


@dataclasses.dataclass(frozen=True)
class Ident(Expr):
    name: str


@dataclasses.dataclass(frozen=True)
class Select(Expr):
    operand: Expr
    field: str


@dataclasses.dataclass(frozen=True)
class Index(Expr):
    operand: Expr
    index: Expr


@dataclasses.dataclass(frozen=True)
class ListExpr(Expr):
    items: tuple[Expr, ...]


@dataclasses.dataclass(frozen=True)
class MapExpr(Expr):
    entries: tuple[tuple[Expr, Expr], ...]


@dataclasses.dataclass(frozen=True)
class Unary(Expr):
    op: str                 # "!" or "-"
    operand: Expr


@dataclasses.dataclass(frozen=True)
class Binary(Expr):
    op: str                 # || && == != < <= > >= in + - * / %
    left: Expr
    right: Expr


@dataclasses.dataclass(frozen=True)
class Cond(Expr):
    test: Expr
    then: Expr
    orelse: Expr


@dataclasses.dataclass(frozen=True)
class Has(Expr):
    select: Select


@dataclasses.dataclass(frozen=True)
class Call(Expr):
    """A method call when `target` is set (s.startsWith(t)), a global function otherwise (size(x))."""

    function: str
    target: Expr | None
    args: tuple[Expr, ...]


@dataclasses.dataclass(frozen=True)
class Comprehension(Expr):
    """target.macro(var, body) for macro in all, exists, exists_one, map, filter."""

    macro: str
    target: Expr
    var: str
    body: Expr


# ---------------------------------------------------------------------------------------------- parsing

def _keep_position(token: lark.Token) -> lark.Token:
    # celpy's own callback turns true/false into BOOL_LIT tokens without a position; keep it.
    if token.value in ("true", "false"):
        return lark.Token.new_borrow_pos("BOOL_LIT", token.value, token)
    return token


# celpy's grammar and parser options, built once (about 0.3 s); our own Lark instance only so that
# boolean literals keep their line and column (see _keep_position).
_LARK = lark.Lark(
    (Path(celpy.celparser.__file__).parent / "cel.lark").read_text(),
    parser="lalr", start="expr", g_regex_flags=re.MULTILINE, lexer_callbacks={"IDENT": _keep_position},
    propagate_positions=True, maybe_placeholders=False, priority="invert",
)

_TERMINAL_TEXT = {
    "RPAR": "')'", "RSQB": "']'", "RBRACE": "'}'", "COLON": "':'", "COMMA": "','", "IDENT": "a name",
    "LPAR": "'('", "QMARK": "'?'",
}
_CHAINS = frozenset({"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication",
                     "unary", "member", "primary"})
_RELATION_OPS = {"relation_lt": "<", "relation_le": "<=", "relation_gt": ">", "relation_ge": ">=",
                 "relation_eq": "==", "relation_ne": "!=", "relation_in": "in"}
_ARITH_OPS = {"addition_add": "+", "addition_sub": "-", "multiplication_mul": "*", "multiplication_div": "/",
              "multiplication_mod": "%"}
_STRING_PIECE = re.compile(
    r"""\\(?:([abfnrtv"'\\?`])|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|([0-3][0-7]{2}))"""
    r"|\\|[^\\]+", re.DOTALL)
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                   '"': '"', "'": "'", "\\": "\\", "?": "?", "`": "`"}


def parse_cel(source: str, variables: Iterable[str] | None = VARIABLES) -> Expr:
    """Parse a condition into the AST; raise CelSyntaxError for bad syntax or any unsupported construct.

    `variables` are the free names allowed (None: any name).
    """
    if not isinstance(source, str):
        raise TypeError(f"a CEL expression is a str, not {type(source).__name__}")
    try:
        tree = _LARK.parse(source)
    except lark.exceptions.UnexpectedCharacters as exc:
        hint = "; unterminated string?" if exc.char in "\"'" else ""
        raise CelSyntaxError(f"unexpected character {exc.char!r}{hint}", exc.line, exc.column) from None
    except lark.exceptions.UnexpectedToken as exc:
        expected = sorted(_TERMINAL_TEXT[t] for t in exc.expected if t in _TERMINAL_TEXT)
        wanted = f"; expected {' or '.join(expected)}" if expected and len(expected) == len(exc.expected) else ""
        if exc.token.type == "$END":
            raise CelSyntaxError(f"unexpected end of expression{wanted}", *_end_of(source)) from None
        line, column = exc.token.line or 1, exc.token.column or 1
        raise CelSyntaxError(f"unexpected {exc.token.value!r}{wanted}", line, column) from None
    except lark.exceptions.UnexpectedEOF:
        raise CelSyntaxError("unexpected end of expression", *_end_of(source)) from None
    except lark.exceptions.LarkError as exc:
        raise CelSyntaxError(str(exc).splitlines()[0] if str(exc) else "syntax error", 1, 1) from None
    allowed = None if variables is None else frozenset(variables)
    try:
        return _Converter(allowed).convert(tree, frozenset(), 1)
    except RecursionError:
        raise CelSyntaxError(f"expression nests more than {MAX_DEPTH} levels", 1, 1) from None


def _end_of(source: str) -> tuple[int, int]:
    lines = source.split("\n")
    return len(lines), len(lines[-1]) + 1


def _pos(tree_or_token) -> tuple[int, int]:
    if isinstance(tree_or_token, lark.Token):
        return (tree_or_token.line or 1, tree_or_token.column or 1)
    meta = tree_or_token.meta
    return (getattr(meta, "line", 1) or 1, getattr(meta, "column", 1) or 1)


def _fail(message: str, where) -> CelSyntaxError:
    line, column = where if isinstance(where, tuple) else _pos(where)
    return CelSyntaxError(message, line, column)


class _Converter:
    """Lark parse tree -> AST, rejecting what the evaluator does not support."""

    def __init__(self, variables: frozenset[str] | None):
        self.variables = variables

    def convert(self, tree: lark.Tree, bound: frozenset[str], depth: int) -> Expr:
        if depth > MAX_DEPTH:
            raise _fail(f"expression nests more than {MAX_DEPTH} levels", tree)
        # Skip the single-child precedence chain (expr -> conditionalor -> ... -> primary) without recursing.
        while tree.data in _CHAINS and len(tree.children) == 1 and isinstance(tree.children[0], lark.Tree):
            tree = tree.children[0]
        kids = tree.children
        data = tree.data
        pos = _pos(tree)
        sub = functools.partial(self.convert, bound=bound, depth=depth + 1)
        if data == "expr":
            return Cond(sub(kids[0]), sub(kids[1]), sub(kids[2]), pos=pos)
        if data in ("conditionalor", "conditionaland"):
            return Binary("||" if data == "conditionalor" else "&&", sub(kids[0]), sub(kids[1]), pos=pos)
        if data == "relation":
            return Binary(_RELATION_OPS[kids[0].data], sub(kids[0].children[0]), sub(kids[1]), pos=pos)
        if data in ("addition", "multiplication"):
            return Binary(_ARITH_OPS[kids[0].data], sub(kids[0].children[0]), sub(kids[1]), pos=pos)
        if data == "unary":
            return Unary("!" if kids[0].data == "unary_not" else "-", sub(kids[1]), pos=pos)
        if data == "member_dot":
            return Select(sub(kids[0]), self.field_name(kids[1]), pos=pos)
        if data == "member_dot_arg":
            return self.method(tree, bound, depth)
        if data == "member_index":
            return Index(sub(kids[0]), sub(kids[1]), pos=pos)
        if data == "member_object":
            raise _fail("message construction (Type{field: value}) is not supported", tree)
        if data in ("dot_ident", "dot_ident_arg"):
            raise _fail("leading-dot (root-scoped) names are not supported", tree)
        if data == "ident_arg":
            return self.global_call(tree, bound, depth)
        if data == "ident":
            name = kids[0].value
            if name not in bound and self.variables is not None and name not in self.variables:
                known = ", ".join(sorted(self.variables))
                raise _fail(f"unknown variable {name!r}; conditions can use {known}", kids[0])
            return Ident(name, pos=pos)
        if data == "paren_expr":
            return sub(kids[0])
        if data == "list_lit":
            items = tuple(sub(item) for item in kids[0].children) if kids else ()
            return ListExpr(items, pos=pos)
        if data == "map_lit":
            flat = [sub(part) for part in kids[0].children] if kids else []
            return MapExpr(tuple(zip(flat[0::2], flat[1::2])), pos=pos)
        if data == "literal":
            return Lit(_literal(kids[0]), pos=pos)
        raise _fail(f"unsupported construct {data!r}", tree)  # pragma: no cover - grammar has no other rule

    @staticmethod
    def field_name(token: lark.Token) -> str:
        return token.value

    def args_of(self, tree: lark.Tree, index: int) -> list[lark.Tree]:
        kids = tree.children
        return list(kids[index].children) if len(kids) > index else []

    def global_call(self, tree: lark.Tree, bound: frozenset[str], depth: int) -> Expr:
        name_token = tree.children[0]
        name = name_token.value
        args = self.args_of(tree, 1)
        pos = _pos(tree)
        if name == "has":
            if len(args) != 1:
                raise _fail(f"has() takes 1 argument, got {len(args)}", name_token)
            arg = self.convert(args[0], bound, depth + 1)
            if not isinstance(arg, Select):
                raise _fail("has() needs a field selection, like has(params.amount)", args[0])
            return Has(arg, pos=pos)
        if name in GLOBAL_FUNCTIONS:
            if len(args) != GLOBAL_FUNCTIONS[name]:
                raise _fail(f"{name}() takes {GLOBAL_FUNCTIONS[name]} argument, got {len(args)}", name_token)
            return Call(name, None, tuple(self.convert(a, bound, depth + 1) for a in args), pos=pos)
        if name in MACROS or name in METHODS:
            raise _fail(f"{name}() is a method: write x.{name}(...)", name_token)
        hint = _UNSUPPORTED_HINTS.get(name)
        raise _fail(f"function {name}() is not supported" + (f" ({hint})" if hint else ""), name_token)

    def method(self, tree: lark.Tree, bound: frozenset[str], depth: int) -> Expr:
        target_tree, name_token = tree.children[0], tree.children[1]
        name = name_token.value
        args = self.args_of(tree, 2)
        pos = _pos(tree)
        target = self.convert(target_tree, bound, depth + 1)
        if name in MACROS:
            if name == "map" and len(args) == 3:
                raise _fail("map() with a filter, map(v, p, e), is not supported: "
                            "use .filter(v, p).map(v, e)", name_token)
            if len(args) != 2:
                raise _fail(f".{name}() takes 2 arguments (a variable and an expression), got {len(args)}",
                            name_token)
            if not _is_bare_ident(args[0]):
                raise _fail(f"the first argument of .{name}() must be a variable name", args[0])
            var_name = _bare_ident_name(args[0])
            if var_name in _RESERVED:
                raise _fail(f"{var_name!r} is reserved and cannot name a variable", args[0])
            body = self.convert(args[1], bound | {var_name}, depth + 1)
            return Comprehension(name, target, var_name, body, pos=pos)
        if name in METHODS:
            if len(args) != METHODS[name]:
                plural = "argument" if METHODS[name] == 1 else "arguments"
                raise _fail(f".{name}() takes {METHODS[name]} {plural}, got {len(args)}", name_token)
            converted = tuple(self.convert(a, bound, depth + 1) for a in args)
            if name == "matches" and isinstance(converted[0], Lit) and isinstance(converted[0].value, str):
                problem = _regex_problem(converted[0].value)
                if problem:
                    raise _fail(f"invalid pattern for matches(): {problem}", converted[0].pos)
            return Call(name, target, converted, pos=pos)
        hint = _UNSUPPORTED_HINTS.get(name)
        if name in GLOBAL_FUNCTIONS or name == "has":
            hint = f"write {name}(x)"
        raise _fail(f"method .{name}() is not supported" + (f" ({hint})" if hint else ""), name_token)


def _unchain(tree):
    while isinstance(tree, lark.Tree) and tree.data in _CHAINS and len(tree.children) == 1:
        tree = tree.children[0]
    return tree


def _is_bare_ident(tree) -> bool:
    tree = _unchain(tree)
    return isinstance(tree, lark.Tree) and tree.data == "ident"


def _bare_ident_name(tree) -> str:
    return _unchain(tree).children[0].value


def _literal(token: lark.Token):
    kind, text = token.type, token.value
    if kind == "INT_LIT":
        negative = text.startswith("-")
        digits = text[1:] if negative else text
        value = int(digits, 16) if digits[:2].lower() == "0x" else int(digits, 10)
        return -value if negative else value
    if kind == "FLOAT_LIT":
        value = float(text)
        if not math.isfinite(value):
            raise _fail(f"float literal {text} is out of range", token)
        return value
    if kind in ("STRING_LIT", "MLSTRING_LIT"):
        return _unquote(token)
    if kind == "BOOL_LIT":
        return text == "true"
    if kind == "NULL_LIT":
        return None
    if kind == "UINT_LIT":
        raise _fail(f"unsigned integer literals ({text}) are not supported: drop the 'u'", token)
    if kind == "BYTES_LIT":
        raise _fail("bytes literals (b'...') are not supported", token)
    raise _fail(f"unsupported literal {text!r}", token)  # pragma: no cover - grammar has no other literal


def _unquote(token: lark.Token) -> str:
    text = token.value
    raw = text[0] in "rR"
    if raw:
        text = text[1:]
    quote = 3 if text[:3] in ('"""', "'''") else 1
    body = text[quote:-quote]
    if raw:
        return body
    out = []
    for match in _STRING_PIECE.finditer(body):
        piece = match.group(0)
        if piece[0] != "\\":
            out.append(piece)
        elif piece == "\\":
            bad = body[match.end():match.end() + 1]
            raise _fail(f"invalid escape sequence '\\{bad}' in string literal", token)
        elif match.group(1):
            out.append(_SIMPLE_ESCAPES[match.group(1)])
        else:
            code = (int(match.group(2), 16) if match.group(2) else int(match.group(3), 16) if match.group(3)
                    else int(match.group(4), 16) if match.group(4) else int(match.group(5), 8))
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise _fail(f"escape {piece} is not a Unicode scalar value", token)
            out.append(chr(code))
    return "".join(out)


# ---------------------------------------------------------------------------------------------- regexes

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False     # otherwise the C++ library logs every rejected pattern to stderr


def _re2_compile(pattern: str):
    return re2.compile(pattern, _RE2_OPTIONS)


def _regex_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be used with matches(), or None if RE2 accepts it."""
    try:
        _re2_compile(pattern)
        return None
    except re2.error as exc:
        detail = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
    except (UnicodeEncodeError, TypeError, ValueError) as exc:
        return f"{pattern!r} is not a valid pattern ({exc})"
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            if pattern[i + 1] in "123456789":
                return f"backreferences like \\{pattern[i + 1]} are not supported (RE2 has none)"
            i += 2
            continue
        if pattern.startswith("(?P=", i):
            return "named backreferences (?P=name) are not supported (RE2 has none)"
        for opener in ("(?=", "(?!", "(?<=", "(?<!"):
            if pattern.startswith(opener, i):
                return f"lookaround {opener}...) is not supported (RE2 has none)"
        i += 1
    return f"{detail} (RE2 syntax)"


@functools.lru_cache(maxsize=256)
def _cached_regex(pattern: str):
    problem = _regex_problem(pattern)
    if problem:
        raise CelEvalError(f"invalid pattern for matches(): {problem}")
    return _re2_compile(pattern)


# ---------------------------------------------------------------------------------------------- references

def references(expr: Expr) -> frozenset[tuple[str, str | None]]:
    """Free variable references: ("params", "amount") for params.amount, ("fields", None) for bare use."""
    found: set[tuple[str, str | None]] = set()
    _collect_refs(expr, frozenset(), found)
    return frozenset(found)


def _collect_refs(node: Expr, bound: frozenset[str], found: set) -> None:
    if isinstance(node, Ident):
        if node.name not in bound:
            found.add((node.name, None))
    elif isinstance(node, Select):
        if isinstance(node.operand, Ident) and node.operand.name not in bound:
            found.add((node.operand.name, node.field))
        else:
            _collect_refs(node.operand, bound, found)
    elif isinstance(node, Comprehension):
        _collect_refs(node.target, bound, found)
        _collect_refs(node.body, bound | {node.var}, found)
    else:
        for child in _children(node):
            _collect_refs(child, bound, found)


def _children(node: Expr) -> tuple[Expr, ...]:
    if isinstance(node, Lit | Ident):
        return ()
    if isinstance(node, Select):
        return (node.operand,)
    if isinstance(node, Index):
        return (node.operand, node.index)
    if isinstance(node, ListExpr):
        return node.items
    if isinstance(node, MapExpr):
        return tuple(part for entry in node.entries for part in entry)
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Cond):
        return (node.test, node.then, node.orelse)
    if isinstance(node, Has):
        return (node.select,)
    if isinstance(node, Call):
        return ((node.target,) if node.target is not None else ()) + node.args
    if isinstance(node, Comprehension):
        return (node.target, node.body)
    raise TypeError(f"not a CEL AST node: {node!r}")


# ---------------------------------------------------------------------------------------------- unparse

_BINARY_PREC = {"||": 1, "&&": 2, "==": 3, "!=": 3, "<": 3, "<=": 3, ">": 3, ">=": 3, "in": 3,
                "+": 4, "-": 4, "*": 5, "/": 5, "%": 5}
_UNARY_PREC, _MEMBER_PREC, _PRIMARY_PREC = 6, 7, 8


def unparse(expr: Expr) -> str:
    """Canonical CEL text for an AST: parse_cel(unparse(e)) == e."""
    return _unparse(expr, 0)


def _precedence(node: Expr) -> int:
    if isinstance(node, Cond):
        return 0
    if isinstance(node, Binary):
        return _BINARY_PREC[node.op]
    if isinstance(node, Unary):
        return _UNARY_PREC
    if isinstance(node, Lit) and type(node.value) in (int, float):
        return _UNARY_PREC      # "5.size()" would lex as the float "5." and "-5" may carry a sign
    if isinstance(node, Select | Index | Comprehension) or (isinstance(node, Call) and node.target is not None):
        return _MEMBER_PREC
    return _PRIMARY_PREC


def _unparse(node: Expr, minimum: int) -> str:
    text = _unparse_bare(node)
    return f"({text})" if _precedence(node) < minimum else text


def _unparse_bare(node: Expr) -> str:
    if isinstance(node, Lit):
        return _literal_text(node.value)
    if isinstance(node, Ident):
        return node.name
    if isinstance(node, Select):
        return f"{_unparse(node.operand, _MEMBER_PREC)}.{node.field}"
    if isinstance(node, Index):
        return f"{_unparse(node.operand, _MEMBER_PREC)}[{_unparse(node.index, 0)}]"
    if isinstance(node, ListExpr):
        return "[" + ", ".join(_unparse(item, 0) for item in node.items) + "]"
    if isinstance(node, MapExpr):
        return "{" + ", ".join(f"{_unparse(k, 1)}: {_unparse(v, 0)}" for k, v in node.entries) + "}"
    if isinstance(node, Unary):
        operand = _unparse(node.operand, _UNARY_PREC)
        if node.op == "-" and (operand[:1].isdigit() or operand[:1] == "."):
            return f"{node.op} {operand}"   # "-5" would be read back as the literal -5
        return f"{node.op}{operand}"
    if isinstance(node, Binary):
        prec = _BINARY_PREC[node.op]
        return f"{_unparse(node.left, prec)} {node.op} {_unparse(node.right, prec + 1)}"
    if isinstance(node, Cond):
        return f"{_unparse(node.test, 1)} ? {_unparse(node.then, 1)} : {_unparse(node.orelse, 0)}"
    if isinstance(node, Has):
        return f"has({_unparse(node.select, 0)})"
    if isinstance(node, Call):
        args = ", ".join(_unparse(arg, 0) for arg in node.args)
        if node.target is None:
            return f"{node.function}({args})"
        return f"{_unparse(node.target, _MEMBER_PREC)}.{node.function}({args})"
    if isinstance(node, Comprehension):
        return f"{_unparse(node.target, _MEMBER_PREC)}.{node.macro}({node.var}, {_unparse(node.body, 0)})"
    raise TypeError(f"not a CEL AST node: {node!r}")


def _literal_text(value) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return str(value)
    if type(value) is float:
        if not math.isfinite(value):
            raise ValueError(f"CEL has no literal for {value!r}")
        return repr(value)
    if type(value) is str:
        return _quote(value)
    raise TypeError(f"not a CEL literal: {value!r}")


_QUOTE_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _quote(text: str) -> str:
    out = []
    for char in text:
        if char in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[char])
        elif char.isprintable() and char != "\x7f":
            out.append(char)
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


# ---------------------------------------------------------------------------------------------- evaluation

Env = Mapping[str, object]
Compiled = Callable[[Env], object]

_KINDS = {bool: "bool", int: "int", float: "double", str: "string", type(None): "null",
          list: "list", tuple: "list", dict: "map"}


def _kind(value) -> str:
    kind = _KINDS.get(type(value))
    if kind is not None:
        return kind
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, Mapping):
        return "map"
    raise CelEvalError(f"unsupported value of Python type {type(value).__name__}")


kind_of = _kind  # the CEL kind of a value ("int", "string", ...), as analyzer.cedar types its operands


def _describe(value) -> str:
    try:
        return _kind(value)
    except CelEvalError:
        return type(value).__name__


_KEY_KINDS = frozenset({"int", "string", "bool"})


def _map_find(mapping: Mapping, key) -> tuple[bool, object]:
    """(found, value) for a key of the same CEL type and value; 1 never finds the key True."""
    kind = _kind(key)
    if kind not in _KEY_KINDS:
        raise CelEvalError(f"a map key is an int, string or bool, not {kind}")
    try:
        value = mapping[key]
    except (KeyError, TypeError):
        return False, None
    if kind != "string":
        for stored in mapping:
            if stored == key and _describe(stored) == kind:
                return True, value
        return False, None
    return True, value


def _equal(a, b) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka == "null" or kb == "null":
        return ka == kb
    if ka != kb:
        raise CelEvalError(f"no operator '==' for {ka} and {kb}")
    if ka == "list":
        if len(a) != len(b):
            return False
        return _all_equal(zip(a, b))
    if ka == "map":
        if len(a) != len(b):
            return False
        pairs = []
        for key, value in a.items():
            found, other = _map_find(b, key)
            if not found:
                return False
            pairs.append((value, other))
        return _all_equal(pairs)
    return a == b


def _all_equal(pairs) -> bool:
    error = None
    for x, y in pairs:
        try:
            if not _equal(x, y):
                return False      # false absorbs errors, in any order
        except CelEvalError as exc:
            error = error or exc
    if error:
        raise error
    return True


def _contains(item, container) -> bool:
    kind = _kind(container)
    if kind == "list":
        error = None
        for element in container:
            try:
                if _equal(item, element):
                    return True
            except CelEvalError as exc:
                error = error or exc
        if error:
            raise error
        return False
    if kind == "map":
        return _map_find(container, item)[0]
    raise CelEvalError(f"no operator 'in' for {_describe(item)} and {kind}")


def _fdiv(a: float, b: float) -> float:
    try:
        return a / b
    except ZeroDivisionError:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _int_div(a: int, b: int) -> int:
    quotient = abs(a) // abs(b)
    return quotient if (a < 0) == (b < 0) else -quotient


def _int_mod(a: int, b: int) -> int:
    remainder = abs(a) % abs(b)
    return -remainder if a < 0 else remainder


_INT_TEXT = re.compile(r"[+-]?[0-9]+")


def compile_cel(expr: Expr) -> Compiled:
    """Compile the AST once into nested closures; call the result with an environment mapping."""
    return _compile(expr)


@functools.lru_cache(maxsize=1024)
def _compile_cached(expr: Expr) -> Compiled:
    return _compile(expr)


def evaluate(expr_or_compiled: Expr | Compiled, env: Env) -> object:
    """Evaluate an AST (compiled once and cached) or a compiled condition on `env`."""
    if isinstance(expr_or_compiled, Expr):
        return _compile_cached(expr_or_compiled)(env)
    return expr_or_compiled(env)


def _compile(node: Expr) -> Compiled:
    compiler = _COMPILERS.get(type(node))
    if compiler is None:
        raise TypeError(f"not a CEL AST node: {node!r}")
    return compiler(node)


def _compile_lit(node: Lit) -> Compiled:
    value = node.value
    if value is not None and type(value) not in (bool, int, float, str):
        raise TypeError(f"not a CEL literal: {value!r}")
    return lambda env: value


def _compile_ident(node: Ident) -> Compiled:
    name, pos = node.name, node.pos

    def ident(env):
        try:
            return env[name]
        except KeyError:
            raise CelEvalError(f"no value for variable {name!r}", pos) from None
    return ident


def _compile_select(node: Select) -> Compiled:
    operand, key, pos = _compile(node.operand), node.field, node.pos

    def select(env):
        container = operand(env)
        if type(container) is dict or isinstance(container, Mapping):
            try:
                return container[key]
            except KeyError:
                raise CelEvalError(f"no such key: {key!r}", pos) from None
        raise CelEvalError(f"cannot select field {key!r} from {_describe(container)}", pos)
    return select


def _compile_has(node: Has) -> Compiled:
    operand, key = _compile(node.select.operand), node.select.field

    def has(env):
        container = operand(env)
        return (type(container) is dict or isinstance(container, Mapping)) and key in container
    return has


def _compile_index(node: Index) -> Compiled:
    operand, index, pos = _compile(node.operand), _compile(node.index), node.pos

    def at(env):
        container = operand(env)
        key = index(env)
        kind = _kind(container)
        if kind == "list":
            if _kind(key) != "int":
                raise CelEvalError(f"a list index is an int, not {_describe(key)}", pos)
            if 0 <= key < len(container):
                return container[key]
            raise CelEvalError(f"index {key} out of range for a list of size {len(container)}", pos)
        if kind == "map":
            found, value = _map_find(container, key)
            if found:
                return value
            raise CelEvalError(f"no such key: {key!r}", pos)
        raise CelEvalError(f"cannot index {kind}", pos)
    return at


def _compile_list(node: ListExpr) -> Compiled:
    items = tuple(_compile(item) for item in node.items)
    return lambda env: [item(env) for item in items]


def _compile_map(node: MapExpr) -> Compiled:
    entries = tuple((_compile(k), _compile(v)) for k, v in node.entries)
    pos = node.pos

    def build(env):
        result = {}
        for key_fn, value_fn in entries:
            key = key_fn(env)
            value = value_fn(env)
            if _kind(key) not in _KEY_KINDS:
                raise CelEvalError(f"a map key is an int, string or bool, not {_describe(key)}", pos)
            if key in result:
                raise CelEvalError(f"duplicate map key {key!r}", pos)
            result[key] = value
        return result
    return build


def _compile_unary(node: Unary) -> Compiled:
    operand, pos = _compile(node.operand), node.pos
    if node.op == "!":
        def negate(env):
            value = operand(env)
            if value is True:
                return False
            if value is False:
                return True
            raise CelEvalError(f"no operator '!' for {_describe(value)}", pos)
        return negate
    if node.op == "-":
        def minus(env):
            value = operand(env)
            if _kind(value) == "int":
                return _int64(-value, pos)
            if _kind(value) == "double":
                return -value
            raise CelEvalError(f"no operator '-' for {_describe(value)}", pos)
        return minus
    raise ValueError(f"unknown unary operator {node.op!r}")


def _logic_error(value, op: str, pos) -> CelEvalError:
    if isinstance(value, CelEvalError):
        return value
    return CelEvalError(f"'{op}' needs bool operands, not {_describe(value)}", pos)


def _compile_and(left: Compiled, right: Compiled, pos) -> Compiled:
    def conjunction(env):
        try:
            a = left(env)
        except CelEvalError as exc:
            a = exc
        if a is False:
            return False
        try:
            b = right(env)
        except CelEvalError as exc:
            b = exc
        if b is False:
            return False
        if a is True and b is True:
            return True
        raise _logic_error(a if a is not True else b, "&&", pos)
    return conjunction


def _compile_or(left: Compiled, right: Compiled, pos) -> Compiled:
    def disjunction(env):
        try:
            a = left(env)
        except CelEvalError as exc:
            a = exc
        if a is True:
            return True
        try:
            b = right(env)
        except CelEvalError as exc:
            b = exc
        if b is True:
            return True
        if a is False and b is False:
            return False
        raise _logic_error(a if a is not False else b, "||", pos)
    return disjunction


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # CEL's int: arithmetic leaving it is an error (overflow)


def _int64(value: int, pos) -> int:
    if INT64_MIN <= value <= INT64_MAX:
        return value
    raise CelEvalError("integer overflow", pos)


def _arith(op: str, a, b, pos):
    ka, kb = _kind(a), _kind(b)
    if ka == kb:
        if ka == "int":
            if op == "+":
                return _int64(a + b, pos)
            if op == "-":
                return _int64(a - b, pos)
            if op == "*":
                return _int64(a * b, pos)
            if b == 0:
                raise CelEvalError("division by zero" if op == "/" else "modulus by zero", pos)
            if a == INT64_MIN and b == -1:  # the quotient 2^63 does not fit, and CEL errs on % too
                raise CelEvalError("integer overflow", pos)
            return _int_div(a, b) if op == "/" else _int_mod(a, b)
        if op == "+":
            if ka in ("double", "string"):
                return a + b
            if ka == "list":
                return [*a, *b]
        elif ka == "double" and op != "%":
            if op == "-":
                return a - b
            if op == "*":
                return a * b
            return _fdiv(a, b)
    raise CelEvalError(f"no operator '{op}' for {ka} and {kb}", pos)


_ORDERED = frozenset({"int", "double", "string"})
_COMPARE = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def _compile_binary(node: Binary) -> Compiled:
    op, pos = node.op, node.pos
    left, right = _compile(node.left), _compile(node.right)
    if op == "&&":
        return _compile_and(left, right, pos)
    if op == "||":
        return _compile_or(left, right, pos)
    if op in ("+", "-", "*", "/", "%"):
        def arithmetic(env):
            return _arith(op, left(env), right(env), pos)
        return arithmetic
    if op in _COMPARE:
        compare = _COMPARE[op]

        def comparison(env):
            a, b = left(env), right(env)
            ka, kb = _kind(a), _kind(b)
            if ka == kb and ka in _ORDERED:
                return compare(a, b)
            raise CelEvalError(f"no operator '{op}' for {ka} and {kb}", pos)
        return comparison
    if op in ("==", "!="):
        negate = op == "!="

        def equality(env):
            a, b = left(env), right(env)
            try:
                return _equal(a, b) != negate
            except CelEvalError as exc:
                raise CelEvalError(exc.message, exc.pos or pos) from None
        return equality
    if op == "in":
        def membership(env):
            a, b = left(env), right(env)
            try:
                return _contains(a, b)
            except CelEvalError as exc:
                raise CelEvalError(exc.message, exc.pos or pos) from None
        return membership
    raise ValueError(f"unknown binary operator {op!r}")


def _compile_cond(node: Cond) -> Compiled:
    test, then, orelse, pos = _compile(node.test), _compile(node.then), _compile(node.orelse), node.pos

    def conditional(env):
        value = test(env)
        if value is True:
            return then(env)
        if value is False:
            return orelse(env)
        raise CelEvalError(f"the condition of '?:' must be bool, not {_describe(value)}", pos)
    return conditional


def _string_args(name: str, pos, *values) -> None:
    for value in values:
        if _kind(value) != "string":
            raise CelEvalError(f"{name}() works on strings, not {_describe(value)}", pos)


def _compile_call(node: Call) -> Compiled:
    name, pos = node.function, node.pos
    args = tuple(_compile(arg) for arg in node.args)
    if node.target is None:
        if name not in GLOBAL_FUNCTIONS or len(args) != GLOBAL_FUNCTIONS[name]:
            raise ValueError(f"unsupported function {name}() with {len(args)} arguments")
        (arg,) = args
        return {"size": _size, "int": _to_int, "string": _to_string}[name](arg, pos)
    target = _compile(node.target)
    if name not in METHODS or len(args) != METHODS[name]:
        raise ValueError(f"unsupported method .{name}() with {len(args)} arguments")
    if name == "size":
        return _size(target, pos)
    (arg,) = args
    if name == "startsWith":
        def starts_with(env):
            text, prefix = target(env), arg(env)
            _string_args(name, pos, text, prefix)
            return text.startswith(prefix)
        return starts_with
    if name == "endsWith":
        def ends_with(env):
            text, suffix = target(env), arg(env)
            _string_args(name, pos, text, suffix)
            return text.endswith(suffix)
        return ends_with
    if name == "contains":
        def contains(env):
            text, part = target(env), arg(env)
            _string_args(name, pos, text, part)
            return part in text
        return contains
    return _matches(target, arg, node.args[0], pos)


def _matches(target: Compiled, arg: Compiled, pattern_node: Expr, pos) -> Compiled:
    def search(regex, text):
        try:
            return regex.search(text) is not None
        except UnicodeEncodeError:
            raise CelEvalError("matches() on a string that is not valid Unicode", pos) from None

    if isinstance(pattern_node, Lit) and isinstance(pattern_node.value, str):
        problem = _regex_problem(pattern_node.value)
        regex = None if problem else _re2_compile(pattern_node.value)

        def matches_literal(env):
            text = target(env)
            _string_args("matches", pos, text)
            if regex is None:
                raise CelEvalError(f"invalid pattern for matches(): {problem}", pos)
            return search(regex, text)
        return matches_literal

    def matches_computed(env):
        text, pattern = target(env), arg(env)
        _string_args("matches", pos, text, pattern)
        try:
            regex = _cached_regex(pattern)
        except CelEvalError as exc:
            raise CelEvalError(exc.message, pos) from None
        return search(regex, text)
    return matches_computed


def _size(operand: Compiled, pos) -> Compiled:
    def size(env):
        value = operand(env)
        if _kind(value) in ("string", "list", "map"):
            return len(value)
        raise CelEvalError(f"size() of {_describe(value)}", pos)
    return size


def _to_int(operand: Compiled, pos) -> Compiled:
    def to_int(env):
        value = operand(env)
        kind = _kind(value)
        if kind == "int":
            return value
        if kind == "string" and _INT_TEXT.fullmatch(value):
            try:
                return int(value)
            except ValueError:      # beyond Python's int/str digit limit
                raise CelEvalError("int() of a string with too many digits", pos) from None
        raise CelEvalError(f"int() of {kind} {value!r}" if kind == "string" else f"int() of {kind}", pos)
    return to_int


def _to_string(operand: Compiled, pos) -> Compiled:
    def to_string(env):
        value = operand(env)
        kind = _kind(value)
        if kind == "string":
            return value
        if kind == "bool":
            return "true" if value else "false"
        if kind == "int":
            try:
                return str(value)
            except ValueError:      # beyond Python's int/str digit limit
                raise CelEvalError("string() of an int with too many digits", pos) from None
        raise CelEvalError(f"string() of {kind}", pos)
    return to_string


def _compile_comprehension(node: Comprehension) -> Compiled:
    target, body, var, pos, macro = _compile(node.target), _compile(node.body), node.var, node.pos, node.macro

    def elements(env):
        container = target(env)
        kind = _kind(container)
        if kind == "list":
            return container
        if kind == "map":
            return list(container)
        raise CelEvalError(f".{macro}() works on a list or a map, not {kind}", pos)

    def predicate_error(value) -> CelEvalError:
        return CelEvalError(f"the predicate of .{macro}() must be bool, not {_describe(value)}", pos)

    # Each evaluation binds the variable in its own copy of the environment: safe across threads.
    if macro in ("all", "exists"):
        absorbing = macro == "exists"      # the value that decides the result: false for all, true for exists

        def quantifier(env):
            scope = dict(env)
            error = None
            for element in elements(env):
                scope[var] = element
                try:
                    value = body(scope)
                except CelEvalError as exc:
                    error = error or exc
                    continue
                if value is absorbing:
                    return absorbing
                if value is not (not absorbing):
                    error = error or predicate_error(value)
            if error:
                raise error
            return not absorbing
        return quantifier
    if macro == "exists_one":
        def exactly_one(env):
            scope = dict(env)
            count = 0
            for element in elements(env):
                scope[var] = element
                value = body(scope)
                if value is True:
                    count += 1
                elif value is not False:
                    raise predicate_error(value)
            return count == 1
        return exactly_one
    if macro == "map":
        def transform(env):
            scope = dict(env)
            out = []
            for element in elements(env):
                scope[var] = element
                out.append(body(scope))
            return out
        return transform
    if macro == "filter":
        def keep(env):
            scope = dict(env)
            out = []
            for element in elements(env):
                scope[var] = element
                value = body(scope)
                if value is True:
                    out.append(element)
                elif value is not False:
                    raise predicate_error(value)
            return out
        return keep
    raise ValueError(f"unknown macro {macro!r}")


_COMPILERS: dict[type, Callable[[Expr], Compiled]] = {
    Lit: _compile_lit, Ident: _compile_ident, Select: _compile_select, Has: _compile_has,
    Index: _compile_index, ListExpr: _compile_list, MapExpr: _compile_map, Unary: _compile_unary,
    Binary: _compile_binary, Cond: _compile_cond, Call: _compile_call, Comprehension: _compile_comprehension,
}
