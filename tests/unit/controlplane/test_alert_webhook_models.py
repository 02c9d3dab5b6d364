"""The version-4 webhook model: what Alertmanager sends is read, anything else is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from alerts.models import WebhookPayload
from tests.unit.controlplane.payloads import webhook_alert, webhook_payload


def test_an_alertmanager_payload_becomes_a_delivery() -> None:
    payload = WebhookPayload.model_validate_json(json.dumps(webhook_payload()))
    delivery = payload.to_delivery()
    (alert,) = delivery.alerts
    assert delivery.receiver == "controlplane"
    assert alert.fingerprint == "5f3c2a1b0e9d8c7a"
    # Nanoseconds are cut to microseconds; Go's zero time means "no end yet".
    assert alert.starts_at == datetime(2025, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)
    assert alert.ends_at is None
    assert alert.labels["slo"] == "api-availability"


def test_newer_fields_and_unknown_fields_are_accepted_and_kept() -> None:
    body = webhook_payload()
    body["routeLabels"] = {"severity": "page"}
    body["notification_reason"] = "repeat interval elapsed"
    body["somethingFromTheFuture"] = {"x": 1}
    body["alerts"][0]["extraAlertField"] = True
    payload = WebhookPayload.model_validate(body)
    assert payload.route_labels == {"severity": "page"}
    assert payload.notification_reason == "repeat interval elapsed"
    stored = payload.to_delivery().payload
    assert stored["somethingFromTheFuture"] == {"x": 1}
    assert stored["alerts"][0]["extraAlertField"] is True
    assert stored["startsAt" if False else "groupKey"] == body["groupKey"]


@pytest.mark.parametrize(
    ("mutate", "location"),
    [
        (lambda body: body.update(version="3"), ("version",)),
        (lambda body: body.pop("groupKey"), ("groupKey",)),
        (lambda body: body.update(status="pending"), ("status",)),
        (lambda body: body.update(alerts=[]), ("alerts",)),
        (lambda body: body["alerts"][0].update(startsAt="yesterday"), ("alerts", 0, "startsAt")),
        (lambda body: body["alerts"][0].pop("fingerprint"), ("alerts", 0, "fingerprint")),
        (lambda body: body["alerts"][0].update(status="ok"), ("alerts", 0, "status")),
        (lambda body: body.update(truncatedAlerts=-1), ("truncatedAlerts",)),
    ],
)
def test_a_malformed_payload_is_refused_naming_the_field(
    mutate: object, location: tuple[object, ...]
) -> None:
    body = webhook_payload()
    mutate(body)  # type: ignore[operator]
    with pytest.raises(ValidationError) as caught:
        WebhookPayload.model_validate(body)
    assert location in [tuple(error["loc"]) for error in caught.value.errors()]


def test_a_resolved_alert_keeps_its_end_time() -> None:
    body = webhook_payload(
        webhook_alert(status="resolved", ends_at="2025-11-20T10:30:00Z"), status="resolved"
    )
    (alert,) = WebhookPayload.model_validate(body).to_delivery().alerts
    assert alert.status == "resolved"
    assert alert.ends_at == datetime(2025, 11, 20, 10, 30, tzinfo=UTC)


def test_openapi_components_describe_the_payload() -> None:
    components = WebhookPayload.openapi_components()
    assert set(components) == {"AlertmanagerWebhook", "WebhookAlert"}
    assert components["AlertmanagerWebhook"]["properties"]["alerts"]["items"] == {
        "$ref": "#/components/schemas/WebhookAlert"
    }
