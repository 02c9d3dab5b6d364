"""The typed client of the control-plane API (``/api/v1``, bearer token).

One client for every program that talks to a control plane: the console (``dashboards``, which
builds one in its composition root and injects it into every page) and the drill commands (which
reach the stack's running control plane with its admin token). It is thread-safe (one pooled
``httpx.Client`` with keep-alive), so concurrent callbacks share it. Errors are typed, all
:class:`ClientError` (a :class:`~controlplane.core.errors.ControlPlaneError`):

* :class:`ControlPlaneUnreachable`: no answer (refused, timeout): "control plane unreachable";
* :class:`RouteNotServed`: this control plane has no such route (an older version);
* :class:`ControlPlaneRefused` (``status``, ``detail``) and its subclasses
  :class:`Unauthorized` (401), :class:`Forbidden` (403), :class:`NotFound` (404 of a resource)
  and :class:`Unavailable` (503).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from controlplane.client.models import (
    DR,
    ActionState,
    Alert,
    ArchiveInfo,
    AuditEntry,
    Backup,
    Capacity,
    Drill,
    Evaluation,
    Finding,
    Me,
    PendingAction,
    RestoreValidation,
    SLOHistory,
    SLOStatus,
    SLOTraces,
    TraceLogs,
)
from controlplane.core.errors import ControlPlaneError
from controlplane.store.backups import NewRestoreRun
from controlplane.store.drills import NewDrill

__all__ = [
    "API_PREFIX",
    "ClientError",
    "ControlPlaneClient",
    "ControlPlaneRefused",
    "ControlPlaneUnreachable",
    "Forbidden",
    "NotFound",
    "RouteNotServed",
    "Unauthorized",
    "Unavailable",
    "UnreadableAnswer",
]

API_PREFIX = "/api/v1"
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

_SLOS = TypeAdapter(list[SLOStatus])
_EVALUATIONS = TypeAdapter(list[Evaluation])
_HISTORIES = TypeAdapter(list[SLOHistory])
_FINDINGS = TypeAdapter(list[Finding])
_ALERTS = TypeAdapter(list[Alert])
_AUDIT = TypeAdapter(list[AuditEntry])
_PENDING = TypeAdapter(list[PendingAction])
_BACKUPS = TypeAdapter(list[Backup])
_RESTORES = TypeAdapter(list[RestoreValidation])
_ARCHIVES = TypeAdapter(list[ArchiveInfo])


class ClientError(ControlPlaneError):
    """The caller could not get what it asked the control plane for."""


class ControlPlaneUnreachable(ClientError):
    """No answer from the control plane (connection refused, timeout, ...)."""


class UnreadableAnswer(ClientError):
    """The control plane answered something the client cannot read."""


class ControlPlaneRefused(ClientError):
    """The control plane answered with an error status."""

    def __init__(self, *, method: str, path: str, status: int, detail: str) -> None:
        super().__init__(f"{method} {path}: {status} {detail}")
        self.method = method
        self.path = path
        self.status = status
        self.detail = detail


class Unauthorized(ControlPlaneRefused):
    """401: the token is missing, unknown or revoked."""


class Forbidden(ControlPlaneRefused):
    """403: the token's role is too small for this route."""


class NotFound(ControlPlaneRefused):
    """404 of a resource (an SLO never evaluated, an unknown decision, ...)."""


class RouteNotServed(ControlPlaneRefused):
    """404 of the route itself: this control plane does not serve it (yet)."""


class Unavailable(ControlPlaneRefused):
    """503: the control plane is up but its store is not."""


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    return str(detail if detail is not None else body)[:300]


def _refused(*, method: str, path: str, response: httpx.Response) -> ControlPlaneRefused:
    detail = _detail(response)
    status = response.status_code
    kind: type[ControlPlaneRefused] = ControlPlaneRefused
    if status == 401:
        kind = Unauthorized
    elif status == 403:
        kind = Forbidden
    elif status == 404:
        # FastAPI's own answer for a path no route matches is exactly this detail.
        kind = RouteNotServed if detail == "Not Found" else NotFound
    elif status == 503:
        kind = Unavailable
    return kind(method=method, path=path, status=status, detail=detail)


def _parse(adapter: TypeAdapter[T], answer: Any) -> T:
    try:
        return adapter.validate_python(answer)
    except ValidationError as exc:
        raise UnreadableAnswer(f"unexpected answer from the control plane: {exc}") from exc


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: pass timezone-aware times")
    return value.isoformat()


def _params(**values: str | int | datetime | None) -> dict[str, str | int]:
    """Query parameters: ``None`` left out, times as ISO 8601 with their zone."""
    return {
        name: _iso(value) if isinstance(value, datetime) else value
        for name, value in values.items()
        if value is not None
    }


class ControlPlaneClient:
    """Typed reads and operator actions of the control-plane API with one token."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url + API_PREFIX,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )
        #: The last ``/slos`` answer per service filter, with its ETag.
        self._slos: dict[str | None, tuple[str, list[SLOStatus]]] = {}

    def close(self) -> None:
        self._http.close()

    # -- who am I ----------------------------------------------------------------------------------
    def me(self) -> Me:
        return self._get_model("/me", Me)

    # -- SLOs --------------------------------------------------------------------------------------
    def slos(self, *, service: str | None = None) -> list[SLOStatus]:
        """Every SLO's status. The last answer is kept with its ``ETag``: while the control
        plane answers ``304 Not Modified`` to it, the same list is returned without reading
        or parsing it again (do not change it)."""
        params = {"service": service} if service is not None else None
        kept = self._slos.get(service)
        headers = {"If-None-Match": kept[0]} if kept is not None else None
        response = self._send("GET", "/slos", params=params, headers=headers)
        if response.status_code == httpx.codes.NOT_MODIFIED and kept is not None:
            return kept[1]
        try:
            statuses = _SLOS.validate_json(response.content)
        except ValidationError as exc:
            raise UnreadableAnswer(f"unexpected answer from the control plane: {exc}") from exc
        etag = response.headers.get("ETag")
        if etag:
            self._slos[service] = (etag, statuses)
        return statuses

    def slo(self, slo_id: str) -> SLOStatus:
        return self._get_model(f"/slos/{quote(slo_id, safe='')}", SLOStatus)

    def slo_history(
        self,
        slo_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 500,
    ) -> list[Evaluation]:
        """Evaluations of one SLO, newest first (as the API answers)."""
        params = _params(limit=limit, since=since, until=until)
        path = f"/slos/{quote(slo_id, safe='')}/history"
        return _parse(_EVALUATIONS, self._request("GET", path, params=params))

    def slos_history(
        self,
        *,
        since: datetime,
        until: datetime | None = None,
        service: str | None = None,
        slo_ids: Sequence[str] | None = None,
        points: int = 120,
    ) -> list[SLOHistory]:
        """Every SLO's evaluations since ``since`` in one request (at most ``points`` each,
        oldest first), or only those of ``slo_ids`` (at most 200); raises
        :class:`RouteNotServed` on a control plane without the route."""
        params: dict[str, Any] = _params(since=since, until=until, service=service, points=points)
        if slo_ids is not None:
            params["slo"] = list(slo_ids)
        return _parse(_HISTORIES, self._request("GET", "/slos/history", params=params))

    def slo_traces(
        self,
        slo_id: str,
        *,
        kind: Literal["slow", "error"],
        start: datetime,
        end: datetime,
        limit: int = 10,
    ) -> SLOTraces:
        params: dict[str, str | int] = {
            "kind": kind,
            "start": _iso(start),
            "end": _iso(end),
            "limit": limit,
        }
        return self._get_model(f"/slos/{quote(slo_id, safe='')}/traces", SLOTraces, params=params)

    def trace_logs(
        self,
        trace_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 200,
    ) -> TraceLogs:
        params: dict[str, str | int] = {"limit": limit}
        if start is not None:
            params["start"] = _iso(start)
        if end is not None:
            params["end"] = _iso(end)
        path = f"/traces/{quote(trace_id, safe='')}/logs"
        return self._get_model(path, TraceLogs, params=params)

    # -- findings, alerts, audit -------------------------------------------------------------------
    def findings(
        self, *, open_only: bool = False, kind: str | None = None, limit: int = 200
    ) -> list[Finding]:
        params: dict[str, str | int] = {"open": str(open_only).lower(), "limit": limit}
        if kind is not None:
            params["kind"] = kind
        return _parse(_FINDINGS, self._request("GET", "/findings", params=params))

    def alerts(
        self, *, status: Literal["firing", "resolved"] | None = None, limit: int = 200
    ) -> list[Alert]:
        params: dict[str, str | int] = {"limit": limit}
        if status is not None:
            params["status"] = status
        return _parse(_ALERTS, self._request("GET", "/alerts", params=params))

    def audit(
        self, *, since: datetime | None = None, action: str | None = None, limit: int = 200
    ) -> list[AuditEntry]:
        params: dict[str, str | int] = {"limit": limit}
        if since is not None:
            params["since"] = _iso(since)
        if action is not None:
            params["action"] = action
        return _parse(_AUDIT, self._request("GET", "/audit", params=params))

    # -- actions (operator) ------------------------------------------------------------------------
    def action_state(self) -> ActionState:
        return self._get_model("/actions/state", ActionState)

    def set_kill_switch(self, *, enabled: bool, reason: str) -> ActionState:
        body = {"enabled": enabled, "reason": reason}
        return self._model(
            ActionState, self._request("PUT", "/actions/kill-switch", json=body), "kill switch"
        )

    def pending_actions(self) -> list[PendingAction]:
        return _parse(_PENDING, self._request("GET", "/actions/pending"))

    def approve(self, decision_id: str, *, comment: str = "") -> AuditEntry:
        return self._verdict(decision_id, verdict="approve", comment=comment)

    def deny(self, decision_id: str, *, comment: str = "") -> AuditEntry:
        return self._verdict(decision_id, verdict="deny", comment=comment)

    # -- drills and switchovers (operator) ---------------------------------------------------------
    def run_drill(
        self, *, kind: Literal["switchover", "failover"], timeout: float = 300.0
    ) -> AuditEntry:
        """Ask the control plane to run a drill through its gate; answers once it ran (the
        decision with its outcome and ``evidence["drill"]``), was refused, or waits for an
        approval. ``timeout`` covers the drill itself."""
        answer = self._request("POST", "/dr/drills/run", json={"kind": kind}, timeout=timeout)
        return self._model(AuditEntry, answer, "drill")

    def request_switchover(
        self, *, candidate: str | None = None, timeout: float = 300.0
    ) -> AuditEntry:
        """Ask for a planned switchover (``switchover_database``, approval mode by default)."""
        answer = self._request(
            "POST", "/actions/switchover", json={"candidate": candidate}, timeout=timeout
        )
        return self._model(AuditEntry, answer, "switchover")

    def record_drill(self, drill: NewDrill) -> Drill:
        """Store a drill measured by this client in the control plane's store."""
        body = drill.model_dump(mode="json")
        return self._model(Drill, self._request("POST", "/dr/drills", json=body), "drill")

    def record_restore_validation(self, run: NewRestoreRun) -> RestoreValidation:
        """Store a restore validated by this client in the control plane's store."""
        body = run.model_dump(mode="json")
        answer = self._request("POST", "/dr/restore-validations", json=body)
        return self._model(RestoreValidation, answer, "restore validation")

    # -- backups -----------------------------------------------------------------------------------
    def backups(self, *, database: str | None = None, limit: int = 100) -> list[Backup]:
        """Backups taken, newest first."""
        params = _params(database=database, limit=limit)
        return _parse(_BACKUPS, self._request("GET", "/dr/backups", params=params))

    def restore_validations(
        self, *, database: str | None = None, limit: int = 100
    ) -> list[RestoreValidation]:
        """Restores validated, newest first."""
        params = _params(database=database, limit=limit)
        return _parse(_RESTORES, self._request("GET", "/dr/restore-validations", params=params))

    def archive(self) -> list[ArchiveInfo]:
        """WAL archiving of each database's primary, read live."""
        return _parse(_ARCHIVES, self._request("GET", "/dr/archive"))

    # -- targets -----------------------------------------------------------------------------------
    def capacity(self) -> Capacity:
        return self._get_model("/capacity", Capacity)

    def dr(self) -> DR:
        return self._get_model("/dr", DR)

    # -- internals ---------------------------------------------------------------------------------
    def _verdict(
        self, decision_id: str, *, verdict: Literal["approve", "deny"], comment: str
    ) -> AuditEntry:
        path = f"/actions/{quote(decision_id, safe='')}/{verdict}"
        answer = self._request("POST", path, json={"comment": comment})
        return self._model(AuditEntry, answer, path)

    def _get_model(
        self, path: str, model: type[M], *, params: Mapping[str, str | int] | None = None
    ) -> M:
        return self._model(model, self._request("GET", path, params=params), path)

    @staticmethod
    def _model(model: type[M], answer: Any, what: str) -> M:
        try:
            return model.model_validate(answer)
        except ValidationError as exc:
            raise UnreadableAnswer(f"{what}: unexpected answer: {exc}") from exc

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | list[str]] | None = None,
        json: Any = None,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """The answer, unless the control plane was unreachable or refused (4xx, 5xx)."""
        try:
            response = self._http.request(
                method,
                path,
                params=params,
                json=json,
                headers=headers,
                timeout=self._http.timeout if timeout is None else timeout,
            )
        except httpx.TransportError as exc:
            raise ControlPlaneUnreachable(
                f"control plane unreachable at {self.base_url}: {exc!r}"
            ) from exc
        if response.status_code >= 400:
            raise _refused(method=method, path=API_PREFIX + path, response=response)
        return response

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | list[str]] | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> Any:
        response = self._send(method, path, params=params, json=json, timeout=timeout)
        try:
            return response.json()
        except ValueError as exc:
            raise UnreadableAnswer(f"{method} {path}: the answer is not JSON") from exc
