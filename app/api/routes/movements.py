"""/api/v1/movements: accepted at once (202), applied in batches by the stream workers."""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.api.deps import MovementsDep, PageDep, container_of
from app.api.errors import error_responses
from app.models.common import NO_NUL, Page
from app.models.movement import (
    DeadLetterPublic,
    MovementAccepted,
    MovementCreate,
    MovementPublic,
    MovementStatus,
)

router = APIRouter(prefix="/movements", tags=["movements"])

#: Path of a movement's status, relative to the server root (mounted under /api/v1).
STATUS_PATH = "/api/v1/movements/"
MAX_KEY_LENGTH = 200


def _submit_openapi() -> dict[str, Any]:
    return {
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": True,
                "description": "Client-chosen key; a repeated key is answered with the first "
                "movement and nothing new is queued.",
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_KEY_LENGTH,
                    "pattern": NO_NUL,
                },
            }
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": MovementCreate.model_json_schema()}},
        },
    }


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=MovementAccepted,
    responses=error_responses(
        r409="Idempotency-Key reused with a different body",
        r422="Invalid body, or unknown SKU / warehouse",
        r503="Cannot be queued durably now; see Retry-After",
    ),
    openapi_extra=_submit_openapi(),
)
async def submit_movement(request: Request) -> Response:
    """Validate and queue a receive, ship, transfer or adjust. The answer carries the status URL;
    the movement is applied within seconds, or dead-lettered with its reason.

    This is the hottest write route: the body is validated by pydantic straight from the raw
    JSON and the service is taken from the app state, skipping FastAPI's per-request dependency
    resolution (about half of the route's CPU time); errors are the same 422 answers.
    """
    idempotency_key = request.headers.get("idempotency-key")
    if not idempotency_key or len(idempotency_key) > MAX_KEY_LENGTH:
        raise RequestValidationError(
            [
                {
                    "loc": ("header", "Idempotency-Key"),
                    "msg": f"required, 1 to {MAX_KEY_LENGTH} characters",
                    "type": "missing" if not idempotency_key else "string_too_long",
                }
            ]
        )
    try:
        body = MovementCreate.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        ) from exc
    movements = container_of(request).movements
    accepted = await movements.submit(body, idempotency_key=idempotency_key)
    # Built by hand: this is the hottest write route (url_for walks every router).
    status_url = f"{str(request.base_url).rstrip('/')}{STATUS_PATH}{accepted.movement_id}"
    content = json.dumps(
        {
            "id": str(accepted.movement_id),
            "status": "accepted",
            "status_url": status_url,
            "replayed": accepted.replayed,
        }
    ).encode()
    return Response(
        content=content,
        status_code=status.HTTP_202_ACCEPTED,
        media_type="application/json",
        headers={"Location": status_url},
    )


@router.get("", response_model=Page[MovementPublic])
async def list_movements(
    movements: MovementsDep,
    page: PageDep,
    sku: str | None = Query(default=None, max_length=64, pattern=NO_NUL),
) -> Page[MovementPublic]:
    """Applied movements (ordered by id)."""
    rows, next_cursor = await movements.history(sku=sku, after=page.cursor, limit=page.limit)
    return Page[MovementPublic](items=rows, next_cursor=next_cursor)


@router.get("/dead-letters", response_model=Page[DeadLetterPublic])
async def list_dead_letters(movements: MovementsDep, page: PageDep) -> Page[DeadLetterPublic]:
    """Movements that can never apply, with the reason."""
    rows, next_cursor = await movements.dead_letters(after=page.cursor, limit=page.limit)
    return Page[DeadLetterPublic](items=rows, next_cursor=next_cursor)


@router.get("/{movement_id}", response_model=MovementStatus, name="movement_status")
async def movement_status(movement_id: uuid.UUID, movements: MovementsDep) -> MovementStatus:
    """accepted (queued), applied, dead_letter (with reason) or duplicate."""
    return await movements.status(movement_id)
