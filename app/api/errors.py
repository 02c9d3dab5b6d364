"""The one place where domain errors become HTTP answers (status, reason, Retry-After)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from app.core.db import DB_UNAVAILABLE_ERRORS
from app.models.common import ErrorBody
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

#: The error answers every ``/api/v1`` operation may give, all with an :class:`ErrorBody`:
#: documented once, for the routers (a route adds its own cases' descriptions).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body could not be read (not JSON, not UTF-8)"},
    404: {"model": ErrorBody, "description": "No such resource"},
    409: {"model": ErrorBody, "description": "Conflicts with the current state"},
    422: {"model": ErrorBody, "description": "Invalid request (per-field `errors`)"},
    503: {"model": ErrorBody, "description": "A backend is unavailable now; see Retry-After"},
}


def link_to(path: str, method: str = "get", **parameters: str) -> dict[str, Any]:
    """An OpenAPI link from an answer to the operation at ``path`` (its parameters taken from
    the answer, ``$response.body#/sku``): how a client, or a fuzzer, goes from create to read."""
    pointer = path.replace("~", "~0").replace("/", "~1")
    return {"operationRef": f"#/paths/{pointer}/{method}", "parameters": parameters}


def error_responses(**descriptions: str) -> dict[int | str, dict[str, Any]]:
    """:data:`ERROR_RESPONSES` with route-specific descriptions (``r409="..."``)."""
    return {
        status: {**answer, "description": descriptions.get(f"r{status}", answer["description"])}
        for status, answer in ERROR_RESPONSES.items()
    }


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


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (a body it cannot parse, an unknown route or method) in the same
    shape as every other error."""
    assert isinstance(exc, HTTPException)
    code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(
        exc.status_code, f"http_{exc.status_code}"
    )
    return JSONResponse(
        error_body(code=code, message=str(exc.detail)),
        status_code=exc.status_code,
        headers=exc.headers,
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
    app.add_exception_handler(HTTPException, _http_error)
    for error in DB_UNAVAILABLE_ERRORS:
        app.add_exception_handler(error, _database_down)
