"""A finding: something a target check saw, keyed by (kind, subject) for its whole lifetime."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["critical", "warning", "info"]


@dataclass(frozen=True, kw_only=True)
class Finding:
    kind: str
    subject: str
    severity: Severity
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.subject)
