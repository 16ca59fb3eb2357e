"""A deployment as Cedar policies, and calls decided through Cedar (issue 13).

`export(deployment)` writes FORMAT §4 as a Cedar schema, a policy set and an entity store, so
that a tool server enforcing with Cedar answers every call exactly as `analyzer.decide` does;
`request_for(call, export)` turns a decision-API call (FORMAT §7) into the Cedar request the
policies expect; `CedarEngine` asks cedarpy. One semantics: the tests send the same calls to
both engines and compare every answer.

The encoding
    principal  Agent::<the acting agent, the chain's last>   (Agent::"" for an empty chain)
    action     Action::"call"
    resource   Operation::"<tool>/<operation>"   ("/" is in no id, so the pair is unambiguous)
    context    the raw call, re-shaped only where Cedar cannot loop (see `request_for`).

    The policy set holds one `forbid ... unless` for §4 points 1, 2 and 5 (chain, scope,
    credential), one per operation with params for their types, a `permit` per grant (its
    fields, approval and `when`), a `forbid` per role deny and guardrail. The static facts are
    entities: tenants (who serves them, and the values of the tenant-only parts of the
    conditions), workflows, agents (roles as parents, per tool the tenants their credentials
    reach as tags), tools, operations, gates and people (a person's parents are the gates they
    approve, so `by in gate` is "a person on that gate").

Conditions
    CEL has three outcomes (true, false, error) and absorbs errors in `&&`/`||`; Cedar skips a
    policy whose condition errs and does not absorb. So a `when` becomes two Cedar expressions
    that never err: H ("evaluates to true") and F ("evaluates to false"); a grant's permit needs
    H, a deny's forbid applies unless F (an error or a non-bool denies, as in decide). Each
    operand is typed statically per operation (the params a call carries are exactly the
    declared ones, of their types, or the structural forbids deny it), and a value that may be
    of several types or missing (a tenant attribute) is a list of alternatives with exclusive
    guards. A sub-expression that reads nothing but `tenant` is evaluated here, per tenant, by
    analyzer.conditions itself and stored on the tenant (`derived`). What has no same meaning
    in Cedar (`matches`, `/`, `%`, string ordering, string `size()`, `contains` of a computed
    string, a product of two variables, ...) raises :class:`Unsupported`: the grant is left out
    (its calls are denied) or the deny becomes unconditional, and the export reports a gap.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from analyzer import conditions, model
from analyzer.conditions import (
    Binary,
    Call,
    Comprehension,
    Cond,
    Has,
    Ident,
    Index,
    ListExpr,
    MapExpr,
    Select,
    Unary,
)

INT64_MIN, INT64_MAX = model.INT64_MIN, model.INT64_MAX
ROOT = ("Deployment", "deployment")  # every definition descends from it: `X in Deployment::"deployment"` = X exists
ACTION = ("Action", "call")
FILES = ("schema.cedarschema", "policies.cedar", "entities.json")
STRUCTURE_ID = "structure"  # the @id of the forbid holding §4 points 1, 2 and 5


class Unsupported(Exception):
    """A construct of a condition with no same meaning in Cedar; ``pos`` is (line, column) in the condition."""

    def __init__(self, message: str, pos: tuple[int, int] | None = None):
        super().__init__(message)
        self.message = message
        self.pos = pos if pos and pos != (0, 0) else None


# ---------------------------------------------------------------------------------------------- Cedar text

_OR, _AND, _REL, _ADD, _MUL, _UNARY, _MEMBER, _PRIMARY = range(1, 9)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_RESERVED = frozenset({"true", "false", "if", "then", "else", "in", "is", "like", "has", "__cedar", "principal",
                       "action", "resource", "context"})


@dataclass(frozen=True)
class Ced:
    """A Cedar expression's text and the precedence level of its outermost operator."""

    text: str
    prec: int = _PRIMARY
    parts: tuple = field(default=(), compare=False, repr=False)  # the operands of a conjunction


TRUE, FALSE = Ced("true"), Ced("false")


def _wrap(expr: Ced, minimum: int) -> str:
    return expr.text if expr.prec >= minimum else f"({expr.text})"


def conj(*parts: Ced) -> Ced:
    kept: list[Ced] = []
    for part in parts:
        if part == FALSE:
            return FALSE
        if part != TRUE and part not in kept:
            kept.append(part)
    if not kept:
        return TRUE
    if len(kept) == 1:
        return kept[0]
    flat = tuple(q for p in kept for q in (p.parts or (p,)))
    return Ced(" && ".join(_wrap(p, _AND) for p in kept), _AND, flat)


def disj(*parts: Ced) -> Ced:
    kept: list[Ced] = []
    for part in parts:
        if part == TRUE:
            return TRUE
        if part != FALSE and part not in kept:
            kept.append(part)
    if not kept:
        return FALSE
    return kept[0] if len(kept) == 1 else Ced(" || ".join(_wrap(p, _OR) for p in kept), _OR)


def neg(expr: Ced) -> Ced:
    if expr == TRUE:
        return FALSE
    if expr == FALSE:
        return TRUE
    return Ced("!" + _wrap(expr, _MEMBER), _UNARY)


def rel(left: Ced, op: str, right: Ced) -> Ced:
    return Ced(f"{_wrap(left, _ADD)} {op} {_wrap(right, _ADD)}", _REL)


def arith(left: Ced, op: str, right: Ced) -> Ced:
    if op == "*":
        return Ced(f"{_wrap(left, _MUL)} * {_wrap(right, _UNARY)}", _MUL)
    return Ced(f"{_wrap(left, _ADD)} {op} {_wrap(right, _MUL)}", _ADD)


def minus(expr: Ced) -> Ced:
    return Ced("-" + _wrap(expr, _MEMBER), _UNARY)


def attr(expr: Ced, name: str) -> Ced:
    if _IDENT.match(name) and name not in _RESERVED:
        return Ced(f"{_wrap(expr, _MEMBER)}.{name}", _MEMBER)
    return Ced(f"{_wrap(expr, _MEMBER)}[{string(name)}]", _MEMBER)


def has(expr: Ced, name: str) -> Ced:
    key = name if _IDENT.match(name) and name not in _RESERVED else string(name)
    return Ced(f"{_wrap(expr, _ADD)} has {key}", _REL)


def method(expr: Ced, name: str, *args: Ced) -> Ced:
    return Ced(f"{_wrap(expr, _MEMBER)}.{name}({', '.join(a.text for a in args)})", _MEMBER)


def like(expr: Ced, pattern: str) -> Ced:
    return Ced(f"{_wrap(expr, _ADD)} like {pattern}", _REL)


def set_of(items: Iterable[Ced]) -> Ced:
    return Ced("[" + ", ".join(i.text for i in items) + "]")


def long(value: int) -> Ced:
    return Ced(str(value), _UNARY if value < 0 else _PRIMARY)


def entity(kind: str, ident: str) -> Ced:
    return Ced(f"{kind}::{string(ident).text}")


_PLAIN = re.compile(r'[ !#-)+-\[\]-~]*\Z')  # printable ASCII but for quote, backslash and star: as it is
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape(text: str, star: bool = False) -> str:
    if _PLAIN.match(text):
        return text
    out = []
    for char in text:
        code = ord(char)
        if 0xD800 <= code <= 0xDFFF:
            raise Unsupported("a string that is not valid Unicode (a lone surrogate) cannot be written in Cedar")
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif star and char == "*":
            out.append("\\*")
        elif char.isprintable() and char not in "\u2028\u2029":
            out.append(char)
        else:
            out.append(f"\\u{{{code:x}}}")
    return "".join(out)


def string(text: str) -> Ced:
    return Ced('"' + _escape(text) + '"')


CONTEXT, PRINCIPAL, RESOURCE = Ced("context"), Ced("principal"), Ced("resource")
DEPLOYMENT = entity(*ROOT)
PARAMS = attr(CONTEXT, "params")
APPROVAL = attr(CONTEXT, "approval")
TENANT, WORKFLOW = attr(CONTEXT, "tenant"), attr(CONTEXT, "workflow")
DERIVED = attr(TENANT, "derived")
TOOL = attr(RESOURCE, "tool")
# "the call carries an approval by a person on its gate": FORMAT §4's approving gate, or none
APPROVED = conj(has(CONTEXT, "approval"), has(APPROVAL, "by"), rel(attr(APPROVAL, "by"), "in", attr(APPROVAL, "gate")))
TAG = {"int": "long", "string": "string", "bool": "bool", "null": "null"}  # the key of a tagged value's record


# ---------------------------------------------------------------------------------------------- CEL → Cedar

_NONE = object()


@dataclass(frozen=True)
class Alt:
    """One way a CEL value may turn out: its CEL kind, a Cedar guard (never errs) under which it is this
    value, and its Cedar expression (None for a constant Cedar cannot write, or a null)."""

    kind: str  # int | string | bool | null | double | list | map | fields
    guard: Ced
    expr: Ced | None
    const: Any = _NONE
    lengths: frozenset | None = None  # the length of every string it can be, when known (a tenant-only value)
    record: Ced | None = None  # the tagged record of a string param (its suffixes and prefixes)

    @property
    def is_const(self) -> bool:
        return self.const is not _NONE


def _const(value, guard: Ced = TRUE) -> Alt:
    kind = conditions.kind_of(value)
    expr = None
    if kind == "bool":
        expr = TRUE if value else FALSE
    elif kind == "int" and INT64_MIN <= value <= INT64_MAX:
        expr = long(value)
    elif kind == "string":
        try:
            expr = string(value)
        except Unsupported:
            expr = None
    return Alt(kind, guard, expr, const=value)


def _bool_alts(holds: Ced, fails: Ced) -> list[Alt]:
    return [a for a in (_const(True, holds), _const(False, fails)) if a.guard != FALSE]


def _guard(alts: Sequence[Alt]) -> Ced:
    """Whether the value is defined at all (the alternatives' guards are exclusive)."""
    return disj(*(a.guard for a in alts))


def _truth(alts: Sequence[Alt]) -> tuple[Ced, Ced]:
    """(holds, fails) of a value used as a condition: a non-bool is neither, like an error."""
    holds, fails = [], []
    for alt in alts:
        if alt.kind != "bool":
            continue
        if alt.is_const:
            (holds if alt.const else fails).append(alt.guard)
        else:
            holds.append(conj(alt.guard, alt.expr))
            fails.append(conj(alt.guard, neg(alt.expr)))
    return disj(*holds), disj(*fails)


_CALL_FIELDS = {  # call.<field> → its Cedar expression (strings)
    "agent": attr(PRINCIPAL, "id"), "tool": attr(TOOL, "id"), "operation": attr(RESOURCE, "name"),
    "effect": attr(RESOURCE, "effect"), "workflow": attr(WORKFLOW, "id"), "tenant": attr(TENANT, "id"),
    "home": attr(attr(WORKFLOW, "home"), "id"),
}
FIELDS, FIELD_COUNT = attr(CONTEXT, "fields"), attr(CONTEXT, "field_count")


@dataclass
class Registry:
    """What the translated conditions need from the entities: the tenant-only values, by name and tenant,
    and the lengths of the computed suffixes and prefixes the request builder must list."""

    derived: dict[str, dict[str, Any]] = field(default_factory=dict)
    suffix_lengths: set[int] = field(default_factory=set)
    prefix_lengths: set[int] = field(default_factory=set)

    def merge(self, other: Registry) -> None:
        for name, values in other.derived.items():
            self.derived.setdefault(name, values)
        self.suffix_lengths |= other.suffix_lengths
        self.prefix_lengths |= other.prefix_lengths


class Translator:
    """CEL conditions → (holds, fails) Cedar expressions, for one operation's params (see the module docstring)."""

    def __init__(self, tenant_envs: Mapping[str, Mapping[str, Any]], params: Mapping[str, model.ParamType],
                 derived_cache: dict | None = None):
        self.tenant_envs = tenant_envs
        self.params = params
        self.registry = Registry()
        # a tenant-only expression's values, by its text: one export repeats `"@" + tenant.domain` thousands of times
        self.derived_cache = {} if derived_cache is None else derived_cache

    # ---- conditions ---------------------------------------------------------------------------------
    def boolean(self, node) -> tuple[Ced, Ced]:
        if self._fixed(node):
            return _truth(self.value(node))
        if isinstance(node, Binary) and node.op in ("&&", "||"):
            lh, lf = self.boolean(node.left)
            rh, rf = self.boolean(node.right)
            if node.op == "&&":
                return conj(lh, rh), disj(lf, rf)
            return disj(lh, rh), conj(lf, rf)
        if isinstance(node, Unary) and node.op == "!":
            holds, fails = self.boolean(node.operand)
            return fails, holds
        if isinstance(node, Cond):
            th, tf = self.boolean(node.test)
            ah, af = self.boolean(node.then)
            bh, bf = self.boolean(node.orelse)
            return disj(conj(th, ah), conj(tf, bh)), disj(conj(th, af), conj(tf, bf))
        if isinstance(node, Binary) and node.op in ("==", "!="):
            holds, fails = self._equal(self.value(node.left), self.value(node.right), node)
            return (fails, holds) if node.op == "!=" else (holds, fails)
        if isinstance(node, Binary) and node.op in ("<", "<=", ">", ">="):
            return self._order(self.value(node.left), self.value(node.right), node)
        if isinstance(node, Binary) and node.op == "in":
            return self._membership(self.value(node.left), node.right)
        return _truth(self.value(node))

    # ---- values -------------------------------------------------------------------------------------
    @staticmethod
    def _fixed(node) -> bool:
        """Whether the node reads nothing but `tenant` (or nothing): evaluated here, not in Cedar."""
        return all(name == "tenant" for name, _ in conditions.references(node))

    def value(self, node) -> list[Alt]:
        refs = conditions.references(node)
        if not refs:
            return self._static(node)
        if all(name == "tenant" for name, _ in refs):
            return self._derived(node)
        if isinstance(node, Ident):
            if node.name == "fields":
                return [Alt("fields", TRUE, FIELDS)]
            raise Unsupported(f"the whole `{node.name}` map has no Cedar equivalent", node.pos)
        if isinstance(node, Select):
            return self._select(node)
        if isinstance(node, Has):
            return self._has(node)
        if isinstance(node, Binary) and node.op in ("+", "-", "*", "/", "%"):
            return self._arith(node)
        if isinstance(node, Unary) and node.op == "-":
            return self._negate(node)
        if isinstance(node, Binary | Unary):
            return _bool_alts(*self.boolean(node))
        if isinstance(node, Cond):
            holds, fails = self.boolean(node.test)
            return [Alt(a.kind, conj(holds, a.guard), a.expr, a.const, a.lengths, a.record)
                    for a in self.value(node.then)] + \
                   [Alt(a.kind, conj(fails, a.guard), a.expr, a.const, a.lengths, a.record)
                    for a in self.value(node.orelse)]
        if isinstance(node, Call):
            return self._call(node)
        what = {Index: "indexing", ListExpr: "a list", MapExpr: "a map", Comprehension: "a macro"}.get(type(node), "it")
        raise Unsupported(f"{what} over call, params or fields has no Cedar equivalent", node.pos)

    def _static(self, node) -> list[Alt]:
        try:
            return [_const(conditions.evaluate(node, {}))]
        except conditions.CelEvalError:
            return []  # always an error
        except (TypeError, ValueError, KeyError, AttributeError, RecursionError, OverflowError):
            return []

    def _derived(self, node) -> list[Alt]:
        """A value that depends on the tenant alone: evaluated per tenant (the oracle's own evaluator) and
        stored on each tenant as a tagged record (no key where it is an error)."""
        text = conditions.unparse(node)
        found = self.derived_cache.get(text)
        if found is None:
            found = self.derived_cache[text] = self._evaluate_per_tenant(node, text)
        if isinstance(found, str):
            raise Unsupported(found, node.pos)
        name, values, alts = found
        self.registry.derived[name] = values
        return alts

    def _evaluate_per_tenant(self, node, text: str):
        """(name, {tenant: value}, alternatives), or why Cedar cannot hold the values."""
        name = "c_" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
        values: dict[str, Any] = {}
        for tenant_id, env in self.tenant_envs.items():
            try:
                value = conditions.evaluate(node, {"call": {}, "params": {}, "fields": [], "tenant": env})
            except Exception:  # noqa: BLE001, S112 - the evaluator's error, or one it did not foresee: an error either way
                continue
            kind = conditions.kind_of(value)
            if kind not in TAG or (kind == "int" and not INT64_MIN <= value <= INT64_MAX):
                return (f"{text} is {'an int beyond 64 bits' if kind == 'int' else 'a ' + kind} for tenant "
                        f"{tenant_id}: Cedar holds no such value")
            if kind == "string" and _SURROGATE.search(value):
                return f"{text} is not valid Unicode for tenant {tenant_id} (a lone surrogate)"
            values[tenant_id] = value
        record = attr(DERIVED, name)
        alts = []
        for kind in sorted({conditions.kind_of(v) for v in values.values()}):
            guard = conj(has(DERIVED, name), has(record, TAG[kind]))
            lengths = frozenset(len(v) for v in values.values() if isinstance(v, str)) if kind == "string" else None
            alts.append(Alt(kind, guard, None if kind == "null" else attr(record, TAG[kind]),
                            const=None if kind == "null" else _NONE, lengths=lengths))
        return name, values, alts

    def _select(self, node: Select) -> list[Alt]:
        operand = node.operand
        if isinstance(operand, Ident):
            if operand.name == "params":
                kind = self.params.get(node.field)
                if kind is None:
                    return []  # a param the operation does not declare: no such key, an error
                record = attr(PARAMS, node.field)
                cel_kind = "string" if kind.kind in ("string", "enum") else kind.kind
                tag = TAG[cel_kind]
                return [Alt(cel_kind, conj(has(PARAMS, node.field), has(record, tag)), attr(record, tag),
                            record=record if cel_kind == "string" else None)]
            if operand.name == "call":
                if node.field == "delegated":
                    empty = method(attr(CONTEXT, "hops"), "isEmpty")
                    return _bool_alts(neg(empty), empty)
                if node.field == "gate":
                    return [_const(None, neg(APPROVED)), Alt("string", APPROVED, attr(attr(APPROVAL, "gate"), "id"))]
                expr = _CALL_FIELDS.get(node.field)
                return [Alt("string", TRUE, expr)] if expr is not None else []
            if operand.name == "fields":
                return []  # a list has no fields: an error
        alts = self.value(operand)
        if any(a.kind == "map" for a in alts):
            raise Unsupported("selecting from a computed map has no Cedar equivalent", node.pos)
        return []  # selecting from anything but a map is an error

    def _has(self, node: Has) -> list[Alt]:
        operand, name = node.select.operand, node.select.field
        if isinstance(operand, Ident) and operand.name == "params":
            return [_const(name in self.params)]
        if isinstance(operand, Ident) and operand.name == "call":
            return [_const(name in model.CALL_FIELDS)]
        if isinstance(operand, Ident) and operand.name == "fields":
            return [_const(False)]
        alts = self.value(operand)
        if any(a.kind == "map" for a in alts):
            raise Unsupported("has() on a computed map has no Cedar equivalent", node.pos)
        return [_const(False, _guard(alts))] if alts else []

    # ---- comparisons --------------------------------------------------------------------------------
    def _equal(self, left: Sequence[Alt], right: Sequence[Alt], node) -> tuple[Ced, Ced]:
        holds, fails = [], []
        for a in left:
            for b in right:
                guard = conj(a.guard, b.guard)
                if a.kind == "null" or b.kind == "null":
                    (holds if a.kind == b.kind else fails).append(guard)
                    continue
                if _cel_kind(a) != _cel_kind(b):
                    continue  # no '==' between two types: an error
                if a.is_const and b.is_const:
                    try:
                        same = conditions._equal(a.const, b.const)
                    except conditions.CelEvalError:
                        continue
                    (holds if same else fails).append(guard)
                    continue
                if a.kind not in ("int", "string", "bool"):
                    raise Unsupported(f"comparing {a.kind}s has no Cedar equivalent", node.pos)
                if a.expr is None or b.expr is None:
                    if a.kind == "int":  # a literal beyond 64 bits never equals a 64-bit value
                        fails.append(guard)
                        continue
                    raise Unsupported("a literal Cedar cannot write", node.pos)
                same = rel(a.expr, "==", b.expr)
                holds.append(conj(guard, same))
                fails.append(conj(guard, neg(same)))
        return disj(*holds), disj(*fails)

    def _order(self, left: Sequence[Alt], right: Sequence[Alt], node: Binary) -> tuple[Ced, Ced]:
        holds, fails = [], []
        for a in left:
            for b in right:
                if a.kind != b.kind or a.kind not in ("int", "string", "double"):
                    continue  # bools, nulls, lists, mixed types: no ordering, an error
                guard = conj(a.guard, b.guard)
                if a.is_const and b.is_const:
                    (holds if conditions._COMPARE[node.op](a.const, b.const) else fails).append(guard)
                    continue
                if a.kind != "int":
                    raise Unsupported(f"ordering {a.kind}s ('{node.op}') has no Cedar equivalent", node.pos)
                if a.expr is None or b.expr is None:
                    raise Unsupported("an integer literal beyond 64 bits", node.pos)
                compared = rel(a.expr, node.op, b.expr)
                holds.append(conj(guard, compared))
                fails.append(conj(guard, neg(compared)))
        return disj(*holds), disj(*fails)

    def _membership(self, item: Sequence[Alt], container) -> tuple[Ced, Ced]:
        if isinstance(container, Ident) and container.name == "fields":
            holds, fails = [], []
            for a in item:
                if a.kind == "string":
                    if a.expr is None:
                        raise Unsupported("a literal Cedar cannot write", container.pos)
                    found = method(FIELDS, "contains", a.expr)
                    holds.append(conj(a.guard, found))
                    fails.append(conj(a.guard, neg(found)))
                elif a.kind == "null":
                    fails.append(a.guard)  # null equals no string
                else:  # every comparison errs: an error, unless there is nothing to compare with
                    fails.append(conj(a.guard, method(FIELDS, "isEmpty")))
            return disj(*holds), disj(*fails)
        if isinstance(container, ListExpr):
            elements = [self.value(e) for e in container.items]
        elif not conditions.references(container):
            found = self._static(container)
            if not found:
                return FALSE, FALSE
            if found[0].kind == "map":
                raise Unsupported("'in' a map has no Cedar equivalent", container.pos)
            if found[0].kind != "list":
                return FALSE, FALSE  # 'in' something that is neither a list nor a map: an error
            elements = [[_const(v)] for v in found[0].const]
        else:
            raise Unsupported("'in' anything but a list literal or fields has no Cedar equivalent", container.pos)
        defined = conj(_guard(item), *(_guard(e) for e in elements))  # the list is built before it is searched
        pairs = [self._equal(item, element, container) for element in elements]
        return conj(defined, disj(*(h for h, _ in pairs))), conj(defined, *(f for _, f in pairs))

    # ---- arithmetic ---------------------------------------------------------------------------------
    def _arith(self, node: Binary) -> list[Alt]:
        out = []
        for a in self.value(node.left):
            for b in self.value(node.right):
                if _cel_kind(a) != _cel_kind(b):
                    continue  # mixed types: an error
                guard = conj(a.guard, b.guard)
                if a.is_const and b.is_const:
                    try:
                        out.append(_const(conditions._arith(node.op, a.const, b.const, node.pos), guard))
                    except conditions.CelEvalError:
                        pass
                    continue
                if a.kind != "int":
                    if _cel_kind(a) in ("string", "list", "double") and node.op in ("+", "-", "*", "/"):
                        raise Unsupported(f"'{node.op}' on {a.kind}s has no Cedar equivalent", node.pos)
                    continue
                if node.op in ("/", "%"):
                    raise Unsupported(f"Cedar has no '{node.op}'", node.pos)
                if a.expr is None or b.expr is None:
                    raise Unsupported("an integer literal beyond 64 bits", node.pos)
                out.append(Alt("int", conj(guard, self._no_overflow(node, a, b)), arith(a.expr, node.op, b.expr)))
        return out

    @staticmethod
    def _no_overflow(node: Binary, a: Alt, b: Alt) -> Ced:
        """Where a op b stays in 64 bits, written so that the test itself cannot overflow."""
        x, y = a.expr, b.expr
        if node.op == "*":
            if not (a.is_const or b.is_const):
                raise Unsupported("a product of two variables (its overflow cannot be tested in Cedar)", node.pos)
            factor, other = (a.const, y) if a.is_const else (b.const, x)
            if factor == 0:
                return TRUE
            if factor > 0:
                low, high = -((-INT64_MIN) // factor), INT64_MAX // factor
            else:
                low, high = -((-INT64_MAX) // factor), INT64_MIN // factor
            return conj(rel(other, ">=", long(low)) if low > INT64_MIN else TRUE,
                        rel(other, "<=", long(high)) if high < INT64_MAX else TRUE)
        if b.is_const:
            c = b.const
            if node.op == "+":
                return rel(x, "<=", long(INT64_MAX - c)) if c >= 0 else rel(x, ">=", long(INT64_MIN - c))
            return rel(x, ">=", long(INT64_MIN + c)) if c >= 0 else rel(x, "<=", long(INT64_MAX + c))
        zero = long(0)
        if node.op == "+":
            return disj(conj(rel(y, ">=", zero), rel(x, "<=", arith(long(INT64_MAX), "-", y))),
                        conj(rel(y, "<", zero), rel(x, ">=", arith(long(INT64_MIN), "-", y))))
        return disj(conj(rel(y, ">=", zero), rel(x, ">=", arith(long(INT64_MIN), "+", y))),
                    conj(rel(y, "<", zero), rel(x, "<=", arith(long(INT64_MAX), "+", y))))

    def _negate(self, node: Unary) -> list[Alt]:
        out = []
        for a in self.value(node.operand):
            if a.kind != "int":
                if a.kind == "double":
                    raise Unsupported("doubles have no Cedar equivalent", node.pos)
                continue
            if a.expr is None:
                raise Unsupported("an integer literal beyond 64 bits", node.pos)
            out.append(Alt("int", conj(a.guard, rel(a.expr, "!=", long(INT64_MIN))), minus(a.expr)))
        return out

    # ---- functions ----------------------------------------------------------------------------------
    def _call(self, node: Call) -> list[Alt]:
        name = node.function
        if name == "size":
            target = node.args[0] if node.target is None else node.target
            out = []
            for a in self.value(target):
                if a.kind == "fields":
                    out.append(Alt("int", a.guard, FIELD_COUNT))
                elif a.kind in ("string", "list", "map"):
                    raise Unsupported(f"size() of a {a.kind} has no Cedar equivalent", node.pos)
            return out
        if node.target is None or name not in ("startsWith", "endsWith", "contains"):
            what = f"{name}()" if node.target is None else f".{name}()"
            raise Unsupported(f"{what} has no Cedar equivalent", node.pos)
        out = []
        for a in self.value(node.target):
            for b in self.value(node.args[0]):
                if a.kind != "string" or b.kind != "string":
                    continue  # a string function on a non-string: an error
                guard = conj(a.guard, b.guard)
                if a.is_const and b.is_const:
                    text, part = a.const, b.const
                    result = {"startsWith": text.startswith, "endsWith": text.endswith,
                              "contains": text.__contains__}[name](part)
                    out.append(_const(result, guard))
                    continue
                if b.is_const:
                    if a.expr is None:
                        raise Unsupported("a literal Cedar cannot write", node.pos)
                    if "*" in b.const:
                        raise Unsupported(f".{name}() of a literal holding '*' (Cedar's `like` wildcard)", node.pos)
                    body = _escape(b.const, star=True)
                    pattern = {"startsWith": f'"{body}*"', "endsWith": f'"*{body}"', "contains": f'"*{body}*"'}[name]
                    out.append(_bool_expr(guard, like(a.expr, pattern)))
                    continue
                if name == "contains" or a.record is None or b.lengths is None:
                    raise Unsupported(f".{name}() of a computed string has no Cedar equivalent (only a param's "
                                      "endsWith/startsWith of a value that depends on the tenant alone)", node.pos)
                key, lengths = ("suffixes", self.registry.suffix_lengths) if name == "endsWith" else \
                    ("prefixes", self.registry.prefix_lengths)
                lengths |= b.lengths
                found = conj(has(a.record, key), method(attr(a.record, key), "contains", b.expr))
                out.append(_bool_expr(guard, found))
        return out


def _cel_kind(alt: Alt) -> str:
    """The CEL type of an alternative (`fields` is a list)."""
    return "list" if alt.kind == "fields" else alt.kind


def _bool_expr(guard: Ced, expr: Ced) -> Alt:
    return Alt("bool", guard, expr)


# ---------------------------------------------------------------------------------------------- the export

@dataclass(frozen=True)
class Gap:
    """A grant, deny or guardrail whose condition could not be written in Cedar, and what the export did."""

    permission: model.Permission
    construct: str
    pos: tuple[int, int] | None

    @property
    def action(self) -> str:
        if self.permission.kind == "grant":
            return "left out: the calls it would allow are denied"
        return "kept as an unconditional forbid: the calls it names are denied"

    def render(self) -> str:
        perm = self.permission
        where = f" (at line {self.pos[0]}, column {self.pos[1]} of the condition)" if self.pos else ""
        loc = perm.when.loc if perm.when is not None else perm.loc
        return f"{loc}: {perm.label} (when {_one_line(perm.when.source) if perm.when else ''}): {self.construct}" \
               f"{where}; {self.action}"

    def to_json(self) -> dict:
        perm = self.permission
        loc = perm.when.loc if perm.when is not None else perm.loc
        return {"permission": perm.label, "location": loc.to_json(), "construct": self.construct,
                "position": list(self.pos) if self.pos else None, "action": self.action}


@dataclass
class Export:
    """The Cedar form of one deployment (see the module docstring)."""

    schema: str
    blocks: tuple[tuple[str | None, str], ...]  # the policy set, policy by policy, each with its role scope
    entities: list[dict]
    gaps: list[Gap]
    suffix_lengths: tuple[int, ...]
    prefix_lengths: tuple[int, ...]
    labels: dict[str, model.Permission]  # a policy's @id → the grant, deny or guardrail it encodes

    @property
    def policies(self) -> str:
        """policies.cedar: every block, in order."""
        return "\n".join(text for _, text in self.blocks)

    @property
    def entities_json(self) -> str:
        """One entity per line, keys sorted (compact: the entities of a large deployment run to tens of MB)."""
        lines = (json.dumps(e, sort_keys=True, ensure_ascii=False, separators=(",", ":")) for e in self.entities)
        return "[\n" + ",\n".join(lines) + "\n]\n"

    def files(self) -> dict[str, str]:
        return {"schema.cedarschema": self.schema, "policies.cedar": self.policies,
                "entities.json": self.entities_json}

    def request_for(self, call: Mapping) -> tuple[dict, dict, dict, dict]:
        return request_for(call, self)


def _one_line(text: str) -> str:
    return re.sub(r"[\r\n\u2028\u2029]+", " ", text)


def _uid(kind: str, ident: str) -> dict:
    return {"type": kind, "id": ident}


def _ref(kind: str, ident: str) -> dict:
    return {"__entity": _uid(kind, ident)}


def _refs(kind: str, ids: Iterable[str]) -> list[dict]:
    """Entity references of one type, sorted by id (a Cedar set, written in a stable order)."""
    return [_ref(kind, i) for i in sorted(set(ids))]


def _op_uid(tool: str, operation: str) -> str:
    return f"{tool}/{operation}"


def tenant_envs(deployment: model.Deployment) -> dict[str, dict]:
    """The `tenant` of a condition for each tenant, as analyzer.decide builds it."""
    return {t.id: {**t.attributes, "id": t.id} for t in deployment.tenants.values()}


class _Exporter:
    def __init__(self, deployment: model.Deployment):
        self.d = deployment
        self.envs = tenant_envs(deployment)
        self.registry = Registry()
        self.derived_cache: dict = {}
        self.gaps: list[Gap] = []
        self.labels: dict[str, model.Permission] = {}

    # ---- policies -----------------------------------------------------------------------------------
    def policies(self) -> tuple[tuple[str | None, str], ...]:
        """Each policy's text (or a comment), with the role its principal scope names (None: any principal)."""
        blocks: list[tuple[str | None, str]] = [(None, _HEADER), (None, self._structure())]
        for tool, op in self.d.all_operations():
            if op.params:
                blocks.append((None, self._param_types(tool, op)))
        for role in self.d.roles.values():
            for perm in (*role.grants, *role.denies):
                blocks.extend((role.id, text) for text in self._permission(perm))
        for perm in self.d.guardrails:
            blocks.extend((None, text) for text in self._permission(perm))
        return tuple(blocks)

    def _structure(self) -> str:
        tool_id = attr(TOOL, "id")
        reach_kind = attr(TOOL, "reach")
        principal_tag = method(PRINCIPAL, "getTag", tool_id)
        every = attr(PRINCIPAL, "every_tool")
        home = attr(WORKFLOW, "home")

        def reaches(record: Ced) -> Ced:
            def listed(kind: str) -> Ced:  # a reach record holds only what is set: `*`, or the tenants
                return disj(conj(has(record, f"{kind}_all"), attr(record, f"{kind}_all")),
                            conj(has(record, kind), method(attr(record, kind), "contains", TENANT)))
            return disj(listed("static"), conj(rel(TENANT, "==", home), listed("per_workflow")))

        covered = disj(method(PRINCIPAL, "hasTag", tool_id), has(PRINCIPAL, "every_tool"))
        listed = rel(reach_kind, "==", string("listed"))
        ways = [rel(reach_kind, "==", string("every")),  # one alternative per line
                conj(rel(reach_kind, "==", string("home")), rel(TENANT, "==", home)),
                conj(listed, method(PRINCIPAL, "hasTag", tool_id), reaches(principal_tag)),
                conj(listed, has(PRINCIPAL, "every_tool"), reaches(every))]
        reached = Ced("(" + "\n     || ".join(_wrap(w, _OR) for w in ways) + ")")
        credential = [covered, reached]
        parts = [
            ("the ids name definitions of the deployment",
             [rel(WORKFLOW, "in", DEPLOYMENT), rel(TENANT, "in", DEPLOYMENT), rel(RESOURCE, "in", DEPLOYMENT),
              rel(PRINCIPAL, "in", DEPLOYMENT)]),
            ("1. chain: it starts at the workflow's agent, each agent delegates to the next, none repeats, "
             + "every one serves the workflow's tenant",
             [has(CONTEXT, "first"), rel(attr(CONTEXT, "first"), "==", attr(WORKFLOW, "agent")),
              attr(CONTEXT, "chain_distinct"),
              method(attr(home, "served_by"), "containsAll", attr(CONTEXT, "chain")),
              method(attr(DEPLOYMENT, "delegations"), "containsAll", attr(CONTEXT, "hops"))]),
            ("2. scope: the workflow uses the tool, the fields are the operation's, the params are exactly "
             + "the declared ones (their types: one forbid per operation below)",
             [disj(attr(WORKFLOW, "all_tools"), method(attr(WORKFLOW, "tools"), "contains", TOOL)),
              attr(CONTEXT, "fields_distinct"), method(attr(RESOURCE, "fields"), "containsAll", FIELDS),
              rel(attr(CONTEXT, "param_names"), "==", attr(RESOURCE, "param_names"))]),
            ("5. credential: the acting agent holds one covering the tool whose reach holds the tenant",
             credential),
        ]
        lines = [f'@id("{STRUCTURE_ID}")', "forbid (principal, action, resource)", "unless {"]
        first = True
        for comment, clauses in parts:
            lines.append(f"  // {comment}")
            for clause in clauses:
                lines.append(("  " if first else "  && ") + _wrap(clause, _AND))
                first = False
        lines.append("};")
        return "\n".join(lines) + "\n"

    def _param_types(self, tool: model.Tool, op: model.Operation) -> str:
        clauses = []
        for name, kind in sorted(op.params.items()):
            record = attr(PARAMS, name)
            tag = TAG["string" if kind.kind in ("string", "enum") else kind.kind]
            clauses += [has(PARAMS, name), has(record, tag)]
            if kind.kind == "enum":
                clauses.append(method(set_of(string(v) for v in sorted(kind.values)), "contains", attr(record, tag)))
        label = f"params of {op.qualified}"
        return "\n".join([f"// {op.loc}", f"@id({string(label).text})",
                          f"forbid (principal, action, resource == {entity('Operation', _op_uid(tool.id, op.id)).text})",
                          "unless {", "  " + "\n  && ".join(_wrap(c, _AND) for c in clauses), "};"]) + "\n"

    def _permission(self, perm: model.Permission) -> list[str]:
        ops = list(self.d.operations_of(perm))
        if not ops:
            return [f"// {perm.loc}\n// {perm.label} names no operation of the deployment\n"]
        groups: dict[tuple, list] = {}
        refs = conditions.references(perm.when.expr) if perm.when else frozenset()
        names = sorted({n for kind, n in refs if kind == "params" and n is not None})
        whole = ("params", None) in refs
        for tool, op in ops:
            key = tuple(sorted(op.params.items())) if whole else tuple((n, op.params.get(n)) for n in names)
            groups.setdefault(key, []).append((tool, op))
        translated = []
        for group in groups.values():
            translator = Translator(self.envs, dict(group[0][1].params), self.derived_cache)
            if perm.when is None:
                translated.append((group, TRUE, FALSE))
                continue
            try:
                holds, fails = translator.boolean(perm.when.expr)
            except Unsupported as exc:
                self.gaps.append(Gap(perm, exc.message, exc.pos))
                if perm.kind == "grant":
                    note = f"left out, its condition has no Cedar equivalent ({_one_line(exc.message)})"
                    return [f"// {perm.when.loc}\n// {perm.label}: {note}\n"]
                translated = [(list(ops), TRUE, FALSE)]
                break
            self.registry.merge(translator.registry)
            translated.append((group, holds, fails))
        blocks = []
        for index, (group, holds, fails) in enumerate(translated):
            label = perm.label if len(translated) == 1 else \
                f"{perm.label} ({', '.join(op.qualified for _, op in group)})"
            self.labels[label] = perm
            blocks.append(self._policy(perm, label, group, ops, holds, fails))
        return blocks

    def _policy(self, perm: model.Permission, label: str, group: list, ops: list, holds: Ced, fails: Ced) -> str:
        scope, clauses = self._scope(perm, group, ops)
        if perm.kind == "grant":
            principal = f"principal in {entity('Role', perm.owner).text}"
            clauses += self._grant_clauses(perm, group)
            clauses.append(holds)
            effect = "permit"
        else:
            principal = f"principal in {entity('Role', perm.owner).text}" if perm.kind == "deny" else "principal"
            if perm.kind == "guardrail":
                clauses += _selectors(perm)
            clauses.append(neg(fails))  # a deny applies unless its condition is cleanly false
            effect = "forbid"
        condition = conj(*clauses)
        text = [f"// {perm.loc}", f"// {perm.label}: {_describe(perm)}", f"@id({string(label).text})",
                f"{effect} (", f"  {principal},", '  action == Action::"call",', f"  {scope}", ")"]
        if condition == FALSE:
            text[1] += " (never applies: its condition cannot hold)"
        if condition != TRUE:
            parts = _top_conjuncts(condition)
            text += ["when {", "  " + "\n  && ".join(_wrap(p, _AND) for p in parts), "}"]
        return "\n".join(text) + ";\n"

    def _scope(self, perm: model.Permission, group: list, ops: list) -> tuple[str, list[Ced]]:
        tools = sorted({tool.id for tool, _ in group})
        whole = len(group) == len(ops)
        if len(group) == 1:
            tool, op = group[0]
            return f"resource == {entity('Operation', _op_uid(tool.id, op.id)).text}", []
        if len(tools) == 1 and len(group) == len(self.d.tools[tools[0]].operations):
            return f"resource in {entity('Tool', tools[0]).text}", []
        if whole and perm.tool == model.STAR and perm.operations == model.STAR:
            return "resource", []
        if whole and perm.tool == model.STAR:
            return "resource", [method(set_of(string(o) for o in sorted(perm.operations)), "contains",
                                       attr(RESOURCE, "name"))]
        listed = set_of(entity("Operation", _op_uid(t.id, o.id)) for t, o in group)
        scope = f"resource in {entity('Tool', tools[0]).text}" if len(tools) == 1 else "resource"
        return scope, [method(listed, "contains", RESOURCE)]

    def _grant_clauses(self, perm: model.Permission, group: list) -> list[Ced]:
        clauses = []
        if perm.fields is not None:
            within = method(set_of(string(f) for f in sorted(perm.fields)), "containsAll", FIELDS)
            prompts = {tool.enforced_by == "prompt" for tool, _ in group}
            if prompts == {False}:
                clauses.append(within)
            elif prompts == {False, True}:
                clauses.append(disj(attr(TOOL, "prompt"), within))
        if perm.approval is not None:
            gate = entity("Gate", perm.approval)
            clauses += [has(CONTEXT, "approval"), rel(attr(APPROVAL, "gate"), "==", gate), has(APPROVAL, "by"),
                        rel(attr(APPROVAL, "by"), "in", gate)]
        return clauses

    # ---- entities -----------------------------------------------------------------------------------
    def entities(self) -> list[dict]:
        d = self.d
        root = _ref(*ROOT)["__entity"]
        out = [{"uid": _uid(*ROOT), "parents": [], "attrs": {
            "delegations": [{"from": _ref("Agent", a), "to": _ref("Agent", b)}
                            for a, b in sorted({(a.id, b) for a in d.agents.values() for b in a.delegates_to})],
            "suffix_lengths": sorted(self.registry.suffix_lengths),
            "prefix_lengths": sorted(self.registry.prefix_lengths)}}]
        served: dict[str, list[str]] = {t: [] for t in d.tenants}
        for agent in d.agents.values():
            for tenant in d.tenants if agent.tenants == model.STAR else agent.tenants:
                served[tenant].append(agent.id)
        for tenant in d.tenants.values():
            derived = {}
            for name, values in sorted(self.registry.derived.items()):
                if tenant.id in values:
                    value = values[tenant.id]
                    kind = conditions.kind_of(value)
                    derived[name] = {TAG[kind]: True if kind == "null" else value}
            out.append({"uid": _uid("Tenant", tenant.id), "parents": [root], "attrs": {
                "id": tenant.id, "served_by": _refs("Agent", served[tenant.id]),
                "derived": derived}})
        for role in d.roles.values():
            out.append({"uid": _uid("Role", role.id), "parents": [root], "attrs": {}})
        for agent in d.agents.values():
            out.append(self._agent(agent, root))
        for tool in d.tools.values():
            reach = "home" if tool.tenancy == "none" else \
                "every" if tool.tenancy == "shared" or tool.enforced_by == "prompt" else "listed"
            out.append({"uid": _uid("Tool", tool.id), "parents": [root], "attrs": {
                "id": tool.id, "reach": reach, "prompt": tool.enforced_by == "prompt"}})
            for op in tool.operations.values():
                out.append({"uid": _uid("Operation", _op_uid(tool.id, op.id)), "parents": [_uid("Tool", tool.id)],
                            "attrs": {"tool": _ref("Tool", tool.id), "name": op.id, "effect": op.effect,
                                      "fields": sorted(op.fields), "param_names": sorted(op.params)}})
        for wf in d.workflows.values():
            out.append({"uid": _uid("Workflow", wf.id), "parents": [root], "attrs": {
                "id": wf.id, "home": _ref("Tenant", wf.tenant), "agent": _ref("Agent", wf.agent),
                "all_tools": wf.tools == model.STAR,
                "tools": [] if wf.tools == model.STAR else _refs("Tool", wf.tools)}})
        approves: dict[str, list[str]] = {p: [] for p in d.people}
        for gate in d.gates.values():
            out.append({"uid": _uid("Gate", gate.id), "parents": [root], "attrs": {"id": gate.id}})
            for approver in gate.approvers:
                if approver in approves:  # an agent named as approver approves nothing (FORMAT §4)
                    approves[approver].append(gate.id)
        for person in d.people.values():
            out.append({"uid": _uid("Person", person.id),
                        "parents": [root] + [_uid("Gate", g) for g in sorted(set(approves[person.id]))],
                        "attrs": {}})
        for item in out:
            item["parents"] = sorted(item["parents"], key=lambda uid: (uid["type"], uid["id"]))
        return sorted(out, key=lambda e: (e["uid"]["type"], e["uid"]["id"]))

    def _agent(self, agent: model.Agent, root: dict) -> dict:
        tags: dict[str, dict] = {}
        every: dict | None = None
        for cred_id in agent.credentials:
            cred = self.d.credentials[cred_id]
            targets = [None] if cred.tools == model.STAR else list(cred.tools)
            for tool in targets:
                if tool is None:
                    every = every or _empty_reach()
                    record = every
                else:
                    record = tags.setdefault(tool, _empty_reach())
                kind = "per_workflow" if cred.issued == "per-workflow" else "static"
                if cred.tenants == model.STAR:
                    record[f"{kind}_all"] = True
                else:
                    record[kind].update(cred.tenants)
        attrs: dict[str, Any] = {"id": agent.id}
        if every is not None:
            attrs["every_tool"] = _reach_json(every)
        item = {"uid": _uid("Agent", agent.id), "parents": [root] + [_uid("Role", r) for r in agent.roles],
                "attrs": attrs}
        if tags:
            item["tags"] = {tool: _reach_json(record) for tool, record in sorted(tags.items())}
        return item

    # ---- schema -------------------------------------------------------------------------------------
    def schema(self) -> str:
        params = sorted({name for _, op in self.d.all_operations() for name in op.params})
        derived = sorted(self.registry.derived)
        tagged = '{"long"?: Long, "string"?: String, "bool"?: Bool, "null"?: Bool, suffixes?: Set<String>, ' \
                 "prefixes?: Set<String>}"

        def record(names: list[str]) -> str:
            return "{" + ", ".join(f"{string(n).text}?: Tagged" for n in names) + "}"

        return "\n".join([
            "// agentperm export cedar: the types of the entities and of a call's request (README, Enforcing with Cedar)",
            f"type Tagged = {tagged};",
            "type Reach = {static_all?: Bool, static?: Set<Tenant>, per_workflow_all?: Bool, per_workflow?: Set<Tenant>};",
            "type Hop = {from: Agent, to: Agent};",
            "entity Deployment = {delegations: Set<Hop>, suffix_lengths: Set<Long>, prefix_lengths: Set<Long>};",
            f"entity Tenant in [Deployment] = {{id: String, served_by: Set<Agent>, derived: {record(derived)}}};",
            "entity Role in [Deployment];",
            "entity Agent in [Role, Deployment] = {id: String, every_tool?: Reach} tags Reach;",
            "entity Tool in [Deployment] = {id: String, reach: String, prompt: Bool};",
            "entity Operation in [Tool] = {tool: Tool, name: String, effect: String, fields: Set<String>, "
            + "param_names: Set<String>};",
            "entity Workflow in [Deployment] = {id: String, home: Tenant, agent: Agent, all_tools: Bool, "
            + "tools: Set<Tool>};",
            "entity Gate in [Deployment] = {id: String};",
            "entity Person in [Gate, Deployment];",
            "action call appliesTo {",
            "  principal: [Agent],",
            "  resource: [Operation],",
            "  context: {",
            "    workflow: Workflow, tenant: Tenant,",
            "    chain: Set<Agent>, first?: Agent, hops: Set<Hop>, chain_distinct: Bool,",
            "    fields: Set<String>, fields_distinct: Bool, field_count: Long,",
            f"    params: {record(params)}, param_names: Set<String>,",
            "    approval?: {gate: Gate, by?: Person}",
            "  }",
            "};",
        ]) + "\n"


_HEADER = """\
// agentperm export cedar: FORMAT §4 as Cedar policies. A call is allowed when some permit (a grant)
// holds and no forbid does: the structural forbid (chain, scope, credential), the param types of its
// operation, a deny of the acting agent's roles or a guardrail. The request a tool server builds for
// a call is described in agentperm's README (Enforcing with Cedar) and built by analyzer.cedar.request_for.
"""


def _empty_reach() -> dict:
    return {"static_all": False, "static": set(), "per_workflow_all": False, "per_workflow": set()}


def _reach_json(record: dict) -> dict:
    """What a credential reach record holds, without the unset parts (`*`: {"static_all": true})."""
    out: dict[str, Any] = {}
    for kind in ("static", "per_workflow"):
        if record[f"{kind}_all"]:
            out[f"{kind}_all"] = True
        elif record[kind]:
            out[kind] = _refs("Tenant", record[kind])
    return out


def _selectors(perm: model.Permission) -> list[Ced]:
    clauses = []
    if perm.agents not in (None, model.STAR):
        clauses.append(method(set_of(entity("Agent", a) for a in perm.agents), "contains", PRINCIPAL))
    if perm.tenants not in (None, model.STAR):
        clauses.append(method(set_of(entity("Tenant", t) for t in perm.tenants), "contains", attr(WORKFLOW, "home")))
    return clauses


def _describe(perm: model.Permission) -> str:
    ops = "*" if perm.operations == model.STAR else ",".join(perm.operations)
    text = f"{perm.tool}.{{{ops}}}" if perm.operations != model.STAR else f"{perm.tool}.*"
    if perm.fields is not None:
        text += f" fields [{', '.join(perm.fields)}]"
    if perm.approval:
        text += f" approval {perm.approval}"
    if perm.kind == "guardrail":
        if perm.agents not in (None, model.STAR):
            text += f" agents [{', '.join(perm.agents)}]"
        if perm.tenants not in (None, model.STAR):
            text += f" tenants [{', '.join(perm.tenants)}]"
    if perm.when:
        text += f" when {_one_line(perm.when.source)}"
    return text


def _top_conjuncts(expr: Ced) -> list[Ced]:
    """The top-level `&&` operands of a conjunction built by :func:`conj`, to print one per line."""
    return list(expr.parts) if expr.parts else [expr]


def export(deployment: model.Deployment) -> Export:
    """The Cedar schema, policies and entities of a deployment, and what could not be translated."""
    exporter = _Exporter(deployment)
    blocks = exporter.policies()  # first: the conditions fill the registry the entities carry
    return Export(schema=exporter.schema(), blocks=blocks, entities=exporter.entities(), gaps=exporter.gaps,
                  suffix_lengths=tuple(sorted(exporter.registry.suffix_lengths)),
                  prefix_lengths=tuple(sorted(exporter.registry.prefix_lengths)), labels=exporter.labels)


# ---------------------------------------------------------------------------------------------- requests

def tagged(value: Any, suffix_lengths: Sequence[int] = (), prefix_lengths: Sequence[int] = ()) -> dict:
    """A param's JSON value as the record the policies read: {"long": n} for an integer of 64 bits,
    {"bool": b}, {"string": s} (with its suffixes and prefixes of the listed lengths), {} for anything else."""
    if isinstance(value, bool):
        return {"bool": value}
    if isinstance(value, int):
        return {"long": value} if INT64_MIN <= value <= INT64_MAX else {}
    if isinstance(value, str):
        record: dict[str, Any] = {"string": value}
        if suffix_lengths:
            record["suffixes"] = sorted({value[len(value) - k:] for k in suffix_lengths if k <= len(value)})
        if prefix_lengths:
            record["prefixes"] = sorted({value[:k] for k in prefix_lengths if k <= len(value)})
        return record
    return {}


@dataclass(frozen=True)
class Lengths:
    """The suffix and prefix lengths request_for lists for string params (an Export has them too)."""

    suffix_lengths: tuple[int, ...] = ()
    prefix_lengths: tuple[int, ...] = ()


def lengths_from_entities(entities: Sequence[Mapping]) -> Lengths:
    """What request_for needs of an export, read from its entities.json (the Deployment entity), for a
    tool server that has the files only."""
    for item in entities:
        if (item["uid"]["type"], item["uid"]["id"]) == ROOT:
            attrs = item["attrs"]
            return Lengths(tuple(attrs.get("suffix_lengths", ())), tuple(attrs.get("prefix_lengths", ())))
    raise ValueError(f"no {ROOT[0]}::\"{ROOT[1]}\" entity: not an agentperm export")


def request_for(call: Mapping, export: Export | Lengths) -> tuple[dict, dict, dict, dict]:
    """(principal, action, resource, context) of the Cedar request for a well-formed decision-API call
    (FORMAT §7; analyzer.decide.parse_request says which are). Entity uids are {"type", "id"}; the
    context is in Cedar's JSON form. Everything here is read off the call alone (README, Enforcing
    with Cedar): no id is looked up and nothing is decided."""
    chain = list(call["chain"])
    fields = list(call.get("fields") or [])
    params = call.get("params") or {}
    context: dict[str, Any] = {
        "workflow": _ref("Workflow", call["workflow"]),
        "tenant": _ref("Tenant", call["tenant"]),
        "chain": [_ref("Agent", a) for a in dict.fromkeys(chain)],
        "hops": [{"from": _ref("Agent", a), "to": _ref("Agent", b)} for a, b in itertools.pairwise(chain)],
        "chain_distinct": len(set(chain)) == len(chain),
        "fields": list(dict.fromkeys(fields)),
        "fields_distinct": len(set(fields)) == len(fields),
        "field_count": len(fields),
        "params": {name: tagged(value, export.suffix_lengths, export.prefix_lengths) for name, value in params.items()},
        "param_names": list(params),
    }
    if chain:
        context["first"] = _ref("Agent", chain[0])
    approval = call.get("approval")
    if approval is not None:
        context["approval"] = {"gate": _ref("Gate", approval["gate"])}
        if approval.get("by") is not None:
            context["approval"]["by"] = _ref("Person", approval["by"])
    principal = _uid("Agent", chain[-1] if chain else "")
    resource = _uid("Operation", _op_uid(call["tool"], call["operation"]))
    return principal, _uid(*ACTION), resource, context


# ---------------------------------------------------------------------------------------------- the engine

@dataclass(frozen=True)
class CedarAnswer:
    allow: bool
    reason: str
    policies: tuple[str, ...] = ()  # the @id of each determining policy
    errors: tuple[str, ...] = ()


class CedarEngine:
    """Calls decided by cedarpy on a deployment's export (policies and entities parsed once).

    Cedar evaluates every policy of the set it is given, so each request gets only the policies that
    can apply to its principal: those without a role in their principal scope, and those of the roles
    the principal's entity has as parents (Cedar's policy slicing). The rest have a scope `principal
    in Role::"R"` that the principal does not meet, so they are neither satisfied nor evaluated: the
    answer, its determining policies and its errors are those of the whole set (the tests check it
    against the whole set too). A slice is parsed once per set of roles.
    """

    BATCH = 2_000

    def __init__(self, exported: Export):
        import cedarpy

        self.export = exported
        self._cedarpy = cedarpy
        self.entities = cedarpy.Entities.from_json_str(exported.entities_json)
        self._base = cedarpy.PolicySet.from_str("\n".join(t for role, t in exported.blocks if role is None))
        by_role: dict[str, list[str]] = {}
        for role, text in exported.blocks:
            if role is not None:
                by_role.setdefault(role, []).append(text)
        self._fragments = {role: "\n".join(texts) for role, texts in by_role.items()}
        self._roles_of = {e["uid"]["id"]: tuple(sorted({p["id"] for p in e["parents"] if p["type"] == "Role"}
                                                       & set(self._fragments)))
                          for e in exported.entities if e["uid"]["type"] == "Agent"}
        self._slices: dict[tuple[str, ...], Any] = {(): self._base}
        self._whole = None

    @classmethod
    def of(cls, deployment: model.Deployment) -> CedarEngine:
        return cls(export(deployment))

    @property
    def policy_set(self):
        """The whole policy set (policies.cedar), parsed on first use."""
        if self._whole is None:
            self._whole = self._cedarpy.PolicySet.from_str(self.export.policies)
        return self._whole

    def _slice(self, roles: tuple[str, ...]):
        found = self._slices.get(roles)
        if found is None:
            found = self._slices[roles] = self._base.with_added_str("\n".join(self._fragments[r] for r in roles))
        return found

    def cedar_request(self, call: Mapping) -> dict:
        principal, action, resource, context = request_for(call, self.export)
        return {"principal": principal, "action": action, "resource": resource, "context": context}

    def decide(self, call: Mapping) -> CedarAnswer:
        return self.decide_many([call])[0]

    def decide_many(self, calls: Sequence[Mapping]) -> list[CedarAnswer]:
        """Answers for well-formed calls, in order (batched through is_authorized_batch, slice by slice)."""
        requests = [self.cedar_request(c) for c in calls]
        groups: dict[tuple[str, ...], list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(self._roles_of.get(request["principal"]["id"], ()), []).append(index)
        answers: list[CedarAnswer | None] = [None] * len(requests)
        for roles, indices in groups.items():
            policies = self._slice(roles)
            for start in range(0, len(indices), self.BATCH):
                chunk = indices[start:start + self.BATCH]
                results = self._cedarpy.is_authorized_batch([requests[i] for i in chunk], policies, self.entities)
                for index, result in zip(chunk, results, strict=True):
                    answers[index] = self.answer(result)
        return answers  # type: ignore[return-value]

    def authorize(self, requests: list[dict]) -> list:
        """cedarpy's raw results on the whole policy set, for requests already built (the benchmark's)."""
        return self._cedarpy.is_authorized_batch(requests, self.policy_set, self.entities)

    @staticmethod
    def answer(result) -> CedarAnswer:
        diagnostics = result.diagnostics
        names = diagnostics.id_annotations_by_reason
        policies = tuple(sorted(names.get(p, p) for p in diagnostics.reasons))
        errors = tuple(diagnostics.errors)
        if result.allowed and errors:  # under a permit no policy errs (README); if one did, fail closed
            return CedarAnswer(False, "cedar: evaluation error: " + "; ".join(errors), policies, errors)
        if result.allowed:
            return CedarAnswer(True, "cedar: permitted by " + ", ".join(policies), policies)
        if errors and not policies:
            return CedarAnswer(False, "cedar: evaluation error: " + "; ".join(errors), policies, errors)
        if policies:
            return CedarAnswer(False, "cedar: forbidden by " + ", ".join(policies), policies)
        return CedarAnswer(False, "cedar: no permit applies", policies)


# ---------------------------------------------------------------------------------------------- fuzz target

def target_for(deployment: model.Deployment):
    """A callable fuzz target (analyzer.harness.targets) that decides through Cedar: ``request →
    {"allow", "reason"}``, raising MalformedCall (a 400) for what native refuses as malformed."""
    from analyzer.decide import parse_request

    engine = CedarEngine.of(deployment)

    def decide_through_cedar(request: Any) -> dict:
        parse_request(request, deployment)
        answer = engine.decide(request)
        return {"allow": answer.allow, "reason": answer.reason}

    decide_through_cedar.__qualname__ = f"Cedar export of {deployment.name}"
    return decide_through_cedar


_TARGETS: dict[str, Any] = {}


def decide(request: Any) -> dict:
    """`agentperm fuzz PATH --target analyzer.cedar:decide`: Cedar on the export of $AGENTPERM_DEPLOYMENT
    (which fuzz, replay and test set to PATH when it is unset)."""
    import os

    from analyzer.harness.reference import ENV
    from analyzer.loader import load

    path = os.environ.get(ENV)
    if not path:
        raise RuntimeError(f"set {ENV} to the deployment to decide for")
    target = _TARGETS.get(path)
    if target is None:
        target = _TARGETS[path] = target_for(load([path]))
    return target(request)
