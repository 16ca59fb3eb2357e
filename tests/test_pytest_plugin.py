"""The pytest plugin (entry point `agentperm`): the `agentperm_server` fixture and `run_fuzz`."""

from __future__ import annotations

from importlib.metadata import entry_points

import httpx
import pytest
from conftest import FIXTURES

from analyzer.pytest_plugin import run_fuzz

AGENCY = FIXTURES / "agency"
READ = {"workflow": "acme-lead-followup", "chain": ["sales-agent"], "tool": "crm", "operation": "read_contacts",
        "tenant": "acme"}


def test_the_plugin_is_registered_as_a_pytest11_entry_point():
    found = [e for e in entry_points(group="pytest11") if e.name == "agentperm"]
    assert [e.value for e in found] == ["analyzer.pytest_plugin"]


def test_agentperm_server_starts_the_reference_server_on_loopback(agentperm_server):
    url = agentperm_server(AGENCY)
    assert url.startswith("http://127.0.0.1:")
    assert httpx.post(f"{url}/v1/decide", json=READ).json()["allow"] is True
    other = agentperm_server(str(AGENCY))
    assert other != url


def test_run_fuzz_passes_the_reference_server(agentperm_server):
    result = run_fuzz(AGENCY, agentperm_server(AGENCY), max_examples=20)
    assert result.failures == [] and result.calls > 0


def test_run_fuzz_raises_listing_the_failures():
    from faulty_servers_for_suites import tenant_blind

    with pytest.raises(AssertionError) as raised:
        run_fuzz(AGENCY, tenant_blind, max_examples=0)
    assert "enforcement-hole" in str(raised.value) and "curl" in str(raised.value)
