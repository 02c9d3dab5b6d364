"""The operator controls of the API: kill switch and approvals by role; capacity and DR views."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from controlplane.core.security import Role
from controlplane.store.actions import decide_once
from controlplane.store.audit import AuditDecision
from tests.unit.controlplane.conftest import Api, running_api, settings_for

pytestmark = pytest.mark.unit


def pending_decision(api: Api, trigger: str) -> str:
    with api.runtime.database.writer() as session:
        entry = decide_once(
            session,
            decision=AuditDecision(
                at=datetime.now(UTC),
                actor="engine",
                action="scale_out",
                target="service/inventory",
                decision="pending",
                reason="read-latency burning 20x",
                evidence={"service": "inventory", "desired": 6},
                trigger_key=trigger,
            ),
        )
    return entry.decision_id


def test_kill_switch_is_off_by_default_and_only_operators_flip_it(api: Api) -> None:
    state = api.client.get("/api/v1/actions/state", headers=api.headers())
    assert state.status_code == 200
    assert state.json()["kill_switch"] is False
    body = {"enabled": True, "reason": "incident 42"}
    refused = api.client.request(
        "PUT", "/api/v1/actions/kill-switch", json=body, headers=api.headers(Role.VIEWER)
    )
    assert refused.status_code == 403
    assert (
        api.client.get("/api/v1/actions/state", headers=api.headers()).json()["kill_switch"]
        is False
    )
    flipped = api.client.request(
        "PUT", "/api/v1/actions/kill-switch", json=body, headers=api.headers(Role.OPERATOR)
    )
    assert flipped.status_code == 200
    assert flipped.json()["kill_switch"] is True
    assert flipped.json()["changed_by"] == "test-operator"
    assert flipped.json()["reason"] == "incident 42"


def test_malformed_kill_switch_body_is_422_naming_the_field(api: Api) -> None:
    response = api.client.request(
        "PUT",
        "/api/v1/actions/kill-switch",
        json={"enabled": "maybe"},
        headers=api.headers(Role.OPERATOR),
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == "enabled"


def test_pending_actions_are_approved_by_operators_only_and_once(api: Api) -> None:
    decision_id = pending_decision(api, "alert:x:1:scale_out")
    listed = api.client.get("/api/v1/actions/pending", headers=api.headers()).json()
    assert [p["decision_id"] for p in listed] == [decision_id]
    assert listed[0]["service"] == "inventory"
    url = f"/api/v1/actions/{decision_id}/approve"
    assert api.client.post(url, json={}, headers=api.headers(Role.VIEWER)).status_code == 403
    approved = api.client.post(url, json={"comment": "go"}, headers=api.headers(Role.OPERATOR))
    assert approved.status_code == 200
    assert approved.json()["decision"] == "taken"
    assert "approved by test-operator: go" in approved.json()["reason"]
    again = api.client.post(url, json={}, headers=api.headers(Role.OPERATOR))
    assert again.status_code == 409
    assert api.client.get("/api/v1/actions/pending", headers=api.headers()).json() == []
    unknown = api.client.post(
        "/api/v1/actions/nope/deny", json={}, headers=api.headers(Role.OPERATOR)
    )
    assert unknown.status_code == 404


def test_denied_action_is_refused_with_the_operator_named(api: Api) -> None:
    decision_id = pending_decision(api, "alert:y:1:scale_out")
    denied = api.client.post(
        f"/api/v1/actions/{decision_id}/deny",
        json={"comment": "peak"},
        headers=api.headers(Role.ADMIN),
    )
    assert denied.status_code == 200
    assert (denied.json()["decision"], denied.json()["outcome"]) == ("refused", "denied")


def test_capacity_and_dr_views_say_why_live_data_is_missing(api: Api) -> None:
    capacity = api.client.get("/api/v1/capacity", headers=api.headers()).json()
    assert "no orchestrator configured" in capacity["error"]
    inventory = next(s for s in capacity["services"] if s["service"] == "inventory")
    assert inventory["policy"]["min_replicas"] == 3
    assert inventory["live"] is None
    assert capacity["orchestrator"]["kind"] is None
    assert capacity["workloads"] is None  # unread, not "no workloads"
    dr = api.client.get("/api/v1/dr", headers=api.headers()).json()
    (database,) = dr["databases"]
    assert (database["database"], database["rto_s"], database["rpo_s"]) == ("inventory", 900, 300)
    assert database["replicas"] is None
    assert "no database nodes configured" in database["error"]
    assert database["drills"] == []


@pytest.mark.parametrize(
    ("path", "setting"),
    [("/api/v1/dr", "dr_policy"), ("/api/v1/capacity", "capacity_policy")],
)
def test_a_broken_policy_is_a_clear_error_on_both_views(
    tmp_path: Path, path: str, setting: str
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: inventory-slo/v1\nkind: [not, a, kind\n", encoding="utf-8")
    with running_api(settings_for(tmp_path, policies={setting: broken})) as api:
        answer = api.client.get(path, headers=api.headers())
    assert answer.status_code == 500
    assert answer.json()["error"] == "PolicyError"
    assert str(broken) in answer.json()["detail"]


def test_a_drill_posted_by_an_operator_shows_on_the_dr_view(api: Api) -> None:
    drill = {
        "database": "inventory",
        "kind": "failover",
        "started_at": "2026-01-05T10:00:00+00:00",
        "finished_at": "2026-01-05T10:00:03+00:00",
        "succeeded": True,
        "measured_rto_s": 2.5,
        "lost_acknowledged_writes": 0,
        "acknowledged_writes": 812,
    }
    refused = api.client.post("/api/v1/dr/drills", json=drill, headers=api.headers(Role.VIEWER))
    assert refused.status_code == 403
    stored = api.client.post("/api/v1/dr/drills", json=drill, headers=api.headers(Role.OPERATOR))
    assert stored.status_code == 201, stored.text
    (database,) = api.client.get("/api/v1/dr", headers=api.headers()).json()["databases"]
    assert [(d["kind"], d["measured_rto_s"]) for d in database["drills"]] == [("failover", 2.5)]


def test_drills_and_switchovers_on_request_need_the_action_engine(api: Api) -> None:
    """``alerts.wiring.create_app`` runs the API alone: no engine to decide or run them."""
    for path, body in (
        ("/api/v1/dr/drills/run", {"kind": "switchover"}),
        ("/api/v1/actions/switchover", {}),
    ):
        denied = api.client.post(path, json=body, headers=api.headers(Role.VIEWER))
        assert denied.status_code == 403
        refused = api.client.post(path, json=body, headers=api.headers(Role.OPERATOR))
        assert refused.status_code == 409
        assert "the action engine does not run in this process" in refused.json()["detail"]


def test_a_drill_of_an_unknown_kind_is_422_naming_the_field(api: Api) -> None:
    response = api.client.post(
        "/api/v1/dr/drills/run", json={"kind": "meteor"}, headers=api.headers(Role.OPERATOR)
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "kind"]
