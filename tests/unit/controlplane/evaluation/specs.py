"""SLO specs for the evaluation tests, written in the native format."""

from __future__ import annotations

from slo.spec import SLO, SpecSource, parse_slos


def native(
    name: str,
    *,
    service: str = "inventory",
    objective: float = 0.999,
    window: str = "30d",
    min_events: int = 1,
    sli: str | None = None,
) -> str:
    body = sli or (
        "    ratio:\n"
        f'      bad: requests_total{{service="{service}",code=~"5.."}}\n'
        f'      total: requests_total{{service="{service}"}}\n'
    )
    window_text = window if not window.startswith("calendar") else "{calendar: month}"
    return (
        "apiVersion: controlplane.slo/v1\n"
        "kind: SLO\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n"
        f"  service: {service}\n"
        "  tier: critical\n"
        f"  objective: {objective}\n"
        f"  window: {window_text}\n"
        f"  min_events: {min_events}\n"
        "  sli:\n" + body
    )


ELASTICSEARCH_SLI = (
    "    elasticsearch:\n"
    "      index: logs-inventory-*\n"
    "      bad: {term: {log.level: error}}\n"
    "      total: {match_all: {}}\n"
)


def slos(*documents: str) -> tuple[SLO, ...]:
    """The SLOs of ``documents``, in the order given (one file each)."""
    return tuple(
        parse_slos([SpecSource(name=f"spec-{index}.yaml", text=document)])[0]
        for index, document in enumerate(documents)
    )
