"""Who makes a change: written into every audit and ledger row."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Actor:
    """``kind`` is api_key, operator, account or system; ``name`` is for people."""

    kind: str
    name: str
    account_id: int | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


SYSTEM = Actor("system", "guildhall")
