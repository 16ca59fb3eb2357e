"""One finding per root cause of a violated invariant (the definition a person edits to fix it).

A witness class (agent, tool, operation, tenant) of ``no-ungated-high-risk`` or of a ``never:``
invariant is caused by each grant that lets one of its calls through (without a real gate, or
matching the invariant); a class of ``no-cross-tenant-reach`` by each credential of the agent
that reaches the other tenant, or by the tool itself when it keeps one store for every tenant
or leaves tenancy to the prompt. A class with two causes is listed under both: fixing one
removes that finding, and the class stays violated until the other is fixed too. Each cause
depends on its own definition only, so fixing it changes no other finding.
"""

from __future__ import annotations

from analyzer import model, risk
from analyzer.errors import Loc
from analyzer.findings import Finding
from analyzer.graph import Step
from analyzer.rules import Rule

#: how many names a message lists before "and N more" (the lists in the JSON are complete)
NAMED = 4
#: affected agents and workflows named as related locations of a finding (SARIF relatedLocations)
RELATED_CAP = 10


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:NAMED])
    return shown + (f" and {len(names) - NAMED} more" if len(names) > NAMED else "")


def cause_subject(cause: tuple) -> str:
    """The defining subject of a root cause: grant:ROLE#N (1-based), credential:ID or tool:ID."""
    if cause[0] == "grant":
        return f"grant:{cause[1]}#{cause[2] + 1}"
    return f"{cause[0]}:{cause[1]}"


def affected(classes: dict[tuple, dict[str, dict]]) -> dict[str, list[str]]:
    """Sorted lists of what a root cause's classes involve (``classes``: (agent, tool, operation)
    → tenant → seed)."""
    return {
        "agents": sorted({c[0] for c in classes}),
        "tools": sorted({c[1] for c in classes}),
        "operations": sorted({f"{c[1]}.{c[2]}" for c in classes}),
        "tenants": sorted(set().union(*classes.values())),
        "workflows": sorted({seed["workflow"] for tenants in classes.values() for seed in tenants.values()}),
    }


def count(classes: dict[tuple, dict[str, dict]]) -> int:
    return sum(map(len, classes.values()))


class WitnessClasses:
    """Every witness class of a violated invariant once, sorted, each as a record with the
    causes that allow it and the solver's call for it; built as they are iterated.

    ``seeds``: ((agent, tool, operation), cause) → tenant → seed, as the prover merged them.
    ``len()`` is exact and cheap; iterating builds one record per class."""

    def __init__(self, seeds: dict[tuple, dict[str, dict]], d: model.Deployment):
        self._d = d
        by_key: dict[tuple, list] = {}
        for (key, cause), tenants in seeds.items():
            by_key.setdefault(key, []).append((cause, tenants))
        self._count = 0
        for entries in by_key.values():
            entries.sort(key=lambda entry: entry[0])
            self._count += len(entries[0][1]) if len(entries) == 1 else len(set().union(*(t for _, t in entries)))
        self._by_key = by_key

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __eq__(self, other) -> bool:
        return isinstance(other, WitnessClasses) and self._by_key == other._by_key

    __hash__ = object.__hash__

    def compact(self):
        """(agent, tool, operation, tenant, [cause subjects], seed) per class, in sorted order."""
        for key in sorted(self._by_key):
            entries = self._by_key[key]
            if len(entries) == 1:
                cause, tenants = entries[0]
                subject = [cause_subject(cause)]
                for tenant in sorted(tenants):
                    yield (*key, tenant, list(subject), tenants[tenant])
                continue
            for tenant in sorted(set().union(*(t for _, t in entries))):
                hits = [(cause, tenants[tenant]) for cause, tenants in entries if tenant in tenants]
                yield (*key, tenant, [cause_subject(c) for c, _ in hits], hits[0][1])

    def __iter__(self):
        from analyzer.decide import Call

        for agent, tool, operation, tenant, causes, seed in self.compact():
            yield {"class": {"agent": agent, "tool": tool, "operation": operation, "tenant": tenant},
                   "causes": causes,
                   "call": Call(seed["workflow"], tuple(seed["chain"]), tool, operation, tenant,
                                tuple(seed["fields"]), seed["params"], seed["gate"]).to_request(self._d)}


def _counts(lists: dict[str, list[str]], classes: int) -> str:
    return (f"{len(lists['agents'])} agent(s), {len(lists['operations'])} operation(s), "
            f"{len(lists['tenants'])} tenant(s), {len(lists['workflows'])} workflow(s); "
            f"{classes} witness class(es)")


def remediation(d: model.Deployment, rule: Rule, cause: tuple) -> str:
    """The edit that removes this root cause's classes, at the definition's position."""
    kind = cause[0]
    if kind == "grant":
        grant = d.roles[cause[1]].grants[cause[2]]
        if rule.never is not None:
            return (f"narrow {grant.label} at {grant.loc}: a `when` that excludes the calls the invariant forbids "
                    f"({rule.never.source}), fewer operations, or remove the grant")
        if grant.approval is not None and not d.is_real_gate(grant.approval):
            gate = d.gates.get(grant.approval)
            where = f" ({gate.loc})" if gate is not None else ""
            return (f"gate {grant.approval}{where} has no person among its approvers: add one, or point "
                    f"`approval:` of {grant.label} at {grant.loc} to a gate that has one")
        real = sorted(d.real_gates)
        which = (f"one of {', '.join(real)}" if real else "a gate with a person among its approvers (none is defined)")
        return f"add `approval: <gate>` to {grant.label} at {grant.loc}, with <gate> {which}"
    if kind == "credential":
        cred = d.credentials[cause[1]]
        return (f"mint {cred.id} per workflow (`issued: per-workflow` at {cred.loc}), or give each tenant its own "
                f"credential: `tenants:` of a static credential held in several tenants' workflows reaches all of them")
    tool = d.tools[cause[1]]
    if tool.tenancy == "shared":
        return f"give {tool.id} a store per tenant (`tenancy: per-tenant`, enforced_by: server) at {tool.loc}"
    return f"enforce {tool.id}'s tenancy on the server (`enforced_by: server`) at {tool.loc}, not in the prompt"


def _message(d: model.Deployment, rule: Rule, cause: tuple, lists: dict, count: int, examples: list[dict]) -> str:
    counts = _counts(lists, count)
    ops = _some(lists["operations"])
    if cause[0] == "grant":
        grant = d.roles[cause[1]].grants[cause[2]]
        if rule.never is not None:
            return f"{grant.label} allows calls the invariant forbids ({rule.never.source}): {ops}; {counts}"
        levels = sorted({w["risk"] for w in examples})
        text = f"{grant.label} lets {ops} ({'/'.join(levels)} risk) through without a human's approval; {counts}"
        raised = []
        for op_name in lists["operations"]:
            tool_id, _, op_id = op_name.partition(".")
            op = d.tools[tool_id].operations[op_id]
            if op.high_risk_when is not None and not risk.needs_approval(risk.declared_risk(op, d.policy), d.policy):
                raised.append(f"{op_name} is high risk when {op.high_risk_when.source}")
        if raised:
            text += "; " + "; ".join(raised[:NAMED])
        regions = sorted({w["region"] for w in examples if w.get("region") not in (None, "any parameters")})
        if regions:
            text += f"; allowed for {_some(regions)}"
        return text
    if cause[0] == "credential":
        cred = d.credentials[cause[1]]
        reach = "every tenant" if cred.tenants == model.STAR else ", ".join(cred.tenants)
        return (f"{cred.id} ({cred.issued}, reaching {reach}) lets {_some(lists['agents'])} call {ops} on tenants "
                f"other than their workflow's: {_some(lists['tenants'])}; {counts}")
    tool = d.tools[cause[1]]
    why = "keeps one store for every tenant" if tool.tenancy == "shared" else "leaves tenancy to the prompt"
    return (f"{tool.id} {why}, so {_some(lists['agents'])} can call {ops} on tenants other than their "
            f"workflow's: {_some(lists['tenants'])}; {counts}")


def location(d: model.Deployment, cause: tuple) -> Loc:
    if cause[0] == "grant":
        return d.roles[cause[1]].grants[cause[2]].loc
    if cause[0] == "credential":
        return d.credentials[cause[1]].loc
    return d.tools[cause[1]].loc


def subjects(d: model.Deployment, cause: tuple) -> tuple[str, ...]:
    """The defining subject first (what suppressions and fingerprints key on), then its owner.

    The tool of a grant is a subject too: a suppression written for a tool's findings before they
    were grouped (``tool:billing``) means the same thing now."""
    found = [cause_subject(cause)]
    if cause[0] == "grant":
        found.append(f"role:{cause[1]}")
        grant = d.roles[cause[1]].grants[cause[2]]
        if grant.tool != model.STAR:
            found.append(f"tool:{grant.tool}")
    return tuple(found)


def finding(d: model.Deployment, rule: Rule, cause: tuple, classes: dict[tuple, dict[str, dict]],
            examples: list[dict]) -> Finding:
    lists, number = affected(classes), count(classes)
    first = examples[0]
    related = [{"subject": f"agent:{a}", "location": d.agents[a].loc.to_json()} for a in lists["agents"]]
    related += [{"subject": f"workflow:{w}", "location": d.workflows[w].loc.to_json()} for w in lists["workflows"]]
    # the finding's witness is the first representative (with its path); "examples" are the others
    summary = {"subject": cause_subject(cause), "remediation": remediation(d, rule, cause),
               "classes": number, "affected": lists, "examples": examples[1:],
               "omitted": number - len(examples),
               # the affected definitions a viewer can jump to, capped (the lists above are complete)
               "related": related[:RELATED_CAP], "related_omitted": max(0, len(related) - RELATED_CAP)}
    path = tuple(Step(s["from"], s["to"], s["kind"], s["reason"], Loc(**s["location"]) if s["location"] else None)
                 for s in first["path"])
    return Finding(rule.id, rule.severity, _message(d, rule, cause, lists, number, examples),
                   subjects(d, cause), location(d, cause), path, first, root_cause=summary)
