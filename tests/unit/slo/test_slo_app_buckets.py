"""The SLO specs and the app's histograms agree on their bucket bounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.telemetry.metrics import APPLY_LAG_BUCKETS, REQUEST_BUCKETS
from slo.spec import PrometheusLatencySLI, SpecSource, parse_slos

pytestmark = pytest.mark.unit

SPECS = Path(__file__).resolve().parents[3] / "slo" / "specs"


def test_latency_bucket_lists_match_the_app_histograms() -> None:
    sources = [SpecSource(name=str(p), text=p.read_text()) for p in sorted(SPECS.glob("*.yaml"))]
    slos = {slo.name: slo for slo in parse_slos(sources)}
    read, fresh = slos["read-latency"].sli, slos["ingestion-freshness"].sli
    assert isinstance(read, PrometheusLatencySLI)
    assert isinstance(fresh, PrometheusLatencySLI)
    assert read.buckets == tuple(REQUEST_BUCKETS)
    assert fresh.buckets == tuple(APPLY_LAG_BUCKETS)
