"""Source positions and the loader's error type."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, eq=False, repr=False)
class Loc:
    """A position in an input file; line and column are 1-based (0 when the file has no lines).

    Compared, ordered and hashed as the tuple (file, line, column), so a :class:`LazyLoc` and a
    Loc with the same values are interchangeable everywhere.
    """

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.column}"

    def __repr__(self) -> str:
        return f"Loc(file={self.file!r}, line={self.line!r}, column={self.column!r})"

    def to_json(self) -> dict:
        return {"file": self.file, "line": self.line, "column": self.column}

    def __hash__(self) -> int:
        return hash((self.file, self.line, self.column))

    def __eq__(self, other):
        if isinstance(other, Loc):
            return (self.file, self.line, self.column) == (other.file, other.line, other.column)
        return NotImplemented

    def __lt__(self, other):
        if isinstance(other, Loc):
            return (self.file, self.line, self.column) < (other.file, other.line, other.column)
        return NotImplemented

    def __le__(self, other):
        if isinstance(other, Loc):
            return (self.file, self.line, self.column) <= (other.file, other.line, other.column)
        return NotImplemented

    def __gt__(self, other):
        if isinstance(other, Loc):
            return (self.file, self.line, self.column) > (other.file, other.line, other.column)
        return NotImplemented

    def __ge__(self, other):
        if isinstance(other, Loc):
            return (self.file, self.line, self.column) >= (other.file, other.line, other.column)
        return NotImplemented

    def __reduce__(self):
        return (Loc, (self.file, self.line, self.column))


class LazyLoc(Loc):
    """A Loc whose line and column are computed on first use, by ``resolve(request)`` → (line, column).

    A large deployment has hundreds of thousands of positions and a run reads a few of them;
    once resolved it is a plain attribute read. Pickled and copied as a plain :class:`Loc`.
    """

    def __init__(self, file: str, resolve, request):
        state = self.__dict__  # frozen: written around __setattr__, as dataclasses do
        state["file"] = file
        state["_lazy"] = (resolve, request)

    def __getattr__(self, name: str):
        # only called while `line`/`column` are not set yet
        state = self.__dict__
        lazy = state.get("_lazy")
        if lazy is None or name not in ("line", "column"):
            raise AttributeError(name)
        resolve, request = lazy
        state["line"], state["column"] = resolve(request)
        del state["_lazy"]  # the document is no longer needed
        return state[name]


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem in the input, with where it is and, when there is one, how to fix it."""

    loc: Loc
    message: str
    hint: str | None = None

    def render(self) -> str:
        text = f"{self.loc}: error: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class InputError(Exception):
    """Every problem found in the input, reported together; the CLI maps it to exit 2."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = sorted(set(diagnostics))
        super().__init__("\n".join(d.render() for d in self.diagnostics))
