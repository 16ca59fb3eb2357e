"""Risk of an operation and of a call (FORMAT.md §3)."""

from __future__ import annotations

from analyzer import model

_BASE = {"read": "low", "write": "medium", "execute": "medium", "send": "medium", "publish": "high",
         "delete": "high", "export": "high", "admin": "high", "payment": "high"}


def base_risk(op: model.Operation, policy: model.Policy) -> str:
    """The risk of an operation before any `risk:` override or `high_risk_when`."""
    risk = _BASE[op.effect]
    if op.effect == "send" and op.external:
        risk = "high"
    if set(op.data) & set(policy.sensitive_data):
        risk = "high"
    return risk


def declared_risk(op: model.Operation, policy: model.Policy) -> str:
    """The risk of every call of the operation, before `high_risk_when` (which can only raise it)."""
    return op.risk or base_risk(op, policy)


def needs_approval(risk: str, policy: model.Policy) -> bool:
    """A call needs approval when its risk is at or above `policy.require_approval` (never for `none`)."""
    return model.RISK_ORDER[risk] >= model.RISK_ORDER[policy.require_approval]
