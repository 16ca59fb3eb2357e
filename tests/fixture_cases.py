"""Discovery of deployment fixtures for the loader and schema tests; nothing here is listed by hand.

- ``invalid_cases()``: every ``fixtures/invalid/<case>/`` folder, its deployment files (every
  ``*.yaml``/``*.yml`` except ``expected.yaml``) and its parsed ``expected.yaml``.
- ``valid_units()``: every other folder under ``fixtures/`` holding deployment files directly,
  as one deployment (``fixtures/agency``, ``fixtures/rules/*/firing``, ``fixtures/conditions/*``...).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
INVALID = FIXTURES / "invalid"
EXPECTED = "expected.yaml"
SUPPRESSIONS_FILE = "agentperm-suppressions.yaml"  # a suppressions file beside the deployment, not part of it


def deployment_files(folder: Path) -> list[Path]:
    """The deployment files directly in a folder, sorted as the loader merges them."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix in (".yaml", ".yml") and p.name != EXPECTED
                  and not p.name.startswith(".") and p.name != SUPPRESSIONS_FILE)


@dataclass(frozen=True)
class ExpectedError:
    file: str
    line: int
    column: int
    contains: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: ...{self.contains}..."


@dataclass(frozen=True)
class InvalidCase:
    name: str
    folder: Path
    files: tuple[Path, ...]
    errors: tuple[ExpectedError, ...]
    schema: str  # "invalid" or "n/a"


def invalid_cases() -> list[InvalidCase]:
    cases = []
    for folder in sorted(p for p in INVALID.iterdir() if p.is_dir()):
        expected = yaml.safe_load((folder / EXPECTED).read_text(encoding="utf-8"))
        errors = tuple(ExpectedError(e["file"], int(e["line"]), int(e["column"]), str(e["contains"]))
                       for e in expected["errors"])
        cases.append(InvalidCase(folder.name, folder, tuple(deployment_files(folder)), errors,
                                 str(expected["schema"])))
    return cases


@dataclass(frozen=True)
class ValidUnit:
    name: str  # the folder relative to fixtures/
    files: tuple[Path, ...]


def valid_units() -> list[ValidUnit]:
    units = []
    for folder in sorted([FIXTURES, *(p for p in FIXTURES.rglob("*") if p.is_dir())]):
        relative = folder.relative_to(FIXTURES)
        if relative.parts[:1] == ("invalid",) or any(part.startswith(".") for part in relative.parts):
            continue
        if any(part.endswith(".tests") for part in relative.parts):  # decision test suites, beside a deployment
            continue
        files = deployment_files(folder)
        if files:
            units.append(ValidUnit(relative.as_posix(), tuple(files)))
    return units
