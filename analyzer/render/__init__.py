"""Renderers: the same sorted CheckResult as text, JSON, and (later) SARIF, JUnit, Markdown, HTML."""
