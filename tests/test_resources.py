"""A built wheel carries the rules catalogue and the report templates (analyzer/resources.py) and
runs from a clean virtualenv, far from the source tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from analyzer import __version__
from analyzer.resources import RULES_DIR, TEMPLATES_DIR


def test_the_source_tree_reads_its_own_rules_and_templates():
    assert RULES_DIR == REPO_ROOT / "rules" and TEMPLATES_DIR == REPO_ROOT / "reports" / "templates"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if shutil.which("pip", path=os.path.dirname(sys.executable)) is None:
        pytest.skip("pip is not in this interpreter's environment")
    out = tmp_path_factory.mktemp("wheel")
    # a copy of the tree, so that the build leaves nothing (build/, egg-info) in the checkout
    source = out / "src"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis", "out", "_data"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(source)], check=True, capture_output=True, timeout=300)
    (found,) = out.glob("agentperm-*.whl")
    return found


def test_the_wheel_holds_the_catalogue_and_the_templates(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    rules = {Path(n).name for n in names if n.startswith("analyzer/_data/rules/")}
    assert rules == {p.name for p in (REPO_ROOT / "rules").glob("*.yaml")}
    templates = {Path(n).name for n in names if n.startswith("analyzer/_data/templates/")}
    assert templates == {p.name for p in (REPO_ROOT / "reports" / "templates").iterdir() if p.is_file()}


def test_the_wheel_runs_from_a_clean_virtualenv(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    target = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                            check=True, capture_output=True, text=True).stdout.strip()
    with zipfile.ZipFile(wheel) as archive:  # what pip does with a pure wheel, without a network
        archive.extractall(target)
    (dist_info,) = Path(target).glob("agentperm-*.dist-info")
    # the dependencies come from this environment's site-packages (PYTHONPATH: no .pth files, so the
    # editable install of the source tree is not seen)
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    away = tmp_path / "elsewhere"
    away.mkdir()

    def run(*args):
        return subprocess.run([str(python), "-c", "from analyzer.cli import main; main()", *args], cwd=away, check=False,
                              env=env, capture_output=True, text=True, timeout=120)

    show = "import analyzer.resources as r; print(r.RULES_DIR); print(r.TEMPLATES_DIR)"
    where = subprocess.run([str(python), "-c", show], cwd=away, env=env, capture_output=True, text=True, check=False)
    assert all(line.startswith(target) for line in where.stdout.split()), where.stdout + where.stderr
    version = run("--version")
    assert version.returncode == 0 and __version__ in version.stdout
    checked = run("check", str(REPO_ROOT / "fixtures" / "agency"), "--format", "sarif")
    assert checked.returncode == 0, checked.stderr
    in_tree = subprocess.run([sys.executable, "-c", "from analyzer.cli import main; main()", "check",
                              "fixtures/agency", "--format", "sarif"], cwd=REPO_ROOT, capture_output=True, text=True, check=False)

    def rule_ids(sarif: str) -> list[str]:
        return [r["id"] for r in json.loads(sarif)["runs"][0]["tool"]["driver"]["rules"]]

    assert len(rule_ids(checked.stdout)) >= 20 and rule_ids(checked.stdout) == rule_ids(in_tree.stdout)
    report = run("report", str(REPO_ROOT / "fixtures" / "agency"), "-o", str(away / "r.html"), "--date", "2026-12-07")
    assert report.returncode == 0, report.stderr
    assert "<html" in (away / "r.html").read_text(encoding="utf-8")
    assert dist_info.is_dir()
