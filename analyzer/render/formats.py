"""One entry point per command from a ``--format`` name to its renderer, so the CLI only dispatches."""

from __future__ import annotations

CHECK_FORMATS = ("text", "json", "sarif", "junit", "markdown")
DIFF_FORMATS = ("text", "json", "sarif", "junit", "markdown")


def render_check(result, fmt: str, rules: dict, fail_on: str = "low") -> str:
    from analyzer.render import jsonout, junit, markdown, sarif, text

    if fmt == "json":
        return jsonout.render_check(result)
    if fmt == "sarif":
        return sarif.render_check(result, rules)
    if fmt == "junit":
        return junit.render_check(result, rules)
    if fmt == "markdown":
        return markdown.render_check(result, fail_on=fail_on)
    return text.render_check(result)


def render_diff(result, fmt: str) -> str:
    from analyzer import diff
    from analyzer.render import jsonout, junit, markdown, sarif

    if fmt == "json":
        return jsonout.dumps(result.to_json())
    if fmt == "sarif":
        return sarif.render_diff(result)
    if fmt == "junit":
        return junit.render_diff(result)
    if fmt == "markdown":
        return markdown.render_diff(result)
    return diff.render_text(result)
