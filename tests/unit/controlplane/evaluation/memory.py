"""Sources that answer from memory, for the evaluator and scheduler unit tests (the real
Prometheus and Elasticsearch runs are in tests/integration/controlplane/evaluation)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from controlplane.sources.base import (
    EventCount,
    EventHistogram,
    InstantAnswers,
    LogLine,
    NoData,
    RangeSeries,
    RecordingRuleSnapshot,
    Sample,
    Vector,
)

AT = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


class MemoryPrometheus:
    """A MetricsSource answering from dicts: recorded series per (name, slo), raw queries by
    their text (substring match), or raising ``error`` for everything."""

    def __init__(
        self,
        *,
        recorded: Mapping[tuple[str, str], float] | None = None,
        raw: Mapping[str, float] | None = None,
        error: Exception | None = None,
    ) -> None:
        self.recorded = dict(recorded or {})
        self.raw = dict(raw or {})
        self.error = error
        self.calls = 0

    def instant(self, query: str, *, at: datetime | None = None) -> Vector | NoData:
        self.calls += 1
        if self.error is not None:
            raise self.error
        for fragment, value in self.raw.items():
            if fragment in query:
                return Vector(samples=(Sample(labels={}, at=at or AT, value=value),))
        return NoData("empty_result", query)

    def instant_many(self, queries: Sequence[str], *, at: datetime | None = None) -> InstantAnswers:
        """One call, however many queries (as Prometheus answers a batch in one request)."""
        answers = tuple(self.instant(query, at=at) for query in queries)
        self.calls -= len(queries) - 1
        return InstantAnswers(answers=answers, queries=1)

    def range(
        self, query: str, *, start: datetime, end: datetime, step: timedelta
    ) -> tuple[RangeSeries, ...] | NoData:
        raise NotImplementedError

    def recording_rules(
        self,
        *,
        names: Sequence[str],
        slos: Sequence[str] | None = None,
        at: datetime | None = None,
    ) -> RecordingRuleSnapshot:
        self.calls += 1
        if self.error is not None:
            raise self.error
        samples = {
            (name, slo): Sample(labels={"slo": slo}, at=at or AT, value=value)
            for (name, slo), value in self.recorded.items()
            if name in names and (slos is None or slo in slos)
        }
        return RecordingRuleSnapshot(
            at=at or AT, names=tuple(names), samples=samples, queries=len(names)
        )


class MemoryLogs:
    """A LogSource counting ``bad`` / ``total`` events per window, or raising ``error``."""

    def __init__(
        self,
        *,
        total: int = 1000,
        bad: int = 5,
        error: Exception | None = None,
        no_index: bool = False,
    ):
        self.total, self.bad, self.error, self.no_index = total, bad, error, no_index
        self.calls = 0

    def count(
        self, *, index: str, query: Mapping[str, Any], start: datetime, end: datetime
    ) -> EventCount | NoData:
        self.calls += 1
        if self.error is not None:
            raise self.error
        if self.no_index:
            return NoData("no_index", f"no index matches {index!r}")
        is_bad = "term" in str(query)
        return EventCount(total=self.bad if is_bad else self.total)

    def good_bad_histogram(self, **kwargs: Any) -> EventHistogram | NoData:
        raise NotImplementedError

    def logs_for_trace(self, trace_id: str, **kwargs: Any) -> tuple[LogLine, ...] | NoData:
        raise NotImplementedError


def recorded(
    slo: str, *, objective: float = 0.999, **ratios: float
) -> dict[tuple[str, str], float]:
    """Recorded series of one SLO: the objective marker and ``slo:sli_error:ratio_rate<w>``."""
    series = {("slo:objective:ratio", slo): objective}
    for window, value in ratios.items():
        series[(f"slo:sli_error:ratio_rate{window.removeprefix('w')}", slo)] = value
    return series


EVERY_WINDOW = {"w5m", "w30m", "w1h", "w2h", "w6h", "w1d", "w3d", "w30d"}
