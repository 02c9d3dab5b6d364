"""One handler turns the control plane's own errors into HTTP answers.

Routes let a :class:`~controlplane.core.errors.ControlPlaneError` propagate; the handler answers
with the status of its class (the most specific one listed below, else 500) and a body that says
why: ``{"detail": "<the error's message>", "error": "<its class name>"}``. Data a view cannot
read live (an unreachable orchestrator or primary) is part of the view's own answer, not an error.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from controlplane.actuators.base import ActuatorError
from controlplane.core.errors import ControlPlaneError
from controlplane.failover.driver import DriverRefused, DriverUnavailable
from controlplane.failover.nodes import NodeUnreachable
from controlplane.failover.switchover import SwitchoverAborted
from controlplane.orchestrator.base import OrchestratorError
from controlplane.sources.base import SourceQueryError, SourceUnavailable
from controlplane.store.actions import AlreadyDecided, DuplicateTrigger
from controlplane.store.errors import DuplicateTokenName, StoreError, UnknownTokenName
from controlplane.targets.policy import PolicyError

__all__ = [
    "ENGINE_RESPONSES",
    "ERROR_RESPONSES",
    "ErrorAnswer",
    "add_error_handler",
    "invalid_request",
    "status_of",
]

logger = logging.getLogger(__name__)

#: Most specific first: the first class the error is an instance of gives the status.
STATUS: tuple[tuple[type[ControlPlaneError], int], ...] = (
    (UnknownTokenName, status.HTTP_404_NOT_FOUND),
    (DuplicateTokenName, status.HTTP_409_CONFLICT),
    (DuplicateTrigger, status.HTTP_409_CONFLICT),
    (StoreError, status.HTTP_503_SERVICE_UNAVAILABLE),
    (SourceQueryError, status.HTTP_502_BAD_GATEWAY),
    (SourceUnavailable, status.HTTP_503_SERVICE_UNAVAILABLE),
    (OrchestratorError, status.HTTP_502_BAD_GATEWAY),
    (ActuatorError, status.HTTP_502_BAD_GATEWAY),
    (NodeUnreachable, status.HTTP_503_SERVICE_UNAVAILABLE),
    (DriverRefused, status.HTTP_502_BAD_GATEWAY),
    (DriverUnavailable, status.HTTP_503_SERVICE_UNAVAILABLE),
    # A drill or switchover this control plane cannot run (no driver, no candidate).
    (SwitchoverAborted, status.HTTP_409_CONFLICT),
    # A policy file of this control plane is missing or invalid: its operator must fix it.
    (PolicyError, status.HTTP_500_INTERNAL_SERVER_ERROR),
)


class ErrorAnswer(BaseModel):
    """An error answer: why, and for the control plane's own errors, the error's class."""

    detail: str
    error: str | None = Field(default=None, description="The error class (`AlreadyDecided`, ...)")


#: What every API route may answer besides its own results, documented once for all of them
#: (422, the validation errors, FastAPI documents per route).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorAnswer, "description": "The body could not be read (not JSON)"},
    401: {
        "model": ErrorAnswer,
        "description": "No bearer token, an unknown or revoked API token, or an access token "
        "refused (expired, another issuer, wrong audience, bad signature: the detail says which)",
    },
    403: {
        "model": ErrorAnswer,
        "description": "The caller's role is not allowed here (or a person's groups give none)",
    },
    404: {"model": ErrorAnswer, "description": "No such resource"},
    503: {"model": ErrorAnswer, "description": "The store (or a source it needs) is unavailable"},
}

#: What a route that asks the action engine for a database operation may answer besides.
ENGINE_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorAnswer,
        "description": "The action engine does not run in this process, or the operation "
        "cannot run (no failover driver, no candidate)",
    },
    502: {"model": ErrorAnswer, "description": "The HA engine (Patroni) refused the operation"},
}


def invalid_request(*, loc: tuple[str, ...], message: str) -> RequestValidationError:
    """A 422 for a rule across parameters (``start`` before ``end``), in the same shape as
    FastAPI's own validation errors (``detail[].loc`` names the parameter)."""
    return RequestValidationError([{"loc": loc, "msg": message, "type": "value_error"}])


def status_of(error: ControlPlaneError) -> int:
    if isinstance(error, AlreadyDecided):  # unknown decision, or one decided already
        return status.HTTP_404_NOT_FOUND if error.state is None else status.HTTP_409_CONFLICT
    return next(
        (code for kind, code in STATUS if isinstance(error, kind)),
        status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def _answer(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ControlPlaneError)  # registered for that class only
    code = status_of(exc)
    if code >= status.HTTP_500_INTERNAL_SERVER_ERROR:
        logger.warning("%s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(status_code=code, content={"detail": str(exc), "error": type(exc).__name__})


def add_error_handler(app: FastAPI) -> None:
    """Register the one handler of the control plane's errors on ``app``."""
    app.add_exception_handler(ControlPlaneError, _answer)
