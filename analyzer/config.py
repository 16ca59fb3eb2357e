"""Defaults for ``check`` and ``report`` from a config file: ``agentperm.yaml`` beside the deployment,
else ``[tool.agentperm]`` in the nearest ``pyproject.toml`` from the working directory upward.

Keys: ``fail-on`` (low|medium|high|critical), ``rules`` (a list of rule directories), ``suppressions``
(a file), ``format`` (text|json|sarif|junit|markdown); ``fail_on`` is read as ``fail-on``. Paths are
relative to the config file. Flags on the command line win. An unknown key or a bad value is an
input error at its file:line:column.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field

from analyzer.errors import Diagnostic, InputError, Loc
from analyzer.loader import CONFIG_FILE, beside_deployment, display_name
from analyzer.yamlsrc import YamlError, read_yaml_file

SEVERITIES = ("low", "medium", "high", "critical")
FORMATS = ("text", "json", "sarif", "junit", "markdown")
KEYS = ("fail-on", "format", "rules", "suppressions")


@dataclass(frozen=True)
class Config:
    """What a config file sets (None: not set) and where it was read from."""

    fail_on: str | None = None
    format: str | None = None
    rules: tuple[str, ...] = ()
    suppressions: str | None = None
    source: str | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)


def beside(deployment_paths) -> str | None:
    """``agentperm.yaml`` inside the first path when it is a directory, beside it when a file."""
    return beside_deployment(deployment_paths, CONFIG_FILE)


def nearest_pyproject(start: str) -> str | None:
    folder = os.path.abspath(start)
    while True:
        candidate = os.path.join(folder, "pyproject.toml")
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def find(deployment_paths, cwd: str | None = None) -> Config:
    """The config that applies to a run over ``deployment_paths`` (an empty Config when none)."""
    yaml_path = beside(deployment_paths)
    if yaml_path and os.path.isfile(yaml_path):
        return _from_yaml(yaml_path)
    pyproject = nearest_pyproject(cwd or os.getcwd())
    if pyproject:
        return _from_pyproject(pyproject)
    return Config()


def _from_yaml(path: str) -> Config:
    name = display_name(path)
    try:
        doc = read_yaml_file(path, name)
    except YamlError as exc:
        raise InputError(exc.diagnostics) from None
    if doc.data is None:
        return Config(source=name)
    if not isinstance(doc.data, dict):
        raise InputError([Diagnostic(doc.loc(()), "agentperm.yaml must be a mapping of settings",
                                     "keys: " + ", ".join(KEYS))])
    return _validated(doc.data, lambda key: doc.loc((key,)), os.path.dirname(path), name)


def _from_pyproject(path: str) -> Config:
    name = display_name(path)
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError([Diagnostic(Loc(name, 1, 1), f"cannot read pyproject.toml: {exc}")]) from None
    table = data.get("tool", {}).get("agentperm")
    if table is None:
        return Config()
    if not isinstance(table, dict):
        raise InputError([Diagnostic(Loc(name, 1, 1), "[tool.agentperm] must be a table")])
    lines = text.splitlines()
    header = next((i for i, line in enumerate(lines) if re.match(r"\s*\[\s*tool\.agentperm\s*\]", line)), 0)

    def where(key: str) -> Loc:
        pattern = re.compile(r"(\s*)[\"']?" + re.escape(key) + r"[\"']?\s*=")
        for index in range(header, len(lines)):
            found = pattern.match(lines[index])
            if found:
                return Loc(name, index + 1, len(found.group(1)) + 1)
        return Loc(name, header + 1, 1)

    return _validated(table, where, os.path.dirname(path), name)


def _validated(data: dict, where, base: str, name: str) -> Config:
    problems: list[Diagnostic] = []
    values: dict = {}
    for key, value in data.items():
        canonical = str(key).replace("_", "-")
        if canonical not in KEYS:
            from analyzer.spec import closest

            hint = closest(canonical, KEYS)
            problems.append(Diagnostic(where(key), f"unknown setting {key!r}",
                                       f"did you mean {hint!r}?" if hint else "settings: " + ", ".join(KEYS)))
        elif canonical == "fail-on" and value not in SEVERITIES:
            problems.append(Diagnostic(where(key), f"fail-on must be one of {', '.join(SEVERITIES)}, not {value!r}"))
        elif canonical == "format" and value not in FORMATS:
            problems.append(Diagnostic(where(key), f"format must be one of {', '.join(FORMATS)}, not {value!r}"))
        elif canonical == "suppressions" and not (isinstance(value, str) and value):
            problems.append(Diagnostic(where(key), "suppressions must be a file path"))
        elif canonical == "rules" and not (isinstance(value, list) and all(isinstance(v, str) and v for v in value)):
            problems.append(Diagnostic(where(key), "rules must be a list of rule directories"))
        else:
            values[canonical] = value
    if problems:
        raise InputError(problems)

    def path(p: str) -> str:
        return p if os.path.isabs(p) else os.path.normpath(os.path.join(base, p))

    return Config(fail_on=values.get("fail-on"), format=values.get("format"),
                  rules=tuple(path(p) for p in values.get("rules", ())),
                  suppressions=path(values["suppressions"]) if "suppressions" in values else None, source=name)
