"""The deliveries of the constant-rate webhook run (``make bench-controlplane``): what
Alertmanager sends with per-alert grouping, one distinct firing alert each."""

from __future__ import annotations

import json

import pytest

from alerts.models import WebhookPayload
from bench.controlplane import alert_delivery

pytestmark = pytest.mark.unit


def test_each_delivery_is_a_valid_payload_with_one_distinct_firing_alert() -> None:
    payloads = [
        WebhookPayload.model_validate(json.loads(alert_delivery(run="r1", number=n)))
        for n in range(3)
    ]
    assert [len(p.alerts) for p in payloads] == [1, 1, 1]
    assert {p.alerts[0].status for p in payloads} == {"firing"}
    assert len({p.alerts[0].fingerprint for p in payloads}) == 3
    assert len({p.group_key for p in payloads}) == 3
    other_run = WebhookPayload.model_validate(json.loads(alert_delivery(run="r2", number=0)))
    assert other_run.alerts[0].fingerprint != payloads[0].alerts[0].fingerprint
