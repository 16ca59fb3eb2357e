"""The HTML audit report: reproducible, self-contained, escaped, readable without JavaScript.

The browser tests drive a real headless Chromium (``/usr/bin/chromium``; ``make test`` installs it
when it can) with ``--dump-dom`` and ``--screenshot``; without it they skip and say why.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import REPO_ROOT, invoke_cli

from analyzer.analysis import analyze
from analyzer.findings import Suppression
from analyzer.graph import PermissionGraph
from analyzer.loader import load
from analyzer.render import html as htmlrender
from analyzer.rules import load_rules

DATE = "2025-01-31"
CHROMIUM = "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"{CHROMIUM} is missing: install it with 'sudo apt-get install chromium' (make test does, as root)")
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    """The reports every test here reads, written once through the command line."""
    out = tmp_path_factory.mktemp("reports")
    made = {}
    for name, args in {
        "agency": ("report", "fixtures/agency", "-o", out / "agency.html", "--date", DATE),
        "agency-again": ("report", "fixtures/agency", "-o", out / "again" / "agency.html", "--date", DATE),
        "flawed": ("report", "fixtures/flawed-agency", "-o", out / "flawed.html", "--date", DATE),
        "hostile": ("check", "fixtures/hostile-names", "--report", out / "hostile.html", "--date", DATE),
    }.items():
        code, _, err = invoke_cli(*args)
        assert code in (0, 1), err
        assert "report written to" in err
        made[name] = Path(args[args.index("-o") + 1] if "-o" in args else args[args.index("--report") + 1])
    return made


def text_of(path: Path) -> str:
    return path.read_text(encoding="utf-8")


class Elements(HTMLParser):
    """Every element's tag and attributes, and the text outside script and style."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self._raw = 0

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._raw += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._raw = max(0, self._raw - 1)

    def handle_data(self, data):
        if not self._raw:
            self.text.append(data)


def parse(html: str) -> Elements:
    parser = Elements()
    parser.feed(html)
    parser.close()
    return parser


URL_ATTRIBUTES = {"src", "href", "xlink:href", "action", "formaction", "data", "poster", "srcset", "background",
                  "codebase", "cite", "manifest", "ping"}


def network_references(html: str) -> list[str]:
    """Anything that would make a browser fetch: URL attributes with a scheme or //, CSS url() and @import."""
    found = []
    for tag, attrs in parse(html).elements:
        for name, value in attrs.items():
            if name in URL_ATTRIBUTES and value is not None and re.match(r"\s*([a-zA-Z][a-zA-Z0-9+.-]*:|//)", value):
                found.append(f"<{tag} {name}={value!r}>")
        if tag in ("link", "img", "iframe", "object", "embed", "audio", "video", "source", "base"):
            found.append(f"<{tag}>")
    styles = re.findall(r"<style[^>]*>(.*?)</style>", html, flags=re.DOTALL | re.IGNORECASE)
    styles += [attrs.get("style") or "" for _, attrs in parse(html).elements]
    for css in styles:
        if re.search(r"url\s*\(|@import", css, flags=re.IGNORECASE):
            found.append(f"css: {css[:80]!r}")
    return found


# ---- reproducible and self-contained -------------------------------------------------------------
def test_the_same_input_and_date_give_the_same_bytes(reports):
    assert reports["agency"].read_bytes() == reports["agency-again"].read_bytes()
    beside = reports["agency"].with_name("agency.graph.dot")
    assert beside.read_bytes() == reports["agency-again"].with_name("agency.graph.dot").read_bytes()


@pytest.mark.parametrize("name", ["agency", "flawed", "hostile"])
def test_the_report_loads_nothing_from_the_network(reports, name):
    html = text_of(reports[name])
    assert network_references(html) == []
    if name != "hostile":  # (the hostile names put escaped URLs into tooltips, as text)
        # URLs appear only as the plain text of rule references, never inside a tag
        for tag in re.findall(r"<[^>]*>", html):
            assert "http://" not in tag and "https://" not in tag, tag
    assert reports[name].stat().st_size < 10 * 1024 * 1024


def test_the_report_has_its_parts(reports):
    html = text_of(reports["agency"])
    for anchor in ("cover", "summary", "tenant-isolation", "permissions", "findings", "graph", "inventory", "rules",
                   "suppressions", "method"):
        assert f'id="{anchor}"' in html
    assert '<div class="word">PASS</div>' in html
    assert "sha256:" in html and DATE in html and "agentperm 0.1.0" in html
    assert html.count("<script") == 1  # the optional open-every-<details>-before-printing helper
    assert "@media print" in html and "details::details-content" in html
    assert 'href="agency.graph.dot"' in html


def test_a_clean_deployment_shows_proofs_and_no_crossing(reports):
    html = text_of(reports["agency"])
    assert html.count('<span class="pill proved">PROVED</span>') >= 2
    assert 'class="cross"' not in html
    assert html.count('<td class="home">') == 4


def test_a_flawed_deployment_shows_every_finding_with_its_evidence(reports):
    html = text_of(reports["flawed"])
    result = analyze(load(["fixtures/flawed-agency"]), load_rules())
    assert '<div class="word">FAIL</div>' in html
    assert '<span class="pill violated">VIOLATED</span>' in html
    assert html.count('<details class="finding"') == len(result.active())
    for finding in result.active():
        assert parse_text(finding.message) in html
    assert html.count('<td class="cross">') == 10  # every pair of tenants but umbrella → acme, initech
    assert "Witness call (replayable against a decision endpoint)" in html
    assert '&#34;workflow&#34;: &#34;initech-lead-followup&#34;' in html  # pretty JSON, escaped
    assert "How to fix it" in html and "Why it matters" in html
    assert "workflow initech-lead-followup runs sales-agent" in html  # a path step with its reason


def parse_text(message: str) -> str:
    from markupsafe import escape

    return str(escape(message))


def test_the_hostile_names_are_text_everywhere(reports):
    html = text_of(reports["hostile"])
    assert html.count("<script") == 1
    assert "<img" not in html and "<iframe" not in html and "<marquee" not in html and "onerror=" not in html.replace(
        "onerror=&#34;", "")
    assert "&lt;script&gt;window.__pwned=1" in html
    assert "{{ 7*7 }}" in html and "{% raw %}" in html  # template syntax in a name is shown, not run
    elements = parse(html).elements
    assert not [(tag, name) for tag, attrs in elements for name in attrs if name.startswith("on")]


def test_rule_prose_sets_backticks_as_code_and_escapes_the_rest():
    assert str(htmlrender.ticks("set `ttl: 15m` <b>now</b>")) == "set <code>ttl: 15m</code> &lt;b&gt;now&lt;/b&gt;"
    assert str(htmlrender.ticks("a `<script>` b")) == "a <code>&lt;script&gt;</code> b"
    assert str(htmlrender.ticks("one ` tick <i>")) == "one ` tick &lt;i&gt;"


# ---- rendering a CheckResult directly -------------------------------------------------------------
@pytest.fixture(scope="module")
def flawed():
    deployment = load(["fixtures/flawed-agency"])
    graph = PermissionGraph(deployment)
    rules = load_rules()
    return analyze(deployment, rules, graph), graph, rules


def test_suppressions_are_listed_with_justification_and_expiry(flawed):
    result, graph, rules = flawed
    target = next(f for f in result.findings if f.rule == "shared-credential")
    accepted = Suppression("shared-credential", "credential:agency-master-key", "Legacy key <b>retired</b> in Q3",
                           "2025-09-30")
    findings = tuple(dataclasses.replace(f, suppressed=accepted) if f is target else f for f in result.findings)
    html = htmlrender.render_report(dataclasses.replace(result, findings=findings), graph, rules,
                                    version="0.1.0", date=DATE).html
    appendix = html.split('id="suppressions"')[1].split("</section>")[0]
    assert "Legacy key &lt;b&gt;retired&lt;/b&gt; in Q3" in appendix and "2025-09-30" in appendix
    assert target.message in appendix.replace("&#39;", "'")
    findings_section = html.split('id="findings"')[1].split("</section>")[0]
    assert 'id="rule-shared-credential"' not in findings_section  # its only finding is accepted


def test_an_almost_empty_deployment_still_renders():
    from conftest import build_deployment

    deployment = build_deployment(tools={"calc": {"tenancy": "none", "operations": {"add": {"effect": "read"}}}})
    graph = PermissionGraph(deployment)
    rules = load_rules()
    html = htmlrender.render_report(analyze(deployment, rules, graph), graph, rules, version="0.1.0").html
    assert "The deployment defines no workflows." in html and "not stated" in html


@needs_dot
def test_a_large_graph_collapses_to_a_table_and_a_dot_beside(flawed):
    result, graph, rules = flawed
    rendered = htmlrender.render_report(result, graph, rules, version="0.1.0", date=DATE,
                                        report_name="audit.html", max_graph_nodes=50)
    section = rendered.html.split('id="graph"')[1].split("</section>")[0]
    assert "more than the 50 that stay readable inline" in section
    assert '<a href="audit.graph.dot">audit.graph.dot</a>' in section
    assert "<th>Node kind</th>" in section
    assert list(rendered.attachments) == ["audit.graph.dot"]
    assert rendered.attachments["audit.graph.dot"].startswith("digraph permissions {")


@needs_dot
def test_the_inline_graph_highlights_the_violating_paths(reports):
    section = text_of(reports["flawed"]).split('id="graph"')[1].split('id="inventory"')[0]
    assert section.count("<svg") == 1 + 4  # the whole graph, then one view per tenant
    assert 'stroke="#dc2626"' in section
    assert "<title>workflow initech&#45;lead&#45;followup runs sales&#45;agent" in section or \
        "<title>workflow initech-lead-followup runs sales-agent" in section


# ---- in a real browser ------------------------------------------------------------------------------
@needs_chromium
def test_no_injected_script_runs_in_a_browser(reports):
    from chromium_cdp import Chromium

    with Chromium() as browser:
        browser.open(reports["hostile"].as_uri())
        assert browser.evaluate("typeof window.addEventListener") == "function"
        assert browser.evaluate("typeof window.__pwned") == "undefined"
        assert browser.evaluate("document.documentElement.hasAttribute('data-pwned')") is False
        assert "PWNED" not in browser.evaluate("document.title")
        assert browser.evaluate("document.scripts.length") == 1  # the report's own print helper
        assert browser.evaluate("document.querySelectorAll('img, iframe, object, embed, marquee, link').length") == 0
        assert browser.evaluate("document.querySelectorAll('style').length") == 1
        assert browser.evaluate("[...document.querySelectorAll('*')].filter(e => [...e.attributes]"
                                ".some(a => a.name.startsWith('on'))).length") == 0
        assert "<script>window.__pwned=1;" in browser.evaluate("document.body.innerText")  # shown as text
        assert browser.evaluate("getComputedStyle(document.body).display") == "block"  # </style> did not escape
        # the page asked for nothing but itself
        assert set(browser.requested_urls()) <= {reports["hostile"].as_uri()}
        dom = browser.dom()
    tags = [tag for tag, _ in parse(dom).elements]
    assert tags.count("script") == 1 and "img" not in tags and "iframe" not in tags


@needs_chromium
def test_the_report_reads_without_javascript(reports, tmp_path):
    from chromium_cdp import Chromium

    # a copy with one more script, whose mark shows whether scripts really were off
    page = tmp_path / "flawed.html"
    page.write_text(text_of(reports["flawed"]).replace(
        "</body>", "<script>document.documentElement.setAttribute('data-ran', 'yes')</script></body>"),
        encoding="utf-8")
    with Chromium() as browser:
        browser.open(page.as_uri(), javascript=False)
        assert browser.evaluate("document.documentElement.hasAttribute('data-ran')") is False
        dom = browser.dom()
        visible = browser.evaluate("document.body.innerText")
        assert set(browser.requested_urls()) <= {page.as_uri()}
    text = " ".join(" ".join(parse(dom).text).split())
    visible = " ".join(visible.split()).lower()
    for expected in ("FAIL", "Executive summary", "VIOLATED", "Tenant isolation", "Findings at a glance",
                     "Why it matters", "How to fix it", "no-cross-tenant-reach"):
        assert expected.lower() in visible, expected  # on screen without a script
    for expected in ("sales-agent can call crm.read_contacts on tenant acme in workflow initech-lead-followup",
                     "agency-master-key is held by 4 agents", "workflow initech-lead-followup runs sales-agent"):
        assert expected in text, expected  # in the page (inside a <details> a click opens, no script needed)


@needs_chromium
def test_printing_shows_every_details_even_without_javascript(reports):
    from chromium_cdp import Chromium

    hidden_parts = ("[...document.querySelectorAll('details > :not(summary)')]"
                    ".map(e => e.checkVisibility())")
    with Chromium() as browser:
        browser.open(reports["flawed"].as_uri(), javascript=False)
        on_screen = browser.evaluate(hidden_parts)
        assert on_screen and not any(on_screen)  # closed until clicked
        browser.send("Emulation.setEmulatedMedia", media="print")
        assert all(browser.evaluate(hidden_parts))  # the print stylesheet opens them all


@needs_chromium
def test_a_screenshot_of_the_hostile_report(reports):
    import tempfile

    target = REPO_ROOT / "reports" / "out" / "hostile-names.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        from chromium_cdp import FLAGS

        completed = subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--hide-scrollbars", "--window-size=1280,4000",
             f"--screenshot={target}", reports["hostile"].as_uri()],
            check=False, capture_output=True, timeout=60)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert target.stat().st_size > 20_000  # a rendered page, not a blank one
