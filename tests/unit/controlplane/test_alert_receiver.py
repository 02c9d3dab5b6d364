"""The webhook receiver in process (SQLite store): auth, limits, validation, idempotency."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts.wiring import api_extensions, create_app
from controlplane.api import create_app as create_controlplane_app
from controlplane.core.config import SettingsError
from controlplane.store.alerts import AlertChange, list_deliveries
from controlplane.store.models import AlertDelivery
from tests.unit.controlplane.asgi import AppClient
from tests.unit.controlplane.conftest import WEBHOOK_TOKEN, Api, settings_for
from tests.unit.controlplane.payloads import iso, webhook_alert, webhook_payload

WEBHOOK = "/api/v1/alerts/webhook"


def _stored(api: Api) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    alerts = api.client.get("/api/v1/alerts", headers=api.headers()).json()
    deliveries = api.client.get("/api/v1/alerts/deliveries", headers=api.headers()).json()
    return alerts, deliveries


def test_a_delivery_is_stored_and_acknowledged(api: Api) -> None:
    answer = api.client.post(WEBHOOK, json=webhook_payload(), headers=api.webhook_headers)
    assert answer.status_code == 200
    assert answer.json()["outcomes"] == {"opened": 1}
    alerts, deliveries = _stored(api)
    (alert,) = alerts
    assert alert["fingerprint"] == "5f3c2a1b0e9d8c7a"
    assert alert["status"] == "firing"
    assert alert["alertname"] == "ErrorBudgetBurn1h5m"
    assert alert["severity"] == "page"
    assert alert["repeat_count"] == 0
    assert alert["closed_at"] is None
    assert [delivery["changed_count"] for delivery in deliveries] == [1]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {WEBHOOK_TOKEN}"},
        {"Authorization": f"Bearer {WEBHOOK_TOKEN}x"},
    ],
)
def test_a_bad_token_gets_401_and_writes_nothing(api: Api, headers: dict[str, str]) -> None:
    answer = api.client.post(WEBHOOK, json=webhook_payload(), headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert _stored(api) == ([], [])


def test_an_api_token_does_not_open_the_webhook(api: Api) -> None:
    answer = api.client.post(WEBHOOK, json=webhook_payload(), headers=api.headers())
    assert answer.status_code == 401
    assert _stored(api) == ([], [])


def test_a_malformed_payload_gets_422_naming_the_field_and_writes_nothing(api: Api) -> None:
    body = webhook_payload()
    body["alerts"][0]["startsAt"] = "not a time"
    answer = api.client.post(WEBHOOK, json=body, headers=api.webhook_headers)
    assert answer.status_code == 422
    locations = [error["loc"] for error in answer.json()["detail"]]
    assert locations == [["body", "alerts", 0, "startsAt"]]
    assert _stored(api) == ([], [])


def test_a_wrong_version_is_refused(api: Api) -> None:
    body = webhook_payload()
    body["version"] = "5"
    answer = api.client.post(WEBHOOK, json=body, headers=api.webhook_headers)
    assert answer.status_code == 422
    assert [error["loc"] for error in answer.json()["detail"]] == [["body", "version"]]


def test_a_body_that_is_not_json_gets_422(api: Api) -> None:
    answer = api.client.post(WEBHOOK, content=b"{not json", headers=api.webhook_headers)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["type"] == "json_invalid"
    assert _stored(api) == ([], [])


def test_a_body_over_the_limit_gets_413_and_writes_nothing(tmp_path: Path) -> None:
    app = create_app(settings_for(tmp_path, webhook={"max_webhook_body_bytes": 2048}))
    body = webhook_payload()
    body["commonAnnotations"] = {"description": "x" * 4096}
    headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    with AppClient(app) as client:
        declared = client.post(WEBHOOK, json=body, headers=headers)
        assert declared.status_code == 413

        async def chunks() -> AsyncIterator[bytes]:
            # Streamed without a Content-Length: the limit is enforced while reading.
            data = json.dumps(body).encode()
            for start in range(0, len(data), 512):
                yield data[start : start + 512]

        streamed = client.post(WEBHOOK, content=chunks(), headers=headers)
        assert streamed.status_code == 413
        assert client.post(WEBHOOK, json=webhook_payload(), headers=headers).status_code == 200
        with app.state.runtime.database.reader() as session:
            assert len(list_deliveries(session)) == 1


def test_a_repeated_delivery_is_a_repeat_and_changes_nothing(api: Api) -> None:
    for _ in range(3):
        assert (
            api.client.post(
                WEBHOOK, json=webhook_payload(), headers=api.webhook_headers
            ).status_code
            == 200
        )
    alerts, deliveries = _stored(api)
    (alert,) = alerts
    assert alert["repeat_count"] == 2
    assert alert["first_received_at"] < alert["last_received_at"]
    assert sorted(delivery["repeat_count"] for delivery in deliveries) == [0, 1, 1]


def test_resolved_closes_the_record_and_a_late_firing_stays_closed(api: Api) -> None:
    fired = webhook_alert()
    resolved = webhook_alert(status="resolved", ends_at="2025-11-20T10:20:00Z")
    post = lambda body: api.client.post(WEBHOOK, json=body, headers=api.webhook_headers)  # noqa: E731

    assert post(webhook_payload(fired)).json()["outcomes"] == {"opened": 1}
    assert post(webhook_payload(resolved)).json()["outcomes"] == {"closed": 1}
    assert post(webhook_payload(resolved)).json()["outcomes"] == {"repeat": 1}
    assert post(webhook_payload(fired)).json()["outcomes"] == {"stale": 1}

    (alert,) = api.client.get(
        "/api/v1/alerts", params={"status": "resolved"}, headers=api.headers()
    ).json()
    assert alert["status"] == "resolved"
    assert alert["closed_at"] is not None
    assert alert["ends_at"] == "2025-11-20T10:20:00Z"
    assert alert["repeat_count"] == 2
    firing = api.client.get("/api/v1/alerts", params={"status": "firing"}, headers=api.headers())
    assert firing.json() == []


def test_a_resolved_alert_never_seen_firing_is_recorded_closed(api: Api) -> None:
    resolved = webhook_alert(fingerprint="aa11", status="resolved", ends_at="2025-11-20T11:00:00Z")
    answer = api.client.post(WEBHOOK, json=webhook_payload(resolved), headers=api.webhook_headers)
    assert answer.json()["outcomes"] == {"closed_unseen": 1}
    (alert,) = _stored(api)[0]
    assert alert["status"] == "resolved"
    assert alert["closed_at"] is not None


def test_a_new_start_time_is_a_new_alert(api: Api) -> None:
    first = webhook_alert(starts_at="2025-11-20T10:00:00Z")
    again = webhook_alert(starts_at=iso(datetime(2025, 11, 20, 12, tzinfo=UTC)))
    api.client.post(WEBHOOK, json=webhook_payload(first), headers=api.webhook_headers)
    api.client.post(WEBHOOK, json=webhook_payload(again), headers=api.webhook_headers)
    alerts, _ = _stored(api)
    assert [alert["starts_at"] for alert in alerts] == [
        "2025-11-20T12:00:00Z",
        "2025-11-20T10:00:00Z",
    ]


def test_listeners_hear_only_about_alerts_that_changed(api: Api) -> None:
    heard: list[list[tuple[str, str]]] = []

    def listener(changes: Sequence[AlertChange]) -> None:
        heard.append([(change.fingerprint, change.outcome) for change in changes])

    api.runtime.alert_listeners.append(listener)
    a = webhook_alert(fingerprint="aaaa")
    b = webhook_alert(fingerprint="bbbb")
    post = lambda body: api.client.post(WEBHOOK, json=body, headers=api.webhook_headers)  # noqa: E731
    post(webhook_payload(a))
    post(webhook_payload(a))  # a repeat: nothing new
    post(webhook_payload(a, b))  # b is new, a repeats
    post(webhook_payload(webhook_alert(fingerprint="aaaa", status="resolved"), b))
    assert heard == [[("aaaa", "opened")], [("bbbb", "opened")], [("aaaa", "closed")]]


def test_a_failing_listener_does_not_lose_the_alert(api: Api) -> None:
    def broken(changes: Sequence[AlertChange]) -> None:
        raise RuntimeError("listener bug")

    api.runtime.alert_listeners.append(broken)
    answer = api.client.post(WEBHOOK, json=webhook_payload(), headers=api.webhook_headers)
    assert answer.status_code == 200
    assert len(_stored(api)[0]) == 1


def test_the_receiver_refuses_to_start_without_a_webhook_token(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, webhook={"webhook_token": None})
    with pytest.raises(SettingsError, match="CONTROLPLANE_WEBHOOK_TOKEN"):
        create_app(settings)


def test_alert_times_are_stored_in_utc(api: Api) -> None:
    alert = webhook_alert(starts_at="2025-11-20T12:00:00+02:00")
    api.client.post(WEBHOOK, json=webhook_payload(alert), headers=api.webhook_headers)
    (stored,) = _stored(api)[0]
    assert stored["starts_at"] == "2025-11-20T10:00:00Z"
    received = datetime.fromisoformat(stored["first_received_at"])
    assert abs(received - datetime.now(UTC)) < timedelta(minutes=1)


def _webhook_answers(app: Any) -> list[tuple[int, Any, str | None]]:
    """What a sequence of deliveries (good, bad, repeated, too large) gets from ``app``."""
    good = webhook_payload()
    bad = webhook_payload()
    bad["alerts"][0]["startsAt"] = "not a time"
    large = webhook_payload()
    large["commonAnnotations"] = {"description": "x" * 4096}
    token = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    requests: list[tuple[dict[str, str], bytes]] = [
        ({}, json.dumps(good).encode()),
        ({"Authorization": f"bearer {WEBHOOK_TOKEN}"}, json.dumps(good).encode()),
        (token, json.dumps(good).encode()),
        (token, json.dumps(bad).encode()),
        (token, b"{not json"),
        (token, json.dumps(large).encode()),
        ({"Authorization": "Bearer"}, json.dumps(good).encode()),
    ]
    answers = []
    with AppClient(app) as client:
        for headers, body in requests:
            answer = client.post(
                WEBHOOK, content=body, headers={**headers, "Content-Type": "application/json"}
            )
            assert answer.headers["content-type"] == "application/json"
            answers.append(
                (answer.status_code, answer.json(), answer.headers.get("www-authenticate"))
            )
    return answers


def test_the_documented_route_answers_as_the_endpoint_ahead_of_routing(tmp_path: Path) -> None:
    # The receiver is served ahead of the API's routing; its FastAPI route (for OpenAPI) must
    # give the same answers when it is the one that serves.
    routed = []
    for name, ahead in (("ahead", True), ("routed", False)):
        settings = settings_for(tmp_path / name, webhook={"max_webhook_body_bytes": 2048})
        (extension,) = api_extensions(settings)
        assert extension.endpoints
        if not ahead:
            extension = replace(extension, endpoints={})
        routed.append(_webhook_answers(create_controlplane_app(settings, extensions=[extension])))
    fast, slow = routed
    assert fast == slow
    assert [status for status, _, _ in fast] == [401, 200, 200, 422, 422, 413, 401]
    assert fast[0][2] == "Bearer"
    assert fast[1][1]["outcomes"] == {"opened": 1}
    assert fast[2][1]["outcomes"] == {"repeat": 1}


def test_a_nul_character_gets_422_naming_the_field_and_writes_nothing(api: Api) -> None:
    body = webhook_payload()
    body["alerts"][0]["labels"]["slo"] = "api\x00availability"  # sent as the escape \u0000
    answer = api.client.post(WEBHOOK, json=body, headers=api.webhook_headers)
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert "alerts.0.labels.slo: NUL" in error["msg"]
    assert _stored(api) == ([], [])


def test_the_text_of_the_nul_escape_is_stored_as_text(api: Api) -> None:
    body = webhook_payload()
    body["commonAnnotations"] = {"summary": "the escape \\u0000 written out"}
    answer = api.client.post(WEBHOOK, json=body, headers=api.webhook_headers)
    assert answer.status_code == 200
    (delivery,) = _stored(api)[1]
    with api.runtime.database.reader() as session:
        stored = session.get(AlertDelivery, delivery["id"])
        assert stored is not None
        assert stored.payload["commonAnnotations"] == {"summary": "the escape \\u0000 written out"}


def test_a_receiver_bug_is_a_500_and_acknowledges_nothing(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(self: object) -> None:
        raise RuntimeError("receiver bug")

    monkeypatch.setattr("alerts.models.WebhookPayload.to_delivery", broken)
    answer = api.client.post(WEBHOOK, json=webhook_payload(), headers=api.webhook_headers)
    assert answer.status_code == 500
    assert answer.json() == {"detail": "the delivery could not be stored"}
    assert "receiver bug" in caplog.text
    assert _stored(api) == ([], [])
