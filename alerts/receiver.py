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
that were opened or closed are passed on to the runtime's alert listeners (after the commit and
before the answer). The token check and the validation run on the event loop (they are CPU
only); the store runs there too on SQLite (a commit of a few milliseconds, no hand-over to
another thread) and in a writer thread on PostgreSQL (see :mod:`alerts.batching`).

The receiver is the busiest route, and Alertmanager waits for each answer: it is served as a
plain ASGI endpoint ahead of the API's middleware and routing (``ApiExtension.endpoints``), which
spares each delivery Starlette's middleware layers, FastAPI's request objects and its dependency
solving (in process: 0.24 ms of event-loop CPU per delivery before, 0.08 ms after). The FastAPI
route of the same path documents it in OpenAPI and answers through the same
:meth:`WebhookReceiver.answer`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.types import Receive, Scope, Send

from alerts.batching import DeliveryBatcher
from alerts.models import WebhookPayload
from controlplane.api import ApiExtension
from controlplane.core.config import ControlPlaneSettings, SettingsError
from controlplane.core.security import constant_time_equals
from controlplane.runtime import Runtime

__all__ = ["WEBHOOK_PATH", "WebhookAck", "WebhookReceiver", "webhook_extension"]

logger = logging.getLogger(__name__)

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


class ClientGone(Exception):
    """The sender hung up before its body arrived: nobody waits for an answer."""


@dataclass(frozen=True)
class Answer:
    """An HTTP answer of the receiver (a JSON body)."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, status_code: int, content: Any, *headers: tuple[str, str]) -> Answer:
        # As FastAPI's JSONResponse writes it.
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return cls(status_code, text.encode(), headers)


_UNAUTHORIZED = Answer.of(
    status.HTTP_401_UNAUTHORIZED,
    {"detail": "missing or wrong webhook token"},
    ("WWW-Authenticate", "Bearer"),
)
_FAILED = Answer.of(
    status.HTTP_500_INTERNAL_SERVER_ERROR, {"detail": "the delivery could not be stored"}
)
#: As the API answers any route whose store is down (``controlplane.api.app``).
_STORE_DOWN = Answer.of(
    status.HTTP_503_SERVICE_UNAVAILABLE, {"detail": "the control plane store is unavailable"}
)


async def read_body(chunks: AsyncIterator[bytes], *, declared: str | None, limit: int) -> bytes:
    """The request body, refusing (413) more than ``limit`` bytes without buffering them."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge
        parts.append(chunk)
    return b"".join(parts)


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """FastAPI-style 422 details (``loc`` starts with ``body``), without echoing the input."""
    return [
        {"type": error["type"], "loc": ["body", *error["loc"]], "msg": error["msg"]}
        for error in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


async def _asgi_chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


class WebhookReceiver:
    """The receiver: :meth:`answer` holds its logic; the object is also the ASGI endpoint."""

    def __init__(self, settings: ControlPlaneSettings) -> None:
        expected = settings.webhook.resolved_token()
        if expected is None:
            raise SettingsError(
                "set CONTROLPLANE_WEBHOOK_TOKEN or CONTROLPLANE_WEBHOOK_TOKEN_FILE to receive "
                "Alertmanager webhooks"
            )
        self._expected = expected
        self.limit = settings.webhook.max_webhook_body_bytes
        # One writer per store (per app, in practice).
        self._batchers: dict[int, DeliveryBatcher] = {}
        self._batchers_lock = threading.Lock()

    def batcher_for(self, runtime: Runtime) -> DeliveryBatcher:
        key = id(runtime.database)
        found = self._batchers.get(key)
        if found is not None and found.database is runtime.database:
            return found
        with self._batchers_lock:
            found = self._batchers.get(key)
            if found is None or found.database is not runtime.database:
                found = self._batchers[key] = DeliveryBatcher(
                    runtime.database, notify=runtime.notify_alert_changes
                )
            return found

    def close(self) -> None:
        """Stop the batchers' writer threads once what they hold is written (PostgreSQL)."""
        with self._batchers_lock:
            batchers, self._batchers = list(self._batchers.values()), {}
        for batcher in batchers:
            batcher.close()

    def authorized(self, authorization: str | None) -> bool:
        """``Authorization: Bearer <the webhook token>`` (the scheme in any case)."""
        scheme, _, credentials = (authorization or "").partition(" ")
        return (
            scheme.lower() == "bearer"
            and bool(credentials)
            and constant_time_equals(credentials, self._expected)
        )

    async def answer(
        self,
        *,
        authorization: str | None,
        content_length: str | None,
        chunks: AsyncIterator[bytes],
        runtime: Runtime,
    ) -> Answer:
        """Check, read, validate and store one delivery; the answer once it is committed."""
        if not self.authorized(authorization):
            return _UNAUTHORIZED
        try:
            body = await read_body(chunks, declared=content_length, limit=self.limit)
        except PayloadTooLarge:
            return Answer.of(
                status.HTTP_413_CONTENT_TOO_LARGE,
                {"detail": f"webhook body larger than {self.limit} bytes"},
            )
        try:
            payload = WebhookPayload.from_json(body)
        except ValidationError as exc:
            return Answer.of(
                status.HTTP_422_UNPROCESSABLE_CONTENT, {"detail": validation_errors(exc)}
            )
        # Answered once the delivery is committed and the listeners have heard of its changes.
        try:
            result = await self.batcher_for(runtime).store(payload.to_delivery())
        except (OperationalError, PoolTimeoutError):
            return _STORE_DOWN
        outcomes: dict[str, int] = {}
        for change in result.changes:
            outcomes[change.outcome] = outcomes.get(change.outcome, 0) + 1
        ack = WebhookAck.model_construct(
            delivery_id=result.delivery_id,
            alerts=len(result.changes),
            changed=len(result.changed),
            repeats=result.repeats,
            outcomes=outcomes,
        )
        return Answer(status.HTTP_200_OK, ack.model_dump_json().encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI endpoint, ahead of the API's middleware: it answers every error itself (the
        API's runtime from ``scope["app"]``)."""
        authorization = content_length = None
        for name, value in scope["headers"]:
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"content-length" and content_length is None:
                content_length = value.decode("latin-1")
        try:
            answer = await self.answer(
                authorization=authorization,
                content_length=content_length,
                chunks=_asgi_chunks(receive),
                runtime=scope["app"].state.runtime,
            )
        except ClientGone:
            return
        except Exception:  # a bug: logged, and a 500 (Alertmanager sends the delivery again)
            logger.exception("the webhook delivery failed")
            answer = _FAILED
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(answer.body)).encode()),
            *((name.lower().encode(), value.encode()) for name, value in answer.headers),
        ]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})


def webhook_extension(settings: ControlPlaneSettings) -> ApiExtension:
    """The receiver as an API extension. Fails fast without a webhook token."""
    receiver = WebhookReceiver(settings)
    router = APIRouter(tags=["alerts"])

    @router.post(
        WEBHOOK_PATH,
        response_model=WebhookAck,
        summary="Alertmanager webhook (version 4), stored before it is acknowledged",
        # Names the security scheme in OpenAPI; the token itself is checked by the receiver.
        dependencies=[Depends(webhook_token)],
        responses={
            401: {"description": "missing or wrong webhook token"},
            413: {"description": f"body larger than {receiver.limit} bytes"},
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
        answer = await receiver.answer(
            authorization=request.headers.get("authorization"),
            content_length=request.headers.get("content-length"),
            chunks=request.stream(),
            runtime=request.app.state.runtime,
        )
        return Response(
            answer.body,
            status_code=answer.status,
            headers=dict(answer.headers),
            media_type="application/json",
        )

    return ApiExtension(
        name="alertmanager-webhook",
        router=router,
        openapi_schemas=WebhookPayload.openapi_components(),
        endpoints={("POST", WEBHOOK_PATH): receiver},
        on_shutdown=receiver.close,
    )
