"""Synthetic agentperm deployments for benchmarks: an agency serving N client tenants.

    python bench/generate.py --tenants N --out DIR [--seed S] [--violations/--no-violations]

Writes tenants.yaml, tools.yaml, roles.yaml, agents.yaml, credentials.yaml, gates.yaml,
people.yaml, workflows.yaml and deployment.yaml (format, policy, audit, guardrails) into DIR.
The same (N, seed, violations) always gives byte-identical files.

Shape (see bench/README.md for the reasoning):

* tools: min(500, 20 + N/2), 2-5 operations each, built from realistic archetypes (crm,
  mail, billing, warehouse, ...), mixed effects, int / string / enum params, fields, and
  `high_risk_when: "params.amount > 100"` on payment operations. ~1 in 12 tools is a
  public API (`tenancy: none`); the rest are `per-tenant`, enforced by the server.
* roles: max(30, N/2) shared roles, each granting over a window of neighbouring tools,
  min(100, 50*N/roles) grants each (about 50 grants per tenant in total: 50,000 at
  N=1000). Always-high operations are granted only with `approval:` through a real gate;
  operations made high by `high_risk_when` get a bounded ungated grant
  (`params.amount <= 50|100`) and usually a gated one; internal sends are bounded to the
  tenant's own domain; at least 10% of grants carry `when`.
* per tenant: 10 agents, 1-3 workflows. Each workflow's entry agent holds 2-3 roles and
  delegates (as a small tree) to same-tenant helpers holding a subset of its caller's
  roles, so every agent acts in exactly one workflow and delegation never escalates.
  Every agent holds its own per-workflow credential(s) (one for the tenant's data tools,
  one for public APIs when it uses any), scoped to its tenant, in a safe store, short
  TTL, rotated within policy.
* people and gates: an approver pool shared by all tenants; every gate has 1-3 people.

With --violations (the default) a handful of deliberate mistakes is added:
  1. a static credential covering 2 tenants, held by one agent (multi-tenant-credential,
     no-cross-tenant-reach);
  2. an ungated refund grant `when: params.amount <= 500` while refunds above 100 are high
     risk (no-ungated-high-risk, region 101 <= amount <= 500);
  3. one wildcard grant (`operations: "*"` on a tool with no high-risk operation);
  4. one credential held by two agents (shared-credential).
With --no-violations the deployment is meant to check clean.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------------------------
# Tool archetypes: operation templates. A template is (id, definition); definitions use the
# deployment format directly.

AMOUNT_HIGH = "params.amount > 100"
CURRENCY = ["USD", "EUR", "GBP"]
PRIORITY = ["low", "normal", "high"]

ARCHETYPES: dict[str, dict] = {
    "crm": {"desc": "Client CRM", "ops": [
        ("search_accounts", {"effect": "read", "params": {"query": "string"}}),
        ("read_contacts", {"effect": "read", "data": ["pii"]}),
        ("update_deal", {"effect": "write", "fields": ["stage", "notes", "amount", "close_date"]}),
        ("log_activity", {"effect": "write", "params": {"note": "string"}}),
        ("delete_contact", {"effect": "delete"}),
        ("export_contacts", {"effect": "export", "data": ["pii"]}),
    ]},
    "mail": {"desc": "Mail relay, one sending domain per client", "ops": [
        ("draft", {"effect": "write", "params": {"to": "string", "subject": "string"}}),
        ("send_internal", {"effect": "send", "params": {"to": "string", "subject": "string"}}),
        ("send_external", {"effect": "send", "external": True, "params": {"to": "string", "subject": "string"}}),
        ("read_inbox", {"effect": "read", "data": ["pii"]}),
    ]},
    "billing": {"desc": "Client billing account", "required": ["refund"], "ops": [
        ("view_invoices", {"effect": "read", "data": ["financial"]}),
        ("create_invoice", {"effect": "write", "params": {"amount": "int", "currency": CURRENCY}}),
        ("refund", {"effect": "payment", "params": {"amount": "int"}, "risk": "medium",
                    "high_risk_when": AMOUNT_HIGH}),
        ("export_ledger", {"effect": "export", "data": ["financial"]}),
        ("void_invoice", {"effect": "write", "fields": ["status", "reason"]}),
    ]},
    "warehouse": {"desc": "Analytics warehouse, one schema per client", "ops": [
        ("query", {"effect": "read", "data": ["financial"], "params": {"limit": "int"}}),
        ("write_rows", {"effect": "write", "fields": ["metrics", "dimensions", "notes"]}),
        ("purge_records", {"effect": "delete"}),
        ("run_job", {"effect": "execute", "params": {"priority": PRIORITY}}),
    ]},
    "admin": {"desc": "Admin console of the client's workspace", "ops": [
        ("view_users", {"effect": "read", "data": ["pii"]}),
        ("manage_users", {"effect": "admin"}),
        ("rotate_api_keys", {"effect": "admin"}),
        ("view_audit_log", {"effect": "read"}),
    ]},
    "kb": {"desc": "Client knowledge base", "ops": [
        ("search", {"effect": "read", "params": {"query": "string"}}),
        ("add_note", {"effect": "write", "fields": ["title", "body", "tags"]}),
        ("publish_article", {"effect": "publish"}),
        ("archive_article", {"effect": "write"}),
    ]},
    "helpdesk": {"desc": "Client support queue", "ops": [
        ("read_ticket", {"effect": "read", "data": ["pii"]}),
        ("add_internal_note", {"effect": "write", "params": {"note": "string"}}),
        ("reply_customer", {"effect": "send", "external": True, "params": {"to": "string", "subject": "string"}}),
        ("close_ticket", {"effect": "write", "fields": ["status", "resolution"]}),
        ("escalate", {"effect": "write", "params": {"priority": PRIORITY}}),
    ]},
    "hr": {"desc": "Client HR system", "ops": [
        ("read_employee", {"effect": "read", "data": ["hr"]}),
        ("update_employee", {"effect": "write", "fields": ["title", "team", "manager"]}),
        ("list_teams", {"effect": "read"}),
        ("pay_bonus", {"effect": "payment", "params": {"amount": "int", "currency": CURRENCY}, "risk": "medium",
                       "high_risk_when": AMOUNT_HIGH}),
    ]},
    "storage": {"desc": "Client file storage", "ops": [
        ("list_files", {"effect": "read"}),
        ("read_file", {"effect": "read", "data": ["pii"]}),
        ("upload_file", {"effect": "write", "params": {"path": "string"}}),
        ("delete_file", {"effect": "delete"}),
        ("share_link", {"effect": "publish", "params": {"to": "string"}}),
    ]},
    "calendar": {"desc": "Client calendar", "ops": [
        ("read_events", {"effect": "read"}),
        ("create_event", {"effect": "write", "params": {"title": "string", "priority": PRIORITY}}),
        ("send_invite", {"effect": "send", "params": {"to": "string"}}),
        ("cancel_event", {"effect": "write"}),
    ]},
    "payments": {"desc": "Client payment processor", "required": ["refund"], "ops": [
        ("charge", {"effect": "payment", "params": {"amount": "int", "currency": CURRENCY}, "risk": "medium",
                    "high_risk_when": AMOUNT_HIGH}),
        ("refund", {"effect": "payment", "params": {"amount": "int"}, "risk": "medium",
                    "high_risk_when": AMOUNT_HIGH}),
        ("list_payments", {"effect": "read", "data": ["financial"], "params": {"limit": "int"}}),
        ("payout", {"effect": "payment", "params": {"amount": "int", "currency": CURRENCY}}),
    ]},
    "web-search": {"desc": "Public web search API; holds no client data", "tenancy": "none", "ops": [
        ("search", {"effect": "read", "params": {"query": "string"}}),
        ("fetch_page", {"effect": "read", "params": {"url": "string"}}),
    ]},
    "fx-rates": {"desc": "Public currency conversion API; holds no client data", "tenancy": "none", "ops": [
        ("convert", {"effect": "read", "params": {"amount": "int", "from_currency": CURRENCY,
                                                   "to_currency": CURRENCY}}),
        ("latest", {"effect": "read"}),
    ]},
}
DATA_ARCHETYPES = [a for a in ARCHETYPES if ARCHETYPES[a].get("tenancy") != "none"]
PUBLIC_ARCHETYPES = [a for a in ARCHETYPES if ARCHETYPES[a].get("tenancy") == "none"]

# Risk per FORMAT §3, with the generator's (default) policy.
BASE_RISK = {"read": "low", "write": "medium", "execute": "medium", "send": "medium", "publish": "high",
             "delete": "high", "export": "high", "admin": "high", "payment": "high"}
SENSITIVE = {"payroll", "hr", "legal", "medical"}

GATE_KINDS = {  # which kind of gate approves which effect
    "payment": "finance", "export": "privacy", "delete": "ops", "admin": "ops", "publish": "outbound",
    "send": "outbound", "read": "privacy", "write": "ops", "execute": "ops",
}
COMPANY_WORDS = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka", "tyrell", "cyberdyne",
                 "soylent", "oscorp", "aperture", "vandelay", "pied-piper", "gringotts", "monarch", "massive",
                 "nakatomi", "dunder"]
FIRST = ["dana", "marcus", "priya", "tomas", "yuki", "amara", "bruno", "chen", "dmitri", "elena", "farah", "gabe",
         "hana", "ivan", "jonas", "kemi", "lars", "mei", "nadia", "omar"]
LAST = ["whitfield", "lee", "raman", "novak", "tanaka", "okafor", "silva", "wang", "petrov", "garcia", "haddad",
        "miller", "sato", "ivanov", "berg", "adeyemi", "nilsson", "lin", "karim", "aziz"]
AGENT_KINDS = ["sales", "support", "billing", "ops", "reporting", "research", "onboarding", "finance", "hr", "comms"]


def declared_risk(op: dict) -> str:
    if "risk" in op:
        return op["risk"]
    risk = BASE_RISK[op["effect"]]
    if op["effect"] == "send" and op.get("external"):
        risk = "high"
    if set(op.get("data", ())) & SENSITIVE:
        risk = "high"
    return risk


# ---------------------------------------------------------------------------------------------
# YAML emission: block mappings for sections and definitions, flow style for small values
# (the way people write grants in the fixtures). Output is plain YAML that PyYAML reads back
# exactly; strings that could be read as something else are double-quoted (JSON quoting).

_PLAIN = re.compile(r"\A[A-Za-z_][A-Za-z0-9_.-]*\Z")
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}


def scalar(value) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _RESERVED:
        return text
    return json.dumps(text)


def flow(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{scalar(k)}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    return scalar(value)


def emit_definition(lines: list[str], ident: str, definition: dict, indent: str = "  ") -> None:
    """`ident:` followed by one line per key; lists of mappings as block lists of flow mappings."""
    lines.append(f"{indent}{scalar(ident)}:")
    inner = indent + "  "
    for key, value in definition.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f"{inner}{key}:")
            for item in value:
                lines.append(f"{inner}  - {flow(item)}")
        elif isinstance(value, dict) and key == "operations":
            lines.append(f"{inner}{key}:")
            for op_id, op in value.items():
                lines.append(f"{inner}  {scalar(op_id)}: {flow(op)}")
        else:
            lines.append(f"{inner}{key}: {flow(value)}")


def emit_section(header: str, section: str, items: dict) -> str:
    lines = [header, f"{section}:"]
    for ident, definition in items.items():
        emit_definition(lines, ident, definition)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# The model being generated.

@dataclass
class Generated:
    files: dict[str, str] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)


def tool_count(tenants: int) -> int:
    return min(500, 20 + tenants // 2)


def role_count(tenants: int) -> int:
    return max(30, tenants // 2)


def grants_per_role(tenants: int) -> int:
    return min(100, max(10, round(50 * tenants / role_count(tenants))))


def generate(tenants: int, seed: int = 1, violations: bool = True, agents_per_tenant: int = 10) -> Generated:
    if tenants < 1:
        raise ValueError("--tenants must be at least 1")
    rng = random.Random(seed)
    out = Generated()

    # ---- tenants ------------------------------------------------------------------------
    tenant_ids = [f"{COMPANY_WORDS[i % len(COMPANY_WORDS)]}-{i:05d}" for i in range(tenants)]
    tenant_defs = {}
    for i, t in enumerate(tenant_ids):
        word = t.rsplit("-", 1)[0].replace("-", " ").title()
        tenant_defs[t] = {"name": f"{word} {i}", "attributes": {"domain": f"{t}.example.com",
                                                                   "plan": rng.choice(["standard", "managed"])}}

    # ---- people and gates -----------------------------------------------------------------
    n_people = max(5, tenants // 20)
    people = {}
    for i in range(n_people):
        first, last = FIRST[i % len(FIRST)], LAST[(i * 7 + i // len(FIRST)) % len(LAST)]
        pid = f"{first}-{i:04d}"
        people[pid] = {"name": f"{first.title()} {last.title()}", "email": f"{first}.{last}.{i}@agency.example"}
    person_ids = list(people)
    gate_kinds = ["finance", "privacy", "ops", "outbound"]
    n_gates_per_kind = max(1, n_people // 8)
    gates: dict[str, dict] = {}
    gates_of_kind: dict[str, list[str]] = {k: [] for k in gate_kinds}
    for k in gate_kinds:
        for j in range(n_gates_per_kind):
            gid = f"{k}-review-{j:03d}"
            gates[gid] = {"approvers": []}
            gates_of_kind[k].append(gid)
    gate_ids = list(gates)
    # every person approves at least one gate; every gate has 1-3 people
    for i, pid in enumerate(person_ids):
        gates[gate_ids[i % len(gate_ids)]]["approvers"].append(pid)
    for gid in gate_ids:
        target = min(len(person_ids), 1 + rng.randrange(3))
        while len(gates[gid]["approvers"]) < target:
            pid = rng.choice(person_ids)
            if pid not in gates[gid]["approvers"]:
                gates[gid]["approvers"].append(pid)
    gates_used: set[str] = set()

    # ---- tools ----------------------------------------------------------------------------
    n_tools = tool_count(tenants)
    tools: dict[str, dict] = {}
    tool_ops: dict[str, dict[str, dict]] = {}
    tool_public: dict[str, bool] = {}
    counters: dict[str, int] = {}
    for i in range(n_tools):
        public = i % 12 == 11
        arch = (PUBLIC_ARCHETYPES[(i // 12) % len(PUBLIC_ARCHETYPES)] if public
                else DATA_ARCHETYPES[(i * 5 + rng.randrange(3)) % len(DATA_ARCHETYPES)])
        spec = ARCHETYPES[arch]
        counters[arch] = counters.get(arch, 0) + 1
        tid = f"{arch}-{counters[arch]:03d}"
        templates = spec["ops"]
        want = min(len(templates), 2 + rng.randrange(4))  # 2-5 operations
        chosen = [t for t in templates if t[0] in spec.get("required", ())]
        rest = [t for t in templates if t not in chosen]
        rng.shuffle(rest)
        chosen += rest[: max(0, want - len(chosen))]
        chosen.sort(key=lambda t: templates.index(t))
        ops = {op_id: dict(op) for op_id, op in chosen}
        tool_ops[tid] = ops
        tool_public[tid] = public
        definition = {"description": f"{spec['desc']} ({tid})", "tenancy": "none" if public else "per-tenant"}
        if not public:
            definition["enforced_by"] = "server"
        definition["operations"] = ops
        tools[tid] = definition
    tool_list = list(tools)

    # ---- grants ---------------------------------------------------------------------------
    def pick_gate(op: dict) -> str:
        gid = rng.choice(gates_of_kind[GATE_KINDS[op["effect"]]])
        gates_used.add(gid)
        return gid

    def grant_variants(tid: str, op_id: str) -> list[dict]:
        """The grants a careful admin writes for one operation, most natural first."""
        op = tool_ops[tid][op_id]
        params = op.get("params", {})
        risk = declared_risk(op)
        base = {"tool": tid, "operations": [op_id]}
        variants: list[dict] = []
        if risk == "high":
            variants.append({**base, "approval": pick_gate(op)})
            return variants
        if op.get("high_risk_when") == AMOUNT_HIGH:
            variants.append({**base, "when": f"params.amount <= {rng.choice([50, 100])}"})
            variants.append({**base, "approval": pick_gate(op)})
            return variants
        if "to" in params and op["effect"] == "send":  # internal send: stay in the tenant's domain
            variants.append({**base, "when": 'params.to.endsWith("@" + tenant.domain)'})
            return variants
        if "limit" in params and rng.random() < 0.6:
            variants.append({**base, "when": f"params.limit <= {rng.choice([500, 1000, 5000])}"})
            return variants
        if "currency" in params and rng.random() < 0.5:
            variants.append({**base, "when": 'params.currency in ["USD", "EUR"]'})
        if "priority" in params and rng.random() < 0.3:
            variants.append({**base, "when": 'params.priority != "high" || call.delegated == false'})
        if op.get("fields") and rng.random() < 0.5:
            fields = op["fields"][: max(1, len(op["fields"]) - 1)]
            variants.append({**base, "fields": list(fields)})
        if not variants:
            variants.append(base)
        return variants

    n_roles = role_count(tenants)
    per_role = grants_per_role(tenants)
    # a role spans a window of neighbouring tools wide enough for its grants
    window = max(2, min(n_tools, round(per_role / 3.0)))
    roles: dict[str, dict] = {}
    role_tools: dict[str, list[str]] = {}
    for r in range(n_roles):
        kind = AGENT_KINDS[r % len(AGENT_KINDS)]
        rid = f"{kind}-{r:04d}"
        start = rng.randrange(n_tools)
        span = [tool_list[(start + k) % n_tools] for k in range(window)]
        pairs = [(t, o) for t in span for o in tool_ops[t]]
        rng.shuffle(pairs)
        grants: list[dict] = []
        k = 0
        # one pass over the window's operations, then extra field- or condition-limited variants
        while len(grants) < per_role and pairs:
            t, o = pairs[k % len(pairs)]
            variants = grant_variants(t, o)
            if k >= len(pairs):  # a repeat: keep only a single, distinct variant
                variants = variants[-1:]
            grants.extend(variants[: per_role - len(grants)])
            k += 1
            if k > 4 * len(pairs):
                break
        denies = []
        # a conditional ceiling: never refund / pay out above 5000 through this role
        for t in span:
            if "refund" in tool_ops[t] and rng.random() < 0.3:
                denies.append({"tool": t, "operations": ["refund"], "when": "params.amount > 5000"})
                break
        definition = {"description": f"{kind.title()} duties over {span[0]}..{span[-1]}", "grants": grants}
        if denies:
            definition["denies"] = denies
        roles[rid] = definition
        role_tools[rid] = sorted({g["tool"] for g in grants})
    role_ids = list(roles)

    # make sure at least 10% of grants carry a condition (they normally do by far)
    all_grants = [g for r in roles.values() for g in r["grants"]]
    with_when = sum(1 for g in all_grants if "when" in g)
    if with_when * 10 < len(all_grants):  # pragma: no cover - a safety net for odd seeds
        for g in all_grants:
            if with_when * 10 >= len(all_grants):
                break
            op = tool_ops[g["tool"]][g["operations"][0]]
            if "when" not in g and "approval" not in g and op["effect"] in ("read", "write"):
                g["when"] = "call.delegated == false"
                with_when += 1

    # ---- agents, credentials, workflows ------------------------------------------------------
    agents: dict[str, dict] = {}
    credentials: dict[str, dict] = {}
    workflows: dict[str, dict] = {}
    role_users: set[str] = set()
    entry_of_tenant: dict[str, list[str]] = {}
    wf_of_agent: dict[str, str] = {}

    def credential(owner: str, tenant: str, tool_ids: list[str], suffix: str) -> str:
        cid = f"{owner}-{suffix}"
        credentials[cid] = {"tools": tool_ids, "tenants": [tenant], "issued": "per-workflow",
                            "store": rng.choice(["vault", "kms", "secret-manager"]),
                            "ttl": rng.choice(["10m", "15m", "30m", "1h"]),
                            "rotation": rng.choice(["7d", "30d", "60d", "90d"])}
        return cid

    # the first roles are handed out once each, round robin, so no role goes unused
    unassigned = list(role_ids)
    rng.shuffle(unassigned)

    for ti, t in enumerate(tenant_ids):
        n_wf = 1 + rng.randrange(3)
        names = [f"{t}-{AGENT_KINDS[(ti + k) % len(AGENT_KINDS)]}-{k}" for k in range(agents_per_tenant)]
        entries = names[:n_wf]
        helpers = names[n_wf:]
        entry_of_tenant[t] = entries
        groups: dict[str, list[str]] = {e: [] for e in entries}
        for j, h in enumerate(helpers):
            groups[entries[j % n_wf]].append(h)
        for wi, entry in enumerate(entries):
            n_roles_entry = 2 + rng.randrange(2)
            chosen: list[str] = []
            while unassigned and len(chosen) < n_roles_entry:
                chosen.append(unassigned.pop())
            while len(chosen) < n_roles_entry:
                r = rng.choice(role_ids)
                if r not in chosen:
                    chosen.append(r)
            reachable_tools = sorted({x for r in chosen for x in role_tools[r]})
            # the workflow may touch most, not all, of what its agents' roles cover
            wf_tools = sorted(x for x in reachable_tools if rng.random() < 0.7) or reachable_tools[:1]
            wf_id = f"{t}-{['daily', 'weekly', 'monthly'][wi]}-{AGENT_KINDS[(ti + wi) % len(AGENT_KINDS)]}"
            workflows[wf_id] = {"description": f"{AGENT_KINDS[(ti + wi) % len(AGENT_KINDS)].title()} run for {t}",
                                "tenant": t, "agent": entry, "tools": wf_tools}
            # delegation tree: the entry calls up to two helpers, each helper the next ones
            agent_roles = {entry: chosen}
            parent_of: dict[str, str] = {}
            group = groups[entry]
            for j, h in enumerate(group):
                parent = entry if j < 2 else group[(j - 2) // 2]
                parent_of[h] = parent
                p_roles = agent_roles[parent]
                size = 1 if len(p_roles) == 1 else 1 + rng.randrange(len(p_roles) - 1)
                agent_roles[h] = sorted(rng.sample(p_roles, size), key=p_roles.index)
            for a in [entry] + group:
                wf_of_agent[a] = wf_id
                roles_a = agent_roles[a]
                role_users.update(roles_a)
                usable = sorted({x for r in roles_a for x in role_tools[r]} & set(wf_tools))
                data = [x for x in usable if not tool_public[x]]
                public = [x for x in usable if tool_public[x]]
                creds = []
                if data or not public:
                    creds.append(credential(a, t, data or [wf_tools[0]], "data"))
                if public:
                    creds.append(credential(a, t, public, "public"))
                kind = a.rsplit("-", 2)[-2]
                definition = {"description": f"{kind.title()} agent for {t}", "roles": roles_a, "tenants": [t],
                              "credentials": creds}
                delegates = [h for h in group if parent_of.get(h) == a]
                if delegates:
                    definition["delegates_to"] = delegates
                if kind in ("research", "support") or rng.random() < 0.1:
                    definition["untrusted_input"] = True
                agents[a] = definition

    # roles nobody got (more roles than entry slots, e.g. at tiny N) go to entry agents
    # round robin; entries are never delegated to, so this cannot create an escalation
    all_entries = [e for t in tenant_ids for e in entry_of_tenant[t]]
    for i, r in enumerate(sorted(set(role_ids) - role_users)):
        entry = all_entries[i % len(all_entries)]
        agents[entry]["roles"].append(r)
        wf = workflows[wf_of_agent[entry]]
        extra = sorted(set(role_tools[r]) - set(wf["tools"]))
        wf["tools"] = sorted(set(wf["tools"]) | set(extra[:3]))
        role_users.add(r)

    # refresh credentials of entries whose workflow tools grew
    for entry in all_entries:
        wf = workflows[wf_of_agent[entry]]
        usable = sorted({x for r in agents[entry]["roles"] for x in role_tools[r]} & set(wf["tools"]))
        for cid in agents[entry]["credentials"]:
            want_public = cid.endswith("-public")
            covered = [x for x in usable if tool_public[x] == want_public]
            if covered:
                credentials[cid]["tools"] = covered
        if any(tool_public[x] for x in usable) and f"{entry}-public" not in credentials:
            agents[entry]["credentials"].append(
                credential(entry, wf["tenant"], [x for x in usable if tool_public[x]], "public"))

    # gates no grant names would be "unused": let a gated grant name them instead
    unused_gates = [g for g in gate_ids if g not in gates_used]
    if unused_gates:
        gated = [g for g in all_grants if "approval" in g]
        for i, gid in enumerate(unused_gates):
            if gated:
                gated[(i * 7919) % len(gated)]["approval"] = gid

    # ---- deliberate mistakes ------------------------------------------------------------------
    guardrails = [{"tool": "*", "operations": ["refund"], "when": "params.amount > 5000",
                   "description": "hard ceiling on any refund, approved or not"}]
    purge_tools = [x for x in tool_list if "purge_records" in tool_ops[x]]
    if purge_tools:
        guardrails.append({"tool": purge_tools[0], "operations": ["purge_records"],
                           "tenants": [tenant_ids[-1]],
                           "description": "contract forbids purging this client's warehouse"})

    if violations:
        t0 = tenant_ids[0]
        t1 = tenant_ids[1 % tenants]
        t2 = tenant_ids[2 % tenants]
        # 1. static credential covering two tenants, held by one agent (needs two tenants)
        if tenants < 2:
            out.violations.append("(skipped the two-tenant static credential: it needs at least 2 tenants)")
        else:
            holder = entry_of_tenant[t1][0]
            holder_wf = workflows[wf_of_agent[holder]]
            data_tools = [x for x in credentials[f"{holder}-data"]["tools"] if not tool_public[x]]
            other = tenant_ids[(tenant_ids.index(t1) + 1) % tenants]
            credentials["legacy-shared-key"] = {
                "description": "Pre-migration integration key (should have been per-workflow)",
                "tools": data_tools[:1] or holder_wf["tools"][:1], "tenants": sorted({t1, other}),
                "issued": "static", "store": "vault", "ttl": "1h", "rotation": "90d"}
            agents[holder]["credentials"].append("legacy-shared-key")
            out.violations.append(f"static credential legacy-shared-key reaches {sorted({t1, other})}, "
                                  f"held by {holder}")

        # 2. ungated refund whose condition leaves 101..500 open
        refund_tool = next(x for x in tool_list if tool_ops[x].get("refund", {}).get("high_risk_when"))
        desk = entry_of_tenant[t0][0]
        roles["refund-desk"] = {"description": "Goodwill refunds without finance sign-off",
                                "grants": [{"tool": refund_tool, "operations": ["refund"],
                                            "when": "params.amount <= 500"}]}
        agents[desk]["roles"].append("refund-desk")
        wf = workflows[wf_of_agent[desk]]
        if refund_tool not in wf["tools"]:
            wf["tools"] = sorted(wf["tools"] + [refund_tool])
        cred = credentials[f"{desk}-data"]
        if refund_tool not in cred["tools"]:
            cred["tools"] = sorted(cred["tools"] + [refund_tool])
        out.violations.append(f"role refund-desk (agent {desk}) refunds on {refund_tool} up to 500 without approval")

        # 3. one wildcard grant, on a tool with no high-risk operation
        tame = next(x for x in tool_list if not tool_public[x] and all(
            declared_risk(op) != "high" and "high_risk_when" not in op and op["effect"] not in ("send", "publish")
            for op in tool_ops[x].values()))
        wild_role = min(agents[desk]["roles"])
        roles[wild_role]["grants"].append({"tool": tame, "operations": "*"})
        out.violations.append(f"role {wild_role} grants operations \"*\" on {tame}")

        # 4. one credential held by two agents
        owner_a, second = [a for a in agents if a.startswith(t2 + "-")][:2] if agents_per_tenant > 1 else (None, None)
        if owner_a:
            shared = f"{owner_a}-data"
            agents[second]["credentials"].append(shared)
            out.violations.append(f"credential {shared} is held by {owner_a} and {second}")

    # ---- files ----------------------------------------------------------------------------------
    header = "# Generated by bench/generate.py (tenants={}, seed={}, violations={}); do not edit.".format(
        tenants, seed, "on" if violations else "off")
    policy = {"require_approval": "high", "max_token_ttl": "1h", "max_rotation": "90d",
              "sensitive_data": ["payroll", "hr", "legal", "medical"],
              "private_data": ["pii", "financial", "payroll", "hr", "legal", "medical", "secrets"],
              "safe_secret_stores": ["vault", "kms", "secret-manager"]}
    audit = {"sink": "append-only", "covers": "*",
             "records": ["who", "what", "when", "outcome", "tenant", "workflow", "approval"],
             "redacts_secrets": True}
    dep = [header, "format: agentperm/v1", "", "policy:"]
    dep += [f"  {k}: {flow(v)}" for k, v in policy.items()]
    dep += ["", "audit:"] + [f"  {k}: {flow(v)}" for k, v in audit.items()]
    dep += ["", "guardrails:"] + [f"  - {flow(g)}" for g in guardrails]
    out.files["deployment.yaml"] = "\n".join(dep) + "\n"
    out.files["tenants.yaml"] = emit_section(header, "tenants", tenant_defs)
    out.files["people.yaml"] = emit_section(header, "people", people)
    out.files["gates.yaml"] = emit_section(header, "gates", gates)
    out.files["tools.yaml"] = emit_section(header, "tools", tools)
    out.files["roles.yaml"] = emit_section(header, "roles", roles)
    out.files["agents.yaml"] = emit_section(header, "agents", agents)
    out.files["credentials.yaml"] = emit_section(header, "credentials", credentials)
    out.files["workflows.yaml"] = emit_section(header, "workflows", workflows)

    grants_total = sum(len(r["grants"]) for r in roles.values())
    out.stats = {
        "tenants": tenants, "agents": len(agents), "tools": len(tools),
        "operations": sum(len(o) for o in tool_ops.values()), "roles": len(roles), "grants": grants_total,
        "grants_with_when": sum(1 for r in roles.values() for g in r["grants"] if "when" in g),
        "gated_grants": sum(1 for r in roles.values() for g in r["grants"] if "approval" in g),
        "credentials": len(credentials), "workflows": len(workflows), "people": len(people), "gates": len(gates),
        "delegations": sum(len(a.get("delegates_to", ())) for a in agents.values()),
        "bytes": sum(len(text.encode()) for text in out.files.values()),
    }
    return out


def write(generated: Generated, out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    for name, text in generated.files.items():
        with open(os.path.join(out_dir, name), "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, required=True, help="number of client tenants (N)")
    parser.add_argument("--out", required=True, help="output directory (created; files are overwritten)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--violations", action=argparse.BooleanOptionalAction, default=True,
                        help="add the handful of deliberate mistakes (default: on)")
    parser.add_argument("--agents-per-tenant", type=int, default=10, help=argparse.SUPPRESS)
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    args = parser.parse_args(argv)
    if args.tenants < 1:
        parser.error("--tenants must be at least 1")
    generated = generate(args.tenants, args.seed, args.violations, args.agents_per_tenant)
    write(generated, args.out)
    if not args.quiet:
        stats = ", ".join(f"{k}={v}" for k, v in generated.stats.items())
        print(f"wrote {len(generated.files)} files to {args.out}: {stats}")
        for v in generated.violations:
            print(f"  violation: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
