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
from conftest import REPO_ROOT, bench_generator, invoke_cli

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
    assert '&#34;workflow&#34;: &#34;initech-platform-ops&#34;' in html  # pretty JSON, escaped
    assert "How to fix it" in html and "Why it matters" in html
    assert "workflow initech-platform-ops runs ops-agent" in html  # a path step with its reason
    for finding in result.active():  # a root cause shows its edit and how much it lets through
        if finding.root_cause is not None:
            assert parse_text(finding.root_cause["remediation"]) in html
            assert f"{finding.root_cause['classes']} witness class(es):" in html


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
    assert rendered.attachments["audit.graph.dot"].text().startswith("digraph permissions {")


@needs_dot
def test_the_inline_graph_highlights_the_violating_paths(reports):
    section = text_of(reports["flawed"]).split('id="graph"')[1].split('id="inventory"')[0]
    assert section.count("<svg") == 1 + 4  # the whole graph, then one view per tenant
    assert 'stroke="#dc2626"' in section
    assert "<title>workflow initech&#45;lead&#45;followup runs sales&#45;agent" in section or \
        "<title>workflow initech-lead-followup runs sales-agent" in section


# ---- large deployments: every part collapses, the full data goes beside -------------------------------
LARGE = (70, 210)  # tenants: past every bound (agents, tools, tenants, table rows, graph nodes); 3x apart


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> dict[int, Path]:
    """The reports of two synthetic agencies (10 agents a tenant, violations on), through the command line."""
    generator = bench_generator()
    out = tmp_path_factory.mktemp("large")
    made = {}
    for tenants in LARGE:
        source = out / f"agency-{tenants}"
        generator.write(generator.generate(tenants), str(source))
        report = out / f"agency-{tenants}.html"
        code, _, err = invoke_cli("report", source, "-o", report, "--date", DATE)
        assert code == 0, err
        made[tenants] = report
    clean = out / "clean"
    generator.write(generator.generate(LARGE[0], violations=False), str(clean))
    code, _, err = invoke_cli("report", clean, "-o", out / "clean.html", "--date", DATE)
    assert code == 0, err
    made["clean"] = out / "clean.html"
    again = out / "again" / f"agency-{LARGE[0]}.html"
    code, _, err = invoke_cli("report", out / f"agency-{LARGE[0]}", "-o", again, "--date", DATE)
    assert code == 0, err
    made["again"] = again
    return made


def section(html: str, anchor: str) -> str:
    return html.split(f'<section class="sheet" id="{anchor}">')[1].split("</section>")[0]


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def relative_links(html: str) -> list[str]:
    return [attrs["href"] for tag, attrs in parse(html).elements
            if tag == "a" and attrs.get("href") and not attrs["href"].startswith("#")]


def test_a_large_report_is_bounded_whatever_the_size_of_the_deployment(large):
    small, big = (large[n] for n in LARGE)
    for report in (small, big):
        assert report.stat().st_size < 2 * 1024 * 1024, report  # the 1,000-tenant agency's is about 1 MB
        html = text_of(report)
        assert network_references(html) == []
        # each part shows at most its bound's number of rows, however many the deployment has
        for title in ("Tenants", "Agents", "Roles", "Tools and operations", "Credentials", "Workflows"):
            table = section(html, "inventory").split(f"<h3>{title}</h3>")[1].split("<h3>")[0]
            assert table.count("<tr>") <= htmlrender.MAX_INVENTORY_ROWS + 1, title  # + the header
        permissions = section(html, "permissions")
        assert '<table class="perm">' not in permissions  # no agent × tool matrix
        assert permissions.split("<h3>By tool</h3>")[1].split("<h3>")[0].count("<tr>") <= htmlrender.MAX_TOOL_SUMMARY + 1
        assert section(html, "tenant-isolation").count("<tr>") <= htmlrender.MAX_MATRIX_TENANTS + 1
        assert section(html, "graph").count('<details class="view">') <= htmlrender.MAX_TENANT_VIEWS
        # the whole graph's DOT is beside it at every size (30 MB at 210 tenants), linked from the graph section
        dot = report.with_name(report.name.replace(".html", ".graph.dot"))
        with open(dot, encoding="utf-8") as handle:
            assert handle.readline() == "digraph permissions {\n"
        assert f'href="{dot.name}"' in section(html, "graph")
    # three times the agents: the same number of agent rows in the report, three times the data beside it
    agents_shown = [section(text_of(r), "inventory").split("<h3>Agents</h3>")[1].split("<h3>")[0].count("<tr>")
                    for r in (small, big)]
    assert agents_shown[0] == agents_shown[1] == htmlrender.MAX_INVENTORY_ROWS + 1
    beside = [folder_bytes(r.with_name(r.stem + ".files")) for r in (small, big)]
    assert beside[1] > 2 * beside[0]
    rows = [len((r.with_name(r.stem + ".files") / "inventory" / "agents.csv").read_text().splitlines()) - 1
            for r in (small, big)]
    assert rows == [10 * LARGE[0], 10 * LARGE[1]]  # every agent, beside


def test_a_large_report_and_the_files_beside_it_are_the_same_bytes_every_time(large):
    first, again = large[LARGE[0]], large["again"]
    assert first.read_bytes() == again.read_bytes()
    files = sorted(f.relative_to(first.parent) for f in (first.parent / (first.stem + ".files")).rglob("*")
                   if f.is_file())
    assert len(files) > 10
    files.append(first.relative_to(first.parent).with_suffix(".graph.dot"))
    assert all((first.parent / f).read_bytes() == (again.parent / f).read_bytes() for f in files)


def test_a_large_report_says_what_it_collapsed_and_links_the_full_data_beside(large):
    from urllib.parse import unquote

    report = large[LARGE[1]]
    html = text_of(report)
    folder = report.with_name(report.stem + ".files")
    assert f'<a href="{folder.name}/"><code>{folder.name}/</code></a>' in html  # said up front, in the contents
    assert "too many for one matrix" in section(html, "tenant-isolation")
    assert f'href="{folder.name}/tenant-matrix.csv"' in section(html, "tenant-isolation")
    permissions = section(html, "permissions")
    assert "<h3>By tool</h3>" in permissions and "<h3>Agents named in findings</h3>" in permissions
    assert f'href="{folder.name}/agent-permissions.csv"' in permissions
    graph = section(html, "graph")
    assert "Graphviz cannot lay it out in useful time" in graph and "<h3>What the findings name</h3>" in graph
    assert f'Its full DOT is beside this report, to search or to filter: <a href="{report.stem}.graph.dot">' in graph
    assert "tenants are too many to draw one by one" in graph
    assert f"Showing {htmlrender.MAX_INVENTORY_ROWS} of {10 * LARGE[1]:,} agents" in section(html, "inventory")
    # every relative link opens a file (or the folder) beside the report; every file there is linked
    links = relative_links(html)
    assert links and all((report.parent / unquote(link)).exists() for link in links), links
    linked = {unquote(link) for link in links}
    written = {str(f.relative_to(report.parent)) for f in folder.rglob("*") if f.is_file()}
    assert written - linked == {f"{folder.name}/README.txt"}
    assert f"{report.stem}.graph.dot" in linked  # the whole graph's DOT, next to the folder
    for name in ("findings.csv", "result.json", "agent-permissions.csv", "tool-summary.csv", "tenant-matrix.csv",
                 "inventory/agents.csv", "inventory/credentials.csv", "inventory/role-permissions.csv",
                 "graph/findings.dot"):
        assert (folder / name).stat().st_size > 0, name
    assert (folder / "graph" / "findings.dot").read_text().startswith("digraph permissions {")
    listed = (folder / "README.txt").read_text()
    assert all(name.split("/", 1)[1] in listed for name in written - {f"{folder.name}/README.txt"})


def test_a_large_clean_deployment_collapses_too_and_links_only_what_is_written(large):
    from urllib.parse import unquote

    report = large["clean"]
    html = text_of(report)
    assert '<div class="word">PASS</div>' in html and "No finding names an agent." in html
    assert "too many for one matrix" in html and "<h3>By tool</h3>" in html
    assert "No tenant takes part in a crossing or a finding." in section(html, "graph")
    links = relative_links(html)
    assert links and all((report.parent / unquote(link)).exists() for link in links), links
    assert not (report.parent / "clean.files" / "graph").exists()  # nothing to draw: no view's DOT, and no link to one
    assert (report.parent / "clean.graph.dot").stat().st_size > 0  # the whole graph's is there all the same


def test_every_finding_of_a_large_deployment_is_in_the_report_with_its_line(large):
    import csv
    import json

    from markupsafe import escape

    report = large[LARGE[1]]
    html = text_of(report)
    folder = report.with_name(report.stem + ".files")
    findings = json.loads((folder / "result.json").read_text())["findings"]
    assert findings and {f["rule"] for f in findings} >= {"no-cross-tenant-reach", "no-ungated-high-risk",
                                                           "multi-tenant-credential", "shared-credential"}
    assert html.count('<details class="finding"') == len(findings)  # few findings: all in full
    with open(folder / "findings.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(findings)
    for finding, row in zip(findings, rows):
        where = f"{finding['location']['file']}:{finding['location']['line']}:{finding['location']['column']}"
        assert str(escape(where)) in html and str(escape(finding["message"])) in html
        assert (row["rule"], row["location"], row["subjects"]) == (finding["rule"], where, "; ".join(finding["subjects"]))


def test_many_findings_collapse_to_lines_and_counts_and_every_one_is_beside(flawed, monkeypatch):
    import csv
    import io

    result, graph, rules = flawed
    monkeypatch.setattr(htmlrender, "MAX_DETAILED_FINDINGS", 10)
    monkeypatch.setattr(htmlrender, "MAX_LISTED_FINDINGS", 30)
    rendered = htmlrender.render_report(result, graph, rules, version="0.1.0", date=DATE, report_name="audit.html")
    findings = section(rendered.html, "findings")
    active = result.active()
    assert findings.count('<details class="finding"') == 10
    assert findings.count('<tr id="finding-') == 30
    unlisted = re.findall(r"(\d+) more finding\(s\) of <code>([\w-]+)</code> are not listed here", findings)
    assert sum(int(n) for n, _ in unlisted) == len(active) - 40
    assert findings.count('href="audit.files/findings.csv"') == len(unlisted)
    # every rule keeps at least one finding in full (the budget is shared, smallest rules first)
    assert all(f'id="rule-{rule}"' in findings for rule in {f.rule for f in active})
    rows = list(csv.DictReader(io.StringIO(rendered.attachments["audit.files/findings.csv"])))
    assert [(r["rule"], r["location"], r["subjects"]) for r in rows] == [
        (f.rule, str(f.location), "; ".join(f.subjects)) for f in result.findings]


def test_csv_beside_the_report_cannot_run_as_a_spreadsheet_formula():
    text = htmlrender.csv_text(["id", "name"], [["a", "=HYPERLINK(\"http://x\")"], ["b", ["+1", "@x"]], ["c", None]])
    assert text == 'id,name\na,"\'=HYPERLINK(""http://x"")"\nb,\'+1; @x\nc,\n'


def collapse_everything(monkeypatch) -> None:
    """Bounds so small that even a fixture collapses every part."""
    for name, value in {"MAX_INLINE_GRAPH_NODES": 1, "MAX_MATRIX_AGENTS": 0, "MAX_MATRIX_TOOLS": 0, "MAX_MATRIX_TENANTS": 1, "MAX_TENANT_VIEWS": 1,
                        "MAX_INVENTORY_ROWS": 1, "MAX_TABLE_ITEMS": 0, "MAX_CELL_ITEMS": 1, "MAX_DRAWABLE_NODES": 1,
                        "MAX_DETAILED_FINDINGS": 1, "MAX_LISTED_FINDINGS": 1, "MAX_LISTED_FILES": 0}.items():
        monkeypatch.setattr(htmlrender, name, value)


@pytest.mark.parametrize("collapsed", [False, True], ids=["drawable", "past-every-bound"])
def test_the_whole_graph_dot_is_written_beside_the_report_at_every_size(flawed, monkeypatch, tmp_path, collapsed):
    from analyzer.render import dot as dotrender

    result, graph, rules = flawed
    if collapsed:
        collapse_everything(monkeypatch)
    rendered = htmlrender.render_report(result, graph, rules, version="0.1.0", date=DATE, report_name="audit.html")
    full = rendered.attachments["audit.graph.dot"]
    assert isinstance(full, htmlrender.Streamed)  # written to its file in pieces, never held whole
    violated = {inv.id for inv in result.invariants if inv.status == "violated"}
    expected = dotrender.dot_source(graph, highlight=dotrender.highlight_of(
        [f for f in result.active() if f.rule in violated], graph), title=f"Permission graph of {graph.deployment.name}")
    assert full.text() == expected
    rendered.write(str(tmp_path / "out" / "audit.html"))
    assert (tmp_path / "out" / "audit.graph.dot").read_text(encoding="utf-8") == expected
    assert (tmp_path / "out" / "audit.html").read_text(encoding="utf-8") == rendered.html
    graph_section = section(rendered.html, "graph")
    assert 'Full DOT source: <a href="audit.graph.dot">audit.graph.dot</a> (beside this file).' in graph_section
    # past the bound Graphviz can lay out, the views to draw go into graph/ beside, and the note says where
    assert ('href="audit.files/graph/"' in graph_section) is collapsed
    assert ("to search or to filter" in graph_section) is collapsed
    if collapsed:
        folder = tmp_path / "out" / "audit.files"
        assert (folder / "graph" / "findings.dot").exists()
        assert "audit.graph.dot" in (folder / "README.txt").read_text(encoding="utf-8")
        assert 'whole permission graph\'s DOT in <a href="audit.graph.dot">' in rendered.html.split('id="summary"')[0]


@pytest.fixture
def hostile_collapsed(monkeypatch, tmp_path) -> Path:
    """The hostile-names report with every part collapsed, as the command line writes it."""
    collapse_everything(monkeypatch)
    report = tmp_path / "hostile: <x>.html"  # a name that must not read as a scheme or markup in a link
    code, _, err = invoke_cli("report", "fixtures/hostile-names", "-o", report, "--date", DATE)
    assert code == 0, err
    return report


def test_collapsed_parts_keep_hostile_names_as_text(hostile_collapsed):
    from urllib.parse import unquote

    html = text_of(hostile_collapsed)
    assert network_references(html) == []
    assert html.count("<script") == 1 and "<img" not in html and "<iframe" not in html
    assert not [(tag, name) for tag, attrs in parse(html).elements for name in attrs if name.startswith("on")]
    assert "&lt;script&gt;window.__pwned=1" in html
    for collapsed in ("too many for one matrix", "<h3>By tool</h3>", "Graphviz cannot lay it out in useful time",
                      "tenants are too many to draw one by one", "Showing 1 of"):
        assert collapsed in html, collapsed
    links = relative_links(html)
    assert links and all(link.startswith("hostile%3A%20%3Cx%3E.files/") or link == "hostile%3A%20%3Cx%3E.graph.dot"
                         for link in links)
    assert "hostile%3A%20%3Cx%3E.graph.dot" in links
    assert all((hostile_collapsed.parent / unquote(link)).exists() for link in links)


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
def test_no_injected_script_runs_when_every_part_is_collapsed(hostile_collapsed):
    from chromium_cdp import Chromium

    with Chromium() as browser:
        browser.open(hostile_collapsed.as_uri())
        assert browser.evaluate("typeof window.__pwned") == "undefined"
        assert browser.evaluate("document.documentElement.hasAttribute('data-pwned')") is False
        assert browser.evaluate("document.scripts.length") == 1
        assert browser.evaluate("document.querySelectorAll('#permissions table').length") >= 2  # the summaries
        assert set(browser.requested_urls()) <= {hostile_collapsed.as_uri()}


@needs_chromium
def test_the_report_of_a_large_deployment_opens_in_a_browser(large):
    from chromium_cdp import Chromium

    report = large[LARGE[1]]
    with Chromium() as browser:
        browser.open(report.as_uri(), javascript=False)
        visible = browser.evaluate("document.body.innerText").lower()  # (h4 headings are set in capitals)
        for expected in ("by tool", "agents named in findings", "what the findings name", "files beside this report"):
            assert expected in visible, expected
        assert set(browser.requested_urls()) <= {report.as_uri()}  # the files beside are linked, not loaded


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
    for expected in ("crm leaves tenancy to the prompt, so ops-agent, research-agent",
                     "agency-master-key is held by 4 agents", "workflow initech-platform-ops runs ops-agent"):
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
