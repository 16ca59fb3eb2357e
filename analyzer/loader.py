"""Files → :class:`analyzer.model.Deployment`, with every error collected and located.

Stages: find the files, parse each (``yamlsrc``), check each against the declared shape
(``spec``), merge the files, build the model, then resolve references and CEL. Problems
are gathered across all stages that can still run and raised together as one
:class:`InputError`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType

from analyzer import conditions, model, spec
from analyzer.errors import Diagnostic, InputError, Loc
from analyzer.gcpause import paused_gc
from analyzer.yamlsrc import Document, Positions, YamlError, decode_text, parse_yaml, read_bytes

MAP_SECTIONS = ("tenants", "people", "tools", "roles", "agents", "credentials", "gates", "workflows")
SINGLE_SECTIONS = ("policy", "audit")
SUPPRESSIONS_FILE = "agentperm-suppressions.yaml"  # analyzer.suppressions.DEFAULT_FILE
CONFIG_FILE = "agentperm.yaml"  # analyzer.config: defaults of the command line, not part of the deployment


def beside_deployment(deployment_paths, file_name: str) -> str | None:
    """``file_name`` inside the first deployment path when it is a directory, beside it when a file
    (where the suppressions and the config file are looked for); None without paths."""
    paths = list(deployment_paths)
    if not paths:
        return None
    first = paths[0]
    folder = first if os.path.isdir(first) else os.path.dirname(first)
    return os.path.join(folder, file_name) if folder else file_name
SECTION_KIND = {"tenants": "tenant", "people": "person", "tools": "tool", "roles": "role", "agents": "agent",
                "credentials": "credential", "gates": "gate", "workflows": "workflow"}


def _constructor(cls):
    """``cls(**fields)`` for a frozen model dataclass, filling the instance's fields at once when
    every field is given (the generated __init__ sets each one through object.__setattr__, which
    is a fifth of building a model of 100,000 definitions); the real constructor otherwise."""
    if hasattr(cls, "__post_init__"):  # pragma: no cover - no model class has one
        return cls
    count = len(dataclasses.fields(cls))
    new = object.__new__

    def construct(**fields):
        if len(fields) != count:
            return cls(**fields)
        made = new(cls)
        made.__dict__.update(fields)
        return made

    return construct


(_NEW_TENANT, _NEW_PERSON, _NEW_OPERATION, _NEW_TOOL, _NEW_PERMISSION, _NEW_ROLE, _NEW_AGENT, _NEW_CREDENTIAL,
 _NEW_GATE, _NEW_WORKFLOW) = map(_constructor, (model.Tenant, model.Person, model.Operation, model.Tool,
                                                model.Permission, model.Role, model.Agent, model.Credential,
                                                model.Gate, model.Workflow))
_NEVER = model.Duration("never", None)  # frozen: one serves every credential without a ttl or rotation


def display_name(path: str) -> str:
    """A path as shown in messages: relative to the working directory when under it."""
    absolute = os.path.abspath(path)
    try:
        relative = os.path.relpath(absolute)
    except ValueError:  # another drive on Windows
        return absolute
    return absolute if relative.startswith("..") else relative


def find_files(paths: Iterable[str]) -> tuple[list[tuple[str, str]], list[Diagnostic]]:
    """(real path, digest name) of every deployment file under the given paths, in merge order."""
    found: list[tuple[str, str]] = []
    problems: list[Diagnostic] = []
    seen: set[str] = set()  # a file named twice (directly and through its folder) is read once
    for path in paths:
        if os.path.isdir(path):
            inside = []
            for folder, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in files:
                    # the suppressions file may sit inside the deployment folder; it is not a deployment file
                    if name.endswith((".yaml", ".yml")) and not name.startswith(".") and name not in (SUPPRESSIONS_FILE, CONFIG_FILE):
                        full = os.path.join(folder, name)
                        inside.append((os.path.relpath(full, path).replace(os.sep, "/"), full))
            if not inside:
                problems.append(Diagnostic(Loc(display_name(path), 0, 0),
                                           "directory holds no *.yaml or *.yml files"))
            for relative, full in sorted(inside):
                if os.path.realpath(full) not in seen:
                    seen.add(os.path.realpath(full))
                    found.append((full, relative))
        elif os.path.isfile(path):
            if os.path.realpath(path) not in seen:
                seen.add(os.path.realpath(path))
                found.append((path, os.path.basename(path)))
        else:
            problems.append(Diagnostic(Loc(display_name(path), 0, 0), "no such file or directory"))
    return found, problems


def load(paths: str | Iterable[str], *, fast: bool = True) -> model.Deployment:
    """Load and validate a deployment from files and directories; raises InputError.

    ``fast=False`` reads every file with the reference YAML path (same result, slower)."""
    with paused_gc():
        return _load(paths, fast)


def _load(paths: str | Iterable[str], fast: bool) -> model.Deployment:
    if isinstance(paths, str):
        paths = [paths]
    paths = list(paths)
    files, problems = find_files(paths)
    texts: list[tuple[str, str]] = []  # (display name, text) of every file read
    digest = hashlib.sha256()
    for real, digest_name in files:
        name = display_name(real)
        try:
            raw = read_bytes(real, name)
            digest.update(digest_name.encode() + b"\0" + raw + b"\0")
            texts.append((name, decode_text(name, raw)))
        except YamlError as exc:
            problems.extend(exc.diagnostics)
    return _from_texts(texts, problems, tuple(paths), tuple(display_name(f) for f, _ in files),
                       "sha256:" + digest.hexdigest(), fast)


def load_text(text: str, name: str = "deployment.yaml", *, fast: bool = True) -> model.Deployment:
    """Load a deployment from one YAML text (tests, the decision server)."""
    return _from_texts([(name, text)], [], (name,), (name,),
                       "sha256:" + hashlib.sha256(name.encode() + b"\0" + text.encode() + b"\0").hexdigest(), fast)


def _from_texts(texts: list[tuple[str, str]], problems: list[Diagnostic], paths, files, digest: str,
                fast: bool) -> model.Deployment:
    """Parse, check and build; raises InputError with every problem.

    When a problem is found and some file took the fast YAML path, the whole build is redone
    with the reference path, so that errors are always the reference path's, byte for byte."""
    documents: list[Document] = []
    found = list(problems)
    for name, text in texts:
        try:
            documents.append(parse_yaml(name, text, fast=fast))
        except YamlError as exc:
            found.extend(exc.diagnostics)
    builder = _Builder(documents, found)
    deployment = builder.build(paths, files, digest)
    if builder.problems:
        if any(document.fast for document in documents):
            return _from_texts(texts, problems, paths, files, digest, False)
        raise InputError(builder.problems)
    return deployment


class _Builder:
    def __init__(self, documents: list[Document], problems: list[Diagnostic]):
        self.documents = documents
        self.problems = problems
        # merged sections: id → (document, converted definition)
        self.sections: dict[str, dict[str, tuple[Document, dict]]] = {s: {} for s in MAP_SECTIONS}
        self.singles: dict[str, tuple[Document, dict]] = {}
        self.guardrails: list[tuple[Document, int, dict]] = []
        self.format_loc: Loc | None = None
        self.parsed: dict[str, object] = {}
        self.shared: dict[tuple, tuple] = {}  # equal key tuples of field_locs/item_locs, kept once

    def error(self, loc: Loc, message: str, hint: str | None = None) -> None:
        self.problems.append(Diagnostic(loc, message, hint))

    # ---- stage 1: each file against the declared shape, then merged -----------------
    def merge(self) -> None:
        for doc in self.documents:
            if doc.data is None:
                self.error(Loc(doc.file, 1, 1), "file is empty", "a deployment file is a mapping of sections")
                continue
            if not isinstance(doc.data, dict):
                self.error(doc.value_loc(()), "file must be a mapping of sections (format, tenants, tools, ...)")
                continue

            def report(path, message, hint, doc=doc):
                self.error(doc.loc(path), message, hint)

            converted = spec.FILE.convert(doc.data, (), report)
            if converted is None:
                continue
            if "format" in doc.data and self.format_loc is None and converted.get("format"):
                self.format_loc = doc.loc(("format",))
            for section in MAP_SECTIONS:
                for ident, definition in (converted.get(section) or {}).items():
                    previous = self.sections[section].get(ident)
                    if previous is not None:
                        first = previous[0].loc((section, ident))
                        self.error(doc.loc((section, ident)),
                                   f"duplicate {SECTION_KIND[section]} id {ident!r} (first defined at {first})",
                                   "ids are unique within a section across all files")
                        continue
                    self.sections[section][ident] = (doc, definition)
            for section in SINGLE_SECTIONS:
                if section in converted:
                    if section in self.singles:
                        first = self.singles[section][0].loc((section,))
                        self.error(doc.loc((section,)), f"{section!r} is set in more than one file "
                                                        f"(first at {first})", "keep one")
                        continue
                    self.singles[section] = (doc, converted[section])
            for index, item in enumerate(converted.get("guardrails") or ()):
                self.guardrails.append((doc, index, item))
        if self.format_loc is None:
            where = Loc(self.documents[0].file, 1, 1) if self.documents else Loc("deployment", 0, 0)
            if self.documents or not self.problems:
                self.error(where, "no file declares 'format: agentperm/v1'",
                           "add 'format: agentperm/v1' at the top of one file")

    # ---- stage 2: the model --------------------------------------------------------------
    def build(self, paths, files, digest) -> model.Deployment:
        self.merge()
        tenants = {i: self.tenant(i, d, v) for i, (d, v) in sorted(self.sections["tenants"].items())}
        people = {i: self.person(i, d, v) for i, (d, v) in sorted(self.sections["people"].items())}
        tools = {i: self.tool(i, d, v) for i, (d, v) in sorted(self.sections["tools"].items())}
        roles = {i: self.role(i, d, v) for i, (d, v) in sorted(self.sections["roles"].items())}
        agents = {i: self.agent(i, d, v) for i, (d, v) in sorted(self.sections["agents"].items())}
        credentials = {i: self.credential(i, d, v) for i, (d, v) in sorted(self.sections["credentials"].items())}
        gates = {i: self.gate(i, d, v) for i, (d, v) in sorted(self.sections["gates"].items())}
        workflows = {i: self.workflow(i, d, v) for i, (d, v) in sorted(self.sections["workflows"].items())}
        guardrails = tuple(self.permission("guardrail", "guardrails", n, d, ("guardrails", i), v)
                           for n, (d, i, v) in enumerate(self.guardrails))
        policy = self.policy()
        audit = self.audit()
        deployment = model.Deployment(
            paths=paths, files=files, digest=digest,
            format_loc=self.format_loc or Loc(files[0] if files else "deployment", 1, 1),
            tenants=MappingProxyType(tenants), people=MappingProxyType(people), tools=MappingProxyType(tools),
            roles=MappingProxyType(roles), agents=MappingProxyType(agents),
            credentials=MappingProxyType(credentials), gates=MappingProxyType(gates),
            workflows=MappingProxyType(workflows), guardrails=guardrails, policy=policy, audit=audit)
        _Resolver(deployment, self).run()
        return deployment

    def field_locs(self, doc: Document, path: tuple, value: dict) -> Mapping[str, Loc]:
        positions = doc.positions
        if positions is None:  # the reference path: its tables are dropped after loading, keep Locs
            return MappingProxyType({key: doc.loc(path + (key,)) for key in value})
        keys = tuple(value)
        return _FieldLocs(positions, path, self.shared.setdefault(keys, keys))

    def item_locs(self, doc: Document, path: tuple, value: dict, keys: Iterable[str]) -> Mapping[tuple, Loc]:
        counts = tuple((key, len(value[key])) for key in keys
                       if isinstance(value.get(key), tuple) and value[key])
        positions = doc.positions
        if positions is None:
            return MappingProxyType({(key, index): doc.value_loc(path + (key, index))
                                     for key, count in counts for index in range(count)})
        return _ItemLocs(positions, path, self.shared.setdefault(counts, counts))

    def condition(self, doc: Document, path: tuple, text: str | None) -> model.Condition | None:
        if text is None:
            return None
        loc = doc.value_loc(path)
        try:
            # the AST is immutable: the same text (repeated across roles) is parsed once
            expr = self.parsed.get(text)
            if expr is None:
                expr = self.parsed[text] = conditions.parse_cel(text)
        except conditions.CelSyntaxError as exc:
            self.error(loc, f"CEL error at line {exc.line}, column {exc.column} of the expression: {exc.message}",
                       None)
            return None
        return model.Condition(text, loc, expr)

    def tenant(self, ident, doc, value):
        path = ("tenants", ident)
        return _NEW_TENANT(id=ident, loc=doc.loc(path), name=value.get("name"),
                           description=value.get("description"),
                           attributes=MappingProxyType(dict(value.get("attributes") or {})),
                           locs=self.field_locs(doc, path, value))

    def person(self, ident, doc, value):
        path = ("people", ident)
        return _NEW_PERSON(id=ident, loc=doc.loc(path), name=value.get("name"), email=value.get("email"),
                           description=value.get("description"), locs=self.field_locs(doc, path, value))

    def tool(self, ident, doc, value):
        path = ("tools", ident)
        operations = {}
        for op_id, op in sorted((value.get("operations") or {}).items()):
            op_path = path + ("operations", op_id)
            operations[op_id] = _NEW_OPERATION(
                id=op_id, tool=ident, loc=doc.loc(op_path), effect=op.get("effect", "read"),
                external=op.get("external", False), data=op.get("data", ()), fields=op.get("fields", ()),
                params=MappingProxyType(dict(op.get("params") or {})), risk=op.get("risk"),
                high_risk_when=self.condition(doc, op_path + ("high_risk_when",), op.get("high_risk_when")),
                description=op.get("description"), locs=self.field_locs(doc, op_path, op))
        return _NEW_TOOL(id=ident, loc=doc.loc(path), operations=MappingProxyType(operations),
                         tenancy=value.get("tenancy", "per-tenant"), enforced_by=value.get("enforced_by", "server"),
                         name=value.get("name"), description=value.get("description"),
                         locs=self.field_locs(doc, path, value))

    def permission(self, kind, owner, index, doc, path, value):
        when = value.get("when")
        return _NEW_PERMISSION(
            kind=kind, owner=owner, index=index, loc=doc.value_loc(path), tool=value.get("tool", model.STAR),
            operations=value.get("operations", ()), fields=value.get("fields"),
            when=None if when is None else self.condition(doc, path + ("when",), when),
            approval=value.get("approval"),
            agents=value.get("agents"), tenants=value.get("tenants"), locs=self.field_locs(doc, path, value))

    def role(self, ident, doc, value):
        path = ("roles", ident)
        grants = tuple([self.permission("grant", ident, i, doc, path + ("grants", i), g)
                        for i, g in enumerate(value.get("grants") or ())])
        denies = tuple([self.permission("deny", ident, i, doc, path + ("denies", i), g)
                        for i, g in enumerate(value.get("denies") or ())])
        return _NEW_ROLE(id=ident, loc=doc.loc(path), grants=grants, denies=denies, name=value.get("name"),
                         description=value.get("description"), locs=self.field_locs(doc, path, value))

    def agent(self, ident, doc, value):
        path = ("agents", ident)
        return _NEW_AGENT(
            id=ident, loc=doc.loc(path), roles=value.get("roles", ()), tenants=value.get("tenants", ()),
            credentials=value.get("credentials", ()), delegates_to=value.get("delegates_to", ()),
            untrusted_input=value.get("untrusted_input", False), name=value.get("name"),
            description=value.get("description"), locs=self.field_locs(doc, path, value),
            item_locs=self.item_locs(doc, path, value, ("roles", "tenants", "credentials", "delegates_to")))

    def credential(self, ident, doc, value):
        path = ("credentials", ident)
        return _NEW_CREDENTIAL(
            id=ident, loc=doc.loc(path), store=value.get("store", "inline"), tools=value.get("tools", ()),
            tenants=value.get("tenants", ()), issued=value.get("issued", "static"),
            ttl=value.get("ttl", _NEVER), rotation=value.get("rotation", _NEVER), logged=value.get("logged", False),
            name=value.get("name"), description=value.get("description"), locs=self.field_locs(doc, path, value))

    def gate(self, ident, doc, value):
        path = ("gates", ident)
        return _NEW_GATE(id=ident, loc=doc.loc(path), approvers=value.get("approvers", ()),
                         name=value.get("name"), description=value.get("description"),
                         locs=self.field_locs(doc, path, value),
                         item_locs=self.item_locs(doc, path, value, ("approvers",)))

    def workflow(self, ident, doc, value):
        path = ("workflows", ident)
        return _NEW_WORKFLOW(id=ident, loc=doc.loc(path), tenant=value.get("tenant", ""),
                             agent=value.get("agent", ""), tools=value.get("tools", model.STAR),
                             name=value.get("name"), description=value.get("description"),
                             locs=self.field_locs(doc, path, value))

    def policy(self) -> model.Policy:
        if "policy" not in self.singles:
            return model.Policy(loc=None)
        doc, value = self.singles["policy"]
        defaults = model.Policy(loc=None)
        return model.Policy(
            loc=doc.loc(("policy",)),
            require_approval=value.get("require_approval", defaults.require_approval),
            max_token_ttl=value.get("max_token_ttl", defaults.max_token_ttl),
            max_rotation=value.get("max_rotation", defaults.max_rotation),
            sensitive_data=value.get("sensitive_data", defaults.sensitive_data),
            private_data=value.get("private_data", defaults.private_data),
            safe_secret_stores=value.get("safe_secret_stores", defaults.safe_secret_stores),
            locs=self.field_locs(doc, ("policy",), value))

    def audit(self) -> model.Audit | None:
        if "audit" not in self.singles:
            return None
        doc, value = self.singles["audit"]
        return model.Audit(loc=doc.loc(("audit",)), sink=value.get("sink", "append-only"),
                           covers=value.get("covers", model.STAR), records=value.get("records", ()),
                           redacts_secrets=value.get("redacts_secrets", True),
                           locs=self.field_locs(doc, ("audit",), value))


class _FieldLocs(Mapping):
    """A definition's ``locs`` on the fast path: field name → where its key is written, each made
    on first use (and lazy itself: see yamlsrc.Positions).

    Read-only like the MappingProxyType it stands for; a large deployment has millions of
    fields and a run looks at a few of them."""

    __slots__ = ("_keys", "_made", "_path", "_positions")

    def __init__(self, positions: Positions, path: tuple, keys: tuple):
        self._positions = positions
        self._path = path
        self._keys = keys
        self._made: dict | None = None

    def __getitem__(self, key) -> Loc:
        made = self._made
        if made is not None and key in made:
            return made[key]
        if key not in self._keys:
            raise KeyError(key)
        if made is None:
            made = self._made = {}
        loc = made[key] = self._positions.loc(self._path + (key,))
        return loc

    def __iter__(self) -> Iterator:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key) -> bool:
        return key in self._keys

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self)!r})"


class _ItemLocs(_FieldLocs):
    """A definition's ``item_locs``: (field, index) → where that list item is, made on first use."""

    __slots__ = ()

    def __getitem__(self, key) -> Loc:
        made = self._made
        if made is not None and key in made:
            return made[key]
        if key not in self:
            raise KeyError(key)
        if made is None:
            made = self._made = {}
        loc = made[key] = self._positions.value_loc(self._path + key)
        return loc

    def __iter__(self) -> Iterator:
        return ((key, index) for key, count in self._keys for index in range(count))

    def __len__(self) -> int:
        return sum(count for _, count in self._keys)

    def __contains__(self, key) -> bool:
        if type(key) is not tuple or len(key) != 2:
            return False
        field, index = key
        return isinstance(index, int) and any(name == field and 0 <= index < count
                                              for name, count in self._keys)


_AGENT_REFERENCES = (("roles", "roles", "role"), ("tenants", "tenants", "tenant"),
                     ("credentials", "credentials", "credential"), ("delegates_to", "agents", "agent"))


class _Resolver:
    """Checks that every reference names a definition, and that CEL uses only known names."""

    def __init__(self, deployment: model.Deployment, builder: _Builder):
        self.d = deployment
        self.builder = builder
        self.attributes = {key for tenant in deployment.tenants.values() for key in tenant.attributes}
        self.clean: set[tuple] = set()  # (expression, call fields, operations) found without a problem
        self.ids = {section: frozenset(getattr(deployment, section)) for section in MAP_SECTIONS}

    def ref(self, section: str, ident: str, loc: Loc, what: str, also: Iterable[str] = ()) -> bool:
        table = getattr(self.d, section)
        if ident in table or ident in also:
            return True
        suggestion = spec.closest(ident, list(table) + list(also))
        self.builder.error(loc, f"{what} {ident!r} is not defined in {section}",
                           f"did you mean {suggestion!r}?" if suggestion else None)
        return False

    def refs(self, section, idents, locs: dict, key: str, fallback: Loc, what: str, also=()):
        if idents == model.STAR or not idents:
            return
        for index, ident in enumerate(idents):
            self.ref(section, ident, locs.get((key, index), fallback), what, also)

    # Every check below first asks whether all is well, at C speed, and looks positions up (and
    # words the errors) only when it is not: positions are made lazily and a valid deployment
    # of 10,000 agents has half a million references.

    def run(self) -> None:
        d = self.d
        for agent in d.agents.values():
            for key, section, what in _AGENT_REFERENCES:
                idents = getattr(agent, key)
                if idents and idents != model.STAR and not self.ids[section].issuperset(idents):
                    self.refs(section, idents, agent.item_locs, key, agent.locs.get(key, agent.loc), what)
        for cred in d.credentials.values():
            self.star_list("tools", cred, "tools", "tool")
            self.star_list("tenants", cred, "tenants", "tenant")
        for gate in d.gates.values():
            # agents are accepted here so that `agent-approver` can report them as findings
            self.refs("people", gate.approvers, gate.item_locs, "approvers", gate.locs.get("approvers", gate.loc),
                      "approver", also=d.agents)
        for wf in d.workflows.values():
            if wf.tenant not in d.tenants:
                self.ref("tenants", wf.tenant, wf.locs.get("tenant", wf.loc), "tenant")
            if wf.agent not in d.agents:
                self.ref("agents", wf.agent, wf.locs.get("agent", wf.loc), "agent")
            self.star_list("tools", wf, "tools", "tool")
        for tool in d.tools.values():
            for op in tool.operations.values():
                if op.high_risk_when is not None:
                    self.check_cel(op.high_risk_when, {op.id: op}, "high_risk_when")
        for role in d.roles.values():
            for perm in role.grants + role.denies:
                self.permission(perm)
        for perm in d.guardrails:
            self.permission(perm)
            if perm.agents not in (None, model.STAR):
                self.star_list("agents", perm, "agents", "agent")
            if perm.tenants not in (None, model.STAR):
                self.star_list("tenants", perm, "tenants", "tenant")
        audit = d.audit
        if audit is not None and audit.covers != model.STAR:
            self.star_list("tools", audit, "covers", "tool")

    def star_list(self, section: str, owner, key: str, what: str) -> None:
        """The ids of ``owner.<key>`` ("*" or a list) name definitions of ``section``."""
        idents = getattr(owner, key)
        if idents == model.STAR:
            return
        if self.ids[section].issuperset(idents):
            return
        loc = owner.locs.get(key, owner.loc)
        for ident in idents:
            self.ref(section, ident, loc, what)

    def permission(self, perm: model.Permission) -> None:
        d = self.d
        covered: dict[str, model.Operation] = {}
        needs_covered = perm.fields or perm.when is not None  # the operations granted matter only to these
        if perm.tool != model.STAR:
            tool = d.tools.get(perm.tool)
            if tool is None:
                self.ref("tools", perm.tool, perm.locs.get("tool", perm.loc), "tool")
                return
            operations = tool.operations
            if perm.operations != model.STAR:
                if needs_covered or not operations.keys() >= set(perm.operations):
                    for op in perm.operations:
                        if op not in operations:
                            suggestion = spec.closest(op, operations)
                            self.builder.error(perm.locs.get("operations", perm.loc),
                                               f"tool {tool.id!r} has no operation {op!r}",
                                               f"did you mean {suggestion!r}?" if suggestion else
                                               f"it has: {', '.join(sorted(operations)) or 'none'}")
                        else:
                            covered[op] = operations[op]
            else:
                covered.update(operations)
            if perm.fields:
                known = {f for op in covered.values() for f in op.fields}
                for name in perm.fields:
                    if name not in known:
                        self.builder.error(perm.locs.get("fields", perm.loc),
                                           f"field {name!r} is not a field of the granted operations of "
                                           f"{tool.id!r}", f"they have: {', '.join(sorted(known)) or 'none'}")
        else:
            if perm.operations != model.STAR:
                names = {op for tool in d.tools.values() for op in tool.operations}
                for op in perm.operations:
                    if op not in names:
                        self.builder.error(perm.locs.get("operations", perm.loc),
                                           f"no tool has an operation {op!r}", None)
            for tool in d.tools.values():
                for op in tool.operations.values():
                    if perm.operations == model.STAR or op.id in perm.operations:
                        covered[f"{tool.id}.{op.id}"] = op
        if perm.approval is not None and perm.approval not in d.gates:
            self.ref("gates", perm.approval, perm.locs.get("approval", perm.loc), "gate")
        if perm.when is not None:
            self.check_cel(perm.when, covered, "when")

    def check_cel(self, cond: model.Condition, operations: dict[str, model.Operation], key: str,
                  call_fields: tuple[str, ...] = model.CALL_FIELDS) -> None:
        # the same expression over the same operations (roles repeat their conditions) is checked once
        seen = (id(cond.expr), call_fields, *map(id, operations.values()))
        if seen in self.clean:
            return
        before = len(self.builder.problems)
        check_references(cond, operations.values(), self.attributes, call_fields, self.builder.error)
        if len(self.builder.problems) == before:
            self.clean.add(seen)


def check_references(cond: model.Condition, operations: Iterable[model.Operation], attributes: set[str],
                     call_fields: tuple[str, ...], error) -> None:
    """Report CEL names outside FORMAT §5: unknown variables, call fields, params, tenant attributes."""
    operations = list(operations)
    params = {p for op in operations for p in op.params}
    for root, name in sorted(conditions.references(cond.expr), key=lambda r: (r[0], r[1] or "")):
        if root not in ("call", "params", "fields", "tenant"):
            error(cond.loc, f"CEL: unknown variable {root!r}", "use call, params, fields or tenant")
        elif root == "call" and name is not None and name not in call_fields:
            suggestion = spec.closest(name, call_fields)
            error(cond.loc, f"CEL: 'call' has no field {name!r}",
                  f"did you mean {suggestion!r}?" if suggestion else f"it has: {', '.join(call_fields)}")
        elif root == "params" and name is not None and name not in params:
            suggestion = spec.closest(name, params)
            error(cond.loc, f"CEL: unknown param {name!r}: "
                            + (f"the operation declares {', '.join(sorted(params))}" if params
                               else "the operation declares no params"),
                  f"did you mean {suggestion!r}?" if suggestion else "declare it under the operation's params")
        elif root == "tenant" and name is not None and name != "id" and name not in attributes:
            suggestion = spec.closest(name, attributes | {"id"})
            error(cond.loc, f"CEL: no tenant has an attribute {name!r}",
                  f"did you mean {suggestion!r}?" if suggestion else "add it under a tenant's attributes")

