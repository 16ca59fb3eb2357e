"""The package's imports run one way: no module imports, even lazily inside a function, a module
that imports it back (cli ↔ cli_harness and prover ↔ parallel once did)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parent.parent / "analyzer"


def _module_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _target(name: str) -> str:
    """The module an imported name lives in: ``analyzer.harness`` + ``fuzz`` is a module of its own."""
    as_module = PACKAGE.parent / (name.replace(".", "/") + ".py")
    as_package = PACKAGE.parent / name.replace(".", "/") / "__init__.py"
    return name if as_module.exists() or as_package.exists() else name.rsplit(".", 1)[0]


def import_graph() -> nx.DiGraph:
    """Every import between the package's modules, at top level or inside functions."""
    graph = nx.DiGraph()
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _module_of(path)
        graph.add_node(source)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("analyzer"):
                targets = [_target(f"{node.module}.{alias.name}") for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names if alias.name.startswith("analyzer")]
            for target in targets:
                # the package's __init__ holds only the version; importing it from below is no circle
                if target != source and target != "analyzer":
                    graph.add_edge(source, target)
    return graph


def test_the_graph_sees_lazy_imports():
    graph = import_graph()
    assert graph.has_edge("analyzer.cli", "analyzer.cli_harness")
    assert graph.has_edge("analyzer.prover", "analyzer.parallel")  # imported inside Prover, only when forking


def test_no_import_circles():
    cycles = sorted(sorted(cycle) for cycle in nx.simple_cycles(import_graph()))
    assert cycles == [], f"import circles: {cycles}"
