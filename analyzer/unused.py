"""`agentperm unused`: the grants, agents, credentials, workflows and approval paths no logged call used.

Which grant allowed a logged call comes from the line's ``grant`` label when it names a grant
of this deployment that covers the call; otherwise the call is decided again on the
deployment (:class:`analyzer.decide.Decider`). A log keeps param names, not values, so a call
whose operation takes params cannot always be decided again: then every grant of the acting
agent's roles that names the tool and operation counts as used (fail closed: never report as
unused what may have been used). Credentials are attributed the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from analyzer import auditlog, model
from analyzer.decide import Call, Decider
from analyzer.findings import CheckResult, Finding

RULES = ("unused-grant", "unused-agent", "unused-credential", "unused-workflow", "unused-approval-path")


@dataclass
class Usage:
    """What the allowed calls of a log used: (role, grant index) → operations, and ids."""

    grants: dict[tuple[str, int], set[str]] = field(default_factory=dict)
    agents: set[str] = field(default_factory=set)
    credentials: set[str] = field(default_factory=set)
    workflows: set[str] = field(default_factory=set)
    attributed: int = 0  # distinct calls whose grant is known (label or decided again)
    assumed: int = 0  # distinct calls counted against every grant that could have allowed them


def grant_of_label(label: str | None, d: model.Deployment, call: auditlog.LoggedCall, agent: model.Agent):
    """The grant a log line's ``ROLE grant #N`` label names, if it is one of ``agent``'s and matches the call."""
    if not label:
        return None
    role, sep, number = label.rpartition(" grant #")
    if not sep or not number.isdigit() or role not in agent.roles or role not in d.roles:
        return None
    grants = d.roles[role].grants
    index = int(number) - 1
    if not 0 <= index < len(grants) or not grants[index].matches(call.tool, call.operation):
        return None
    return grants[index]


def usage(d: model.Deployment, log: auditlog.Log) -> Usage:
    """Fold the allowed calls of ``log`` into what they used; unknown ids go to ``log.unknown_ids``."""
    used = Usage()
    decider = Decider(d)
    for call, count in sorted(log.allowed().items(), key=lambda item: log.first_line[item[0]]):
        why = auditlog.unknown_ids(call, d)
        if why is not None:
            file, line = log.first_line[call]
            log.unknown_ids.add(file, line, why)
            log.unknown_ids.count += count - 1
            continue
        used.workflows.add(call.workflow)
        used.agents.update(call.chain)
        agent = d.agents[call.chain[-1]]
        grant = grant_of_label(call.grant, d, call, agent)
        credential = None
        if grant is None:
            decision = decider.decide(Call(call.workflow, call.chain, call.tool, call.operation, call.tenant,
                                           call.fields, {}, call.gate))
            if decision.allow and decision.grant is not None:
                grant, credential = decision.grant, decision.credential
        if grant is not None:
            used.attributed += 1
            used.grants.setdefault((grant.owner, grant.index), set()).add(f"{call.tool}.{call.operation}")
        else:
            used.assumed += 1
            for role_id in agent.roles:
                role = d.roles.get(role_id)
                for g in role.grants if role else ():
                    if g.matches(call.tool, call.operation):
                        used.grants.setdefault((g.owner, g.index), set()).add(f"{call.tool}.{call.operation}")
        if credential is not None:
            used.credentials.add(credential)
        else:
            used.credentials.update(c for c in agent.credentials
                                    if c in d.credentials and d.credentials[c].covers(call.tool))
    return used


def _ops(d: model.Deployment, grant: model.Permission) -> list[str]:
    """The qualified operations (``tool.op``) a grant names."""
    return sorted(op.qualified for _tool, op in d.operations_of(grant))


def findings(d: model.Deployment, used: Usage, rules: dict) -> list[Finding]:
    found: list[Finding] = []

    def add(rule: str, message: str, subjects: tuple[str, ...], loc) -> None:
        spec = rules.get(rule)
        if spec is not None and spec.enabled:
            found.append(Finding(rule, spec.severity, message, subjects, loc))

    for role in d.roles.values():
        for grant in role.grants:
            ops = _ops(d, grant)
            what = f"{grant.label} ({grant.tool}: {', '.join(ops) or 'no operation'})"
            subjects = (f"role:{role.id}", f"tool:{grant.tool}") + tuple(f"operation:{o}" for o in ops)
            hit = used.grants.get((role.id, grant.index))
            if hit is None:
                if grant.approval is not None:
                    add("unused-approval-path",
                        f"{what} needs approval through {grant.approval}, and no logged call went through it",
                        subjects + (f"gate:{grant.approval}",), grant.loc)
                else:
                    add("unused-grant", f"{what}: no logged allowed call used it", subjects, grant.loc)
            elif len(ops) > 1 and set(ops) - hit:
                idle = sorted(set(ops) - hit)
                add("unused-grant", f"{grant.label} ({grant.tool}): operations {', '.join(idle)} were never used "
                                    f"(used: {', '.join(sorted(hit))})",
                    (f"role:{role.id}", f"tool:{grant.tool}") + tuple(f"operation:{o}" for o in idle),
                    grant.locs.get("operations", grant.loc))
    for agent in d.agents.values():
        if agent.id not in used.agents:
            add("unused-agent", f"agent {agent.id} acted in no logged allowed call", (f"agent:{agent.id}",),
                agent.loc)
    for cred in d.credentials.values():
        if cred.id not in used.credentials:
            add("unused-credential", f"credential {cred.id} served no logged allowed call",
                (f"credential:{cred.id}",), cred.loc)
    for wf in d.workflows.values():
        if wf.id not in used.workflows:
            add("unused-workflow", f"workflow {wf.id} made no logged allowed call", (f"workflow:{wf.id}",), wf.loc)
    found.sort(key=Finding.sort_key)
    return found


def run(d: model.Deployment, log: auditlog.Log, rules: dict) -> tuple[CheckResult, Usage]:
    used = usage(d, log)
    found = findings(d, used, rules)
    ran = tuple(sorted(r for r in RULES if r in rules and rules[r].enabled))
    return CheckResult(d.paths, d.digest, (), tuple(found), ran), used


def log_report(log: auditlog.Log, used: Usage | None = None) -> str:
    """What was read and what could not be used, for standard error; every skipped line is counted."""
    lines = [(f"audit log: {log.lines} line(s); {sum(log.calls.values())} decision(s), "
             f"{len(log.calls)} distinct; {log.malformed_requests} malformed request(s) recorded; "
             f"{log.before_since} before --since")]
    if used is not None:
        lines.append(f"attributed to one grant: {used.attributed} distinct call(s); counted against every "
                     f"grant that could allow them (params not logged): {used.assumed}")
    for title, problems in (("unreadable line(s)", log.unreadable), ("line(s) naming ids the deployment lacks",
                                                                     log.unknown_ids)):
        if problems.count:
            lines.append(f"{problems.count} {title}:")
            lines.extend(f"  {file}:{line}: {why}" for file, line, why in problems.where)
            if problems.count > len(problems.where):
                lines.append(f"  ... and {problems.count - len(problems.where)} more")
    return "\n".join(lines) + "\n"
