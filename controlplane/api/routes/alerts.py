"""``/api/v1/alerts``: alerts received from Alertmanager and the webhook deliveries.

The webhook receiver itself lives in the ``alerts`` package and is mounted as an extension.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status

from controlplane.api.deps import ReaderDep
from controlplane.core.validation import NO_NUL, POSTGRES_BIGINT_MAX
from controlplane.store.alerts import (
    AlertStatus,
    StoredAlert,
    StoredDelivery,
    get_alert,
    list_alerts,
    list_deliveries,
)

router = APIRouter(prefix="/alerts", tags=["alerts"])


@router.get("", response_model=list[StoredAlert], summary="Alerts, most recently started first")
def alerts(
    session: ReaderDep,
    alert_status: Annotated[AlertStatus | None, Query(alias="status")] = None,
    fingerprint: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> list[StoredAlert]:
    return list_alerts(session, status=alert_status, fingerprint=fingerprint, limit=limit)


@router.get(
    "/deliveries",
    response_model=list[StoredDelivery],
    summary="Webhook deliveries (repeats included), newest first",
)
def deliveries(
    session: ReaderDep, limit: Annotated[int, Query(ge=1, le=10_000)] = 200
) -> list[StoredDelivery]:
    return list_deliveries(session, limit=limit)


@router.get("/{alert_id}", response_model=StoredAlert, summary="One alert")
def alert(
    alert_id: Annotated[int, Path(ge=1, le=POSTGRES_BIGINT_MAX)], session: ReaderDep
) -> StoredAlert:
    found = get_alert(session, alert_id=alert_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id}")
    return found
