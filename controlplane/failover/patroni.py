"""The Patroni driver: Patroni's REST API through httpx, short timeouts, typed errors.

Every member of a Patroni cluster serves the whole cluster's view (read from its DCS, etcd
here) and accepts cluster-wide requests, so the driver asks the configured endpoints
(``CONTROLPLANE_PATRONI_URLS``) in turn, then the members' own ``api_url`` last seen in
``GET /cluster``: one member down never blinds the control plane.

* ``GET /cluster``: members, roles, states, timelines, lag (:meth:`PatroniDriver.cluster`);
  a round in which no member answered is retried (tenacity, bounded) before
  :class:`~.driver.DriverUnavailable`.
* ``PATCH /config {"pause": true|false}``: Patroni's maintenance mode, in which it never fails
  over by itself (controlled mode).
* ``POST /switchover {"leader", "candidate"}`` and ``POST /failover {"candidate"}``: Patroni
  answers once the new leader holds the lease (it polls for up to 20 s), 412 when the
  operation is impossible and 503 when it failed, with a text reason that
  :class:`~.driver.DriverRefused` carries. A request is sent again to another member only when
  it could not be sent at all (connection refused): a POST that timed out may have acted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from controlplane.failover.driver import (
    ClusterState,
    DriverError,
    DriverRefused,
    DriverUnavailable,
    Member,
)

__all__ = ["PatroniDriver", "parse_cluster"]


class _MemberPayload(BaseModel):
    """One entry of ``GET /cluster``'s ``members`` (the fields the control plane reads)."""

    model_config = ConfigDict(extra="ignore")

    name: str
    role: str
    state: str = ""
    api_url: str | None = None
    host: str | None = None
    port: int | None = None
    timeline: int | None = None
    #: Bytes behind, or ``"unknown"``; absent for the leader.
    lag: int | str | None = None
    tags: dict[str, Any] = {}


class _ClusterPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    members: list[_MemberPayload] = []
    pause: bool | None = None


def parse_cluster(body: Any, *, source: str, observed_at: datetime) -> ClusterState:
    """``GET /cluster``'s JSON as a :class:`ClusterState`; an unreadable answer raises
    :class:`DriverError` naming the field."""
    try:
        payload = _ClusterPayload.model_validate(body)
    except ValidationError as exc:
        raise DriverError(f"{source}: unreadable GET /cluster answer: {exc}") from exc
    return ClusterState(
        members=tuple(
            Member(
                name=m.name,
                role=m.role,
                state=m.state,
                host=m.host,
                port=m.port,
                api_url=m.api_url,
                timeline=m.timeline,
                lag_bytes=m.lag if isinstance(m.lag, int) else None,
                nofailover=bool(m.tags.get("nofailover", False)),
            )
            for m in payload.members
        ),
        paused=bool(payload.pause),
        observed_at=observed_at,
        source=source,
    )


class PatroniDriver:
    """A :class:`~.driver.FailoverDriver` over Patroni's REST API."""

    def __init__(
        self,
        *,
        urls: Sequence[str],
        timeout: float = 2.0,
        attempts: int = 2,
        operation_timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``timeout`` bounds reads and the connection to each member; ``operation_timeout`` a
        switchover or failover request (Patroni answers once the new leader holds the lease)."""
        if not urls:
            raise ValueError("a Patroni driver needs at least one REST API URL")
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.urls = tuple(url.rstrip("/") for url in urls)
        self.timeout = timeout
        self.attempts = attempts
        self.operation_timeout = operation_timeout
        self._client = httpx.Client(timeout=timeout, transport=transport)
        #: Members' REST URLs from the last ``GET /cluster`` (tried after the configured ones).
        self._discovered: tuple[str, ...] = ()

    @property
    def endpoints(self) -> Sequence[str]:
        return self.urls

    def close(self) -> None:
        self._client.close()

    def _targets(self) -> list[str]:
        return list(dict.fromkeys([*self.urls, *self._discovered]))

    # -- reads ----------------------------------------------------------------------------------
    def _get_once(self, path: str) -> tuple[str, Any]:
        problems: list[str] = []
        for base in self._targets():
            try:
                answer = self._client.get(f"{base}{path}")
            except httpx.TransportError as exc:
                problems.append(f"{base}: {type(exc).__name__}: {exc}")
                continue
            if answer.status_code != 200:
                problems.append(f"{base}: HTTP {answer.status_code} {answer.text.strip()[:200]}")
                continue
            try:
                return base, answer.json()
            except ValueError as exc:
                problems.append(f"{base}: not JSON: {exc}")
        raise DriverUnavailable(f"no Patroni member answered GET {path}: " + "; ".join(problems))

    def _get(self, path: str) -> tuple[str, Any]:
        retrying = Retrying(
            retry=retry_if_exception_type(DriverUnavailable),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=0.1, max=1.0),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return self._get_once(path)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    def cluster(self) -> ClusterState:
        source, body = self._get("/cluster")
        state = parse_cluster(body, source=source, observed_at=datetime.now(UTC))
        self._discovered = tuple(m.api_url.rstrip("/") for m in state.members if m.api_url)
        return state

    def config(self) -> dict[str, Any]:
        """``GET /config``: the cluster-wide (DCS) configuration."""
        source, body = self._get("/config")
        if not isinstance(body, dict):
            raise DriverError(f"{source}: GET /config answered {body!r}")
        return body

    # -- requests that change the cluster -------------------------------------------------------
    def _send(self, method: str, path: str, body: dict[str, Any], *, timeout: float) -> str:
        """Send to the first member that accepts the connection; its answer's text."""
        problems: list[str] = []
        operation = f"{method} {path}"
        for base in self._targets():
            try:
                answer = self._client.request(method, f"{base}{path}", json=body, timeout=timeout)
            except httpx.ConnectError as exc:
                problems.append(f"{base}: {exc}")
                continue  # never sent: another member may take it
            except httpx.TransportError as exc:
                raise DriverUnavailable(
                    f"{operation} to {base}: no answer ({type(exc).__name__}: {exc}); "
                    "the operation may still happen"
                ) from exc
            if answer.status_code == 200:
                return answer.text.strip()
            raise DriverRefused(
                operation=operation,
                status=answer.status_code,
                reason=answer.text.strip() or answer.reason_phrase,
            )
        raise DriverUnavailable(f"no Patroni member took {operation}: " + "; ".join(problems))

    def set_paused(self, paused: bool) -> None:
        self._send("PATCH", "/config", {"pause": paused}, timeout=self.timeout * 2)

    def switchover(self, *, leader: str, candidate: str) -> str:
        return self._send(
            "POST",
            "/switchover",
            {"leader": leader, "candidate": candidate},
            timeout=self.operation_timeout,
        )

    def failover(self, *, candidate: str) -> str:
        return self._send(
            "POST", "/failover", {"candidate": candidate}, timeout=self.operation_timeout
        )
