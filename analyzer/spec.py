"""The shape of a deployment file, declared once.

The loader validates files with these declarations and ``agentperm schema`` prints them as
a JSON Schema (draft-07), so the two cannot drift apart. References between definitions,
CEL and merging across files are checked by the loader afterwards (a schema cannot).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from analyzer import model

ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
ID_RE = re.compile(rf"\A{ID_PATTERN}\Z")
_IDS_RE = re.compile(rf"{ID_PATTERN}(?:\x00{ID_PATTERN})*")  # ids joined by NUL
DURATION_RE = re.compile(r"\A([0-9]+)([smhd])\Z")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

Report = Callable[[tuple, str, str | None], None]  # (path, message, hint)


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def parse_duration(text: str) -> model.Duration | None:
    """``15m`` → Duration; ``never`` → Duration(never); anything else → None."""
    if text == "never":
        return model.Duration("never", None)
    match = DURATION_RE.match(text)
    if not match:
        return None
    return model.Duration(text, int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


#: what :meth:`Spec.quick` returns when the value needs :meth:`Spec.convert` (which reports)
NOT_QUICK = object()
_KNOWN_IDS: set[str] = set()  # strings known to be valid ids: deployments repeat their ids a lot
_DURATIONS: dict[str, model.Duration] = {}


def _is_id(value: Any) -> bool:
    if type(value) is not str:
        return False
    if value in _KNOWN_IDS:
        return True
    if ID_RE.match(value) is None:
        return False
    if len(_KNOWN_IDS) > 1_000_000:  # a bound for long-running processes
        _KNOWN_IDS.clear()
    _KNOWN_IDS.add(value)
    return True


def _all_ids(values: list) -> bool:
    """Whether every item of a list is a valid id (one regex over the joined list)."""
    try:
        joined = "\x00".join(values)
    except TypeError:  # not all strings
        return False
    return _IDS_RE.fullmatch(joined) is not None and joined.count("\x00") == len(values) - 1


class Spec:
    """A value's declared shape: converts (reporting problems) and describes itself as JSON Schema."""

    description = ""

    def convert(self, value: Any, path: tuple, report: Report) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def quick(self, value: Any) -> Any:
        """What :meth:`convert` returns for a value it accepts without a word, found cheaply, or
        NOT_QUICK when unsure (then convert runs). A loader converts every value of a
        deployment, and nearly all are fine."""
        return NOT_QUICK

    def quick_all(self, values: list) -> bool:
        """Whether :meth:`quick` gives every item of a list back unchanged."""
        return False

    def schema(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def _with_doc(self, schema: dict) -> dict:
        if self.description:
            schema["description"] = self.description
        return schema


@dataclass
class Text(Spec):
    description: str = ""

    def convert(self, value, path, report):
        if not isinstance(value, str):
            report(path, f"expected a string, found {_type_name(value)}", "quote the value")
            return None
        return value

    def quick(self, value):
        return value if isinstance(value, str) else NOT_QUICK

    def schema(self):
        return self._with_doc({"type": "string"})


@dataclass
class Bool(Spec):
    description: str = ""

    def convert(self, value, path, report):
        if not isinstance(value, bool):
            report(path, f"expected true or false, found {_type_name(value)}", None)
            return None
        return value

    def quick(self, value):
        return value if isinstance(value, bool) else NOT_QUICK

    def schema(self):
        return self._with_doc({"type": "boolean"})


@dataclass
class Enum(Spec):
    values: tuple[str, ...]
    description: str = ""

    def convert(self, value, path, report):
        if not isinstance(value, str) or value not in self.values:
            shown = repr(value) if isinstance(value, str) else _type_name(value)
            report(path, f"{shown} is not one of: {', '.join(self.values)}", None)
            return None
        return value

    def quick(self, value):
        return value if isinstance(value, str) and value in self.values else NOT_QUICK

    def quick_all(self, values):
        try:
            return set(values) <= set(self.values)
        except TypeError:  # unhashable items
            return False

    def schema(self):
        return self._with_doc({"type": "string", "enum": list(self.values)})


@dataclass
class Const(Spec):
    value: str
    description: str = ""

    def convert(self, value, path, report):
        if value != self.value:
            report(path, f"expected {self.value!r}, found {value!r}", None)
            return None
        return value

    def quick(self, value):
        return value if isinstance(value, str) and value == self.value else NOT_QUICK

    def schema(self):
        return self._with_doc({"const": self.value})


@dataclass
class Ref(Spec):
    """An id naming a definition of ``section`` (resolved by the loader)."""

    section: str
    description: str = ""

    def convert(self, value, path, report):
        if not isinstance(value, str):
            report(path, f"expected an id of {self.section}, found {_type_name(value)}", None)
            return None
        if not ID_RE.match(value):
            report(path, f"{value!r} is not a valid id", f"ids match {ID_PATTERN}")
            return None
        return value

    def quick(self, value):
        return value if _is_id(value) else NOT_QUICK

    def quick_all(self, values):
        return _all_ids(values)

    def schema(self):
        return self._with_doc({"type": "string", "pattern": f"^{ID_PATTERN}$"})


@dataclass
class Name(Spec):
    """A free-form word used as a label (data classes, record names)."""

    description: str = ""

    def convert(self, value, path, report):
        if not isinstance(value, str) or not value:
            report(path, f"expected a non-empty string, found {_type_name(value)}", None)
            return None
        return value

    def quick(self, value):
        return value if isinstance(value, str) and value else NOT_QUICK

    def quick_all(self, values):
        try:
            "".join(values)
        except TypeError:  # not all strings
            return False
        return all(values)

    def schema(self):
        return self._with_doc({"type": "string", "minLength": 1})


@dataclass
class DurationSpec(Spec):
    description: str = ""

    def convert(self, value, path, report):
        parsed = parse_duration(value) if isinstance(value, str) else None
        if parsed is None:
            shown = repr(value) if isinstance(value, str) else _type_name(value)
            report(path, f"bad duration {shown}", "write an integer with s, m, h or d (15m, 1h, 30d), or never")
        return parsed

    def quick(self, value):
        if type(value) is not str:
            return NOT_QUICK
        parsed = _DURATIONS.get(value)
        if parsed is None:
            parsed = parse_duration(value)
            if parsed is None:
                return NOT_QUICK
            if len(_DURATIONS) < 10_000:
                _DURATIONS[value] = parsed  # Duration is frozen: one object serves every use
        return parsed

    def schema(self):
        return self._with_doc({"type": "string", "pattern": "^([0-9]+[smhd]|never)$"})


@dataclass
class Cel(Spec):
    """A CEL expression (parsed and checked by the loader)."""

    description: str = ""

    def convert(self, value, path, report):
        if not isinstance(value, str) or not value.strip():
            report(path, f"expected a CEL expression as a string, found {_type_name(value)}", "quote the expression")
            return None
        return value

    def quick(self, value):
        return value if isinstance(value, str) and value.strip() else NOT_QUICK

    def schema(self):
        return self._with_doc({"type": "string", "minLength": 1})


@dataclass
class AttributeValue(Spec):
    description: str = ""

    def convert(self, value, path, report):
        if isinstance(value, (str, int, bool)) and not isinstance(value, float):
            return value
        report(path, f"attribute values are strings, integers or booleans, found {_type_name(value)}", None)
        return None

    def quick(self, value):
        return value if isinstance(value, (str, int, bool)) else NOT_QUICK

    def schema(self):
        return self._with_doc({"type": ["string", "integer", "boolean"]})


@dataclass
class ParamTypeSpec(Spec):
    description: str = "int, string, bool, or a list of allowed strings (an enum)"

    def convert(self, value, path, report):
        if isinstance(value, str) and value in model.PARAM_TYPES:
            return model.ParamType(value)
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            if len(set(value)) != len(value):
                report(path, "an enum lists the same value twice", None)
            return model.ParamType("enum", tuple(value))
        shown = repr(value) if isinstance(value, str) else _type_name(value)
        report(path, f"bad parameter type {shown}", "use int, string, bool, or a non-empty list of strings")
        return None

    def schema(self):
        return self._with_doc({"oneOf": [{"type": "string", "enum": list(model.PARAM_TYPES)},
                                         {"type": "array", "items": {"type": "string"}, "minItems": 1}]})


@dataclass
class ListOf(Spec):
    item: Spec
    unique: bool = True
    description: str = ""

    def quick(self, value):
        if type(value) is list and _quick_all(self.item)(value) \
                and (not self.unique or len(set(value)) == len(value)):
            return tuple(value)
        return NOT_QUICK

    def convert(self, value, path, report):
        if not isinstance(value, list):
            report(path, f"expected a list, found {_type_name(value)}", None)
            return None
        result = []
        seen = set()
        for index, item in enumerate(value):
            converted = self.item.convert(item, path + (index,), report)
            if self.unique and isinstance(converted, str):
                if converted in seen:
                    report(path + (index,), f"{converted!r} is listed twice", None)
                    continue
                seen.add(converted)
            if converted is not None:
                result.append(converted)
        return tuple(result)

    def schema(self):
        schema = {"type": "array", "items": self.item.schema()}
        if self.unique:
            schema["uniqueItems"] = True
        return self._with_doc(schema)


@dataclass
class StarOr(Spec):
    """``"*"`` (everything) or a list."""

    inner: ListOf
    description: str = ""

    def convert(self, value, path, report):
        if value == model.STAR or _lists_star(value):
            return model.STAR
        if isinstance(value, str):
            report(path, f"expected \"*\" or a list, found the string {value!r}", f"write [{value}]")
            return None
        return self.inner.convert(value, path, report)

    def quick(self, value):
        if value == model.STAR or _lists_star(value):
            return model.STAR
        return NOT_QUICK if isinstance(value, str) else _quick(self.inner)(value)

    def schema(self):
        # ["*"] is written as IAM users write Action: ["*"], and means "*" (FORMAT §2)
        listed = self.inner.schema()
        listed["items"] = {"anyOf": [{"const": "*"}, listed["items"]]}
        return self._with_doc({"oneOf": [{"const": "*"}, listed]})


def _lists_star(value) -> bool:
    """A list holding ``"*"`` means every id, as ``"*"`` does: ``["*"]`` is how IAM users write it,
    and ``["*", "x"]`` asks for no less than everything (the other items then name nothing more)."""
    return isinstance(value, list) and any(item == model.STAR for item in value)


@dataclass
class MapOf(Spec):
    """A mapping from ids to values."""

    value: Spec
    key_is_id: bool = True
    description: str = ""

    def convert(self, value, path, report):
        if not isinstance(value, dict):
            report(path, f"expected a mapping, found {_type_name(value)}", None)
            return None
        result = {}
        check_keys = self.key_is_id and not _all_ids(list(value))  # one regex for all the keys, usually
        quick = _quick(self.value)
        for key, item in value.items():
            if check_keys and not ID_RE.match(key):
                report(path + (key,), f"{key!r} is not a valid id", f"ids match {ID_PATTERN}")
                continue
            converted = quick(item)
            if converted is NOT_QUICK:
                converted = self.value.convert(item, path + (key,), report)
            if converted is not None:
                result[key] = converted
        return result

    def schema(self):
        schema: dict = {"type": "object", "additionalProperties": self.value.schema()}
        if self.key_is_id:
            schema["propertyNames"] = {"pattern": f"^{ID_PATTERN}$"}
        return self._with_doc(schema)


@dataclass
class Record(Spec):
    """A mapping with known keys; any other key is an error."""

    fields: dict[str, Spec]
    required: tuple[str, ...] = ()
    description: str = ""
    what: str = "definition"

    def convert(self, value, path, report):
        if not isinstance(value, dict):
            report(path, f"expected a mapping, found {_type_name(value)}", None)
            return None
        quick = self.__dict__.get("_quick")
        if quick is None:
            quick = self.__dict__["_quick"] = {key: _quick(spec) for key, spec in self.fields.items()}
        result = {}
        unknown = 0
        for key, item in value.items():
            converter = quick.get(key)
            if converter is None:
                unknown += 1
                # suggestions cost a fuzzy match each: enough for a typo, not for a flood of junk keys
                hint = _closest(key, self.fields) if unknown <= 20 else None
                report(path + (key,), f"unknown key {key!r} in {self.what}",
                       f"did you mean {hint!r}?" if hint else f"allowed: {', '.join(self.fields)}")
                continue
            converted = converter(item)
            if converted is NOT_QUICK:
                converted = self.fields[key].convert(item, path + (key,), report)
            if converted is not None:
                result[key] = converted
        for key in self.required:
            if key not in value:
                report(path, f"{self.what} is missing required key {key!r}", None)
        return result

    def schema(self):
        schema = {"type": "object", "additionalProperties": False,
                  "properties": {key: spec.schema() for key, spec in self.fields.items()}}
        if self.required:
            schema["required"] = list(self.required)
        return self._with_doc(schema)


def _quick(spec: Spec):
    """``spec.quick``, or a function answering NOT_QUICK when the class that defines ``convert``
    does not define ``quick`` too (a subclass that converts otherwise must not answer quickly)."""
    found = spec.__dict__.get("_quick_one")
    if found is None:
        found = spec.__dict__["_quick_one"] = spec.quick if _defines(spec, "quick") else _not_quick
    return found


def _quick_all(spec: Spec):
    """``spec.quick_all`` under the same rule as :func:`_quick`."""
    found = spec.__dict__.get("_quick_all")
    if found is None:
        found = spec.__dict__["_quick_all"] = spec.quick_all if _defines(spec, "quick_all") else _not_quick_all
    return found


def _defines(spec: Spec, name: str) -> bool:
    """Whether the class that defines the spec's ``convert`` defines ``name`` too."""
    for cls in type(spec).__mro__:
        if "convert" in cls.__dict__:
            return name in cls.__dict__
    return False  # pragma: no cover - every spec defines convert


def _not_quick(value: Any) -> Any:
    return NOT_QUICK


def _not_quick_all(values: list) -> bool:
    return False


def _closest(word: str, candidates) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


closest = _closest

_TEXT = {"name": Text(description="display name"), "description": Text(description="free text")}
_DATA = ListOf(Name(), description="data classes held, e.g. pii, financial")


def _permission_fields(kind: str) -> dict[str, Spec]:
    fields: dict[str, Spec] = {
        "tool": Ref("tools", description='a tool id, or "*"'),
        "operations": StarOr(ListOf(Name()), description='operation ids of the tool, or "*"'),
        "when": Cel(description="CEL condition under which this applies"),
        "description": Text(),
    }
    if kind == "grant":
        fields["fields"] = ListOf(Name(), description="fields the grant may touch")
        fields["approval"] = Ref("gates", description="gate whose approval the call must carry")
    if kind == "guardrail":
        fields["agents"] = StarOr(ListOf(Ref("agents")), description="agents it applies to (default all)")
        fields["tenants"] = StarOr(ListOf(Ref("tenants")), description="home tenants it applies to (default all)")
    return fields


class _StarTool(Ref):
    def convert(self, value, path, report):
        if value == model.STAR:
            return value
        return super().convert(value, path, report)

    def quick(self, value):
        return value if value == model.STAR or _is_id(value) else NOT_QUICK

    def schema(self):
        return self._with_doc({"type": "string", "pattern": f"^(\\*|{ID_PATTERN})$"})


def _permission(kind: str) -> Record:
    fields = _permission_fields(kind)
    fields["tool"] = _StarTool("tools", description='a tool id, or "*"')
    return Record(fields, required=("tool", "operations"), what=kind)


OPERATION = Record({
    "effect": Enum(model.EFFECTS),
    "external": Bool(description="sends outside the organisation"),
    "data": _DATA,
    "fields": ListOf(Name(), description="fields a call may touch"),
    "params": MapOf(ParamTypeSpec(), key_is_id=False, description="declared parameters and their types"),
    "risk": Enum(model.RISKS, description="overrides the base risk of the effect"),
    "high_risk_when": Cel(description="CEL: the call is high risk whenever this holds"),
    **_TEXT,
}, required=("effect",), what="operation")

SECTIONS: dict[str, Spec] = {
    "format": Const("agentperm/v1"),
    "tenants": MapOf(Record({**_TEXT, "attributes": MapOf(AttributeValue(), key_is_id=False)},
                            what="tenant")),
    "people": MapOf(Record({**_TEXT, "email": Text()}, what="person")),
    "tools": MapOf(Record({
        "tenancy": Enum(model.TENANCIES),
        "enforced_by": Enum(model.ENFORCEMENTS),
        "operations": MapOf(OPERATION),
        **_TEXT,
    }, required=("operations",), what="tool")),
    "roles": MapOf(Record({
        "grants": ListOf(_permission("grant"), unique=False),
        "denies": ListOf(_permission("deny"), unique=False),
        **_TEXT,
    }, what="role")),
    "agents": MapOf(Record({
        "roles": ListOf(Ref("roles")),
        "tenants": StarOr(ListOf(Ref("tenants"))),
        "credentials": ListOf(Ref("credentials")),
        "delegates_to": ListOf(Ref("agents")),
        "untrusted_input": Bool(),
        **_TEXT,
    }, what="agent")),
    "credentials": MapOf(Record({
        "tools": StarOr(ListOf(Ref("tools"))),
        "tenants": StarOr(ListOf(Ref("tenants"))),
        "issued": Enum(model.ISSUES),
        "store": Enum(model.STORES),
        "ttl": DurationSpec(),
        "rotation": DurationSpec(),
        "logged": Bool(description="true: the secret value reaches logs"),
        **_TEXT,
    }, required=("store",), what="credential")),
    "gates": MapOf(Record({
        "approvers": ListOf(Ref("people")),
        **_TEXT,
    }, what="gate")),
    "workflows": MapOf(Record({
        "tenant": Ref("tenants"),
        "agent": Ref("agents"),
        "tools": StarOr(ListOf(Ref("tools"))),
        **_TEXT,
    }, required=("tenant", "agent"), what="workflow")),
    "guardrails": ListOf(_permission("guardrail"), unique=False),
    "policy": Record({
        "require_approval": Enum(("low", "medium", "high", "none")),
        "max_token_ttl": DurationSpec(),
        "max_rotation": DurationSpec(),
        "sensitive_data": ListOf(Name()),
        "private_data": ListOf(Name()),
        "safe_secret_stores": ListOf(Enum(model.STORES)),
    }, what="policy"),
    "audit": Record({
        "sink": Enum(model.SINKS),
        "covers": StarOr(ListOf(Ref("tools"))),
        "records": ListOf(Name()),
        "redacts_secrets": Bool(),
    }, what="audit"),
}

FILE = Record(SECTIONS, what="file", description="one file of an agentperm/v1 deployment")


def json_schema() -> dict:
    """The deployment file format as a draft-07 JSON Schema (one file; files are merged)."""
    schema = FILE.schema()
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://agentperm.dev/schema/agentperm-v1.json",
        "title": "agentperm deployment (agentperm/v1)",
        **schema,
    }
    return schema

