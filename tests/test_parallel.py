"""`check --jobs N` and progress: the same bytes on stdout whatever the number of processes, and
progress only on a terminal's stderr."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from conftest import FIXTURES, REPO_ROOT, run_cli

from analyzer import loader, parallel, progress
from analyzer.analysis import analyze
from analyzer.graph import PermissionGraph
from analyzer.prover import Prover
from analyzer.render.formats import render_check
from analyzer.rules import load_rules


class Recording(progress.Progress):
    """The no-op progress, remembering the stages and notes it was told about."""

    def __init__(self):
        self.stages: list[str] = []
        self.notes: list[str] = []

    def stage(self, name, total=None):
        self.stages.append(name)
        return super().stage(name, total)

    def note(self, message):
        self.notes.append(message)


def _json(deployment, rules, jobs: int, recorder: Recording | None = None) -> str:
    pg = PermissionGraph(deployment)
    prover = Prover(pg, jobs=jobs, parallel_threshold=0, progress=recorder)
    return render_check(analyze(deployment, rules, pg, prover=prover), "json", rules, "low")


@pytest.fixture(scope="module")
def synthetic_100(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "tenants-100"
    subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "generate.py"), "--tenants", "100", "--out", str(out),
                    "--quiet"], check=True, cwd=REPO_ROOT)
    return loader.load([str(out)])


@pytest.mark.parametrize("which", ["flawed-agency", "synthetic-100"])
def test_two_processes_give_the_same_json_as_one(which, request):
    deployment = loader.load([str(FIXTURES / "flawed-agency")]) if which == "flawed-agency" \
        else request.getfixturevalue("synthetic_100")
    rules = load_rules()
    recorder = Recording()
    serial = _json(deployment, rules, 1)
    split = _json(deployment, rules, 2, recorder)
    assert recorder.notes == [], "the parallel path fell back to serial"
    assert any(stage.startswith("proofs (2 processes)") for stage in recorder.stages), recorder.stages
    assert split == serial
    assert '"status": "violated"' in serial


def test_a_failing_pool_falls_back_to_serial_and_says_so(monkeypatch):
    deployment = loader.load([str(FIXTURES / "flawed-agency")])
    rules = load_rules()

    def broken(prover, jobs):
        raise OSError("no processes for you")

    monkeypatch.setattr(parallel, "prove_split", broken)
    recorder = Recording()
    assert _json(deployment, rules, 2, recorder) == _json(deployment, rules, 1)
    assert recorder.notes and "proving serially" in recorder.notes[0]


def test_shares_are_consecutive_and_cover_every_workflow():
    deployment = loader.load([str(FIXTURES / "flawed-agency")])
    shares = parallel.split(deployment, 3)
    assert [w for share in shares for w in share] == sorted(deployment.workflows)
    assert 1 <= len(shares) <= 3


def test_cli_jobs_and_quiet_leave_stdout_alone():
    target = str(FIXTURES / "flawed-agency")
    one = run_cli("check", target, "--format", "json", "--jobs", "1")
    two = run_cli("check", target, "--format", "json", "--jobs", "2", "--quiet")
    assert one[0] == two[0] == 1
    assert one[1] == two[1]
    assert one[2] == two[2] == ""  # stderr is not a terminal here: no progress
    assert run_cli("check", target, "--jobs", "0")[0] == 2


def test_progress_is_off_unless_stderr_is_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert progress.for_cli(quiet=False, stream=io.StringIO()) is progress.NULL
    assert progress.for_cli(quiet=True, stream=Tty()) is progress.NULL
    assert isinstance(progress.for_cli(quiet=False, stream=Tty()), progress.RichProgress)


def test_rich_progress_draws_only_stages_that_run_long_enough():
    import threading

    from rich.console import Console

    sink = io.StringIO()
    shown = progress.RichProgress(console=Console(file=sink, force_terminal=True, width=100), show_after=0.05)
    with shown.stage("quick"):
        pass
    with shown.stage("proofs", total=4) as stage:
        threading.Event().wait(0.3)
        stage.advance(4)
    shown.note("fell back")
    shown.close()
    text = sink.getvalue()
    assert "proofs" in text and "quick" not in text and "fell back" in text


def test_the_default_jobs_split_only_very_large_proofs(monkeypatch):
    """--jobs left at its default forks only past AUTO_PARALLEL_THRESHOLD (splitting did not pay
    at L or XL on 2 cores); --jobs N asked for splits whatever is past PARALLEL_THRESHOLD."""
    from analyzer import cli
    from analyzer import prover as prover_module

    assert cli._parallel_threshold(None) == prover_module.AUTO_PARALLEL_THRESHOLD
    assert cli._parallel_threshold(2) == prover_module.PARALLEL_THRESHOLD < prover_module.AUTO_PARALLEL_THRESHOLD
    deployment = loader.load(str(FIXTURES / "flawed-agency"))
    seen = []
    original = Prover.__init__

    def spy(self, *args, **kwargs):
        seen.append((kwargs.get("jobs"), kwargs.get("parallel_threshold")))
        original(self, *args, **kwargs)

    monkeypatch.setattr(Prover, "__init__", spy)
    analyze(deployment, load_rules(), jobs=3, parallel_threshold=123)
    analyze(deployment, load_rules(), jobs=3)
    assert seen == [(3, 123), (3, prover_module.PARALLEL_THRESHOLD)]
