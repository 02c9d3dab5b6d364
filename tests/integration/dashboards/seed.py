"""Data for the console's browser tests, written the way the control plane writes it: through
the store functions (evaluations, alerts, audit, findings, tokens), spans over OTLP to Jaeger and
ECS log lines to Elasticsearch."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from elasticsearch import Elasticsearch as ElasticsearchClient
from opentelemetry import trace as otel_trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from controlplane.core.security import Role
from controlplane.store.alerts import IncomingAlert, IncomingDelivery, record_delivery
from controlplane.store.audit import AuditDecision, record_decision
from controlplane.store.database import Database
from controlplane.store.evaluations import EvaluationRecord, record_evaluations
from controlplane.store.findings import observe_finding
from controlplane.store.tokens import create_token
from slo.durations import parse_duration
from slo.maths import BurnRateWindow, both_windows_burning

#: Service name of the traced SLOs (the inventory API's own, as in production).
SERVICE = "inventory"

SRE_ALERTS: list[dict[str, Any]] = [
    {"severity": "page", "long": "1h", "short": "5m", "factor": 14.4},
    {"severity": "page", "long": "6h", "short": "30m", "factor": 6.0},
    {"severity": "ticket", "long": "1d", "short": "2h", "factor": 3.0},
    {"severity": "ticket", "long": "3d", "short": "6h", "factor": 1.0},
]


@dataclass(frozen=True, kw_only=True)
class SeededSLO:
    slo_id: str
    service: str
    tier: str
    state: str
    budget: float | None
    burn: dict[str, float | None]
    objective: float
    sli: float | None
    no_data_reason: str | None = None
    latency_threshold_s: float | None = None


#: The seeded SLOs; worst first is the order the overview must show.
SLOS: tuple[SeededSLO, ...] = (
    SeededSLO(
        slo_id="read-latency",
        service=SERVICE,
        tier="critical",
        state="ok",
        budget=0.35,
        burn={"5m": 25.0, "30m": 12.0, "1h": 20.0, "2h": 9.0, "6h": 7.5, "1d": 2.0, "3d": 1.1},
        objective=0.99,
        sli=0.985,
        latency_threshold_s=0.25,
    ),
    SeededSLO(
        slo_id="api-availability",
        service=SERVICE,
        tier="critical",
        state="ok",
        budget=0.55,
        burn={"5m": 2.0, "30m": 3.0, "1h": 2.5, "2h": 4.0, "6h": 3.2, "1d": 3.5, "3d": 0.9},
        objective=0.999,
        sli=0.9985,
    ),
    SeededSLO(
        slo_id="log-error-events",
        service=SERVICE,
        tier="standard",
        state="no_data",
        budget=None,
        burn={"5m": None, "1h": None, "6h": None, "1d": None, "3d": None},
        objective=0.99,
        sli=None,
        no_data_reason="no index matches 'logs-inventory-*'",
    ),
    SeededSLO(
        slo_id="ingestion-freshness",
        service="inventory-worker",
        tier="standard",
        state="ok",
        budget=0.9,
        burn={"5m": 0.2, "30m": 0.3, "1h": 0.25, "2h": 0.3, "6h": 0.3, "1d": 0.4, "3d": 0.3},
        objective=0.995,
        sli=0.9991,
    ),
    SeededSLO(
        slo_id="planning-availability",
        service="demand-planning",
        tier="batch",
        state="ok",
        budget=0.97,
        burn={"5m": 0.1, "30m": 0.1, "1h": 0.1, "2h": 0.1, "6h": 0.1, "1d": 0.1, "3d": 0.1},
        objective=0.99,
        sli=0.9995,
    ),
)
WORST_FIRST = [slo.slo_id for slo in SLOS]


@dataclass(frozen=True, kw_only=True)
class SeededStore:
    tokens: dict[Role, str]
    scale_decision: str


def _details(slo: SeededSLO) -> dict[str, Any]:
    """The details the evaluator stores: the alerts carry their verdict (read-latency's are
    set by hand; the others follow the burn rates by the rule of ``slo.maths``)."""
    details: dict[str, Any] = {"tier": slo.tier, "period": "30d"}
    if slo.latency_threshold_s is not None:
        details["latency_threshold_s"] = slo.latency_threshold_s
    alerts = []
    for alert in SRE_ALERTS:
        window = BurnRateWindow(
            severity=alert["severity"],
            long=parse_duration(alert["long"]),
            short=parse_duration(alert["short"]),
            factor=alert["factor"],
        )
        long, short = slo.burn.get(alert["long"]), slo.burn.get(alert["short"])
        firing = both_windows_burning(window, long_burn=long, short_burn=short)
        if slo.slo_id == "read-latency":
            firing = alert["long"] in {"1h", "6h"}
        state = "ok" if slo.state == "ok" and None not in (long, short) else "no_data"
        alerts.append({**alert, "firing": firing and state == "ok", "state": state})
    details["alerts"] = alerts
    return details


def evaluations(*, now: datetime) -> list[EvaluationRecord]:
    """Two hours of one-minute evaluations (the budget of a burning SLO going down), plus one
    every 30 minutes over the three days before."""
    found = []
    moments = [now - timedelta(minutes=m) for m in range(0, 120)]
    moments += [now - timedelta(minutes=120 + 30 * k) for k in range(1, 144)]
    for slo in SLOS:
        for moment in moments:
            age_h = (now - moment).total_seconds() / 3600
            budget = None if slo.budget is None else min(1.0, slo.budget + 0.004 * age_h)
            if slo.slo_id == "read-latency":
                budget = None if budget is None else min(1.0, slo.budget + 0.05 * age_h)
            found.append(
                EvaluationRecord(
                    slo_id=slo.slo_id,
                    service=slo.service,
                    at=moment,
                    state=slo.state,
                    sli=slo.sli,
                    objective=slo.objective,
                    budget_remaining=budget,
                    burn_rates=slo.burn,
                    no_data_reason=slo.no_data_reason,
                    details=_details(slo),
                )
            )
    return found


def seed_store(database: Database, *, now: datetime) -> SeededStore:
    tokens = {}
    with database.writer() as session:
        for role in (Role.VIEWER, Role.OPERATOR):
            _, secret = create_token(session, name=f"console-{role.value}", role=role, at=now)
            tokens[role] = secret
        record_evaluations(session, evaluations=evaluations(now=now))
        record_delivery(
            session,
            delivery=IncomingDelivery(
                receiver="controlplane",
                status="firing",
                alerts=(
                    IncomingAlert(
                        fingerprint="a1b2c3d4e5f60001",
                        status="firing",
                        starts_at=now - timedelta(minutes=40),
                        labels={
                            "alertname": "SLOBurnRateHigh",
                            "severity": "page",
                            "slo": "read-latency",
                            "service": SERVICE,
                            "tier": "critical",
                        },
                        annotations={"summary": "read latency burns 20x its budget"},
                    ),
                    IncomingAlert(
                        fingerprint="a1b2c3d4e5f60002",
                        status="firing",
                        starts_at=now - timedelta(hours=5),
                        labels={
                            "alertname": "SLOBurnRateHigh",
                            "severity": "ticket",
                            "slo": "api-availability",
                            "service": SERVICE,
                            "tier": "critical",
                        },
                        annotations={"summary": "availability burns 3.5x over a day"},
                    ),
                ),
            ),
            received_at=now - timedelta(minutes=39),
        )
        scale = record_decision(
            session,
            decision=AuditDecision(
                at=now - timedelta(minutes=30),
                actor="controlplane-test",
                action="scale_out",
                target=f"deployment/{SERVICE}",
                decision="taken",
                reason="read-latency burns 20x: 3 -> 5 replicas",
                evidence={
                    "slo": "read-latency",
                    "service": SERVICE,
                    "burn_rate_1h": 20.0,
                    "gate": [{"check": "kill_switch", "passed": True, "detail": "off"}],
                },
            ),
        )
        record_decision(
            session,
            decision=AuditDecision(
                at=now - timedelta(minutes=10),
                actor="controlplane-test",
                action="scale_out",
                target=f"deployment/{SERVICE}",
                decision="refused",
                reason="cooldown: last scale-out 20 min ago",
                evidence={"slo": "read-latency", "service": SERVICE},
            ),
        )
        record_decision(
            session,
            decision=AuditDecision(
                at=now - timedelta(minutes=5),
                actor="controlplane-test",
                action="scale_out",
                target=f"deployment/{SERVICE}",
                decision="pending",
                reason="approval mode: read-latency burns 20x, 5 -> 7 replicas",
                evidence={"service": SERVICE, "slo": "read-latency", "desired_replicas": 7},
            ),
        )
        observe_finding(
            session,
            kind="dr.drill_stale",
            subject="inventory",
            severity="warning",
            at=now - timedelta(hours=2),
            summary="no failover drill in 35 days",
            evidence={"last_drill": None},
        )
        observe_finding(
            session,
            kind="capacity.hpa_drift",
            subject="inventory",
            severity="warning",
            at=now - timedelta(hours=1),
            summary="HPA max 10, policy 20",
        )
    return SeededStore(tokens=tokens, scale_decision=scale.decision_id)


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


def send_traces(*, otlp_http_endpoint: str, query_url: str, now: datetime) -> dict[str, str]:
    """Slow and failing traces of :data:`SERVICE` in the last hour; their ids by name."""
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp_http_endpoint}/v1/traces"))
    )
    tracer = provider.get_tracer("dashboards-tests")
    shapes = {
        "slowest": (2400, False, 20),
        "slow": (1800, False, 18),
        "slow_error": (1500, True, 15),
        "fast_error": (60, True, 12),
        "fast": (40, False, 10),
    }
    traces = {}
    for name, (millis, failed, minutes_ago) in shapes.items():
        begin = now - timedelta(minutes=minutes_ago)
        root = tracer.start_span("GET /api/v1/stock/{sku}", start_time=_ns(begin))
        context = otel_trace.set_span_in_context(root)
        child = tracer.start_span("SELECT stock", context=context, start_time=_ns(begin))
        child.end(end_time=_ns(begin + timedelta(milliseconds=millis * 0.8)))
        if failed:
            root.set_status(Status(StatusCode.ERROR, "stock lookup failed"))
        root.end(end_time=_ns(begin + timedelta(milliseconds=millis)))
        traces[name] = format(root.get_span_context().trace_id, "032x")
    provider.force_flush()
    provider.shutdown()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [
            httpx.get(f"{query_url}/api/traces/{trace_id}", timeout=5).status_code
            for trace_id in traces.values()
        ]
        if found == [200] * len(traces):
            return traces
        time.sleep(0.25)
    raise AssertionError(f"Jaeger did not store the seeded traces: {found}")


def index_logs(*, url: str, trace_id: str, now: datetime) -> str:
    """ECS log lines of one trace in today's ``logs-inventory-<date>`` index; the index."""
    client = ElasticsearchClient(url, request_timeout=30)
    index = f"logs-inventory-{now:%Y.%m.%d}"
    operations: list[dict[str, Any]] = []
    lines = [
        ("info", "GET /api/v1/stock/SKU-1 started"),
        ("warning", "stock cache miss for SKU-1, reading PostgreSQL"),
        ("error", "statement timeout after 2.0 s on SELECT stock"),
    ]
    for offset, (level, message) in enumerate(lines):
        at = now - timedelta(minutes=20) + timedelta(milliseconds=300 * offset)
        operations += [
            {"index": {"_index": index}},
            {
                "@timestamp": at.isoformat().replace("+00:00", "Z"),
                "log": {"level": level},
                "message": message,
                "service": {"name": SERVICE},
                "trace": {"id": trace_id},
                "span": {"id": uuid.uuid4().hex[:16]},
            },
        ]
    response = client.bulk(operations=operations, refresh="wait_for")
    client.close()
    if response["errors"]:
        raise AssertionError(f"bulk indexing failed: {response}")
    return index


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
