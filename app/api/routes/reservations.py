"""/api/v1/reservations: holds on available stock, answered synchronously."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from app.api.deps import OptionalIdempotencyKey, ReservationsDep
from app.api.errors import error_responses
from app.models.reservation import ReservationCreate, ReservationPublic

router = APIRouter(prefix="/reservations", tags=["reservations"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ReservationPublic,
    responses={
        200: {"description": "Replay of an Idempotency-Key: the reservation made the first time"},
        **error_responses(
            r409="Not enough available stock, or Idempotency-Key conflict",
            r422="Invalid body, or unknown SKU / warehouse",
        ),
    },
)
async def create_reservation(
    body: ReservationCreate,
    reservations: ReservationsDep,
    response: Response,
    idempotency_key: OptionalIdempotencyKey = None,
) -> ReservationPublic:
    """Hold stock; never more than is available, under any concurrency."""
    reservation, created = await reservations.create(body, idempotency_key=idempotency_key)
    if not created:
        response.status_code = status.HTTP_200_OK
    return reservation


@router.get("/{reservation_id}", response_model=ReservationPublic)
async def get_reservation(
    reservation_id: uuid.UUID, reservations: ReservationsDep
) -> ReservationPublic:
    return await reservations.get(reservation_id)


@router.post("/{reservation_id}/confirm", response_model=ReservationPublic)
async def confirm_reservation(
    reservation_id: uuid.UUID, reservations: ReservationsDep
) -> ReservationPublic:
    """Ship the held quantity (409 if the hold is not held any more or has expired)."""
    return await reservations.confirm(reservation_id)


@router.post("/{reservation_id}/release", response_model=ReservationPublic)
async def release_reservation(
    reservation_id: uuid.UUID, reservations: ReservationsDep
) -> ReservationPublic:
    """Give the held quantity back to available stock."""
    return await reservations.release(reservation_id)
