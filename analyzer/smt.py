"""CEL → Z3: the only module that imports z3.

Every CEL node becomes a typed value with a *definedness* term: ``V(sort, term, ok)``
where ``ok`` holds exactly when the concrete evaluator (analyzer.conditions) would return a
value rather than raise. ``&&``/``||`` follow CEL's error absorption, so a translated
condition agrees with the evaluator on every input, errors included; callers decide
what an error means (fail closed: a grant does not apply, a deny does).

Anything outside the supported subset raises :class:`Unsupported` with the reason and the
expression position; the prover turns that into UNKNOWN, never into a pass.
"""

from __future__ import annotations

import re
import re._constants as sre_c
import re._parser as sre_parse  # the stdlib's regex parser: RE2 patterns checked at load share its syntax
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import z3

from analyzer import conditions as cel

_ESCAPE = re.compile(r"\\u\{([0-9a-fA-F]{1,6})\}")


def _sval(text: str):
    """A Z3 string constant holding exactly `text` (z3 would otherwise decode `\\u{..}` escapes in it)."""
    return z3.StringVal(text.replace("\\", "\\u{5c}"))


def _from_z3_string(text: str) -> str:
    """Undo z3's escaping of a string value (`\\u{1f600}`; a literal backslash-u is `\\u{5c}u`)."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


TRUE = z3.BoolVal(True)
FALSE = z3.BoolVal(False)


class Unsupported(Exception):
    """A construct the Z3 translation does not cover; the proof becomes UNKNOWN with this reason."""

    def __init__(self, reason: str, pos: tuple[int, int] = (0, 0)):
        super().__init__(reason)
        self.reason = reason
        self.pos = pos


@dataclass(frozen=True)
class V:
    """A translated value: ``sort`` is int, string, bool, null, list, map or fieldset."""

    sort: str
    term: Any  # z3 term; for list: tuple[V]; for map: dict[str, V]; for fieldset: dict[str, BoolRef]
    ok: Any = TRUE

    def with_ok(self, ok) -> V:
        return V(self.sort, self.term, z3.simplify(z3.And(self.ok, ok)) if ok is not TRUE else self.ok)


def _error(sort: str = "bool") -> V:
    """A value that is always an evaluation error."""
    dummy = {"bool": FALSE, "int": z3.IntVal(0), "string": _sval("")}.get(sort, FALSE)
    return V(sort if sort in ("bool", "int", "string") else "bool", dummy, FALSE)


def constant(value: Any) -> V:
    """A Python value (from the model: call fields, tenant attributes, literals) as a V."""
    if value is None:
        return V("null", None)
    if isinstance(value, bool):
        return V("bool", z3.BoolVal(value))
    if isinstance(value, int):
        return V("int", z3.IntVal(value))
    if isinstance(value, str):
        return V("string", _sval(value))
    if isinstance(value, (list, tuple)):
        return V("list", tuple(constant(v) for v in value))
    if isinstance(value, Mapping):
        return V("map", {str(k): constant(v) for k, v in value.items()})
    raise Unsupported(f"values of type {type(value).__name__} are not supported by the prover")


class Env:
    """The variables a condition sees: constants and Z3 variables (params, fields)."""

    def __init__(self, call: Mapping[str, Any], params: Mapping[str, V], fields: Mapping[str, Any],
                 tenant: Mapping[str, Any], extra_call: Mapping[str, V] | None = None,
                 tenant_symbols: Mapping[str, V] | None = None):
        self.roots: dict[str, V] = {
            "call": V("map", {**{k: constant(v) for k, v in call.items()}, **(extra_call or {})}),
            "params": V("map", dict(params)),
            "fields": V("fieldset", dict(fields)),
            "tenant": V("map", dict(tenant_symbols) if tenant_symbols is not None
                        else {k: constant(v) for k, v in tenant.items()}),
        }


def symbol(name: str, like: Any) -> V:
    """A free variable of the same CEL type as a constant (a tenant attribute asked for every tenant)."""
    if isinstance(like, bool):
        return V("bool", z3.Bool(name))
    if isinstance(like, int):
        return V("int", z3.Int(name))
    if isinstance(like, str):
        return V("string", z3.String(name))
    return constant(like)


def translate(expr: cel.Expr, env: Env) -> V:
    """Translate an AST under an environment."""
    return _Translator(env).run(expr, {})


def holds(value: V):
    """The condition is defined and true."""
    if value.sort != "bool":
        return FALSE
    return z3.And(value.ok, value.term)


def holds_or_errors(value: V):
    """The condition is true or cannot be evaluated (how denies and high_risk_when fail closed)."""
    if value.sort != "bool":
        return TRUE
    return z3.Or(z3.Not(value.ok), value.term)


def _and(*terms):
    terms = [t for t in terms if t is not TRUE]
    if not terms:
        return TRUE
    return terms[0] if len(terms) == 1 else z3.And(*terms)


class _Translator:
    def __init__(self, env: Env):
        self.env = env

    def run(self, node: cel.Expr, bound: dict[str, V]) -> V:
        method = getattr(self, "t_" + type(node).__name__, None)
        if method is None:  # pragma: no cover - every AST class has a method or is rejected here
            raise Unsupported(f"{type(node).__name__} is not supported by the prover", node.pos)
        return method(node, bound)

    # ---- leaves ---------------------------------------------------------------------------
    def t_Lit(self, node, bound):
        if isinstance(node.value, float):
            raise Unsupported("floating-point numbers are not supported by the prover", node.pos)
        return constant(node.value)

    def t_Ident(self, node, bound):
        if node.name in bound:
            return bound[node.name]
        if node.name in self.env.roots:
            return self.env.roots[node.name]
        return _error()

    def t_Select(self, node, bound):
        operand = self.run(node.operand, bound)
        if operand.sort != "map":
            return _error()
        if node.field not in operand.term:
            return _error()
        return operand.term[node.field].with_ok(operand.ok)

    def t_Has(self, node, bound):
        operand = self.run(node.select.operand, bound)
        if operand.sort != "map":
            return V("bool", FALSE, operand.ok)
        return V("bool", z3.BoolVal(node.select.field in operand.term), operand.ok)

    def t_Index(self, node, bound):
        operand = self.run(node.operand, bound)
        index = self.run(node.index, bound)
        if operand.sort == "map" and index.sort == "string" and z3.is_string_value(index.term):
            key = _from_z3_string(index.term.as_string())
            if key in operand.term:
                return operand.term[key].with_ok(_and(operand.ok, index.ok))
            return _error()
        if operand.sort == "list" and index.sort == "int" and z3.is_int_value(index.term):
            position = index.term.as_long()
            if 0 <= position < len(operand.term):
                return operand.term[position].with_ok(_and(operand.ok, index.ok))
            return _error()
        raise Unsupported("indexing with a computed key is not supported by the prover", node.pos)

    def t_ListExpr(self, node, bound):
        items = tuple(self.run(item, bound) for item in node.items)
        return V("list", items, _and(*(item.ok for item in items)))

    def t_MapExpr(self, node, bound):
        raise Unsupported("map literals are not supported by the prover", node.pos)

    # ---- operators ------------------------------------------------------------------------
    def t_Unary(self, node, bound):
        operand = self.run(node.operand, bound)
        if node.op == "!":
            if operand.sort != "bool":
                return _error()
            return V("bool", z3.Not(operand.term), operand.ok)
        if operand.sort != "int":
            return _error("int")
        return _int64(-operand.term, operand.ok)

    def t_Cond(self, node, bound):
        test = self.run(node.test, bound)
        then = self.run(node.then, bound)
        orelse = self.run(node.orelse, bound)
        if test.sort != "bool":
            return _error()
        if then.sort != orelse.sort or then.sort not in ("int", "string", "bool"):
            raise Unsupported("a ?: whose branches differ in type (or are lists or maps) is not supported",
                              node.pos)
        return V(then.sort, z3.If(test.term, then.term, orelse.term),
                 _and(test.ok, z3.If(test.term, then.ok, orelse.ok)))

    def t_Binary(self, node, bound):
        op = node.op
        left = self.run(node.left, bound)
        right = self.run(node.right, bound)
        if op == "&&":
            return self.logic_and(left, right)
        if op == "||":
            return self.logic_or(left, right)
        if op in ("==", "!="):
            value = self.equal(left, right, node.pos)
            return V("bool", z3.Not(value.term), value.ok) if op == "!=" else value
        if op == "in":
            return self.member(left, right, node.pos)
        if op in ("<", "<=", ">", ">="):
            return self.compare(op, left, right, node.pos)
        return self.arith(op, left, right, node.pos)

    @staticmethod
    def logic_and(a: V, b: V) -> V:
        if a.sort != "bool":
            a = _error()
        if b.sort != "bool":
            b = _error()
        ok = z3.Or(_and(a.ok, b.ok), _and(a.ok, z3.Not(a.term)), _and(b.ok, z3.Not(b.term)))
        value = z3.And(z3.Implies(a.ok, a.term), z3.Implies(b.ok, b.term))
        return V("bool", value, ok)

    @staticmethod
    def logic_or(a: V, b: V) -> V:
        if a.sort != "bool":
            a = _error()
        if b.sort != "bool":
            b = _error()
        ok = z3.Or(_and(a.ok, b.ok), _and(a.ok, a.term), _and(b.ok, b.term))
        value = z3.Or(_and(a.ok, a.term), _and(b.ok, b.term))
        return V("bool", value, ok)

    def equal(self, a: V, b: V, pos) -> V:
        ok = _and(a.ok, b.ok)
        if a.sort == "null" or b.sort == "null":
            return V("bool", z3.BoolVal(a.sort == b.sort), ok)
        if "fieldset" in (a.sort, b.sort):
            return self.equal_fields(a if a.sort == "fieldset" else b, b if a.sort == "fieldset" else a, ok, pos)
        if a.sort != b.sort:
            return V("bool", FALSE, FALSE)
        if a.sort in ("int", "string", "bool"):
            return V("bool", a.term == b.term, ok)
        if a.sort == "list":
            if len(a.term) != len(b.term):
                return V("bool", FALSE, ok)
            result = V("bool", TRUE)
            for x, y in zip(a.term, b.term):
                result = self.logic_and(result, self.equal(x, y, pos))
            return result.with_ok(ok)
        raise Unsupported(f"comparing {a.sort} values is not supported by the prover", pos)

    def equal_fields(self, fields: V, other: V, ok, pos) -> V:
        """`fields == [..]`: the call's fields are a set to the prover, so only [] and [x] are decided."""
        if other.sort != "list":
            if other.sort == "fieldset":
                raise Unsupported("comparing fields with itself is not supported by the prover", pos)
            return V("bool", FALSE, FALSE)
        flags = fields.term
        if not other.term:
            return V("bool", z3.Not(z3.Or(*flags.values())) if flags else TRUE, ok)
        if len(other.term) == 1 and other.term[0].sort == "string":
            element = other.term[0]
            exactly = [z3.And(element.term == _sval(name), flag,
                              *[z3.Not(f) for n, f in flags.items() if n != name]) for name, flag in flags.items()]
            return V("bool", z3.Or(*exactly) if exactly else FALSE, _and(ok, element.ok))
        raise Unsupported("comparing fields with a list of several names depends on their order, which the "
                          "prover does not model", pos)

    def member(self, item: V, container: V, pos) -> V:
        if container.sort == "list":
            result = V("bool", FALSE)
            for element in container.term:
                result = self.logic_or(result, self.equal(item, element, pos))
            return result.with_ok(_and(item.ok, container.ok))  # the item is evaluated first
        if container.sort == "fieldset":
            flags = list(container.term.values())
            if item.sort == "null":
                return V("bool", FALSE, item.ok)
            if item.sort != "string":  # comparing it with a field name errs; with no fields it is false
                return V("bool", FALSE, _and(item.ok, z3.Not(z3.Or(*flags)) if flags else TRUE))
            present = [z3.And(item.term == _sval(name), flag) for name, flag in container.term.items()]
            return V("bool", z3.Or(*present) if present else FALSE, item.ok)
        if container.sort == "map":
            if item.sort == "null" or item.sort not in ("string", "int", "bool"):
                return _error()
            if item.sort != "string":
                return V("bool", FALSE, item.ok)
            keys = [item.term == _sval(k) for k in container.term]
            return V("bool", z3.Or(*keys) if keys else FALSE, _and(item.ok, container.ok))
        return _error()

    def compare(self, op, a: V, b: V, pos) -> V:
        if a.sort != b.sort or a.sort not in ("int", "string"):
            return _error()
        ok = _and(a.ok, b.ok)
        x, y = a.term, b.term
        if a.sort == "string":
            table = {"<": lambda: z3.StrLT(x, y) if hasattr(z3, "StrLT") else x < y,
                     "<=": lambda: z3.Or(x == y, z3.StrLT(x, y) if hasattr(z3, "StrLT") else x < y),
                     ">": lambda: z3.StrLT(y, x) if hasattr(z3, "StrLT") else y < x,
                     ">=": lambda: z3.Or(x == y, z3.StrLT(y, x) if hasattr(z3, "StrLT") else y < x)}
            return V("bool", table[op](), ok)
        term = {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]
        return V("bool", term, ok)

    def arith(self, op, a: V, b: V, pos) -> V:
        ok = _and(a.ok, b.ok)
        if op == "+" and a.sort == b.sort == "string":
            return V("string", z3.Concat(a.term, b.term), ok)
        if op == "+" and a.sort == b.sort == "list":
            return V("list", a.term + b.term, ok)
        if a.sort != "int" or b.sort != "int":
            return _error("int")
        x, y = a.term, b.term
        if op == "+":
            return _int64(x + y, ok)
        if op == "-":
            return _int64(x - y, ok)
        if op == "*":
            if not (z3.is_int_value(x) or z3.is_int_value(y)):
                raise Unsupported("multiplying two parameters (non-linear arithmetic) is not supported", pos)
            return _int64(x * y, ok)
        # CEL truncates toward zero; Z3's integer division is Euclidean: rebuild truncation from |x| / |y|
        abs_x, abs_y = z3.If(x >= 0, x, -x), z3.If(y >= 0, y, -y)
        quotient = z3.If((x >= 0) == (y > 0), abs_x / abs_y, -(abs_x / abs_y))
        # INT64_MIN / -1 (and % -1) overflows in CEL
        defined = _and(ok, z3.And(y != 0, z3.Not(z3.And(x == _INT64_MIN, y == -1))))
        if op == "/":
            return V("int", quotient, defined)
        return V("int", x - y * quotient, defined)

    # ---- functions ------------------------------------------------------------------------
    def t_Call(self, node, bound):
        name = node.function
        target = self.run(node.target, bound) if node.target is not None else None
        args = [self.run(arg, bound) for arg in node.args]
        if name == "size":
            subject = target if target is not None else args[0]
            if subject.sort == "string":
                return V("int", z3.Length(subject.term), subject.ok)
            if subject.sort == "list":
                return V("int", z3.IntVal(len(subject.term)), subject.ok)
            if subject.sort == "map":
                return V("int", z3.IntVal(len(subject.term)), subject.ok)
            if subject.sort == "fieldset":
                flags = list(subject.term.values())
                total = z3.Sum(*[z3.If(f, 1, 0) for f in flags]) if flags else z3.IntVal(0)
                return V("int", total, subject.ok)
            return _error("int")
        if name in ("startsWith", "endsWith", "contains"):
            (arg,) = args
            if target.sort != "string" or arg.sort != "string":
                return _error()
            func = {"startsWith": z3.PrefixOf, "endsWith": z3.SuffixOf}.get(name)
            term = func(arg.term, target.term) if func else z3.Contains(target.term, arg.term)
            return V("bool", term, _and(target.ok, arg.ok))
        if name == "matches":
            (pattern,) = args
            if target.sort != "string" or pattern.sort != "string":
                return _error()
            if not z3.is_string_value(pattern.term):
                raise Unsupported("matches() with a computed pattern is not supported by the prover", node.pos)
            regex = regex_to_z3(_from_z3_string(pattern.term.as_string()), node.pos)
            return V("bool", z3.InRe(target.term, regex), _and(target.ok, pattern.ok))
        if name in ("int", "string"):
            (arg,) = args
            if arg.sort == ("int" if name == "int" else "string"):
                return arg
            if _is_constant(arg):
                if not z3.is_true(z3.simplify(arg.ok)):
                    if z3.is_false(z3.simplify(arg.ok)):
                        return _error(name if name == "int" else "string")
                    raise Unsupported(f"{name}() of a value that may be undefined is not supported", node.pos)
                try:
                    return constant(cel.evaluate(cel.Call(name, None, (cel.Lit(_py(arg)),)), {}))
                except cel.CelEvalError:
                    return _error(name if name == "int" else "string")
            raise Unsupported(f"{name}() conversion of a parameter is not supported by the prover", node.pos)
        raise Unsupported(f"function {name}() is not supported by the prover", node.pos)

    def t_Comprehension(self, node, bound):
        target = self.run(node.target, bound)
        if target.sort == "map":
            elements = [constant(k) for k in target.term]
        elif target.sort == "list":
            elements = list(target.term)
        else:
            raise Unsupported(f"{node.macro}() over {target.sort} values is not supported by the prover", node.pos)
        bodies = [self.run(node.body, {**bound, node.var: element}) for element in elements]
        if node.macro == "all":
            result = V("bool", TRUE)
            for body in bodies:
                result = self.logic_and(result, body)
            return result.with_ok(target.ok)
        if node.macro == "exists":
            result = V("bool", FALSE)
            for body in bodies:
                result = self.logic_or(result, body)
            return result.with_ok(target.ok)
        raise Unsupported(f"{node.macro}() is not supported by the prover", node.pos)


def _is_constant(value: V) -> bool:
    return value.sort in ("int", "string", "bool") and z3.is_const(value.term) and (
        z3.is_int_value(value.term) or z3.is_string_value(value.term) or z3.is_true(value.term)
        or z3.is_false(value.term))


def _py(value: V):
    if z3.is_int_value(value.term):
        return value.term.as_long()
    if z3.is_string_value(value.term):
        return _from_z3_string(value.term.as_string())
    return z3.is_true(value.term)


# ---- RE2 → Z3 regular expressions -----------------------------------------------------------
_RE = z3.ReSort(z3.StringSort())


def _chars(lo: int, hi: int):
    return z3.Range(chr(lo), chr(hi))


_CATEGORIES = {
    sre_c.CATEGORY_DIGIT: [(48, 57)],
    sre_c.CATEGORY_WORD: [(48, 57), (65, 90), (95, 95), (97, 122)],
    sre_c.CATEGORY_SPACE: [(9, 10), (12, 13), (32, 32)],
}
_NEGATED = {sre_c.CATEGORY_NOT_DIGIT: sre_c.CATEGORY_DIGIT, sre_c.CATEGORY_NOT_WORD: sre_c.CATEGORY_WORD,
            sre_c.CATEGORY_NOT_SPACE: sre_c.CATEGORY_SPACE}


def _any_char():
    return z3.AllChar(_RE)


def _complement_char(regex):
    return z3.Intersect(_any_char(), z3.Complement(regex))


def _union(items):
    items = list(items)
    if not items:
        return z3.Empty(_RE)
    return items[0] if len(items) == 1 else z3.Union(*items)


def _concat(items):
    items = list(items)
    if not items:
        return z3.Re(_sval(""))
    return items[0] if len(items) == 1 else z3.Concat(*items)


def regex_to_z3(pattern: str, pos=(0, 0)):
    """A partial-match RE2 pattern (CEL ``matches``) as a Z3 regex over whole strings."""
    if "[:" in pattern or "\\p" in pattern or "\\P" in pattern or "\\Q" in pattern:
        # RE2 reads [[:alpha:]], \pL and \Q..\E; Python's parser does not: refuse rather than misread
        raise Unsupported(f"regular expression {pattern!r}: POSIX classes, Unicode classes and \\Q are not "
                          "supported by the prover", pos)
    try:
        parsed = sre_parse.parse(pattern)
    except Exception as exc:  # noqa: BLE001 - the loader validated the pattern with RE2; this is sre's opinion
        raise Unsupported(f"regular expression {pattern!r} is not supported by the prover: {exc}", pos) from None
    if parsed.state.flags & (sre_c.SRE_FLAG_IGNORECASE | sre_c.SRE_FLAG_MULTILINE | sre_c.SRE_FLAG_DOTALL
                             | sre_c.SRE_FLAG_VERBOSE):
        raise Unsupported(f"regular expression flags in {pattern!r} are not supported by the prover", pos)
    branches = _top_branches(list(parsed))
    alternatives = []
    for branch in branches:
        anchored_start = bool(branch) and branch[0] == (sre_c.AT, sre_c.AT_BEGINNING) or (
            bool(branch) and branch[0] == (sre_c.AT, sre_c.AT_BEGINNING_STRING))
        if anchored_start:
            branch = branch[1:]
        anchored_end = bool(branch) and branch[-1] in ((sre_c.AT, sre_c.AT_END), (sre_c.AT, sre_c.AT_END_STRING))
        if anchored_end:
            branch = branch[:-1]
        body = _seq(branch, pattern, pos)
        parts = ([] if anchored_start else [z3.Star(_any_char())]) + [body] + (
            [] if anchored_end else [z3.Star(_any_char())])
        alternatives.append(_concat(parts))
    return _union(alternatives)


def _top_branches(items):
    if len(items) == 1 and items[0][0] == sre_c.BRANCH:
        return [list(b) for b in items[0][1][1]]
    return [items]


def _seq(items, pattern, pos):
    return _concat(_item(op, arg, pattern, pos) for op, arg in items)


def _item(op, arg, pattern, pos):
    if op == sre_c.LITERAL:
        return z3.Re(_sval(chr(arg)))
    if op == sre_c.NOT_LITERAL:
        return _complement_char(z3.Re(_sval(chr(arg))))
    if op == sre_c.ANY:
        return _complement_char(z3.Re(_sval("\n")))  # RE2's `.` does not match a newline
    if op == sre_c.IN:
        return _char_class(arg, pattern, pos)
    if op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, getattr(sre_c, "POSSESSIVE_REPEAT", None)):
        low, high, sub = arg
        body = _seq(list(sub), pattern, pos)
        if high == sre_c.MAXREPEAT:
            if low == 0:
                return z3.Star(body)
            return z3.Concat(z3.Loop(body, low, low), z3.Star(body)) if low > 1 else z3.Plus(body)
        if high == 0:  # z3.Loop(r, 0, 0) means "any number"; {0} matches only the empty string
            return z3.Re(_sval(""))
        return z3.Loop(body, low, high) if (low, high) != (0, 1) else z3.Option(body)
    if op == sre_c.SUBPATTERN:
        _group, add_flags, del_flags, sub = arg
        if add_flags or del_flags:
            raise Unsupported(f"inline regex flags in {pattern!r} are not supported by the prover", pos)
        return _seq(list(sub), pattern, pos)
    if op == sre_c.BRANCH:
        return _union(_seq(list(b), pattern, pos) for b in arg[1])
    raise Unsupported(f"regex construct {op} in {pattern!r} is not supported by the prover "
                      "(anchors only at the ends of the pattern)", pos)


def _char_class(items, pattern, pos):
    negate = False
    parts = []
    for op, arg in items:
        if op == sre_c.NEGATE:
            negate = True
        elif op == sre_c.LITERAL:
            parts.append(z3.Re(_sval(chr(arg))))
        elif op == sre_c.RANGE:
            parts.append(_chars(*arg))
        elif op == sre_c.CATEGORY and arg in _CATEGORIES:
            parts.append(_union(_chars(lo, hi) for lo, hi in _CATEGORIES[arg]))
        elif op == sre_c.CATEGORY and arg in _NEGATED:
            parts.append(_complement_char(_union(_chars(lo, hi) for lo, hi in _CATEGORIES[_NEGATED[arg]])))
        else:
            raise Unsupported(f"character class item {op} in {pattern!r} is not supported by the prover", pos)
    regex = _union(parts)
    return _complement_char(regex) if negate else regex


# ---- solving ----------------------------------------------------------------------------------
class Solved:
    """The answer to one satisfiability question."""

    def __init__(self, status: str, model=None, reason: str | None = None):
        self.status = status  # sat | unsat | unknown
        self.model = model
        self.reason = reason


def solve(constraints, timeout_ms: int = 10_000) -> Solved:
    """Check constraints in a fresh Z3 context, so the model (the witness) does not depend on what
    was solved before in this process: the same question always gets the same answer."""
    ctx = z3.Context()
    solver = z3.Solver(ctx=ctx)
    solver.set("timeout", timeout_ms)
    solver.add(*[c.translate(ctx) for c in constraints])
    answer = solver.check()
    if answer == z3.sat:
        return Solved("sat", solver.model())
    if answer == z3.unsat:
        return Solved("unsat")
    return Solved("unknown", reason=f"the solver gave up: {solver.reason_unknown()}")


def int_var(name: str):
    return z3.Int(name)


def string_var(name: str):
    return z3.String(name)


def bool_var(name: str):
    return z3.Bool(name)


def value_of(model, term, sort: str):
    """A Python value from a model for a parameter's variable."""
    if term.ctx is not model.ctx:
        term = term.translate(model.ctx)
    evaluated = model.eval(term, model_completion=True)
    if sort == "int":
        return evaluated.as_long()
    if sort == "string":
        return _from_z3_string(evaluated.as_string())
    return z3.is_true(evaluated)


def bounds(constraints, term, timeout_ms: int = 5_000) -> tuple[int | None, int | None]:
    """The least and greatest value of an integer term under constraints (None: unbounded or unknown)."""
    result = []
    for goal in ("min", "max"):
        ctx = z3.Context()
        opt = z3.Optimize(ctx=ctx)
        opt.set("timeout", timeout_ms)
        opt.add(*[c.translate(ctx) for c in constraints])
        target = term.translate(ctx)
        handle = opt.minimize(target) if goal == "min" else opt.maximize(target)
        if opt.check() != z3.sat:
            result.append(None)
            continue
        value = opt.lower(handle) if goal == "min" else opt.upper(handle)
        result.append(value.as_long() if z3.is_int_value(value) else None)
    return result[0], result[1]


def pin(term, value, sort: str):
    """A variable fixed to a concrete Python value."""
    if sort == "int":
        return term == z3.IntVal(value)
    if sort == "bool":
        return term == z3.BoolVal(bool(value))
    return term == _sval(value)


def conjunction(*terms):
    return _and(*terms)


def disjunction(terms):
    terms = list(terms)
    return z3.Or(*terms) if terms else FALSE


def negation(term):
    return z3.Not(term)


_INT64_MIN, _INT64_MAX = z3.IntVal(-(2**63)), z3.IntVal(2**63 - 1)


def _int64(term, ok) -> V:
    """An int result, defined only inside CEL's 64-bit range (outside it, CEL reports an overflow)."""
    return V("int", term, _and(ok, z3.And(term >= _INT64_MIN, term <= _INT64_MAX)))


def int64_domain(term):
    """An int param's values: a signed 64-bit integer (FORMAT §2), so that no witness lies outside it."""
    return z3.And(term >= z3.IntVal(-(2**63)), term <= z3.IntVal(2**63 - 1))


def enum_domain(term, values):
    return z3.Or(*[term == _sval(v) for v in values])


def equals_string(term, value: str):
    return term == _sval(value)


def is_true(term) -> bool:
    return z3.is_true(z3.simplify(term))


def is_false(term) -> bool:
    return z3.is_false(z3.simplify(term))


def string_term(value: str):
    return _sval(value)


def ite(test, then, orelse):
    return z3.If(test, then, orelse)
