"""The burn reader on SLO specs: any window from the raw series, aged by the newest raw sample,
and no value at all from a window with too few events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controlplane.actions.signals import prometheus_burn_reader
from controlplane.core.specs import load_spec_paths
from controlplane.sources.base import NoData, Sample, SourceError, Vector

pytestmark = pytest.mark.unit

SPECS = Path(__file__).resolve().parents[4] / "slo" / "specs" / "inventory-api.yaml"
NOW = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)


class Answers:
    """A metrics source answering by the kind of query (what Prometheus would compute)."""

    def __init__(self, *, events: float, error_ratio: float, newest: datetime) -> None:
        self.events, self.error_ratio, self.newest = events, error_ratio, newest
        self.queries: list[str] = []

    def instant(self, query: str, *, at: datetime | None = None) -> Vector | NoData:
        self.queries.append(query)
        if query.startswith("sum(increase("):
            value = self.events
        elif query.startswith("max(timestamp("):
            value = self.newest.timestamp()
        else:
            value = self.error_ratio / 0.010000000000000009  # the query divides by the budget
        return Vector(samples=(Sample(labels={}, at=NOW, value=value),))

    def range(self, *args: object, **kwargs: object) -> object:
        raise SourceError("not used")


def reader(source: Answers):  # type: ignore[no-untyped-def]
    return prometheus_burn_reader(source, load_spec_paths([SPECS]))  # type: ignore[arg-type]


def test_a_window_of_the_spec_is_read_from_the_raw_series_and_aged_by_the_newest_sample() -> None:
    source = Answers(events=400, error_ratio=0.3, newest=NOW - timedelta(seconds=4))
    value = reader(source)("inventory", "read-latency", "30s")
    assert value.value == pytest.approx(0.3 / 0.010000000000000009)
    assert value.observed_at == NOW - timedelta(seconds=4)
    assert any("[30s]" in q and 'le="0.25"' in q for q in source.queries)


def test_too_few_events_give_no_value_so_nothing_acts() -> None:
    source = Answers(events=12, error_ratio=0.9, newest=NOW)
    value = reader(source)("inventory", "read-latency", "30s")
    assert value.value is None
    assert value.observed_at is None


def test_an_unknown_slo_falls_back_to_the_recording_rule() -> None:
    source = Answers(events=400, error_ratio=0.3, newest=NOW)
    reader(source)("inventory", "not-a-spec", "5m")
    assert source.queries[0] == 'max(slo:burn_rate:rate5m{service="inventory",slo="not-a-spec"})'
