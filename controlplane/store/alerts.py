"""Alertmanager alerts and webhook deliveries, stored idempotently.

An alert occurrence is identified by (fingerprint, starts_at) and moves from ``firing`` to
``resolved`` once. For each alert of a delivery the outcome is one of:

* ``opened``: first time this firing alert is seen;
* ``closed``: a resolved notice for an open alert (sets ``closed_at``);
* ``closed_unseen``: a resolved notice for an alert never seen firing (recorded closed);
* ``repeat``: (fingerprint, starts_at, status) was already recorded: the alert's
  ``repeat_count`` goes up and nothing else changes;
* ``stale``: a firing notice for an alert already resolved (a late retry): counted as a repeat,
  the alert stays closed.

The whole delivery (every alert plus the delivery row) is one transaction, so a delivery is
either fully recorded or not at all, and concurrent deliveries of the same alert cannot both
open it: the insert is ``ON CONFLICT DO NOTHING`` on the (fingerprint, starts_at) key, alerts
are processed in key order (no deadlocks between deliveries), and on SQLite write transactions
are serialised (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import Connection, Table, bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from controlplane.store._sql import insert_for_dialect
from controlplane.store.models import Alert, AlertDelivery

__all__ = [
    "AlertChange",
    "AlertOutcome",
    "AlertStatus",
    "DeliveryResult",
    "IncomingAlert",
    "IncomingDelivery",
    "StoredAlert",
    "StoredDelivery",
    "get_alert",
    "list_alerts",
    "list_deliveries",
    "record_deliveries",
    "record_delivery",
]

AlertStatus = Literal["firing", "resolved"]
AlertOutcome = Literal["opened", "closed", "closed_unseen", "repeat", "stale"]
#: Outcomes that change the state of an alert (the ones worth telling the action engine about).
CHANGES: frozenset[str] = frozenset({"opened", "closed", "closed_unseen"})


class IncomingAlert(BaseModel):
    model_config = ConfigDict(frozen=True)

    fingerprint: str = Field(min_length=1, max_length=64)
    status: AlertStatus
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generator_url: str = ""


class IncomingDelivery(BaseModel):
    """A webhook delivery, independent of the webhook's wire format."""

    model_config = ConfigDict(frozen=True)

    receiver: str
    status: AlertStatus
    group_key: str = ""
    truncated_alerts: int = 0
    notification_reason: str | None = None
    alerts: tuple[IncomingAlert, ...]
    payload: dict[str, Any] = Field(default_factory=dict)


class AlertChange(BaseModel):
    """What one delivery did to one alert."""

    model_config = ConfigDict(frozen=True)

    alert_id: int
    fingerprint: str
    starts_at: AwareDatetime
    status: AlertStatus
    outcome: AlertOutcome
    labels: dict[str, str]

    @classmethod
    def opened(cls, alert_id: int, alert: IncomingAlert | StoredAlert) -> AlertChange:
        """``alert`` (already validated) opened as ``alert_id``."""
        return cls.model_construct(
            alert_id=alert_id,
            fingerprint=alert.fingerprint,
            starts_at=alert.starts_at,
            status=alert.status,
            outcome="opened",
            labels=alert.labels,
        )


class DeliveryResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    delivery_id: int
    changes: tuple[AlertChange, ...]

    @property
    def changed(self) -> tuple[AlertChange, ...]:
        """Alerts this delivery opened or closed (repeats excluded)."""
        return tuple(change for change in self.changes if change.outcome in CHANGES)

    @property
    def repeats(self) -> int:
        return sum(1 for change in self.changes if change.outcome not in CHANGES)


class StoredAlert(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: int
    fingerprint: str
    starts_at: AwareDatetime
    status: AlertStatus
    ends_at: AwareDatetime | None
    alertname: str
    severity: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str
    receiver: str
    group_key: str
    first_received_at: AwareDatetime
    last_received_at: AwareDatetime
    repeat_count: int
    closed_at: AwareDatetime | None


class StoredDelivery(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: int
    received_at: AwareDatetime
    receiver: str
    status: AlertStatus
    group_key: str
    truncated_alerts: int
    notification_reason: str | None
    alert_count: int
    changed_count: int
    repeat_count: int
    outcomes: list[dict[str, Any]]


def _key(alert: IncomingAlert) -> tuple[str, datetime, str]:
    return (alert.fingerprint, alert.starts_at, alert.status)


# The statements are built once, with bind parameters, and run on the Core table: a webhook
# delivery of one alert is a handful of these, and building each anew (``.values(...)``) through
# the ORM cost about ten times the SQL itself.
_ALERTS: Table = Alert.__table__  # type: ignore[assignment]
_DELIVERIES: Table = AlertDelivery.__table__  # type: ignore[assignment]
_SAME = (_ALERTS.c.fingerprint == bindparam("k_fingerprint")) & (
    _ALERTS.c.starts_at == bindparam("k_starts_at")
)
# The inserts take their columns from the rows given (``_alert_row``, ``_delivery_row``).
_INSERT_ALERT = {
    name: insert_for_dialect(name, _ALERTS)
    .on_conflict_do_nothing(index_elements=["fingerprint", "starts_at"])
    .returning(_ALERTS.c.id)
    for name in ("postgresql", "sqlite")
}
#: Many new alerts at once (ids in the order of the rows); no ON CONFLICT: a clash fails.
_INSERT_ALERTS = {
    name: insert_for_dialect(name, _ALERTS).returning(_ALERTS.c.id, sort_by_parameter_order=True)
    for name in ("postgresql", "sqlite")
}
#: Is any of these fingerprints stored? One parameter whatever their number (an expanding
#: ``IN`` is compiled again for every new count): a JSON array on SQLite, an array on PostgreSQL.
_KNOWN = {
    "sqlite": text(
        "SELECT 1 FROM alerts WHERE fingerprint IN (SELECT value FROM json_each(:fingerprints)) "
        "LIMIT 1"
    ),
    "postgresql": text(
        "SELECT 1 FROM alerts WHERE fingerprint = ANY(CAST(:fingerprints AS TEXT[])) LIMIT 1"
    ),
}
_COUNT_REPEAT = (
    update(_ALERTS)
    .where(_SAME)
    .values(repeat_count=_ALERTS.c.repeat_count + 1, last_received_at=bindparam("received_at"))
    .returning(_ALERTS.c.id, _ALERTS.c.status)
)
_CLOSE = (
    update(_ALERTS)
    .where(_SAME & (_ALERTS.c.status == "firing"))
    .values(
        status="resolved",
        ends_at=bindparam("ends_at"),
        closed_at=bindparam("received_at"),
        last_received_at=bindparam("received_at"),
    )
    .returning(_ALERTS.c.id)
)
#: One or many deliveries (ids in the order of the rows).
_INSERT_DELIVERIES = insert(_DELIVERIES).returning(_DELIVERIES.c.id, sort_by_parameter_order=True)


def _same(alert: IncomingAlert) -> dict[str, Any]:
    return {"k_fingerprint": alert.fingerprint, "k_starts_at": alert.starts_at}


def _insert_alert(
    connection: Connection,
    *,
    alert: IncomingAlert,
    delivery: IncomingDelivery,
    received_at: datetime,
) -> int | None:
    """Insert the alert unless (fingerprint, starts_at) exists; its id, or None on conflict."""
    return connection.execute(
        _INSERT_ALERT[connection.dialect.name],
        _alert_row(alert, delivery=delivery, received_at=received_at),
    ).scalar_one_or_none()


def _count_repeat(
    connection: Connection, *, alert: IncomingAlert, received_at: datetime
) -> tuple[int, str]:
    row = connection.execute(_COUNT_REPEAT, {**_same(alert), "received_at": received_at}).one()
    return int(row.id), str(row.status)


def _close(connection: Connection, *, alert: IncomingAlert, received_at: datetime) -> int | None:
    return connection.execute(
        _CLOSE, {**_same(alert), "ends_at": alert.ends_at, "received_at": received_at}
    ).scalar_one_or_none()


def _apply(
    connection: Connection,
    *,
    alert: IncomingAlert,
    delivery: IncomingDelivery,
    received_at: datetime,
) -> tuple[int, AlertOutcome]:
    if alert.status == "resolved":
        closed = _close(connection, alert=alert, received_at=received_at)
        if closed is not None:
            return closed, "closed"
    inserted = _insert_alert(connection, alert=alert, delivery=delivery, received_at=received_at)
    if inserted is not None:
        return inserted, "opened" if alert.status == "firing" else "closed_unseen"
    alert_id, current = _count_repeat(connection, alert=alert, received_at=received_at)
    if alert.status == "firing" and current == "resolved":
        return alert_id, "stale"
    return alert_id, "repeat"


def _connection(session: Session | Connection) -> Connection:
    return session if isinstance(session, Connection) else session.connection()


def record_delivery(
    session: Session | Connection, *, delivery: IncomingDelivery, received_at: datetime
) -> DeliveryResult:
    """Record a webhook delivery and its alerts (call inside one write transaction, of an ORM
    session or of a Core connection)."""
    connection = _connection(session)
    changes: list[AlertChange] = []
    for alert in sorted(delivery.alerts, key=_key):
        alert_id, outcome = _apply(
            connection, alert=alert, delivery=delivery, received_at=received_at
        )
        changes.append(
            AlertChange.model_construct(  # every value comes validated
                alert_id=alert_id,
                fingerprint=alert.fingerprint,
                starts_at=alert.starts_at,
                status=alert.status,
                outcome=outcome,
                labels=alert.labels,
            )
        )
    delivery_id = connection.execute(
        _INSERT_DELIVERIES, _delivery_row(delivery, changes=changes, received_at=received_at)
    ).scalar_one()
    return DeliveryResult.model_construct(delivery_id=delivery_id, changes=tuple(changes))


def _delivery_row(
    delivery: IncomingDelivery, *, changes: list[AlertChange], received_at: datetime
) -> dict[str, Any]:
    changed = sum(1 for change in changes if change.outcome in CHANGES)
    return {
        "received_at": received_at,
        "receiver": delivery.receiver,
        "status": delivery.status,
        "group_key": delivery.group_key,
        "truncated_alerts": delivery.truncated_alerts,
        "notification_reason": delivery.notification_reason,
        "alert_count": len(changes),
        "changed_count": changed,
        "repeat_count": len(changes) - changed,
        "outcomes": [change.model_dump(mode="json", exclude={"labels"}) for change in changes],
        "payload": delivery.payload,
    }


def _alert_row(
    alert: IncomingAlert, *, delivery: IncomingDelivery, received_at: datetime
) -> dict[str, Any]:
    resolved = alert.status == "resolved"
    return {
        "fingerprint": alert.fingerprint,
        "starts_at": alert.starts_at,
        "status": alert.status,
        "ends_at": alert.ends_at if resolved else None,
        "alertname": alert.labels.get("alertname", ""),
        "severity": alert.labels.get("severity"),
        "labels": alert.labels,
        "annotations": alert.annotations,
        "generator_url": alert.generator_url,
        "receiver": delivery.receiver,
        "group_key": delivery.group_key,
        "first_received_at": received_at,
        "last_received_at": received_at,
        "repeat_count": 0,
        "closed_at": received_at if resolved else None,
    }


def record_deliveries(
    session: Session | Connection, *, deliveries: Sequence[tuple[IncomingDelivery, datetime]]
) -> list[DeliveryResult]:
    """Record several deliveries (each with the time it was received) in one write transaction,
    in order: the same outcome as :func:`record_delivery` on each in turn.

    When every alert of every delivery is new and firing (a burst of new alerts, the case that
    comes in floods), all of them are inserted with one multi-row ``INSERT ... RETURNING`` and
    the deliveries with another; otherwise, or if an insert meets an alert another writer just
    stored (the unique key refuses it and the transaction fails: the caller writes again), one
    by one."""
    keys = [
        (alert.fingerprint, alert.starts_at)
        for delivery, _ in deliveries
        for alert in delivery.alerts
    ]
    simple = len(set(keys)) == len(keys) and all(
        alert.status == "firing" for delivery, _ in deliveries for alert in delivery.alerts
    )
    connection = _connection(session)
    if simple:
        fingerprints = sorted({fingerprint for fingerprint, _ in keys})
        dialect = connection.dialect.name
        listed = json.dumps(fingerprints) if dialect == "sqlite" else fingerprints
        simple = connection.execute(_KNOWN[dialect], {"fingerprints": listed}).first() is None
    if not simple:
        return [
            record_delivery(session, delivery=delivery, received_at=received_at)
            for delivery, received_at in deliveries
        ]
    ordered = [sorted(delivery.alerts, key=_key) for delivery, _ in deliveries]
    rows = [
        _alert_row(alert, delivery=delivery, received_at=received_at)
        for (delivery, received_at), alerts in zip(deliveries, ordered, strict=True)
        for alert in alerts
    ]
    ids = iter(connection.execute(_INSERT_ALERTS[connection.dialect.name], rows).scalars().all())
    changes = [[AlertChange.opened(next(ids), alert) for alert in alerts] for alerts in ordered]
    delivery_ids = (
        connection.execute(
            _INSERT_DELIVERIES,
            [
                _delivery_row(delivery, changes=found, received_at=received_at)
                for (delivery, received_at), found in zip(deliveries, changes, strict=True)
            ],
        )
        .scalars()
        .all()
    )
    return [
        DeliveryResult.model_construct(delivery_id=delivery_id, changes=tuple(found))
        for delivery_id, found in zip(delivery_ids, changes, strict=True)
    ]


def list_alerts(
    session: Session,
    *,
    status: AlertStatus | None = None,
    fingerprint: str | None = None,
    limit: int = 200,
) -> list[StoredAlert]:
    """Alerts, most recently started first."""
    statement = select(Alert)
    if status is not None:
        statement = statement.where(Alert.status == status)
    if fingerprint is not None:
        statement = statement.where(Alert.fingerprint == fingerprint)
    statement = statement.order_by(Alert.starts_at.desc(), Alert.id.desc()).limit(limit)
    return [StoredAlert.model_validate(row) for row in session.scalars(statement)]


def get_alert(session: Session, *, alert_id: int) -> StoredAlert | None:
    row = session.get(Alert, alert_id)
    return None if row is None else StoredAlert.model_validate(row)


def list_deliveries(session: Session, *, limit: int = 200) -> list[StoredDelivery]:
    """Webhook deliveries, newest first."""
    statement = (
        select(AlertDelivery)
        .order_by(AlertDelivery.received_at.desc(), AlertDelivery.id.desc())
        .limit(limit)
    )
    return [StoredDelivery.model_validate(row) for row in session.scalars(statement)]
