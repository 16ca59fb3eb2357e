"""The rule catalogue: ``rules/*.yaml`` loaded into :class:`Rule`, overridden by ``--rules DIR``.

A rule names a built-in check (``check:``) or holds a CEL invariant (``never:``). A user's
rule file with an existing id overrides its severity or text, or disables it
(``enabled: false``); a new id must bring a ``never:`` expression or name a built-in check.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from analyzer import checks, conditions, model, spec
from analyzer.errors import Diagnostic, InputError, Loc
from analyzer.findings import SEVERITIES
from analyzer.loader import display_name
from analyzer.resources import RULES_DIR
from analyzer.yamlsrc import YamlError, read_yaml_file

CATEGORIES = ("identity", "least-privilege", "tenant-isolation", "risk-gating", "secrets", "audit", "delegation")
BUILTIN_DIR = RULES_DIR  # the catalogue: rules/ of the source tree, or the copy inside an installed wheel

RULE_FILE = spec.Record({
    "id": spec.Ref("rules"),
    "title": spec.Text(),
    "severity": spec.Enum(SEVERITIES),
    "category": spec.Enum(CATEGORIES),
    "description": spec.Text(),
    "rationale": spec.Text(),
    "remediation": spec.Text(),
    "references": spec.ListOf(spec.Text()),
    "check": spec.Text(),
    "never": spec.Cel(),
    "enabled": spec.Bool(),
}, required=("id",), what="rule")
_FULL = ("title", "severity", "category", "description", "rationale", "remediation")


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: str
    category: str
    description: str
    rationale: str
    remediation: str
    references: tuple[str, ...]
    loc: Loc
    check: str | None = None
    never: model.Condition | None = None
    enabled: bool = True
    severity_overridden: bool = False

    @property
    def is_invariant(self) -> bool:
        return self.never is not None or self.check in checks.INVARIANT_CHECKS

    @property
    def needs_audit_log(self) -> bool:
        """Run by `agentperm unused` on an audit log, not by `check` (analyzer.unused)."""
        return self.check in checks.AUDIT_CHECKS


def _rule_files(folder: Path | str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(dirs)
        found.extend(os.path.join(root, f) for f in files if f.endswith((".yaml", ".yml")))
    return sorted(found)


def load_rules(extra_dirs: list[str] | tuple[str, ...] = (), builtin_dir: Path | str = BUILTIN_DIR) -> dict[str, Rule]:
    """The built-in catalogue plus the user's rule directories, in that order; raises InputError."""
    problems: list[Diagnostic] = []
    rules: dict[str, Rule] = {}
    if not os.path.isdir(builtin_dir):
        raise InputError([Diagnostic(Loc(str(builtin_dir), 0, 0), "the built-in rules directory is missing")])
    _load_dir(builtin_dir, rules, problems, builtin=True)
    for folder in extra_dirs:
        if not os.path.isdir(folder):
            problems.append(Diagnostic(Loc(display_name(folder), 0, 0), "--rules needs a directory"))
            continue
        _load_dir(folder, rules, problems, builtin=False)
    if problems:
        raise InputError(problems)
    return dict(sorted(rules.items()))


def _load_dir(folder, rules: dict[str, Rule], problems: list[Diagnostic], builtin: bool) -> None:
    files = _rule_files(folder)
    if not files and not builtin:
        problems.append(Diagnostic(Loc(display_name(str(folder)), 0, 0), "no rule files (*.yaml) in directory"))
    seen_here: dict[str, Loc] = {}
    for path in files:
        name = display_name(path)
        try:
            doc = read_yaml_file(path, name)
        except YamlError as exc:
            problems.extend(exc.diagnostics)
            continue
        if not isinstance(doc.data, dict):
            problems.append(Diagnostic(Loc(name, 1, 1), "a rule file is a mapping (id, title, severity, ...)"))
            continue
        errors: list[Diagnostic] = []
        value = RULE_FILE.convert(doc.data, (),
                                  lambda p, m, h, errors=errors, doc=doc: errors.append(Diagnostic(doc.loc(p), m, h)))
        problems.extend(errors)
        if errors or value is None or "id" not in value:
            continue
        rule_id = value["id"]
        loc = doc.loc(("id",))
        if rule_id in seen_here:
            problems.append(Diagnostic(loc, f"rule {rule_id!r} is defined twice (first at {seen_here[rule_id]})"))
            continue
        seen_here[rule_id] = loc
        never = None
        if "never" in value:
            try:
                never = model.Condition(value["never"], doc.value_loc(("never",)),
                                        conditions.parse_cel(value["never"]))
            except conditions.CelSyntaxError as exc:
                problems.append(Diagnostic(doc.value_loc(("never",)),
                                           f"CEL error at line {exc.line}, column {exc.column} of the expression: "
                                           f"{exc.message}"))
                continue
        if "check" in value and value["check"] not in checks.STRUCTURAL_CHECKS \
                and value["check"] not in checks.INVARIANT_CHECKS and value["check"] not in checks.AUDIT_CHECKS:
            suggestion = spec.closest(value["check"], list(checks.STRUCTURAL_CHECKS) + list(checks.INVARIANT_CHECKS))
            problems.append(Diagnostic(doc.loc(("check",)), f"no built-in check named {value['check']!r}",
                                       f"did you mean {suggestion!r}?" if suggestion else None))
            continue
        if "check" in value and "never" in value:
            problems.append(Diagnostic(loc, "a rule has either check: or never:, not both"))
            continue
        existing = rules.get(rule_id)
        if existing is not None and not builtin:
            updates = {k: value[k] for k in _FULL if k in value}
            if "references" in value:
                updates["references"] = value["references"]
            if "enabled" in value:
                updates["enabled"] = value["enabled"]
            if never is not None:
                updates["never"], updates["check"] = never, None
            if "check" in value:
                updates["check"], updates["never"] = value["check"], None
            if "severity" in value:
                updates["severity_overridden"] = True
            rules[rule_id] = replace(existing, **updates)
            continue
        missing = [k for k in _FULL if k not in value]
        if builtin:
            missing += [k for k in ("references",) if k not in value]
        if value.get("enabled") is False and existing is None and not builtin:
            missing = []  # disabling an unknown rule is reported below
        if missing:
            problems.append(Diagnostic(loc, f"rule {rule_id!r} is missing {', '.join(missing)}",
                                       "a new rule needs id, title, severity, category, description, rationale, "
                                       "remediation and check: or never:"))
            continue
        if never is None and "check" not in value:
            problems.append(Diagnostic(loc, f"rule {rule_id!r} has neither check: nor never:"))
            continue
        if existing is not None:
            problems.append(Diagnostic(loc, f"rule {rule_id!r} is defined twice"))
            continue
        rules[rule_id] = Rule(id=rule_id, title=value["title"], severity=value["severity"],
                              category=value["category"], description=value["description"],
                              rationale=value["rationale"], remediation=value["remediation"],
                              references=tuple(value.get("references", ())), loc=loc, check=value.get("check"),
                              never=never, enabled=value.get("enabled", True))
