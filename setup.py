"""The one build step pyproject.toml cannot say: copy the rules catalogue and the report templates
(top-level ``rules/`` and ``reports/templates/`` in the source tree) into the built package as
``analyzer/_data/``, so an installed wheel reads its own copies (analyzer/resources.py)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA = {"rules": ROOT / "rules", "templates": ROOT / "reports" / "templates"}


class BuildWithData(build_py):
    def run(self):
        super().run()
        for name, source in DATA.items():
            target = Path(self.build_lib) / "analyzer" / "_data" / name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithData})
