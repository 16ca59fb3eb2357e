"""A *messy* deployment, as a first run on a real one looks: random, overlapping, half-fixed.

    python bench/messy.py --tenants N --out DIR [--seed S]

Unlike bench/generate.py (clean by construction, with a handful of planted mistakes), nothing
here is arranged for the analyzer's fast paths:

* tools: min(120, 10 + N/10) per-tenant tools enforced by the server, 3-6 operations each with
  random effects (reads, writes, sends, deletes, exports, refunds), int/string/enum params, and
  `high_risk_when: "params.amount > T"` on money operations;
* roles: N/5 (at least 10) roles of 25 random grants each (random tool, 1-3 of its operations);
  a third carry `approval:` through a real gate; about one in six carries a `when` — a
  threshold (`params.amount <= T`), a tenant condition (`tenant.tier == "gold"`) or both;
* per tenant: 10 agents, each with a random pair of roles, its own per-workflow credential, and
  one workflow; every 7th agent also holds a static credential that lists 2-4 tenants (the
  "temporary" shared key), and every 50th a static key listing every tenant;
* gates and people: 8 gates over a pool of 12 people, plus one gate with an agent as approver
  only (not real).

The result has hundreds of ungated high-risk grants and dozens of credentials reaching other
tenants behind tens of thousands of witness classes: exactly what root-cause grouping is for.
The same (N, seed) always gives identical files. ``data(N, seed)`` gives the sections as a dict.
"""

from __future__ import annotations

import argparse
import json
import os
import random

EFFECTS = ("read", "read", "read", "write", "write", "send", "delete", "export")


def tool_count(tenants: int) -> int:
    return min(120, 10 + tenants // 10)


def role_count(tenants: int) -> int:
    return max(10, tenants // 5)


def data(tenants: int, seed: int = 1) -> dict:
    rng = random.Random(seed)
    tenant_ids = [f"t{i:05d}" for i in range(tenants)]
    sections: dict = {"format": "agentperm/v1"}
    sections["policy"] = {"require_approval": "high", "max_token_ttl": "1h", "max_rotation": "90d",
                          "safe_secret_stores": ["vault", "kms"]}
    sections["audit"] = {"sink": "append-only", "covers": "*",
                         "records": ["who", "what", "when", "outcome", "tenant", "workflow", "approval"],
                         "redacts_secrets": True}
    sections["tenants"] = {t: {"name": f"Tenant {t}", "attributes": {"tier": rng.choice(["gold", "silver", "bronze"])}}
                           for t in tenant_ids}
    people = [f"person-{i:02d}" for i in range(12)]
    sections["people"] = {p: {"name": p} for p in people}
    gates = {f"gate-{i}": {"approvers": rng.sample(people, rng.randint(1, 3))} for i in range(8)}
    tools: dict = {}
    for i in range(tool_count(tenants)):
        ops = {}
        for j in range(rng.randint(3, 6)):
            effect = rng.choice(EFFECTS)
            op: dict = {"effect": effect}
            if j == 0 and i % 3 == 0:  # a money operation: high only above a threshold
                op = {"effect": "write", "risk": "medium", "params": {"amount": "int"},
                      "high_risk_when": f"params.amount > {rng.choice([100, 250, 1000])}"}
            elif rng.random() < 0.3:
                op["params"] = {"note": "string", "mode": ["fast", "safe"]}
            if effect in ("read", "export") and rng.random() < 0.5:
                op["data"] = ["pii"]
            ops[f"op{j}"] = op
        tools[f"tool-{i:03d}"] = {"tenancy": "per-tenant", "enforced_by": "server", "operations": ops}
    sections["tools"] = tools
    tool_ids = sorted(tools)
    roles: dict = {}
    for r in range(role_count(tenants)):
        grants = []
        for _ in range(25):
            tool = rng.choice(tool_ids)
            op_ids = sorted(tools[tool]["operations"])
            grant: dict = {"tool": tool, "operations": sorted(rng.sample(op_ids, rng.randint(1, min(3, len(op_ids)))))}
            if rng.random() < 1 / 3:
                grant["approval"] = f"gate-{rng.randrange(8)}"
            roll = rng.random()
            has_amount = any("amount" in tools[tool]["operations"][o].get("params", {}) for o in grant["operations"])
            if roll < 0.08 and has_amount and all("amount" in tools[tool]["operations"][o].get("params", {})
                                                   for o in grant["operations"]):
                grant["when"] = f"params.amount <= {rng.choice([50, 100, 500, 5000])}"
            elif roll < 0.14:
                grant["when"] = 'tenant.tier == "gold"'
            elif roll < 0.17 and has_amount and all("amount" in tools[tool]["operations"][o].get("params", {})
                                                     for o in grant["operations"]):
                grant["when"] = 'params.amount <= 500 || tenant.tier != "bronze"'
            grants.append(grant)
        roles[f"role-{r:04d}"] = {"grants": grants}
    sections["roles"] = roles
    role_ids = sorted(roles)
    agents: dict = {}
    credentials: dict = {}
    workflows: dict = {}
    serial = 0
    for t in tenant_ids:
        for a in range(10):
            agent = f"{t}-agent-{a}"
            cred = f"{agent}-key"
            credentials[cred] = {"tools": "*", "tenants": [t], "issued": "per-workflow", "store": "vault",
                                 "ttl": "15m", "rotation": "30d"}
            held = [cred]
            serial += 1
            if serial % 50 == 0:
                shared = f"legacy-key-{serial}"
                credentials[shared] = {"tools": rng.sample(tool_ids, 3), "tenants": "*", "store": "vault",
                                       "ttl": "1h", "rotation": "30d"}
                held.append(shared)
            elif serial % 7 == 0:
                shared = f"temp-key-{serial}"
                reach = sorted({t, *rng.sample(tenant_ids, min(len(tenant_ids), rng.randint(1, 3)))})
                credentials[shared] = {"tools": rng.sample(tool_ids, 2), "tenants": reach, "store": "vault",
                                       "ttl": "1h", "rotation": "30d"}
                held.append(shared)
            agents[agent] = {"roles": sorted(rng.sample(role_ids, 2)), "tenants": [t], "credentials": held}
            workflows[f"{t}-wf-{a}"] = {"tenant": t, "agent": agent, "tools": "*"}
    gates["bot-gate"] = {"approvers": [f"{tenant_ids[0]}-agent-0"]}
    sections["gates"] = gates
    sections["agents"] = agents
    sections["credentials"] = credentials
    sections["workflows"] = workflows
    return sections


def write(sections: dict, out_dir: str) -> None:
    """One YAML file per section (JSON is YAML; it is also what the json.loads floor reads)."""
    os.makedirs(out_dir, exist_ok=True)
    head = {k: sections[k] for k in ("format", "policy", "audit")}
    with open(os.path.join(out_dir, "deployment.yaml"), "w", encoding="utf-8") as handle:
        json.dump(head, handle, sort_keys=True)
    for key in ("tenants", "people", "gates", "tools", "roles", "agents", "credentials", "workflows"):
        with open(os.path.join(out_dir, f"{key}.yaml"), "w", encoding="utf-8") as handle:
            json.dump({key: sections[key]}, handle, sort_keys=True, separators=(",", ":"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    write(data(args.tenants, args.seed), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
