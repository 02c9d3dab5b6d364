"""The Alertmanager webhook receiver: ``POST /api/v1/alerts/webhook``.

In order, before anything is written:

1. the bearer token (``http_config.authorization`` in Alertmanager) is compared in constant time
   with the configured webhook token: 401 otherwise (the API tokens do not work here);
2. the body is read up to ``max_webhook_body_bytes``: 413 beyond;
3. the body is validated as a version-4 payload: 422 with the failing field paths otherwise.

Then the whole delivery is stored in one transaction and only after the commit the answer is 200,
so an alert that got a 2xx survives a crash of the process right after. Concurrent deliveries
share that transaction (group commit, :mod:`alerts.batching`), each in its own savepoint.
Repeated deliveries are recorded as repeats (see :mod:`controlplane.store.alerts`); only alerts
that were opened or closed are passed on to the runtime's alert listeners (by the writer thread,
after the commit and before the answer). Nothing of a request's path blocks the event loop: the
token check and the validation run on it (they are CPU only), the store in the writer thread.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError

from alerts.batching import DeliveryBatcher
from alerts.models import WebhookPayload
from controlplane.api import ApiExtension
from controlplane.core.config import ControlPlaneSettings, SettingsError
from controlplane.core.security import constant_time_equals
from controlplane.runtime import Runtime

__all__ = ["WEBHOOK_PATH", "WebhookAck", "webhook_extension"]

WEBHOOK_PATH = "/alerts/webhook"

webhook_token = HTTPBearer(
    auto_error=False,
    scheme_name="WebhookToken",
    description="The webhook token (CONTROLPLANE_WEBHOOK_TOKEN), as Alertmanager's "
    "http_config.authorization sends it.",
)


class WebhookAck(BaseModel):
    """What the delivery did: alerts opened or closed, and repeats."""

    delivery_id: int
    alerts: int
    changed: int
    repeats: int
    outcomes: dict[str, int]


class PayloadTooLarge(Exception):
    pass


async def read_body(request: Request, *, limit: int) -> bytes:
    """The request body, refusing (413) more than ``limit`` bytes without buffering them."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """FastAPI-style 422 details (``loc`` starts with ``body``), without echoing the input."""
    return [
        {"type": error["type"], "loc": ["body", *error["loc"]], "msg": error["msg"]}
        for error in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def webhook_extension(settings: ControlPlaneSettings) -> ApiExtension:
    """The receiver as an API extension. Fails fast without a webhook token."""
    expected = settings.webhook.resolved_token()
    if expected is None:
        raise SettingsError(
            "set CONTROLPLANE_WEBHOOK_TOKEN or CONTROLPLANE_WEBHOOK_TOKEN_FILE to receive "
            "Alertmanager webhooks"
        )
    limit = settings.webhook.max_webhook_body_bytes
    batchers: dict[int, DeliveryBatcher] = {}  # one writer per store (per app, in practice)
    batchers_lock = threading.Lock()

    def batcher_for(runtime: Runtime) -> DeliveryBatcher:
        key = id(runtime.database)
        found = batchers.get(key)
        if found is not None and found.database is runtime.database:
            return found
        with batchers_lock:
            found = batchers.get(key)
            if found is None or found.database is not runtime.database:
                found = batchers[key] = DeliveryBatcher(
                    runtime.database, notify=runtime.notify_alert_changes
                )
            return found

    async def authenticate(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(webhook_token)],
    ) -> None:
        if (
            credentials is None
            or credentials.scheme.lower() != "bearer"
            or not constant_time_equals(credentials.credentials, expected)
        ):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or wrong webhook token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    router = APIRouter(tags=["alerts"])

    @router.post(
        WEBHOOK_PATH,
        response_model=WebhookAck,
        summary="Alertmanager webhook (version 4), stored before it is acknowledged",
        dependencies=[Depends(authenticate)],
        responses={
            401: {"description": "missing or wrong webhook token"},
            413: {"description": f"body larger than {limit} bytes"},
            422: {"description": "not a version-4 Alertmanager payload; `loc` names the field"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/AlertmanagerWebhook"}
                    }
                },
            }
        },
    )
    async def receive(request: Request) -> Response:
        try:
            body = await read_body(request, limit=limit)
        except PayloadTooLarge:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"webhook body larger than {limit} bytes",
            ) from None
        try:
            payload = WebhookPayload.model_validate_json(body)
        except ValidationError as exc:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, validation_errors(exc)
            ) from exc
        # Answered once the delivery is committed and the listeners have heard of its changes.
        # The runtime read here, not as a dependency: one less for FastAPI to solve per request.
        runtime: Runtime = request.app.state.runtime
        result = await batcher_for(runtime).store(payload.to_delivery())
        outcomes: dict[str, int] = {}
        for change in result.changes:
            outcomes[change.outcome] = outcomes.get(change.outcome, 0) + 1
        ack = WebhookAck(
            delivery_id=result.delivery_id,
            alerts=len(result.changes),
            changed=len(result.changed),
            repeats=result.repeats,
            outcomes=outcomes,
        )
        # Serialised here, once (``response_model`` still documents it).
        return Response(ack.model_dump_json(), media_type="application/json")

    return ApiExtension(
        name="alertmanager-webhook",
        router=router,
        openapi_schemas=WebhookPayload.openapi_components(),
    )
