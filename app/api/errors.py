"""The one place where domain errors become HTTP answers (status, reason, Retry-After)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.core.db import DB_UNAVAILABLE_ERRORS
from app.services.errors import (
    AlreadyExists,
    IdempotencyConflict,
    InsufficientStock,
    InvalidRequest,
    InvalidState,
    InventoryError,
    NotFound,
    Unavailable,
    UnknownReference,
)

log = logging.getLogger(__name__)

STATUS_OF: dict[type[InventoryError], int] = {
    NotFound: 404,
    UnknownReference: 422,
    InvalidRequest: 422,
    AlreadyExists: 409,
    InsufficientStock: 409,
    InvalidState: 409,
    IdempotencyConflict: 409,
    Unavailable: 503,
}

#: Retry-After (seconds) when PostgreSQL cannot be reached.
DB_RETRY_AFTER = 2


def error_body(*, code: str, message: str) -> dict[str, str]:
    return {"code": code, "detail": message}


async def _inventory_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InventoryError)
    status = next((s for cls, s in STATUS_OF.items() if isinstance(exc, cls)), 400)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Unavailable) else None
    return JSONResponse(
        error_body(code=exc.code, message=exc.message), status_code=status, headers=headers
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()))
        problems.append({"field": where, "reason": error.get("msg", "invalid")})
    summary = "; ".join(f"{p['field']}: {p['reason']}" for p in problems)
    return JSONResponse(
        {"code": "validation_error", "detail": summary or "invalid request", "errors": problems},
        status_code=422,
    )


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", exc)
    return JSONResponse(
        error_body(code="database_unavailable", message="the database cannot be reached"),
        status_code=503,
        headers={"Retry-After": str(DB_RETRY_AFTER)},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(InventoryError, _inventory_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for error in DB_UNAVAILABLE_ERRORS:
        app.add_exception_handler(error, _database_down)
