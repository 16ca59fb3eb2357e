"""Files → :class:`analyzer.model.Deployment`, with every error collected and located.

Stages: find the files, parse each (``yamlsrc``), check each against the declared shape
(``spec``), merge the files, build the model, then resolve references and CEL. Problems
are gathered across all stages that can still run and raised together as one
:class:`InputError`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from types import MappingProxyType

from analyzer import conditions, model, spec
from analyzer.errors import Diagnostic, InputError, Loc
from analyzer.gcpause import paused_gc
from analyzer.yamlsrc import Document, YamlError, decode_text, parse_yaml, read_bytes

MAP_SECTIONS = ("tenants", "people", "tools", "roles", "agents", "credentials", "gates", "workflows")
SINGLE_SECTIONS = ("policy", "audit")
SUPPRESSIONS_FILE = "agentperm-suppressions.yaml"  # analyzer.suppressions.DEFAULT_FILE
SECTION_KIND = {"tenants": "tenant", "people": "person", "tools": "tool", "roles": "role", "agents": "agent",
                "credentials": "credential", "gates": "gate", "workflows": "workflow"}


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
                    if name.endswith((".yaml", ".yml")) and not name.startswith(".") and name != SUPPRESSIONS_FILE:
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


def load(paths: str | Iterable[str]) -> model.Deployment:
    """Load and validate a deployment from files and directories; raises InputError."""
    with paused_gc():
        return _load(paths)


def _load(paths: str | Iterable[str]) -> model.Deployment:
    if isinstance(paths, str):
        paths = [paths]
    paths = list(paths)
    files, problems = find_files(paths)
    documents: list[Document] = []
    digest = hashlib.sha256()
    for real, digest_name in files:
        name = display_name(real)
        try:
            raw = read_bytes(real, name)
            digest.update(digest_name.encode() + b"\0" + raw + b"\0")
            documents.append(parse_yaml(name, decode_text(name, raw)))
        except YamlError as exc:
            problems.extend(exc.diagnostics)
    builder = _Builder(documents, problems)
    deployment = builder.build(tuple(paths), tuple(display_name(f) for f, _ in files),
                               "sha256:" + digest.hexdigest())
    if builder.problems:
        raise InputError(builder.problems)
    return deployment


def load_text(text: str, name: str = "deployment.yaml") -> model.Deployment:
    """Load a deployment from one YAML text (tests, the decision server)."""
    problems: list[Diagnostic] = []
    documents = []
    try:
        documents.append(parse_yaml(name, text))
    except YamlError as exc:
        problems.extend(exc.diagnostics)
    builder = _Builder(documents, problems)
    deployment = builder.build((name,), (name,),
                               "sha256:" + hashlib.sha256(name.encode() + b"\0" + text.encode() + b"\0").hexdigest())
    if builder.problems:
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

    @staticmethod
    def field_locs(doc: Document, path: tuple, value: dict) -> MappingProxyType:
        return MappingProxyType({key: doc.loc(path + (key,)) for key in value})

    @staticmethod
    def item_locs(doc: Document, path: tuple, value: dict, keys: Iterable[str]) -> MappingProxyType:
        locs = {}
        for key in keys:
            for index, _ in enumerate(value.get(key) or ()) if isinstance(value.get(key), tuple) else ():
                locs[(key, index)] = doc.value_loc(path + (key, index))
        return MappingProxyType(locs)

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
        return model.Tenant(id=ident, loc=doc.loc(path), name=value.get("name"),
                            description=value.get("description"),
                            attributes=MappingProxyType(dict(value.get("attributes") or {})),
                            locs=self.field_locs(doc, path, value))

    def person(self, ident, doc, value):
        path = ("people", ident)
        return model.Person(id=ident, loc=doc.loc(path), name=value.get("name"), email=value.get("email"),
                            description=value.get("description"), locs=self.field_locs(doc, path, value))

    def tool(self, ident, doc, value):
        path = ("tools", ident)
        operations = {}
        for op_id, op in sorted((value.get("operations") or {}).items()):
            op_path = path + ("operations", op_id)
            operations[op_id] = model.Operation(
                id=op_id, tool=ident, loc=doc.loc(op_path), effect=op.get("effect", "read"),
                external=op.get("external", False), data=op.get("data", ()), fields=op.get("fields", ()),
                params=MappingProxyType(dict(op.get("params") or {})), risk=op.get("risk"),
                high_risk_when=self.condition(doc, op_path + ("high_risk_when",), op.get("high_risk_when")),
                description=op.get("description"), locs=self.field_locs(doc, op_path, op))
        return model.Tool(id=ident, loc=doc.loc(path), operations=MappingProxyType(operations),
                          tenancy=value.get("tenancy", "per-tenant"), enforced_by=value.get("enforced_by", "server"),
                          name=value.get("name"), description=value.get("description"),
                          locs=self.field_locs(doc, path, value))

    def permission(self, kind, owner, index, doc, path, value):
        return model.Permission(
            kind=kind, owner=owner, index=index, loc=doc.value_loc(path), tool=value.get("tool", model.STAR),
            operations=value.get("operations", ()), fields=value.get("fields"),
            when=self.condition(doc, path + ("when",), value.get("when")), approval=value.get("approval"),
            agents=value.get("agents"), tenants=value.get("tenants"), locs=self.field_locs(doc, path, value))

    def role(self, ident, doc, value):
        path = ("roles", ident)
        grants = tuple(self.permission("grant", ident, i, doc, path + ("grants", i), g)
                       for i, g in enumerate(value.get("grants") or ()))
        denies = tuple(self.permission("deny", ident, i, doc, path + ("denies", i), g)
                       for i, g in enumerate(value.get("denies") or ()))
        return model.Role(id=ident, loc=doc.loc(path), grants=grants, denies=denies, name=value.get("name"),
                          description=value.get("description"), locs=self.field_locs(doc, path, value))

    def agent(self, ident, doc, value):
        path = ("agents", ident)
        return model.Agent(
            id=ident, loc=doc.loc(path), roles=value.get("roles", ()), tenants=value.get("tenants", ()),
            credentials=value.get("credentials", ()), delegates_to=value.get("delegates_to", ()),
            untrusted_input=value.get("untrusted_input", False), name=value.get("name"),
            description=value.get("description"), locs=self.field_locs(doc, path, value),
            item_locs=self.item_locs(doc, path, value, ("roles", "tenants", "credentials", "delegates_to")))

    def credential(self, ident, doc, value):
        path = ("credentials", ident)
        return model.Credential(
            id=ident, loc=doc.loc(path), store=value.get("store", "inline"), tools=value.get("tools", ()),
            tenants=value.get("tenants", ()), issued=value.get("issued", "static"),
            ttl=value.get("ttl", model.Duration("never", None)),
            rotation=value.get("rotation", model.Duration("never", None)), logged=value.get("logged", False),
            name=value.get("name"), description=value.get("description"), locs=self.field_locs(doc, path, value))

    def gate(self, ident, doc, value):
        path = ("gates", ident)
        return model.Gate(id=ident, loc=doc.loc(path), approvers=value.get("approvers", ()),
                          name=value.get("name"), description=value.get("description"),
                          locs=self.field_locs(doc, path, value),
                          item_locs=self.item_locs(doc, path, value, ("approvers",)))

    def workflow(self, ident, doc, value):
        path = ("workflows", ident)
        return model.Workflow(id=ident, loc=doc.loc(path), tenant=value.get("tenant", ""),
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


class _Resolver:
    """Checks that every reference names a definition, and that CEL uses only known names."""

    def __init__(self, deployment: model.Deployment, builder: _Builder):
        self.d = deployment
        self.builder = builder
        self.attributes = {key for tenant in deployment.tenants.values() for key in tenant.attributes}

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

    def run(self) -> None:
        d = self.d
        for agent in d.agents.values():
            for key, section, what in (("roles", "roles", "role"), ("tenants", "tenants", "tenant"),
                                       ("credentials", "credentials", "credential"),
                                       ("delegates_to", "agents", "agent")):
                self.refs(section, getattr(agent, key), agent.item_locs, key, agent.locs.get(key, agent.loc), what)
        for cred in d.credentials.values():
            self.star_list("tools", cred.tools, cred.locs.get("tools", cred.loc), "tool")
            self.star_list("tenants", cred.tenants, cred.locs.get("tenants", cred.loc), "tenant")
        for gate in d.gates.values():
            # agents are accepted here so that `agent-approver` can report them as findings
            self.refs("people", gate.approvers, gate.item_locs, "approvers", gate.locs.get("approvers", gate.loc),
                      "approver", also=d.agents)
        for wf in d.workflows.values():
            self.ref("tenants", wf.tenant, wf.locs.get("tenant", wf.loc), "tenant")
            self.ref("agents", wf.agent, wf.locs.get("agent", wf.loc), "agent")
            self.star_list("tools", wf.tools, wf.locs.get("tools", wf.loc), "tool")
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
                self.star_list("agents", perm.agents, perm.locs.get("agents", perm.loc), "agent")
            if perm.tenants not in (None, model.STAR):
                self.star_list("tenants", perm.tenants, perm.locs.get("tenants", perm.loc), "tenant")
        audit = d.audit
        if audit is not None and audit.covers != model.STAR:
            self.star_list("tools", audit.covers, audit.locs.get("covers", audit.loc), "tool")

    def star_list(self, section, idents, loc, what):
        if idents == model.STAR:
            return
        for ident in idents:
            self.ref(section, ident, loc, what)

    def permission(self, perm: model.Permission) -> None:
        d = self.d
        covered: dict[str, model.Operation] = {}
        if perm.tool != model.STAR:
            if not self.ref("tools", perm.tool, perm.locs.get("tool", perm.loc), "tool"):
                return
            tool = d.tools[perm.tool]
            if perm.operations != model.STAR:
                for op in perm.operations:
                    if op not in tool.operations:
                        suggestion = spec.closest(op, tool.operations)
                        self.builder.error(perm.locs.get("operations", perm.loc),
                                           f"tool {tool.id!r} has no operation {op!r}",
                                           f"did you mean {suggestion!r}?" if suggestion else
                                           f"it has: {', '.join(sorted(tool.operations)) or 'none'}")
                    else:
                        covered[op] = tool.operations[op]
            else:
                covered.update(tool.operations)
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
        if perm.approval is not None:
            self.ref("gates", perm.approval, perm.locs.get("approval", perm.loc), "gate")
        if perm.when is not None:
            self.check_cel(perm.when, covered, "when")

    def check_cel(self, cond: model.Condition, operations: dict[str, model.Operation], key: str,
                  call_fields: tuple[str, ...] = model.CALL_FIELDS) -> None:
        check_references(cond, operations.values(), self.attributes, call_fields, self.builder.error)


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

