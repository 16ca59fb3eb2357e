"""Where the files agentperm ships beside its code are: the rules catalogue and the report templates.

In the source tree (and an editable install) they are the top-level ``rules/`` and
``reports/templates/``; a built wheel carries copies inside the package, under ``analyzer/_data/``
(``setup.py`` puts them there), so an installed agentperm never reads the source tree.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
PACKAGED = PACKAGE / "_data"


def data_dir(packaged: str, source: str) -> Path:
    """``analyzer/_data/<packaged>`` when installed from a wheel, else ``<repo>/<source>``."""
    inside = PACKAGED / packaged
    return inside if inside.is_dir() else PACKAGE.parent / source


RULES_DIR = data_dir("rules", "rules")
TEMPLATES_DIR = data_dir("templates", "reports/templates")
