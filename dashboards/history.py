"""Recent evaluations of every SLO for the overview's sparklines, kept between refreshes.

A cold overview page fetches the series of its SLOs in one request (``GET /slos/history`` with
one ``slo`` parameter per SLO, one query on the control plane): a page of 50 SLOs out of 2,000
asks for 50 series, not 2,000. A few missing series (fewer than ``workers``), a control plane
without that route, or ``batch=False`` (the benchmark's baseline) use
``GET /slos/{id}/history`` per SLO, in parallel (``workers``) over the client's pooled
connections. After that a refresh needs none: ``/slos`` already carries each SLO's latest
evaluation, which is appended to the kept series. A series is fetched again only when it could
have a hole: an evaluation newer than the kept one by more than :data:`GAP_FACTOR` times the
usual spacing (e.g. the browser slept), or an SLO never seen before. With ``cache=False`` every
refresh reloads every history it draws (the benchmark's baseline).
"""

from __future__ import annotations

import itertools
import statistics
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from controlplane.client.http import ControlPlaneClient, NotFound, RouteNotServed
from controlplane.client.models import Evaluation, HistoryPoint, SLOStatus
from slo.series import thin

__all__ = ["GAP_FACTOR", "Point", "RecentHistory"]

#: Evaluations asked for per SLO by the one-by-one fetch (the API's most): the whole window,
#: thinned here like the batch route thins it.
WINDOW_LIMIT = 10_000

#: A new evaluation further than this many usual spacings from the kept one means a hole.
GAP_FACTOR = 2.5

#: SLOs named in one batch history request (the control plane takes at most 200).
BATCH_SLOS = 100


@dataclass(frozen=True, kw_only=True)
class Point:
    at: datetime
    sli: float | None
    budget_remaining: float | None


def _points(evaluations: Sequence[Evaluation | HistoryPoint]) -> list[Point]:
    """Oldest first (the API answers newest first)."""
    return [
        Point(at=item.at, sli=item.sli, budget_remaining=item.budget_remaining)
        for item in sorted(evaluations, key=lambda item: item.at)
    ]


def _spacing(points: Sequence[Point]) -> timedelta | None:
    if len(points) < 2:
        return None
    gaps = [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(points)]
    return timedelta(seconds=statistics.median(gaps))


class RecentHistory:
    """Per-SLO series of the last ``window`` (at most ``points`` evaluations, evenly thinned),
    thread-safe."""

    def __init__(
        self,
        *,
        client: ControlPlaneClient,
        window: timedelta,
        points: int,
        workers: int = 8,
        cache: bool = True,
        batch: bool = True,
    ) -> None:
        self.client = client
        self.window = window
        self.points = points
        self.workers = workers
        self.cache = cache
        #: Off after the control plane answered that it does not serve the batch route.
        self.batch = batch
        self._series: dict[str, list[Point]] = {}
        self._lock = threading.Lock()
        #: Series fetched by the last call (for the benchmark and the tests).
        self.last_fetches = 0

    def known(
        self, statuses: Sequence[SLOStatus], *, now: datetime
    ) -> tuple[dict[str, list[Point]], list[SLOStatus]]:
        """The series that need no request (kept, extended from ``statuses``), and the SLOs
        whose history must be fetched first. Without the cache every SLO needs a fetch."""
        since = now - self.window
        with self._lock:
            kept = {key: list(value) for key, value in self._series.items()} if self.cache else {}
        found: dict[str, list[Point]] = {}
        missing: list[SLOStatus] = []
        for status in statuses:
            extended = self._extend(kept.get(status.slo_id), status)
            if extended is None:
                missing.append(status)
            else:
                found[status.slo_id] = extended
        trimmed = self._trim(found, since=since)
        self._keep(trimmed)
        return trimmed, missing

    def series(self, statuses: Sequence[SLOStatus], *, now: datetime) -> dict[str, list[Point]]:
        """The recent series of each SLO in ``statuses`` (oldest first), fetching what is not
        kept; other kept series stay (a filtered overview does not empty the cache)."""
        found, missing = self.known(statuses, now=now)
        fetched = self._trim(self._fetch(missing, since=now - self.window), since=now - self.window)
        self.last_fetches = len(missing)
        self._keep(fetched)
        return {**found, **fetched}

    def _trim(self, series: dict[str, list[Point]], *, since: datetime) -> dict[str, list[Point]]:
        """Only the window, thinned evenly to ``points`` (the sparkline places each point at
        its time, so an uneven spacing draws true)."""
        return {
            slo_id: thin([point for point in points if point.at >= since], most=self.points)
            for slo_id, points in series.items()
        }

    def _keep(self, series: dict[str, list[Point]]) -> None:
        if not self.cache:
            return
        with self._lock:
            self._series.update(series)
            # An SLO not evaluated for a whole window is forgotten.
            for slo_id in [key for key, kept in self._series.items() if not kept]:
                del self._series[slo_id]

    @staticmethod
    def _extend(kept: list[Point] | None, status: SLOStatus) -> list[Point] | None:
        """The kept series brought up to ``status``, or None when it must be fetched."""
        if not kept:
            return None
        last = kept[-1].at
        if status.evaluated_at <= last:
            return kept
        spacing = _spacing(kept)
        if spacing is None or status.evaluated_at - last > spacing * GAP_FACTOR:
            return None
        point = Point(
            at=status.evaluated_at, sli=status.sli, budget_remaining=status.budget_remaining
        )
        return [*kept, point]

    def _fetch(self, statuses: Sequence[SLOStatus], *, since: datetime) -> dict[str, list[Point]]:
        if not statuses:
            return {}
        if self.batch and len(statuses) > self.workers:
            try:
                return self._fetch_all(statuses, since=since)
            except RouteNotServed:
                self.batch = False  # an older control plane: one request per SLO from now on
        return self._fetch_each(statuses, since=since)

    def _fetch_all(
        self, statuses: Sequence[SLOStatus], *, since: datetime
    ) -> dict[str, list[Point]]:
        """One request per :data:`BATCH_SLOS` SLOs; an SLO it does not list has no evaluation
        since then (a control plane that ignores ``slo`` lists them all: the others are left)."""
        ids = [status.slo_id for status in statuses]
        found = {
            history.slo_id: history.points
            for start in range(0, len(ids), BATCH_SLOS)
            for history in self.client.slos_history(
                since=since, slo_ids=ids[start : start + BATCH_SLOS], points=self.points
            )
        }
        return {status.slo_id: _points(found.get(status.slo_id, [])) for status in statuses}

    def _fetch_each(
        self, statuses: Sequence[SLOStatus], *, since: datetime
    ) -> dict[str, list[Point]]:
        def one(status: SLOStatus) -> tuple[str, list[Point]]:
            try:
                found = self.client.slo_history(status.slo_id, since=since, limit=WINDOW_LIMIT)
            except NotFound:  # removed between the two requests
                found = []
            return status.slo_id, _points(found)

        if self.workers == 1 or len(statuses) == 1:
            return dict(one(status) for status in statuses)
        with ThreadPoolExecutor(max_workers=min(self.workers, len(statuses))) as pool:
            return dict(pool.map(one, statuses))
