"""The API on the embedded SQLite store: tokens and roles, SLO status and history, findings,
audit log, and the OpenAPI document."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete

from controlplane.core.security import Role
from controlplane.store.audit import AuditDecision, record_decision
from controlplane.store.evaluations import EvaluationRecord, record_evaluations
from controlplane.store.findings import observe_finding, resolve_finding
from controlplane.store.models import SLOEvaluation
from controlplane.store.tokens import revoke_token
from tests.unit.controlplane.conftest import Api

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(autouse=True)
def _fresh_now() -> None:
    """Each test's "now" is its own start: staleness is judged against the real clock."""
    global NOW
    NOW = datetime.now(UTC).replace(microsecond=0)


def _protected_paths(api: Api) -> list[str]:
    """Every GET path of the OpenAPI document, with its path parameters filled in."""
    document = api.client.app.openapi()
    return sorted(
        re.sub(r"\{[^}]+\}", "1", path)
        for path, operations in document["paths"].items()
        if "get" in operations
    )


def test_every_route_needs_a_valid_token(api: Api) -> None:
    paths = _protected_paths(api)
    assert "/api/v1/slos" in paths
    assert "/api/v1/health/live" in paths
    for path in [*paths, "/api/v1/openapi.json"]:
        assert api.client.get(path).status_code == 401, path
        bogus = {"Authorization": "Bearer cpt_not-a-real-token"}
        assert api.client.get(path, headers=bogus).status_code == 401, path
        basic = {"Authorization": "Basic dXNlcjpwYXNz"}
        assert api.client.get(path, headers=basic).status_code == 401, path
    answered = api.client.get("/api/v1/slos")
    assert answered.headers["www-authenticate"] == "Bearer"


def test_roles_are_ordered_viewer_operator_admin(api: Api) -> None:
    for role in Role:
        me = api.client.get("/api/v1/me", headers=api.headers(role))
        assert me.json() == {
            "name": f"test-{role.value}",
            "role": role.value,
            "kind": "token",
            "subject": None,
            "username": None,
            "full_name": None,
            "second_factor": None,
        }
    assert api.client.get("/api/v1/tokens", headers=api.headers(Role.VIEWER)).status_code == 403
    assert api.client.get("/api/v1/tokens", headers=api.headers(Role.OPERATOR)).status_code == 403
    listed = api.client.get("/api/v1/tokens", headers=api.headers(Role.ADMIN))
    assert listed.status_code == 200
    assert {token["name"] for token in listed.json()} == {f"test-{role.value}" for role in Role}
    assert all("hash" not in key for token in listed.json() for key in token)


def test_a_revoked_token_stops_working(api: Api) -> None:
    assert api.client.get("/api/v1/slos", headers=api.headers()).status_code == 200
    with api.runtime.database.writer() as session:
        revoke_token(session, name="test-viewer", at=datetime.now(UTC))
    assert api.client.get("/api/v1/slos", headers=api.headers()).status_code == 401


def test_health_reports_the_store_and_the_leadership(api: Api) -> None:
    health = api.client.get("/api/v1/health", headers=api.headers())
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ready"
    assert body["database"]["ok"] is True
    assert body["database"]["dialect"] == "sqlite"
    assert body["database"]["revision"] == body["database"]["expected_revision"]
    assert body["leader"]["mode"] == "sqlite-lease"
    assert body["leader"]["is_leader"] is True
    assert body["leader"]["fencing_token"] == 1
    assert body["leader"]["lease_expires_at"] > body["leader"]["confirmed_at"]
    live = api.client.get("/api/v1/health/live", headers=api.headers())
    assert live.json() == {"status": "alive"}


def _evaluation(slo: str, *, minutes_ago: int, **values: object) -> EvaluationRecord:
    fields: dict[str, object] = {
        "slo_id": slo,
        "service": "inventory",
        "at": NOW - timedelta(minutes=minutes_ago),
        "state": "ok",
        "sli": 0.9995,
        "objective": 0.999,
        "budget_remaining": 0.5,
        "burn_rates": {"5m": 0.5, "1h": 0.4},
        **values,
    }
    return EvaluationRecord.model_validate(fields)


def test_slo_status_is_the_latest_evaluation_and_no_data_stays_null(api: Api) -> None:
    with api.runtime.database.writer() as session:
        record_evaluations(
            session,
            evaluations=[
                _evaluation("api-availability", minutes_ago=2, budget_remaining=0.61),
                _evaluation("api-availability", minutes_ago=0, budget_remaining=0.6),
                _evaluation("api-availability", minutes_ago=1, budget_remaining=0.62),
                _evaluation(
                    "read-latency",
                    minutes_ago=0,
                    state="no_data",
                    sli=None,
                    budget_remaining=None,
                    burn_rates={"5m": None, "1h": None},
                    no_data_reason="slo:sli_error:ratio_rate5m absent",
                ),
            ],
        )
    slos = api.client.get("/api/v1/slos", headers=api.headers()).json()
    assert [slo["slo_id"] for slo in slos] == ["api-availability", "read-latency"]
    availability, latency = slos
    assert availability["budget_remaining"] == 0.6
    assert availability["burn_rates"] == {"5m": 0.5, "1h": 0.4}
    assert availability["stale"] is False
    assert latency["state"] == "no_data"
    assert latency["sli"] is None
    assert latency["budget_remaining"] is None
    assert latency["burn_rates"] == {"5m": None, "1h": None}
    assert latency["no_data_reason"] == "slo:sli_error:ratio_rate5m absent"

    # Details are typed: every field present, null when the evaluation did not compute it.
    assert availability["details"]["alerts"] == []
    assert availability["details"]["time_to_exhaustion_s"] is None

    one = api.client.get("/api/v1/slos/read-latency", headers=api.headers())
    assert one.json()["state"] == "no_data"
    assert api.client.get("/api/v1/slos/nope", headers=api.headers()).status_code == 404


def test_slo_history_is_newest_first_and_filtered_by_time(api: Api) -> None:
    with api.runtime.database.writer() as session:
        record_evaluations(
            session,
            evaluations=[
                _evaluation("api-availability", minutes_ago=minutes, budget_remaining=minutes / 100)
                for minutes in (30, 20, 10, 0)
            ],
        )
    history = api.client.get("/api/v1/slos/api-availability/history", headers=api.headers()).json()
    assert [item["budget_remaining"] for item in history] == [0.0, 0.1, 0.2, 0.3]
    since = (NOW - timedelta(minutes=15)).isoformat()
    recent = api.client.get(
        "/api/v1/slos/api-availability/history",
        params={"since": since, "limit": 1},
        headers=api.headers(),
    ).json()
    assert [item["budget_remaining"] for item in recent] == [0.0]
    missing = api.client.get("/api/v1/slos/unknown/history", headers=api.headers())
    assert missing.status_code == 404
    naive = api.client.get(
        "/api/v1/slos/api-availability/history",
        params={"since": "2025-01-01T00:00:00"},
        headers=api.headers(),
    )
    assert naive.status_code == 422


def test_every_slos_recent_series_in_one_request_thinned_oldest_first(api: Api) -> None:
    with api.runtime.database.writer() as session:
        record_evaluations(
            session,
            evaluations=[
                *[
                    _evaluation("api-availability", minutes_ago=minutes, budget_remaining=m)
                    for minutes, m in ((40, 0.4), (30, 0.3), (20, 0.2), (10, 0.1), (0, 0.0))
                ],
                _evaluation(
                    "read-latency",
                    minutes_ago=5,
                    state="no_data",
                    sli=None,
                    budget_remaining=None,
                ),
                _evaluation("other", minutes_ago=1, service="analytics"),
                _evaluation("old", minutes_ago=120),
            ],
        )
    since = (NOW - timedelta(minutes=35)).isoformat()
    answer = api.client.get(
        "/api/v1/slos/history", params={"since": since, "points": 2}, headers=api.headers()
    )
    assert answer.status_code == 200, answer.text
    series = {item["slo_id"]: item["points"] for item in answer.json()}
    assert sorted(series) == ["api-availability", "other", "read-latency"]  # "old": none since
    # 30, 20, 10 and 0 minutes ago thinned to two: the oldest and the newest.
    assert [point["budget_remaining"] for point in series["api-availability"]] == [0.3, 0.0]
    assert series["api-availability"][-1]["at"] == NOW.isoformat().replace("+00:00", "Z")
    assert series["read-latency"] == [
        {
            "at": (NOW - timedelta(minutes=5)).isoformat().replace("+00:00", "Z"),
            "state": "no_data",
            "sli": None,
            "budget_remaining": None,
        }
    ]
    only = api.client.get(
        "/api/v1/slos/history",
        params={"since": since, "service": "analytics"},
        headers=api.headers(),
    ).json()
    assert [item["slo_id"] for item in only] == ["other"]
    until = (NOW - timedelta(minutes=15)).isoformat()
    earlier = api.client.get(
        "/api/v1/slos/history", params={"since": since, "until": until}, headers=api.headers()
    ).json()
    assert [[p["budget_remaining"] for p in item["points"]] for item in earlier] == [[0.3, 0.2]]
    named = api.client.get(
        "/api/v1/slos/history",
        params=[("since", since), ("slo", "other"), ("slo", "read-latency"), ("slo", "nope")],
        headers=api.headers(),
    ).json()
    assert [item["slo_id"] for item in named] == ["other", "read-latency"]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"since": "2025-01-01T00:00:00"},
        {"since": "2025-01-02T00:00:00Z", "until": "2025-01-01T00:00:00Z"},
        {"since": "2025-01-01T00:00:00Z", "points": "0"},
        {"since": "2025-01-01T00:00:00Z", "points": "1001"},
        {"since": "2025-01-01T00:00:00Z", "slo": [f"slo-{n}" for n in range(201)]},
        {"since": "2025-01-01T00:00:00Z", "slo": ""},
    ],
)
def test_the_batch_history_refuses_what_it_cannot_answer(
    api: Api, params: dict[str, str | list[str]]
) -> None:
    answer = api.client.get("/api/v1/slos/history", params=params, headers=api.headers())
    assert answer.status_code == 422, answer.text


def test_an_old_evaluation_is_reported_stale(api: Api) -> None:
    with api.runtime.database.writer() as session:
        record_evaluations(session, evaluations=[_evaluation("api-availability", minutes_ago=10)])
    (slo,) = api.client.get("/api/v1/slos", headers=api.headers()).json()
    assert slo["stale"] is True  # 10 min > 3 × the 30 s evaluation interval


def test_findings_list_open_and_resolved(api: Api) -> None:
    with api.runtime.database.writer() as session:
        observe_finding(
            session,
            kind="replicas_below_min",
            subject="inventory",
            severity="critical",
            at=NOW - timedelta(minutes=5),
            evidence={"replicas": 2, "min": 3},
        )
        observe_finding(
            session,
            kind="replicas_below_min",
            subject="inventory",
            severity="critical",
            at=NOW,
            evidence={"replicas": 1, "min": 3},
        )
        observe_finding(
            session, kind="rpo_exceeded", subject="postgresql", severity="warning", at=NOW
        )
        resolve_finding(session, kind="rpo_exceeded", subject="postgresql", at=NOW)
    everything = api.client.get("/api/v1/findings", headers=api.headers()).json()
    assert len(everything) == 2
    open_ones = api.client.get(
        "/api/v1/findings", params={"open": "true"}, headers=api.headers()
    ).json()
    (replicas,) = open_ones
    assert replicas["occurrences"] == 2
    assert replicas["evidence"] == {"replicas": 1, "min": 3}
    assert replicas["first_seen"] < replicas["last_seen"]


def test_audit_log_lists_decisions_newest_first(api: Api) -> None:
    with api.runtime.database.writer() as session:
        for minutes, decision in ((5, "refused"), (1, "taken")):
            record_decision(
                session,
                decision=AuditDecision(
                    at=NOW - timedelta(minutes=minutes),
                    actor="action-engine",
                    action="scale",
                    target="deployment/inventory",
                    decision=decision,  # type: ignore[arg-type]
                    reason="burn rate 14.4x over 1h and 5m",
                    evidence={"burn_rate_1h": 15.2},
                    fencing_token=1,
                ),
            )
    entries = api.client.get("/api/v1/audit", headers=api.headers()).json()
    assert [entry["decision"] for entry in entries] == ["taken", "refused"]
    assert entries[0]["evidence"] == {"burn_rate_1h": 15.2}
    assert entries[0]["fencing_token"] == 1


def test_openapi_document_needs_a_token_and_describes_the_webhook(api: Api) -> None:
    document = api.client.get("/api/v1/openapi.json", headers=api.headers()).json()
    webhook = document["paths"]["/api/v1/alerts/webhook"]["post"]
    assert webhook["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AlertmanagerWebhook"
    }
    assert "AlertmanagerWebhook" in document["components"]["schemas"]
    status = document["components"]["schemas"]["SLOStatus"]["properties"]["details"]
    assert status == {"$ref": "#/components/schemas/EvaluationDetails"}
    details = document["components"]["schemas"]["EvaluationDetails"]["properties"]
    assert {"alerts", "period", "tier", "time_to_exhaustion_s", "latency_threshold_s"} <= set(
        details
    )
    alert = document["components"]["schemas"]["AlertDetail"]["properties"]
    assert {"severity", "long", "short", "factor", "firing", "state"} <= set(alert)
    assert webhook["security"] == [{"WebhookToken": []}]
    assert document["paths"]["/api/v1/slos"]["get"]["security"] == [{"ApiToken": []}]


@pytest.mark.parametrize("path", ["/api/v1/findings?limit=0", "/api/v1/alerts?status=pending"])
def test_bad_query_parameters_are_422(api: Api, path: str) -> None:
    assert api.client.get(path, headers=api.headers()).status_code == 422


def test_the_slo_list_is_not_sent_again_until_an_slo_changes(api: Api) -> None:
    with api.runtime.database.writer() as session:
        record_evaluations(
            session,
            evaluations=[
                _evaluation("api-availability", minutes_ago=2, budget_remaining=0.6),
                _evaluation("read-latency", minutes_ago=2, budget_remaining=0.7),
            ],
        )
    first = api.client.get("/api/v1/slos", headers=api.headers())
    assert first.status_code == 200
    etag = first.headers["etag"]
    unchanged = api.client.get("/api/v1/slos", headers={**api.headers(), "If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged.headers["etag"] == etag

    with api.runtime.database.writer() as session:  # a new evaluation of one SLO
        record_evaluations(
            session,
            evaluations=[_evaluation("api-availability", minutes_ago=0, budget_remaining=0.5)],
        )
    changed = api.client.get("/api/v1/slos", headers={**api.headers(), "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    budgets = {item["slo_id"]: item["budget_remaining"] for item in changed.json()}
    assert budgets == {"api-availability": 0.5, "read-latency": 0.7}

    with api.runtime.database.writer() as session:  # retention removed an SLO's evaluations
        session.execute(delete(SLOEvaluation).where(SLOEvaluation.slo_id == "read-latency"))
    gone = api.client.get("/api/v1/slos", headers={**api.headers(), "If-None-Match": etag})
    assert [item["slo_id"] for item in gone.json()] == ["api-availability"]
    only = api.client.get("/api/v1/slos", params={"service": "analytics"}, headers=api.headers())
    assert only.json() == []
