"""`agentperm tighten`: the deployment with only the grants the logs used, and the proof that it removes access only.

The proposal is made by editing the YAML text at the positions the loader recorded, so
comments and layout survive wherever the edit does not touch them: a grant no call used is
cut out (its lines, in a block sequence), a used grant's ``operations`` is narrowed to the
operations used; ``when``, ``approval`` and ``fields`` are kept as written. Then it is proved:

1. the proposal loads and its grants are exactly the ones intended;
2. ``diff PATH PROPOSAL`` (analyzer.diff) finds no new access and nothing unknown;
3. every allowed call of the logs is still allowed: decided again on the proposal when the
   log is enough to decide it (no params), otherwise its grant is shown to survive unchanged
   in its role with only earlier grants removed (so decide picks it or an earlier one);
4. ``check`` on the proposal has no finding (rule and subjects) that ``check PATH`` lacked.

Only a proposal that passes all four is written to the output directory.
"""

from __future__ import annotations

import difflib
import os
import shutil
import tempfile
from dataclasses import dataclass, field

from analyzer import auditlog, model
from analyzer.decide import Call, Decider
from analyzer.errors import Diagnostic, InputError, Loc
from analyzer.unused import grant_of_label


@dataclass
class Report:
    removed: list[str] = field(default_factory=list)
    narrowed: list[str] = field(default_factory=list)
    patch: str = ""
    failures: list[str] = field(default_factory=list)
    replayed: int = 0
    checked_by_grant: int = 0
    out_dir: str = ""

    @property
    def proved(self) -> bool:
        return not self.failures

    def render(self) -> str:
        lines = [f"removed {len(self.removed)} grant(s), narrowed {len(self.narrowed)}"]
        lines += [f"  - {item}" for item in self.removed] + [f"  ~ {item}" for item in self.narrowed]
        lines.append(f"replayed {self.replayed} distinct allowed call(s) through decide on the proposal; "
                     f"{self.checked_by_grant} more (params not logged) by their grant surviving unchanged")
        if self.failures:
            lines.append("PROOF FAILED: the proposal was not written")
            lines += [f"  ! {item}" for item in self.failures]
        else:
            lines.append("proved: diff finds no new access, every logged allowed call is still allowed, "
                         "check has no new finding")
            lines.append(f"wrote {self.out_dir}")
        return "\n".join(lines) + "\n" + self.patch


def _keep(d: model.Deployment, used) -> dict[str, list[tuple[model.Permission, tuple[str, ...] | str]]]:
    """role → the grants kept, each with its new operations (narrowed ids, or as written)."""
    kept = {}
    for role in d.roles.values():
        kept[role.id] = []
        for grant in role.grants:
            hit = used.grants.get((role.id, grant.index))
            if hit is None:
                continue
            ops = sorted({q.partition(".")[2] for q in hit})
            named = sorted(op.id for _t, op in d.operations_of(grant))
            if grant.operations != model.STAR:  # keep the order written
                ops = [o for o in grant.operations if o in ops]
            kept[role.id].append((grant, grant.operations if ops == named or list(ops) == list(grant.operations)
                                  else tuple(ops)))
    return kept


def _offsets(text: str) -> list[int]:
    starts, at = [0], 0
    for line in text.splitlines(keepends=True):
        at += len(line)
        starts.append(at)
    return starts


def _unsupported(loc: Loc, what: str):
    raise InputError([Diagnostic(loc, f"tighten cannot edit this {what} in place",
                                 "write the list as a block sequence (one `- ` item a line) and operations "
                                 "as a flow list [a, b]")])


def _cut_item(text: str, starts: list[int], loc: Loc) -> tuple[int, int]:
    """The span of a block-sequence item whose value starts at ``loc``: its dash line and deeper lines."""
    line = starts[loc.line - 1]
    dash = line + loc.column - 1 - 2
    if dash < line or text[dash:dash + 2] != "- " or text[line:dash].strip():
        _unsupported(loc, "grant (not an item of a block sequence)")
    indent = dash - line
    end_line = loc.line
    while end_line < len(starts) - 1:
        body = text[starts[end_line]:starts[end_line + 1]]
        if not body.strip() or len(body) - len(body.lstrip(" ")) <= indent:
            break
        end_line += 1
    return line, starts[end_line]


def _value_span(text: str, starts: list[int], key_loc: Loc) -> tuple[int, int]:
    """The span of a flow list or plain/quoted scalar following ``key:`` at ``key_loc``."""
    at = starts[key_loc.line - 1] + key_loc.column - 1
    colon = text.index(":", at)
    start = colon + 1
    while text[start] == " ":
        start += 1
    if text[start] == "[":
        end = text.index("]", start) + 1
        if "[" in text[start + 1:end] or "\n" in text[start:end] and "#" in text[start:end]:
            _unsupported(key_loc, "operations list")
        return start, end
    if text[start] in "\r\n#":
        _unsupported(key_loc, "operations (a block sequence)")
    end = start
    quote = text[start] if text[start] in "'\"" else None
    if quote:
        end = text.index(quote, start + 1) + 1
    else:
        while end < len(text) and text[end] not in ",}\r\n" and text[end:end + 2] != " #":
            end += 1
    return start, end


def edits(d: model.Deployment, kept) -> tuple[dict[str, list[tuple[int, int, str]]], dict[str, str], Report]:
    texts: dict[str, tuple[str, list[int]]] = {}
    changes: dict[str, list[tuple[int, int, str]]] = {}
    report = Report()

    def text_of(file: str) -> tuple[str, list[int]]:
        if file not in texts:  # read and index each file once, not once per grant
            with open(file, encoding="utf-8", newline="") as handle:
                text = handle.read()
            texts[file] = (text, _offsets(text))
        return texts[file]

    for role in d.roles.values():
        keep = {g.index: ops for g, ops in kept[role.id]}
        for grant in role.grants:
            text, starts = text_of(grant.loc.file)
            ops_text = ", ".join(sorted({op.id for _t, op in d.operations_of(grant)}))
            if grant.index not in keep:
                begin, end = _cut_item(text, starts, grant.loc)
                changes.setdefault(grant.loc.file, []).append((begin, end, ""))
                report.removed.append(f"{grant.label}: {grant.tool} [{ops_text}] ({grant.loc})")
            elif keep[grant.index] is not grant.operations:
                begin, end = _value_span(text, starts, grant.locs["operations"])
                new = "[" + ", ".join(keep[grant.index]) + "]"
                changes.setdefault(grant.loc.file, []).append((begin, end, new))
                report.narrowed.append(f"{grant.label}: {grant.tool} [{ops_text}] -> {new} ({grant.loc})")
        if role.grants and not keep:
            text, starts = text_of(role.loc.file)
            key = role.locs["grants"]
            at = text.index(":", starts[key.line - 1] + key.column - 1) + 1
            changes.setdefault(role.loc.file, []).append((at, at, " []"))
    return changes, {file: text for file, (text, _starts) in texts.items()}, report


def _apply(text: str, spans: list[tuple[int, int, str]]) -> str:
    for begin, end, new in sorted(spans, reverse=True):
        text = text[:begin] + new + text[end:]
    return text


def _relative(path: str, file: str) -> str:
    if os.path.isdir(path):
        return os.path.relpath(file, path)
    return os.path.basename(file)


def tighten(d: model.Deployment, path: str, log: auditlog.Log, used, out_dir: str, rules: dict,
            timeout_ms: int = 10_000) -> Report:
    """Make, prove and (only when proved) write the proposal; raises InputError on what it cannot edit."""
    from analyzer.loader import load

    if os.path.exists(out_dir) and (not os.path.isdir(out_dir) or os.listdir(out_dir)):
        raise InputError([Diagnostic(Loc(out_dir, 0, 0), "--output must be a new or empty directory")])
    kept = _keep(d, used)
    changes, _texts, report = edits(d, kept)
    parent = os.path.dirname(os.path.abspath(out_dir)) or "."
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tighten-", dir=parent)
    try:
        patch = []
        for file in d.files:
            with open(file, encoding="utf-8", newline="") as handle:
                before = handle.read()
            after = _apply(before, changes.get(file, []))
            rel = _relative(path, file)
            target = os.path.join(staging, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w", encoding="utf-8", newline="") as handle:
                handle.write(after)
            patch.extend(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                              f"a/{rel}", f"b/{rel}"))
        report.patch = "".join(patch)
        target_path = staging if os.path.isdir(path) else os.path.join(staging, os.path.basename(path))
        try:
            proposal = load(target_path)
        except InputError as exc:
            report.failures.append("the proposal does not load: " + "; ".join(x.message for x in exc.diagnostics))
            return report
        _prove(d, proposal, kept, log, rules, timeout_ms, report)
        if report.proved:
            if os.path.isdir(out_dir):
                os.rmdir(out_dir)
            os.replace(staging, out_dir)
            report.out_dir = out_dir
        return report
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging)


def _shape(g: model.Permission, operations) -> tuple:
    return (g.tool, tuple(operations) if operations != model.STAR else operations, g.fields,
            g.when.source if g.when else None, g.approval)


def _prove(old, new, kept, log, rules, timeout_ms, report: Report) -> None:
    from analyzer.analysis import analyze
    from analyzer.diff import diff

    # 1. the grants are exactly the ones intended
    for role_id, grants in kept.items():
        want = [_shape(g, ops) for g, ops in grants]
        got = [_shape(g, g.operations) for g in new.roles[role_id].grants] if role_id in new.roles else None
        if want != got:
            report.failures.append(f"role {role_id}: the edited grants read back as {got}, not {want}")
    if [r for r in old.roles] != [r for r in new.roles] or old.agents.keys() != new.agents.keys():
        report.failures.append("the proposal's roles or agents differ from the deployment's")
    if report.failures:
        return
    # 2. no new access
    result = diff(old, new, timeout_ms=timeout_ms)
    for access in result.new_access:
        report.failures.append(f"diff finds new access: {access.get('class')}")
    for reason in result.unknown:
        report.failures.append(f"diff could not decide: {reason}")
    # 3. replay every allowed call
    old_decider, new_decider = Decider(old), Decider(new)
    new_index = {(role_id, g.index): i for role_id, grants in kept.items() for i, (g, _ops) in enumerate(grants)}
    for call in sorted(log.allowed(), key=lambda c: log.first_line[c]):
        if auditlog.unknown_ids(call, old) is not None:
            continue
        probe = Call(call.workflow, call.chain, call.tool, call.operation, call.tenant, call.fields, {}, call.gate)
        before = old_decider.decide(probe)
        if before.allow:
            report.replayed += 1
            after = new_decider.decide(probe)
            if not after.allow:
                file, line = log.first_line[call]
                report.failures.append(f"{file}:{line}: the proposal refuses a logged call: {after.reason}")
            continue
        agent = old.agents[call.chain[-1]]
        grant = grant_of_label(call.grant, old, call, agent)
        candidates = [grant] if grant is not None else [
            g for r in agent.roles if r in old.roles for g in old.roles[r].grants if g.matches(call.tool, call.operation)]
        if not candidates:
            continue
        report.checked_by_grant += 1
        for g in candidates:
            index = new_index.get((g.owner, g.index))
            survivor = new.roles[g.owner].grants[index] if index is not None else None
            if survivor is None or not survivor.matches(call.tool, call.operation) or \
                    (survivor.fields, survivor.when and survivor.when.source, survivor.approval) != \
                    (g.fields, g.when and g.when.source, g.approval):
                file, line = log.first_line[call]
                report.failures.append(f"{file}:{line}: {g.label}, which allowed a logged call, does not survive")
    # 4. check has no new finding
    before = {(f.rule, f.subjects) for f in analyze(old, rules).active()}
    for f in analyze(new, rules).active():
        if (f.rule, f.subjects) not in before:
            report.failures.append(f"check finds something new: {f.rule} {', '.join(f.subjects)}: {f.message}")
