"""Progress reporting for long stages (load, graph, rules, proofs, report), on stderr.

The analyzer's core takes a :class:`Progress` and calls it; it never decides whether anything
is shown. :data:`NULL` does nothing (the default everywhere); :class:`RichProgress` draws a
rich progress line for every stage that has been running for more than a second. The CLI
picks one with :func:`for_cli`: nothing when stderr is not a terminal or with ``--quiet``.
Standard output is never touched.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager

SHOW_AFTER_S = 1.0  # a stage shorter than this is never drawn


class Stage:
    """A running stage: tell it how far along it is. This one ignores everything."""

    def advance(self, amount: int = 1) -> None:
        pass

    def update(self, *, total: int | None = None, completed: int | None = None,
               description: str | None = None) -> None:
        pass


class Progress:
    """The no-op progress: every stage runs silently."""

    enabled = False

    @contextmanager
    def stage(self, name: str, total: int | None = None):
        yield Stage()

    def note(self, message: str) -> None:
        """A one-line remark (for example, a fallback taken); shown only by a visible progress."""

    def close(self) -> None:
        pass


NULL = Progress()


class _RichStage(Stage):
    def __init__(self, owner: RichProgress, task, name: str):
        self.owner = owner
        self.task = task
        self.name = name
        self.started = time.monotonic()

    def advance(self, amount: int = 1) -> None:
        self.owner.bar.advance(self.task, amount)

    def update(self, *, total=None, completed=None, description=None) -> None:
        changes = {}
        if total is not None:
            changes["total"] = total
        if completed is not None:
            changes["completed"] = completed
        if description is not None:
            changes["description"] = description
        self.owner.bar.update(self.task, **changes)


class RichProgress(Progress):
    """A rich progress line per stage, drawn on stderr once the stage has run for a second."""

    enabled = True

    def __init__(self, console=None, show_after: float = SHOW_AFTER_S):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        self.console = console or Console(stderr=True)
        self.bar = Bar(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), console=self.console, transient=True,
                       redirect_stdout=False, redirect_stderr=False)
        self.show_after = show_after
        self._lock = threading.Lock()
        self._live = False
        self._current: list[_RichStage] = []

    def _reveal(self, stage: _RichStage) -> None:
        with self._lock:
            if stage not in self._current:
                return
            self.bar.update(stage.task, visible=True)
            if not self._live:
                self.bar.start()
                self._live = True

    @contextmanager
    def stage(self, name: str, total: int | None = None):
        task = self.bar.add_task(name, total=total, visible=False)
        current = _RichStage(self, task, name)
        with self._lock:
            self._current.append(current)
        timer = threading.Timer(self.show_after, self._reveal, (current,))
        timer.daemon = True
        timer.start()
        try:
            yield current
        finally:
            timer.cancel()
            with self._lock:
                self._current.remove(current)
                state = next(t for t in self.bar.tasks if t.id == task)
                shown, description = state.visible, state.description
                self.bar.remove_task(task)
                if not self._current and self._live:
                    self.bar.stop()
                    self._live = False
            if shown:
                self.console.print(f"{description}: {time.monotonic() - current.started:.1f} s", style="dim",
                                   highlight=False, markup=False)

    def note(self, message: str) -> None:
        self.console.print(f"agentperm: {message}", highlight=False, markup=False)

    def close(self) -> None:
        with self._lock:
            if self._live:
                self.bar.stop()
                self._live = False


def for_cli(quiet: bool = False, stream=None) -> Progress:
    """The progress the command line uses: rich on a terminal's stderr, nothing otherwise."""
    stream = stream if stream is not None else sys.stderr
    if quiet:
        return NULL
    try:
        interactive = stream.isatty()
    except (AttributeError, ValueError):
        interactive = False
    return RichProgress() if interactive else NULL
