"""YAML text → plain Python values, with a source position for every node.

PyYAML's libyaml composer builds the node tree (fast, C); this module turns it into
plain dicts/lists/scalars itself so that it can (1) refuse duplicate keys, which plain
PyYAML silently resolves as "last one wins", (2) refuse alias expansion beyond a bound
before expanding anything (the "billion laughs"), and (3) keep ``file:line:column``
for every mapping key and value in a side table keyed by the value's path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import yaml

from analyzer.errors import Diagnostic, Loc

try:  # libyaml when available (the normal case); the pure-Python loader otherwise
    _BaseLoader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _BaseLoader = yaml.SafeLoader

_RESOLVED: dict = {}  # (value, implicit) → tag of a plain scalar; deployments repeat their values a lot


class _Loader(_BaseLoader):
    """libyaml with the implicit-tag resolver memoised (its regex matching was the composer's cost)."""

    def resolve(self, kind, value, implicit):
        if kind is not yaml.ScalarNode:
            return super().resolve(kind, value, implicit)
        key = (value, implicit)
        tag = _RESOLVED.get(key)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(_RESOLVED) < 200_000:
                _RESOLVED[key] = tag
        return tag

#: Largest file accepted, in bytes (a deployment of 100,000 agents is well below).
MAX_FILE_BYTES = 256 * 1024 * 1024
#: Deepest nesting accepted (a deployment needs about 8 levels).
MAX_DEPTH = 200
#: Alias expansion bound: expanded nodes may exceed the document's own nodes by this many.
MAX_ALIAS_EXPANSION = 100_000

Path = tuple  # a value's path from the document root: ("tools", "crm", "operations")


@dataclass
class Document:
    """One parsed file: its data and the position of every key and value by path.

    Positions are kept as (line, column) pairs and become :class:`Loc` only when asked for:
    a large deployment has millions of nodes and needs a few positions.
    """

    file: str
    data: Any
    key_marks: dict[Path, tuple[int, int]]  # where the key naming the value at this path is
    value_marks: dict[Path, tuple[int, int]]  # where the value at this path starts

    @property
    def key_locs(self) -> dict[Path, Loc]:
        return {path: Loc(self.file, *mark) for path, mark in self.key_marks.items()}

    @property
    def value_locs(self) -> dict[Path, Loc]:
        return {path: Loc(self.file, *mark) for path, mark in self.value_marks.items()}

    def loc(self, path: Path) -> Loc:
        """The best position for a path: its key, else its value, else the nearest parent's."""
        path = tuple(path)
        while True:
            mark = self.key_marks.get(path) or self.value_marks.get(path)
            if mark is not None:
                return Loc(self.file, *mark)
            if not path:
                return Loc(self.file, 1, 1)
            path = path[:-1]

    def value_loc(self, path: Path) -> Loc:
        mark = self.value_marks.get(tuple(path))
        return Loc(self.file, *mark) if mark is not None else self.loc(path)


class YamlError(Exception):
    """The file could not be read as YAML; carries diagnostics with positions."""

    def __init__(self, diagnostics: list[Diagnostic]):
        super().__init__("; ".join(d.render() for d in diagnostics))
        self.diagnostics = diagnostics


_constructor = yaml.constructor.SafeConstructor()
_STR = "tag:yaml.org,2002:str"
_SCALAR_BUILDERS = {
    "tag:yaml.org,2002:null": _constructor.construct_yaml_null,
    "tag:yaml.org,2002:bool": _constructor.construct_yaml_bool,
    "tag:yaml.org,2002:int": _constructor.construct_yaml_int,
    "tag:yaml.org,2002:float": _constructor.construct_yaml_float,
    _STR: None,
    # dates are kept as their text: the format has no date values and a reviewer reads text
    "tag:yaml.org,2002:timestamp": None,
}


def _mark_loc(file: str, mark) -> Loc:
    return Loc(file, mark.line + 1, mark.column + 1)


def decode_text(file: str, raw: bytes) -> str:
    """UTF-8 text of a file, or a YamlError naming the line and column of the first bad byte."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise YamlError([Diagnostic(Loc(file, line, column),
                                    f"file is not valid UTF-8 text (byte 0x{raw[exc.start]:02x})",
                                    "save the file as UTF-8")]) from None
    return text.removeprefix("\ufeff")


def read_bytes(file: str, name: str) -> bytes:
    """A file's bytes, refusing unreadable and oversized files (checked before reading)."""
    try:
        with open(file, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise YamlError([Diagnostic(Loc(name, 0, 0),
                                            f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")])
            return handle.read()
    except OSError as exc:
        raise YamlError([Diagnostic(Loc(name, 0, 0), f"cannot read file: {exc.strerror or exc}")]) from None


def read_yaml_file(file: str, display: str | None = None) -> Document:
    """Read and parse one file; ``display`` is the name used in positions."""
    name = display or file
    return parse_yaml(name, decode_text(name, read_bytes(file, name)))


def parse_yaml(file: str, text: str) -> Document:
    """Parse YAML text of one document into a :class:`Document`."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.reader.ReaderError as exc:
        before = text[: exc.position]
        line = before.count("\n") + 1
        column = exc.position - (before.rfind("\n") + 1) + 1
        raise YamlError([Diagnostic(Loc(file, line, column),
                                    f"YAML error: unacceptable character U+{exc.character:04X} ({exc.reason})",
                                    "remove the control character")]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = _mark_loc(file, mark) if mark else Loc(file, 1, 1)
        message = exc.problem or str(exc)
        if exc.context:
            message = f"{exc.context}: {message}"
        raise YamlError([Diagnostic(loc, f"YAML syntax error: {message}")]) from None
    except yaml.YAMLError as exc:
        raise YamlError([Diagnostic(Loc(file, 1, 1), f"YAML error: {exc}")]) from None
    finally:
        loader.dispose()
    if root is None:
        return Document(file, None, {}, {})
    if "&" in text:  # without an anchor there is no alias, so no expansion to bound
        _check_expansion(file, root)
    builder = _Builder(file)
    data = builder.build(root, (), 1)
    if builder.errors:
        raise YamlError(builder.errors)
    return Document(file, data, builder.key_marks, builder.value_marks)


def _check_expansion(file: str, root) -> None:
    """Refuse documents whose aliases expand far beyond their own size, nest too deep, or refer to themselves.

    Expanded size and height are computed over the node DAG with memoisation, so this costs
    time linear in the number of distinct nodes whatever the expansion would be; the height
    counts nesting through aliases too, since building the values expands them.
    """
    expanded: dict[int, int] = {}
    height: dict[int, int] = {}
    on_stack: set[int] = set()

    def refuse(node, message, hint=None):
        raise YamlError([Diagnostic(_mark_loc(file, node.start_mark), message, hint)])

    # iterative post-order to survive deep documents without recursion limits
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_stack.discard(key)
            total, tallest = 1, 0
            for child in _children(node):
                total += expanded[id(child)]
                tallest = max(tallest, height[id(child)])
            expanded[key] = total
            height[key] = tallest + 1
            if height[key] > MAX_DEPTH:
                refuse(node, f"YAML nested more than {MAX_DEPTH} levels deep (counting aliases)")
            continue
        if key in expanded:
            continue
        on_stack.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_stack:
                refuse(child, "recursive YAML alias: a node refers to itself")
            if id(child) not in expanded:
                stack.append((child, False))
    limit = len(expanded) + MAX_ALIAS_EXPANSION
    if expanded[id(root)] > limit:
        refuse(root, f"YAML aliases expand to {expanded[id(root)]:,} nodes from {len(expanded):,} written "
                     f"(limit {limit:,}): refusing an alias bomb", "write the values out, or use fewer nested aliases")


def _children(node):
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield key
            yield value
    elif isinstance(node, yaml.SequenceNode):
        yield from node.value


class _Builder:
    def __init__(self, file: str):
        self.file = file
        self.errors: list[Diagnostic] = []
        self.key_marks: dict[Path, tuple[int, int]] = {}
        self.value_marks: dict[Path, tuple[int, int]] = {}

    def loc(self, node) -> Loc:
        return _mark_loc(self.file, node.start_mark)

    def build(self, node, path: Path, depth: int):
        if path not in self.value_marks:
            mark = node.start_mark
            self.value_marks[path] = (mark.line + 1, mark.column + 1)
        kind = type(node)
        if kind is yaml.ScalarNode:
            return self.scalar(node)
        if depth > MAX_DEPTH:
            raise YamlError([Diagnostic(self.loc(node), f"YAML nested more than {MAX_DEPTH} levels deep")])
        if kind is yaml.SequenceNode:
            return [self.build(item, path + (index,), depth + 1) for index, item in enumerate(node.value)]
        if kind is yaml.MappingNode:
            return self.mapping(node, path, depth)
        self.errors.append(Diagnostic(self.loc(node), "unsupported YAML node"))  # pragma: no cover
        return None

    def scalar(self, node):
        if node.tag == _STR:  # nearly every scalar of a deployment
            return node.value
        if node.tag not in _SCALAR_BUILDERS:
            self.errors.append(Diagnostic(self.loc(node), f"unsupported YAML tag {node.tag}",
                                          "remove the explicit tag"))
            return node.value
        builder = _SCALAR_BUILDERS[node.tag]
        if builder is None:
            return node.value
        try:
            return builder(node)
        except (ValueError, yaml.YAMLError) as exc:
            self.errors.append(Diagnostic(self.loc(node), f"bad scalar {node.value!r}: {exc}"))
            return node.value

    def mapping(self, node, path: Path, depth: int) -> dict:
        result: dict = {}
        merged: dict = {}
        key_marks = self.key_marks
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                merged.update(self.merge_source(value_node, path, depth))
                continue
            if type(key_node) is not yaml.ScalarNode:
                self.errors.append(Diagnostic(self.loc(key_node), "mapping keys must be plain scalars"))
                continue
            # keys are ids and field names: keep their text (`on`, `007` and `1e3` stay as written)
            key = key_node.value
            child = path + (key,)
            if key in result:
                self.errors.append(Diagnostic(self.loc(key_node),
                                              f"duplicate key {key!r} (first defined at line {key_marks[child][0]})",
                                              "YAML keeps only one of them; remove or rename the other"))
                continue
            mark = key_node.start_mark
            key_marks[child] = (mark.line + 1, mark.column + 1)
            result[key] = self.build(value_node, child, depth + 1)
        for key, value in merged.items():  # `<<` merges: explicit keys win, as YAML says
            result.setdefault(key, value)
        return result

    def merge_source(self, node, path: Path, depth: int) -> dict:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        merged: dict = {}
        for source in reversed(sources):  # earlier sources take precedence
            if not isinstance(source, yaml.MappingNode):
                self.errors.append(Diagnostic(self.loc(source), "a YAML merge (<<) needs a mapping"))
                continue
            merged.update(self.mapping(source, path, depth))
        return merged
