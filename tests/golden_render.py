"""Render golden outputs in a fresh process and print them as JSON ({golden name: text}).

Why a separate process: Z3 keeps global state between solver calls, so the concrete witness
values it picks (an `amount` of 309 or 313, both inside the same region) depend on what ran
earlier in the same interpreter. The command line starts fresh each time; golden files must
too, or they would change with the order the tests happen to run in.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SUPPRESSIONS = "tests/golden/suppressed/agentperm-suppressions.yaml"
SUPPRESSION_DAY = datetime.date(2025, 6, 1)


def render_all(part: str) -> dict[str, str]:
    """``check``: the check goldens (flawed-agency first, then agency); ``diff``: the diff goldens.

    Each part runs in its own process so that each solver history is that of the command line.
    """
    from analyzer import diff, suppressions
    from analyzer.analysis import analyze, with_suppressions
    from analyzer.loader import load
    from analyzer.render import junit, markdown, sarif, text
    from analyzer.rules import load_rules

    outputs: dict[str, str] = {}
    if part == "diff":
        changed = diff.diff(load("fixtures/conditions/threshold-gap-fixed/deployment.yaml"),
                            load("fixtures/conditions/threshold-gap/deployment.yaml"))
        outputs["diff-threshold-gap.sarif"] = sarif.render_diff(changed)
        outputs["diff-threshold-gap.junit.xml"] = junit.render_diff(changed)
        outputs["diff-threshold-gap.md"] = markdown.render_diff(changed)
        return outputs
    rules = load_rules()
    for fixture in ("flawed-agency", "agency"):  # flawed first: the same solver history as the command line
        result = analyze(load(f"fixtures/{fixture}"), rules)
        outputs[f"{fixture}.sarif"] = sarif.render_check(result, rules)
        outputs[f"{fixture}.junit.xml"] = junit.render_check(result, rules)
        outputs[f"{fixture}.md"] = markdown.render_check(result)
        if fixture == "flawed-agency":
            from analyzer.render import jsonout

            marked = with_suppressions(result, suppressions.load(SUPPRESSIONS), SUPPRESSION_DAY, rules)
            outputs["suppressed/flawed-agency.txt"] = text.render_check(marked)
            outputs["suppressed/flawed-agency.json"] = jsonout.render_check(marked)
            outputs["suppressed/flawed-agency.sarif"] = sarif.render_check(marked, rules)
            outputs["suppressed/flawed-agency.junit.xml"] = junit.render_check(marked, rules)
            outputs["suppressed/flawed-agency.md"] = markdown.render_check(marked)
    return outputs


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    with contextlib.chdir(REPO_ROOT):
        sys.stdout.write(json.dumps(render_all(sys.argv[1]), sort_keys=True))
