"""The deployment, loaded and validated once: frozen dataclasses (FORMAT.md §1–§3).

Every definition keeps the position of its id (``loc``) and of each of its fields
(``locs``), so any finding can point at the defining line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

from analyzer.errors import Loc

STAR = "*"  # "every tool / tenant / operation"

EFFECTS = ("read", "write", "execute", "send", "publish", "delete", "export", "admin", "payment")
RISKS = ("low", "medium", "high")
RISK_ORDER = {"none": 99, "low": 0, "medium": 1, "high": 2}
TENANCIES = ("per-tenant", "shared", "none")
ENFORCEMENTS = ("server", "prompt")
ISSUES = ("static", "per-workflow")
STORES = ("vault", "kms", "secret-manager", "env", "file", "inline", "prompt")
SINKS = ("append-only", "database", "file", "none")
PARAM_TYPES = ("int", "string", "bool")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # an `int` param is a signed 64-bit integer, as in CEL (FORMAT §2)
CALL_FIELDS = ("agent", "tool", "operation", "effect", "workflow", "tenant", "home", "gate", "delegated")
INVARIANT_CALL_FIELDS = CALL_FIELDS + ("risk",)


def _locs(default=None):
    return field(default_factory=lambda: MappingProxyType({}), compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class Condition:
    """A CEL expression as written, where it is, and its parsed form (analyzer.conditions AST)."""

    source: str
    loc: Loc
    expr: Any = field(compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class Duration:
    """A duration as written; ``seconds`` is None for ``never``."""

    text: str
    seconds: int | None

    def exceeds(self, limit: Duration) -> bool:
        """Longer than the limit; ``never`` exceeds every finite limit, equal does not."""
        if self.seconds is None:
            return limit.seconds is not None
        return limit.seconds is not None and self.seconds > limit.seconds


@dataclass(frozen=True)
class ParamType:
    kind: str  # int | string | bool | enum
    values: tuple[str, ...] = ()  # the allowed strings of an enum

    def accepts(self, value: object) -> bool:
        """Whether a JSON value is a value of this type (bool is not an int; an int is 64-bit, and a
        JSON number with a fraction, even ``1.0``, arrives as a float and is no int)."""
        if self.kind == "int":
            return isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "string":
            return isinstance(value, str)
        return isinstance(value, str) and value in self.values

    def describe(self) -> str:
        return self.kind if self.kind != "enum" else "one of " + ", ".join(self.values)


@dataclass(frozen=True)
class Tenant:
    id: str
    loc: Loc
    name: str | None = None
    description: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), compare=False, hash=False)
    locs: Mapping[str, Loc] = _locs()


@dataclass(frozen=True)
class Person:
    id: str
    loc: Loc
    name: str | None = None
    email: str | None = None
    description: str | None = None
    locs: Mapping[str, Loc] = _locs()


@dataclass(frozen=True)
class Operation:
    id: str
    tool: str
    loc: Loc
    effect: str
    external: bool = False
    data: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    params: Mapping[str, ParamType] = field(default_factory=lambda: MappingProxyType({}), compare=False,
                                            hash=False)
    risk: str | None = None  # the `risk:` override as written
    high_risk_when: Condition | None = None
    description: str | None = None
    locs: Mapping[str, Loc] = _locs()

    @property
    def qualified(self) -> str:
        return f"{self.tool}.{self.id}"


@dataclass(frozen=True)
class Tool:
    id: str
    loc: Loc
    operations: Mapping[str, Operation]
    tenancy: str = "per-tenant"
    enforced_by: str = "server"
    name: str | None = None
    description: str | None = None
    locs: Mapping[str, Loc] = _locs()


@dataclass(frozen=True)
class Permission:
    """A grant, a deny or a guardrail: which tool and operations, under which condition."""

    kind: str  # grant | deny | guardrail
    owner: str  # the role id (or "guardrails")
    index: int  # position in its list
    loc: Loc
    tool: str  # a tool id or STAR
    operations: tuple[str, ...] | str  # ids or STAR
    fields: tuple[str, ...] | None = None
    when: Condition | None = None
    approval: str | None = None  # gate id (grants only)
    agents: tuple[str, ...] | str | None = None  # guardrail selectors; None = all
    tenants: tuple[str, ...] | str | None = None
    locs: Mapping[str, Loc] = _locs()

    def matches(self, tool: str, operation: str) -> bool:
        """Whether this permission names the tool and operation (conditions aside)."""
        return (self.tool == STAR or self.tool == tool) and (
            self.operations == STAR or operation in self.operations)

    @property
    def label(self) -> str:
        where = "guardrail" if self.kind == "guardrail" else f"{self.owner} {self.kind}"
        return f"{where} #{self.index + 1}"


@dataclass(frozen=True)
class Role:
    id: str
    loc: Loc
    grants: tuple[Permission, ...] = ()
    denies: tuple[Permission, ...] = ()
    name: str | None = None
    description: str | None = None
    locs: Mapping[str, Loc] = _locs()


@dataclass(frozen=True)
class Agent:
    id: str
    loc: Loc
    roles: tuple[str, ...] = ()
    tenants: tuple[str, ...] | str = ()
    credentials: tuple[str, ...] = ()
    delegates_to: tuple[str, ...] = ()
    untrusted_input: bool = False
    name: str | None = None
    description: str | None = None
    locs: Mapping[str, Loc] = _locs()
    item_locs: Mapping[tuple[str, int], Loc] = _locs()  # ("delegates_to", 0) → where that item is

    def serves(self, tenant: str) -> bool:
        return self.tenants == STAR or tenant in self.tenants


@dataclass(frozen=True)
class Credential:
    id: str
    loc: Loc
    store: str
    tools: tuple[str, ...] | str = ()
    tenants: tuple[str, ...] | str = ()
    issued: str = "static"
    ttl: Duration = Duration("never", None)
    rotation: Duration = Duration("never", None)
    logged: bool = False
    name: str | None = None
    description: str | None = None
    locs: Mapping[str, Loc] = _locs()

    def covers(self, tool: str) -> bool:
        return self.tools == STAR or tool in self.tools

    def lists_tenant(self, tenant: str) -> bool:
        return self.tenants == STAR or tenant in self.tenants


@dataclass(frozen=True)
class Gate:
    id: str
    loc: Loc
    approvers: tuple[str, ...] = ()
    name: str | None = None
    description: str | None = None
    locs: Mapping[str, Loc] = _locs()
    item_locs: Mapping[tuple[str, int], Loc] = _locs()


@dataclass(frozen=True)
class Workflow:
    id: str
    loc: Loc
    tenant: str
    agent: str
    tools: tuple[str, ...] | str = STAR
    name: str | None = None
    description: str | None = None
    locs: Mapping[str, Loc] = _locs()

    def uses(self, tool: str) -> bool:
        return self.tools == STAR or tool in self.tools


@dataclass(frozen=True)
class Policy:
    loc: Loc | None
    require_approval: str = "high"
    max_token_ttl: Duration = Duration("1h", 3600)
    max_rotation: Duration = Duration("90d", 90 * 86400)
    sensitive_data: tuple[str, ...] = ("payroll", "hr", "legal", "medical")
    private_data: tuple[str, ...] = ("pii", "financial", "payroll", "hr", "legal", "medical", "secrets")
    safe_secret_stores: tuple[str, ...] = ("vault", "kms", "secret-manager")
    locs: Mapping[str, Loc] = _locs()


@dataclass(frozen=True)
class Audit:
    loc: Loc
    sink: str = "append-only"
    covers: tuple[str, ...] | str = STAR
    records: tuple[str, ...] = ()
    redacts_secrets: bool = True
    locs: Mapping[str, Loc] = _locs()


@dataclass(frozen=True)
class Deployment:
    """A whole deployment, merged from its files."""

    paths: tuple[str, ...]  # what the user named
    files: tuple[str, ...]  # every file read, in merge order
    digest: str  # sha256 over the files' names and bytes
    format_loc: Loc  # the `format:` line of the first file that has it
    tenants: Mapping[str, Tenant]
    people: Mapping[str, Person]
    tools: Mapping[str, Tool]
    roles: Mapping[str, Role]
    agents: Mapping[str, Agent]
    credentials: Mapping[str, Credential]
    gates: Mapping[str, Gate]
    workflows: Mapping[str, Workflow]
    guardrails: tuple[Permission, ...]
    policy: Policy
    audit: Audit | None

    @property
    def name(self) -> str:
        """A short name for the deployment: the first path's last component."""
        import os

        first = self.paths[0].rstrip("/\\") if self.paths else "deployment"
        base = os.path.basename(first) or first
        for suffix in (".yaml", ".yml"):
            base = base.removesuffix(suffix)
        return base

    def operation(self, tool: str, operation: str) -> Operation | None:
        found = self.tools.get(tool)
        return found.operations.get(operation) if found else None

    def all_operations(self):
        """Every (tool, operation) in a stable order."""
        for tool_id in sorted(self.tools):
            tool = self.tools[tool_id]
            for op_id in sorted(tool.operations):
                yield tool, tool.operations[op_id]

    @cached_property
    def _sorted_operations(self) -> dict[str, tuple]:
        """Each tool's (tool, operation) pairs by operation id: tens of thousands of grants name a few hundred tools."""
        return {tool_id: tuple((tool, tool.operations[o]) for o in sorted(tool.operations))
                for tool_id, tool in self.tools.items()}

    @cached_property
    def _operations_cache(self) -> dict:
        return {}

    def operations_of(self, perm: Permission) -> tuple:
        """The (tool, operation) pairs a grant, deny or guardrail names, in a stable order.

        Remembered per permission: roles are shared by many agents and asked about again and again."""
        cache = self._operations_cache
        found = cache.get(id(perm))
        if found is None or found[0] is not perm:
            found = cache[id(perm)] = (perm, tuple(self._operations_of(perm)))
        return found[1]

    def _operations_of(self, perm: Permission):
        if perm.tool == STAR:
            candidates = self.all_operations()
        else:
            candidates = self._sorted_operations.get(perm.tool, ())
        for tool, op in candidates:
            if perm.operations == STAR or op.id in perm.operations:
                yield tool, op

    @cached_property
    def real_gates(self) -> frozenset[str]:
        """Gates with at least one person among their approvers."""
        return frozenset(g.id for g in self.gates.values() if any(a in self.people for a in g.approvers))

    def is_real_gate(self, gate_id: str | None) -> bool:
        """A gate is real only if at least one approver is a person (FORMAT §4)."""
        return gate_id in self.real_gates
