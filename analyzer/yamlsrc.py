"""YAML text → plain Python values, with a source position for every node.

Two readers give the same values and positions:

* the **fast path** parses with ``yaml_rs`` (Rust, several times faster than libyaml) when the
  text cannot read differently there (see :func:`_parse_fast`), and finds positions only when
  one is asked for (:class:`Positions`: a line scanner, libyaml as its fallback);
* the **reference path** composes with PyYAML's libyaml composer and turns the node tree into
  plain values itself, so that it can (1) refuse duplicate keys, which plain PyYAML silently
  resolves as "last one wins", (2) refuse alias expansion beyond a bound before expanding
  anything (the "billion laughs"), and (3) keep ``file:line:column`` for every mapping key and
  value in a side table keyed by the value's path. Every error message comes from this path.
"""

from __future__ import annotations

import os
import re
from typing import Any

import yaml

from analyzer.errors import Diagnostic, LazyLoc, Loc

try:  # the fast reader; without it every file takes the reference path
    import yaml_rs
except ImportError:  # pragma: no cover - depends on the installation
    yaml_rs = None

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


class Document:
    """One parsed file: its data and the position of every key and value by path.

    The reference path keeps positions as (line, column) pairs, made :class:`Loc` only when
    asked for; the fast path has none until one is asked for, and then answers with a
    :class:`LazyLoc` that finds its line and column on first use. Both answer every question
    with the same numbers.
    """

    def __init__(self, file: str, data: Any, key_marks: dict | None = None, value_marks: dict | None = None,
                 *, positions: Positions | None = None):
        self.file = file
        self.data = data
        self._positions = positions
        if positions is None:
            self._key_marks = key_marks if key_marks is not None else {}
            self._value_marks = value_marks if value_marks is not None else {}

    @property
    def fast(self) -> bool:
        """Parsed by the fast path (positions are then found lazily)."""
        return self._positions is not None

    @property
    def positions(self) -> Positions | None:
        """The lazy positions of a fast-path document (no reference to its data), else None."""
        return self._positions

    @property
    def key_marks(self) -> dict[Path, tuple[int, int]]:
        """Where the key naming the value at each path is (every path: costs a libyaml pass when fast)."""
        return self._positions.tables()[0] if self._positions is not None else self._key_marks

    @property
    def value_marks(self) -> dict[Path, tuple[int, int]]:
        """Where the value at each path starts (every path: costs a libyaml pass when fast)."""
        return self._positions.tables()[1] if self._positions is not None else self._value_marks

    @property
    def key_locs(self) -> dict[Path, Loc]:
        return {path: Loc(self.file, *mark) for path, mark in self.key_marks.items()}

    @property
    def value_locs(self) -> dict[Path, Loc]:
        return {path: Loc(self.file, *mark) for path, mark in self.value_marks.items()}

    def loc(self, path: Path) -> Loc:
        """The best position for a path: its key, else its value, else the nearest parent's."""
        if self._positions is not None:
            return self._positions.loc(tuple(path))
        return Loc(self.file, *_mark_in_tables(self._key_marks, self._value_marks, tuple(path), False))

    def value_loc(self, path: Path) -> Loc:
        """Where the value at a path starts, else :meth:`loc`."""
        if self._positions is not None:
            return self._positions.value_loc(tuple(path))
        return Loc(self.file, *_mark_in_tables(self._key_marks, self._value_marks, tuple(path), True))


def _mark_in_tables(key_marks: dict, value_marks: dict, path: Path, value: bool) -> tuple[int, int]:
    if value:
        mark = value_marks.get(path)
        if mark is not None:
            return mark
    while True:
        mark = key_marks.get(path) or value_marks.get(path)
        if mark is not None:
            return mark
        if not path:
            return (1, 1)
        path = path[:-1]


class YamlError(Exception):
    """The file could not be read as YAML; carries diagnostics with positions."""

    def __init__(self, diagnostics: list[Diagnostic]):
        super().__init__("; ".join(d.render() for d in diagnostics))
        self.diagnostics = diagnostics


_constructor = yaml.constructor.SafeConstructor()
_STR = "tag:yaml.org,2002:str"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_SCALAR_BUILDERS = {
    "tag:yaml.org,2002:null": _constructor.construct_yaml_null,
    "tag:yaml.org,2002:bool": _constructor.construct_yaml_bool,
    "tag:yaml.org,2002:int": _constructor.construct_yaml_int,
    "tag:yaml.org,2002:float": _constructor.construct_yaml_float,
    _STR: None,
    # dates are kept as their text: the format has no date values and a reviewer reads text
    _TIMESTAMP: None,
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


def parse_yaml(file: str, text: str, *, fast: bool = True) -> Document:
    """Parse YAML text of one document into a :class:`Document`.

    ``fast=False`` takes the reference path whatever the text; either way the values, the
    positions and the errors are the reference path's.
    """
    if fast and yaml_rs is not None:
        document = _parse_fast(file, text)
        if document is not None:
            return document
    return _parse_reference(file, text)


def _parse_reference(file: str, text: str) -> Document:
    """The reference path: libyaml's composer, then values and positions from its nodes."""
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


# ---- the fast path -------------------------------------------------------------------------------
#
# yaml_rs reads YAML 1.2 and libyaml (with PyYAML's resolver) YAML 1.1; both scanners descend from
# libyaml's and agree on the syntax of ordinary block and flow YAML (the 1,024-character simple-key
# bound included), but not on everything. The fast path is taken only when the result cannot
# differ from the reference path's; on any doubt the whole file takes the reference path, which
# also makes every error message the reference path's. A file is refused when:
#
# * its text does not end with a line break (the readers differ on some scalars ending the file);
# * its text holds a character libyaml reads differently or refuses (controls, tabs, CR, NEL,
#   U+2028/2029, a BOM, non-characters), `<<` (merges), anything that may be an anchor, alias,
#   tag, complex key or block scalar (`&`, `*`, `!`, `?`, `|`, `>` where a token starts), a
#   quoted scalar or flow collection continued on another line, a directive or document marker
#   (`%`, `---`, `...` at the start of a line); see _FAST_TEXT;
# * yaml_rs raises anything (syntax, duplicate keys, nesting beyond its bound, ...);
# * a mapping key comes back as anything but a string (yaml_rs types keys; we keep their text);
# * collections nest deeper than MAX_DEPTH (the reference path refuses those);
# * a value is a float or any type but str, int, bool and None;
# * an int is present and the text has a token spelled like an int whose YAML 1.1 reading may
#   differ (a leading 0 or _ after an optional sign: 0777, 08, 0o17, 0X1F, _1, ...);
# * a string would resolve to another type as a YAML 1.1 plain scalar (yes, on, 1:30, =, ...)
#   while yaml_rs would read it as a string when plain too, so quoting cannot be told apart.
#   (Bools come only from true/false in any of three cases, None only from null/~/nothing:
#   YAML 1.1 reads those alike.)

# libyaml's printable characters minus tab, CR, NEL, U+2028/2029 and the BOM, which it reads otherwise
_PRINTABLE = [(0x20, 0x7E), (0xA0, 0x2027), (0x202A, 0xD7FF), (0xE000, 0xFEFE), (0xFF00, 0xFFFD),
              (0x10000, 0x10FFFF)]


def _printable_except(excluded: str) -> str:
    """A regex class of the printable characters above, minus ``excluded``."""
    parts = []
    for low, high in _PRINTABLE:
        start = low
        for code in sorted(ord(c) for c in excluded if low <= ord(c) <= high):
            if code > start:
                parts.append((start, code - 1))
            start = code + 1
        if start <= high:
            parts.append((start, high))
    return "[" + "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
                         for a, b in parts) + "]"


_PLAIN_TEXT = _printable_except("\"'[{,:?&*!<%#|> ")  # nothing that may start or end a token
_QUIET = _printable_except("\"'[]{}:?&*!<%#|>")
_ANY = _printable_except("")
_DOUBLE_QUOTED_TEXT = rf'"(?:{_printable_except(chr(34) + chr(92))}++|\\{_ANY})*+"'
_SINGLE_QUOTED_TEXT = rf"'(?:{_printable_except(chr(39))}++|'')*+'"
# a ':' neither right after a space or `[{,` nor right before `,?[]{}` (the readers differ on `[:x]`, `{a:,}`)
_COLON = r"(?<![\[{,\ \n]):(?![,?\[\]{}])"
_QUIET_FLOW = rf"[\[{{](?:{_QUIET}++|{_COLON}|[\[{{](?:{_QUIET}++|{_COLON})*+[\]}}])*+[\]}}]"  # two deep
_IN_FLOW = _printable_except("\"'[]{}#")
_FLOW = rf"[\[{{](?:{_IN_FLOW}++|{_DOUBLE_QUOTED_TEXT}|{_SINGLE_QUOTED_TEXT})*+[\]}}]"
for _ in range(2):  # three deep: deeper, or continued on another line, it is refused
    _FLOW = rf"[\[{{](?:{_IN_FLOW}++|{_DOUBLE_QUOTED_TEXT}|{_SINGLE_QUOTED_TEXT}|{_FLOW})*+[\]}}]"
_OPEN = rf"(?={_FLOW})[\[{{]"  # a flow collection that ends on its line
_QUOTED_TEXT = rf"(?:{_DOUBLE_QUOTED_TEXT}|{_SINGLE_QUOTED_TEXT})"
# Matches the whole text ("\n" + text + "\n") when it holds nothing refused above. A line of
# plain text, `:` (with a quoted value) and flow collections (two deep) of plain text passes at
# once (most lines).
# Other lines are read token by token: quoted scalars where a node may start (a line's
# indentation and `- ` entries, after `[`, `{`, `,`, `: `) that end on their line are skipped
# whole (they may hold `!=`, `*`, `<<`...), so are comments and plain text. Refused: a quoted
# scalar or flow collection continued on another line (libyaml accepts their next lines at any
# indentation, which the position scanner could not follow); a quote, `&`, `*`, `!`, `?`, `|` or
# `>` (block scalars: the readers differ on some that end the file) after a space or indicator
# outside a quoted scalar; a `:` after a space or `[{,`, or before `,?[]{}`. False alarms such
# as `wow !` only cost the reference path; a quote, `|` or `>` after a word and one space is
# text (`say "hi"`, `a > b`).
_FAST_TEXT = re.compile(rf"""
  (?: \n(?!---|\.\.\.)(?:{_QUIET}++|{_COLON}(?:\ ++{_QUOTED_TEXT})?|{_QUIET_FLOW})*+(?=\n)
    | {_PLAIN_TEXT}++
    | (?:{_OPEN}|,|{_COLON})\ *+(?={_PLAIN_TEXT})
    | (?:{_OPEN}\ *+|,\ *+|{_COLON}\ ++|\n\ *+(?:-\ ++)*+){_QUOTED_TEXT}
    | \ ++
    | (?<=[\ \n])\#{_ANY}*+
    | \n(?!%|---|\.\.\.)
    | (?<![\ \n\[{{,:])[&*!?]
    | (?<![\ \n\[{{,])["'|>] | (?<=[^\ \n\[{{,:?\-]\ )["'|>]
    | <(?!<)
    | {_OPEN} | [,\#%] | {_COLON}
  )*+""", re.VERBOSE)
_INT_RISK = re.compile(r"(?<![\w.+-])[-+]?(?:0\w|_)")
_IMPLICIT = yaml.resolver.Resolver.yaml_implicit_resolvers
# first characters with a resolver; a plain scalar cannot start with !, & or *: those were quoted
_RESOLVER_FIRST = frozenset(k for k in _IMPLICIT if k is not None) - set("!&*")
_ANY_FIRST = None in _IMPLICIT  # a wildcard resolver: every string is a candidate
_SCALARS_ALIKE = frozenset({str, dict, list, bool, type(None)})
_PLAIN = (True, False)  # `implicit` of a plain scalar, as libyaml reports it
_resolver: _Loader | None = None


def _parse_fast(file: str, text: str) -> Document | None:
    """The document from yaml_rs, or None when the reference path must read this text."""
    if text and not text.endswith("\n") or _FAST_TEXT.fullmatch(f"\n{text}\n") is None:
        return None
    try:
        data = yaml_rs.loads(text, parse_datetime=False, duplicate_key_policy=yaml_rs.DuplicateKeyPolicy.Error)
    except Exception:  # noqa: BLE001 - any trouble at all: the reference path reads it (and words the error)
        return None
    if not _reads_alike(data, text):
        return None
    return Document(file, data, positions=Positions(file, text))


def _reads_alike(data: Any, text: str) -> bool:
    """Whether the reference path would build exactly ``data`` from ``text`` (see above)."""
    strings: set = set()  # and the other scalars of lists: their types are looked at below
    keys: set = set()
    kinds: set = set()
    add_string, add_strings, add_keys = strings.add, strings.update, keys.update
    level = [data]
    depth = 0
    while level:  # breadth first, one level at a time, so that the depth comes free
        depth += 1
        below: list = []
        extend = below.extend
        for value in level:
            kind = type(value)
            if kind is dict:
                add_keys(value)
                extend(value.values())
            elif kind is list:
                try:
                    add_strings(value)  # a list of scalars (most are), at C speed
                except TypeError:  # it holds collections
                    extend(value)
            elif kind is str:
                add_string(value)
            else:
                kinds.add(kind)
        if below and depth >= MAX_DEPTH and any(type(v) is dict or type(v) is list for v in below):
            return False
        level = below
    kinds.update(map(type, strings))
    others = kinds - _SCALARS_ALIKE
    if others and (others != {int} or _INT_RISK.search(text) is not None):
        return False
    if keys and set(map(type, keys)) != {str}:
        return False
    for value in strings:
        if type(value) is str and (_ANY_FIRST or value[:1] in _RESOLVER_FIRST) \
                and _plain_tag(value) not in (_STR, _TIMESTAMP) and _fast_reads_plain_as_text(value):
            return False
    return True


def _plain_tag(value: str) -> str:
    """The YAML 1.1 tag of ``value`` written as a plain scalar (the reference path's resolver)."""
    global _resolver
    tag = _RESOLVED.get((value, _PLAIN))
    if tag is None:
        if _resolver is None:
            _resolver = _Loader("")
        tag = _resolver.resolve(yaml.ScalarNode, value, _PLAIN)
    return tag


def _fast_reads_plain_as_text(value: str) -> bool:
    """Whether yaml_rs reads ``value`` written plain as this very string (so it may have been plain)."""
    try:
        return yaml_rs.loads(value, parse_datetime=False) == value
    except Exception:  # noqa: BLE001 - unreadable alone: assume the worst
        return True


# ---- positions of a fast-path document, found when asked for -------------------------------------
#
# A line scanner reads the block structure (indentation, `- ` entries, `key:`) and flow
# collections written on one line, and only the parts of the file a question needs: the
# entries of a mapping or sequence are found once, when a path first goes through it. It relies
# on what the fast path lets through (_FAST_TEXT): no quoted scalar or flow collection goes on
# to another line and there is no block scalar, so the only node spanning lines is a plain
# scalar, whose next lines libyaml wants deeper than the block holding it; every content line
# at a block's own indentation is therefore one of its entries. The scanner gives up on
# anything it does not read exactly (an escaped quoted key, an empty flow value, a pair in a
# flow sequence, ...), and the file's positions then come from libyaml, once, for every later
# question.

_DOUBLE_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_SINGLE_QUOTED = re.compile(r"'(?:[^']|'')*'")
_PLAIN_BLOCK_END = re.compile(r":(?= |$)| #")  # where a plain scalar ends on its line, in block context
# a plain flow scalar: ends at , [ ] { } and ':' before a space or one of those (a '#': give up)
_FLOW_PLAIN = re.compile(r"(?:[^,\[\]{}:#]|:(?=[^ ,?\[\]{}]))*")
_SIMPLE_FLOW_SEQUENCE = re.compile(r"\[([^\[\]{}\"'#:]*)\]")  # [a, b, c]: no nesting, quotes, comments or ':'
_BLOCK_BAD_START = frozenset(",[]{}#&*!|>%@`")
_FLOW_BAD_START = frozenset(",[]{}#&*!|>%@`'\"")


class _GiveUp(Exception):
    """The scanner met YAML it does not read exactly: libyaml gives this file's positions."""


class _Node:
    """A node found by the scanner: its kind, where it starts, and (once read) its entries."""

    __slots__ = ("column", "entries", "kind", "line")

    def __init__(self, kind: str, line: int, column: int, entries=None):
        self.kind = kind  # map / seq (block), fmap / fseq (flow), scalar, empty
        self.line = line  # 0-based
        self.column = column  # 0-based
        # map: {key: (key mark, child)}; seq: [child]; a child is a _Node, or (line, column) of a block node
        self.entries = entries

    @property
    def mark(self) -> tuple[int, int]:
        return (self.line + 1, self.column + 1)


class Positions:
    """The positions of one fast-path document, found on demand (see above); it holds the
    document's text, not its data."""

    def __init__(self, file: str, text: str):
        self.file = file
        self.text = text
        self.gave_up = False  # the scanner met something it does not read: libyaml's tables are used
        self._tables: tuple[dict, dict] | None = None
        self._lines: list[str] | None = None
        self._root: _Node | None | bool = False  # False: not looked for yet
        self._nodes: dict[tuple[int, int], _Node] = {}
        self._parents: dict[Path, tuple] = {}  # path → (key mark, node) of paths whose parts were asked for

    # -- answers ---------------------------------------------------------------------------------
    def loc(self, path: Path) -> LazyLoc:
        """:meth:`Document.loc`, lazily."""
        return LazyLoc(self.file, self.resolve, (path, False))

    def value_loc(self, path: Path) -> LazyLoc:
        """:meth:`Document.value_loc`, lazily."""
        return LazyLoc(self.file, self.resolve, (path, True))

    def resolve(self, request: tuple[Path, bool]) -> tuple[int, int]:
        """(line, column) of ``doc.loc(path)`` (value=False) or ``doc.value_loc(path)`` (value=True)."""
        path, value = request
        if self._tables is None and not self.gave_up:
            try:
                return self._navigate(path, value)
            except _GiveUp:
                self.gave_up = True
            except (IndexError, KeyError, TypeError, ValueError):  # pragma: no cover - a scanner bug
                self.gave_up = True  # must not cost a position: libyaml's is as exact
        key_marks, value_marks = self.tables()
        return _mark_in_tables(key_marks, value_marks, path, value)

    def tables(self) -> tuple[dict, dict]:
        """Every key and value position, from libyaml (the reference path)."""
        if self._tables is None:
            try:
                reference = _parse_reference(self.file, self.text)
            except YamlError as exc:  # the fast path read what libyaml refuses: a bug in its rules
                raise RuntimeError(f"{self.file}: the fast YAML path accepted a file the reference path "
                                   f"refuses ({exc}); please report it") from None
            self._tables = (reference.key_marks, reference.value_marks)
            self._lines = None
            self._nodes = {}
            self._parents = {}
        return self._tables

    def _navigate(self, path: Path, value: bool) -> tuple[int, int]:
        root = self._find_root()
        if root is None:
            return (1, 1)
        if not path:
            return root.mark
        parent = path[:-1]
        found = self._parents.get(parent)  # siblings are asked for together: start at their parent
        if found is None:
            found = (None, root)
            for part in parent:
                step = self._step(found[1], part)
                if step is None:  # no such path: the nearest parent's position, as the reference path
                    return found[0] or found[1].mark
                found = (step[0], self._materialize(step[1]))
            self._parents[parent] = found
        key_mark, node = found
        step = self._step(node, path[-1])
        if step is None:
            return key_mark or node.mark
        if step[0] is not None and not value:
            return step[0]  # the key is the answer: the value need not be read
        return self._materialize(step[1]).mark

    def _step(self, node: _Node, part) -> tuple | None:
        """(key mark or None, child) of ``node`` at ``part``, None when it has no such part."""
        kind = node.kind
        if kind == "map" or kind == "fmap":
            return self._entries(node).get(part) if isinstance(part, str) else None
        if kind == "seq" or kind == "fseq":
            items = self._entries(node)
            return (None, items[part]) if isinstance(part, int) and 0 <= part < len(items) else None
        return None  # a scalar has no parts

    def _materialize(self, child) -> _Node:
        return child if type(child) is _Node else self._node(*child)

    # -- the scanner -----------------------------------------------------------------------------
    def _find_root(self) -> _Node | None:
        if self._root is False:
            if self._lines is None:
                self._lines = self.text.split("\n")
            line, indent = self._next_content(0)
            self._root = self._node(line, indent) if line < len(self._lines) else None
        return self._root

    def _next_content(self, line: int) -> tuple[int, int]:
        """The first line from ``line`` on that is neither blank nor a comment, and its indentation."""
        lines = self._lines
        count = len(lines)
        while line < count:
            text = lines[line]
            rest = text.lstrip(" ")
            if rest and rest[0] != "#":
                return line, len(text) - len(rest)
            line += 1
        return count, -1

    def _entries(self, node: _Node):
        if node.entries is None:
            kind = node.kind
            if kind == "map":
                node.entries = self._block_map(node)
            elif kind == "seq":
                node.entries = self._block_seq(node)
            else:
                node.entries = self._flow_entries(self._lines[node.line], node.line, node.column)
        return node.entries

    def _node(self, line: int, column: int) -> _Node:
        """The node starting at (line, column) in block context."""
        found = self._nodes.get((line, column))
        if found is None:
            found = self._nodes[(line, column)] = self._classify(line, column)
        return found

    def _classify(self, line: int, column: int) -> _Node:
        text = self._lines[line]
        char = text[column]
        if char == "-" and (column + 1 == len(text) or text[column + 1] == " "):
            return _Node("seq", line, column)
        if char == "[" or char == "{":
            return _Node("fseq" if char == "[" else "fmap", line, column)  # read when its entries are asked for
        if char == "|" or char == ">":
            return _Node("scalar", line, column)
        if char == '"' or char == "'":
            match = (_DOUBLE_QUOTED if char == '"' else _SINGLE_QUOTED).match(text, column)
            if match is None:  # continued on the next lines: a scalar (a key fits on one line)
                return _Node("scalar", line, column)
            after = _skip_spaces(text, match.end())
            if after < len(text) and text[after] == ":" and (after + 1 == len(text) or text[after + 1] == " "):
                return _Node("map", line, column)
            return _Node("scalar", line, column)
        if char in _BLOCK_BAD_START or (char in "?:" and (column + 1 == len(text) or text[column + 1] == " ")):
            raise _GiveUp
        end = _PLAIN_BLOCK_END.search(text, column)
        if end is not None and text[end.start()] == ":":
            return _Node("map", line, column)
        return _Node("scalar", line, column)

    def _block_key(self, text: str, column: int) -> tuple[str, int, int | None]:
        """(key, column of its ':', column of a value on the same line or None) of a mapping entry."""
        char = text[column]
        if char == '"' or char == "'":
            match = (_DOUBLE_QUOTED if char == '"' else _SINGLE_QUOTED).match(text, column)
            if match is None:
                raise _GiveUp
            key = match.group()[1:-1]
            if char == '"':
                if "\\" in key:
                    raise _GiveUp  # escapes: not worth decoding here
            else:
                key = key.replace("''", "'")
            colon = _skip_spaces(text, match.end())
            if colon >= len(text) or text[colon] != ":":
                raise _GiveUp
        else:
            if char in _BLOCK_BAD_START or char in "-?:" and (column + 1 == len(text) or text[column + 1] == " "):
                raise _GiveUp
            end = _PLAIN_BLOCK_END.search(text, column)
            if end is None or text[end.start()] != ":":
                raise _GiveUp
            colon = end.start()
            key = text[column:colon].rstrip(" ")
        after = colon + 1
        if after < len(text) and text[after] != " ":
            raise _GiveUp
        start = _skip_spaces(text, after)
        if start >= len(text) or text[start] == "#":
            return key, colon, None
        return key, colon, start

    def _block_map(self, node: _Node) -> dict:
        lines = self._lines
        count = len(lines)
        indent = node.column
        entries: dict = {}
        line = node.line
        while True:
            key, colon, inline = self._block_key(lines[line], indent)
            if key in entries:
                raise _GiveUp
            key_mark = (line + 1, indent + 1)
            if inline is not None:
                entries[key] = (key_mark, (line, inline))
                line += 1
            else:
                following, depth = self._next_content(line + 1)
                if following < count and (depth > indent or depth == indent and _is_entry(lines[following], indent)):
                    entries[key] = (key_mark, (following, depth))
                else:  # nothing: libyaml places the empty value just after the ':'
                    entries[key] = (key_mark, _Node("empty", line, colon + 1))
                line = following
            while line < count:  # the next entry: a content line at this indentation, not a `- `
                text = lines[line]
                rest = text.lstrip(" ")
                if rest and rest[0] != "#":
                    depth = len(text) - len(rest)
                    if depth < indent:
                        return entries
                    if depth == indent and not (rest[0] == "-" and (len(rest) == 1 or rest[1] == " ")):
                        break
                line += 1
            else:
                return entries

    def _block_seq(self, node: _Node) -> list:
        lines = self._lines
        count = len(lines)
        indent = node.column
        items: list = []
        line = node.line
        while True:
            text = lines[line]
            start = _skip_spaces(text, indent + 1)
            following, depth = self._next_content(line + 1)
            if start < len(text) and text[start] != "#":
                items.append((line, start))
            elif following < count and depth > indent:
                items.append((following, depth))
            else:  # nothing: libyaml places the empty item just after the '-'
                items.append(_Node("empty", line, indent + 1))
            line = following
            while line < count:  # the next item: a `- ` at this indentation
                text = lines[line]
                rest = text.lstrip(" ")
                if rest and rest[0] != "#":
                    depth = len(text) - len(rest)
                    if depth < indent or (depth == indent and not _is_entry(text, indent)):
                        return items
                    if depth == indent:
                        break
                line += 1
            else:
                return items

    def _flow_entries(self, text: str, line: int, column: int) -> dict | list:
        """The entries of a flow collection written on one line."""
        simple = _SIMPLE_FLOW_SEQUENCE.match(text, column)
        if simple is None:
            return self._flow(text, line, column)[0].entries
        # a sequence of plain scalars, the usual list of ids: split at the commas
        items = []
        at = column + 1
        parts = simple.group(1).split(",")
        last = len(parts) - 1
        for index, part in enumerate(parts):
            start = at + len(part) - len(part.lstrip(" "))
            if start == at + len(part):  # nothing between two commas
                if index == last:  # `[]`, or a trailing comma
                    break
                raise _GiveUp
            char = text[start]
            if char in _FLOW_BAD_START or char in "-?" and (start + 1 == len(text) or text[start + 1] in " ,]"):
                raise _GiveUp
            items.append(_Node("scalar", line, start))
            at += len(part) + 1
        return items

    def _flow(self, text: str, line: int, column: int) -> tuple[_Node, int]:
        """A flow collection written on one line, with its entries; the column after it."""
        mapping = text[column] == "{"
        closer = "}" if mapping else "]"
        entries: dict | list = {} if mapping else []
        at = column + 1
        end = len(text)
        while True:
            at = _skip_spaces(text, at)
            if at >= end:
                raise _GiveUp  # continued on the next line
            if text[at] == closer:
                break
            if mapping:
                key, after, plain = self._flow_key(text, at)
                key_mark = (line + 1, at + 1)
                colon = _skip_spaces(text, after)
                if colon >= end or text[colon] != ":" or (plain and (colon + 1 >= end or text[colon + 1] != " ")):
                    raise _GiveUp  # a key without a value, or `a:b`
                at = _skip_spaces(text, colon + 1)
                if at >= end or text[at] in ",}":
                    raise _GiveUp  # an empty value
                child, at = self._flow_node(text, line, at)
                if key in entries:
                    raise _GiveUp
                entries[key] = (key_mark, child)
            else:
                child, at = self._flow_node(text, line, at)
                at = _skip_spaces(text, at)
                if at < end and text[at] == ":":
                    raise _GiveUp  # a single-pair mapping inside a sequence
                entries.append(child)
            at = _skip_spaces(text, at)
            if at < end and text[at] == ",":
                at += 1
                continue
            if at < end and text[at] == closer:
                break
            raise _GiveUp
        return _Node("fmap" if mapping else "fseq", line, column, entries), at + 1

    def _flow_node(self, text: str, line: int, at: int) -> tuple[_Node, int]:
        char = text[at]
        if char == "[" or char == "{":
            return self._flow(text, line, at)
        if char == '"' or char == "'":
            match = (_DOUBLE_QUOTED if char == '"' else _SINGLE_QUOTED).match(text, at)
            if match is None:
                raise _GiveUp
            return _Node("scalar", line, at), match.end()
        if char in _FLOW_BAD_START or char in "-?:" and (at + 1 >= len(text) or text[at + 1] in " ,[]{}"):
            raise _GiveUp
        end = _FLOW_PLAIN.match(text, at).end()
        if end < len(text) and text[end] == "#":
            raise _GiveUp
        if not text[at:end].strip(" "):
            raise _GiveUp
        return _Node("scalar", line, at), end

    def _flow_key(self, text: str, at: int) -> tuple[str, int, bool]:
        char = text[at]
        if char == '"' or char == "'":
            match = (_DOUBLE_QUOTED if char == '"' else _SINGLE_QUOTED).match(text, at)
            if match is None:
                raise _GiveUp
            key = match.group()[1:-1]
            if char == '"':
                if "\\" in key:
                    raise _GiveUp
            else:
                key = key.replace("''", "'")
            return key, match.end(), False
        if char in _FLOW_BAD_START or char in "-?:" and (at + 1 >= len(text) or text[at + 1] in " ,[]{}"):
            raise _GiveUp
        end = _FLOW_PLAIN.match(text, at).end()
        key = text[at:end].rstrip(" ")
        if not key:
            raise _GiveUp
        return key, at + len(key), True


def _skip_spaces(text: str, at: int) -> int:
    end = len(text)
    while at < end and text[at] == " ":
        at += 1
    return at


def _is_entry(text: str, column: int) -> bool:
    """Whether a `- ` sequence entry starts at ``column`` of this line."""
    return text[column] == "-" and (column + 1 == len(text) or text[column + 1] == " ")


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
