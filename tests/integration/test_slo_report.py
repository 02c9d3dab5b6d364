"""`controlplane slo report` against a real Prometheus holding four days of controlled history.

The history is written as OpenMetrics and loaded with promtool (backfill), so the test knows
every counter value; Prometheus also loads the generated rule files. The report is evaluated at
a past instant (``--at``) and must match the values computed here by hand to 1e-9.

Why the hand arithmetic is exact: samples are one minute apart and aligned with ``--at``; no
traffic lands in the minute just after any window's start, so whether a range includes its
left edge or not, the increase over a window ``W`` is the sum of the increments of its last
``W`` minutes. Every counter starts high (1e6), so Prometheus' extrapolation never clips at
zero and scales all series of a window by the same factor: ratios (SLI, burn, budget) are exact.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import pytest

from tests.support.backends import PrometheusFactory

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("controlplane"))
BASE = 1_000_000
WINDOW_MINUTES = {"5m": 5, "30m": 30, "1h": 60, "2h": 120, "6h": 360, "1d": 1440, "3d": 4320}
HISTORY_MINUTES = 4 * 1440 + 30
PERIOD_MINUTES = 30 * 1440


@dataclass(frozen=True)
class Minute:
    """Requests that arrived in one minute: GET 200 (fast = within 250 ms) and GET 503."""

    ok: int
    fast: int
    errors: int


def traffic(m: int) -> Minute:
    """Spiky traffic in minute ``m`` before the report instant (m = 0 is the last minute)."""
    if any(m == w - 1 for w in WINDOW_MINUTES.values()):
        return Minute(0, 0, 0)  # keep window edges quiet (see the module docstring)
    if 10 <= m < 14:  # a sharp outage-like spike inside the last 30 minutes
        return Minute(ok=2600, fast=900, errors=400)
    if m == 200:  # a burst of traffic, almost error-free, six hours back at most
        return Minute(ok=5000, fast=4990, errors=5)
    if 2000 <= m < 2060:  # a slow hour a day and a half ago
        return Minute(ok=120, fast=60, errors=3)
    errors = 1 if m % 10 == 0 else 0
    return Minute(ok=100, fast=99, errors=errors)


def openmetrics(at: datetime) -> str:
    series = {
        "ok": 'http_server_request_duration_seconds_count{service="inventory",'
        'route="/api/v1/stock/{sku}",method="GET",status_code="200"}',
        "fast": 'http_server_request_duration_seconds_bucket{service="inventory",'
        'route="/api/v1/stock/{sku}",method="GET",status_code="200",le="0.25"}',
        "inf": 'http_server_request_duration_seconds_bucket{service="inventory",'
        'route="/api/v1/stock/{sku}",method="GET",status_code="200",le="+Inf"}',
        "errors": 'http_server_request_duration_seconds_count{service="inventory",'
        'route="/api/v1/stock/{sku}",method="GET",status_code="503"}',
    }
    # Values at each sample, oldest first; sample k is at `at - k minutes`.
    totals = {"ok": BASE, "fast": BASE, "inf": BASE, "errors": BASE}
    rows: dict[str, list[str]] = {key: [] for key in series}
    for k in range(HISTORY_MINUTES, -1, -1):
        if k < HISTORY_MINUTES:
            minute = traffic(k)
            totals["ok"] += minute.ok
            totals["inf"] += minute.ok
            totals["fast"] += minute.fast
            totals["errors"] += minute.errors
        stamp = int((at - timedelta(minutes=k)).timestamp())
        for key, name in series.items():
            rows[key].append(f"{name} {totals[key]} {stamp}")
    lines = ["# TYPE http_server_request_duration_seconds histogram"]
    for key in series:
        lines.extend(rows[key])
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def sums(minutes: int) -> Minute:
    window = [traffic(m) for m in range(min(minutes, HISTORY_MINUTES))]
    return Minute(
        ok=sum(x.ok for x in window),
        fast=sum(x.fast for x in window),
        errors=sum(x.errors for x in window),
    )


def expected_availability(minutes: int) -> Fraction:
    """Error ratio: 5xx over all requests."""
    window = sums(minutes)
    return Fraction(window.errors, window.ok + window.errors)


def expected_latency(minutes: int) -> Fraction:
    """Error ratio: GET non-5xx slower than 250 ms over all GET non-5xx."""
    window = sums(minutes)
    return Fraction(window.ok - window.fast, window.ok)


def run_report(url: str, at: datetime, spec: Path) -> dict[str, dict[str, object]]:
    done = subprocess.run(
        [CLI, "slo", "report", str(spec), "--prometheus", url, "--at", at.isoformat(), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    reports = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return {str(r["slo"]): r for r in reports}


@pytest.fixture(scope="module")
def history(prometheus_factory: PrometheusFactory) -> tuple[str, datetime]:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    at = now - timedelta(minutes=10)
    rules = {
        path.name: path.read_text(encoding="utf-8")
        for path in (REPO / "alerts" / "rules").glob("*.yml")
    }
    assert rules, "no generated rule files in alerts/rules"
    server = prometheus_factory(
        config={"global": {"scrape_interval": "15s", "evaluation_interval": "15s"}},
        rules=rules,
        backfill=openmetrics(at),
    )
    return server.url, at


@pytest.mark.parametrize(
    ("slo", "target", "ratio"),
    [
        ("inventory/api-availability", Fraction(999, 1000), expected_availability),
        ("inventory/read-latency", Fraction(99, 100), expected_latency),
    ],
)
def test_report_matches_hand_computed_values(
    history: tuple[str, datetime], slo: str, target: Fraction, ratio: object
) -> None:
    url, at = history
    assert callable(ratio)
    report = run_report(url, at, REPO / "slo" / "specs" / "inventory-api.yaml")[slo]
    allowed = 1 - target

    period_error = ratio(PERIOD_MINUTES)
    assert report["state"] == "ok"
    assert report["sli"] == pytest.approx(float(1 - period_error), abs=1e-9)
    assert report["budget_remaining_ratio"] == pytest.approx(
        float(1 - period_error / allowed), abs=1e-9
    )
    period_minutes = Fraction(PERIOD_MINUTES)
    assert report["budget_remaining_minutes"] == pytest.approx(
        float(allowed * period_minutes - period_error * period_minutes), abs=1e-6
    )
    burns = report["burn_rates"]
    assert isinstance(burns, dict)
    for label, minutes in WINDOW_MINUTES.items():
        assert burns[label] == pytest.approx(float(ratio(minutes) / allowed), abs=1e-9), label


def test_spiky_traffic_long_window_is_event_weighted_not_an_average_of_ratios(
    history: tuple[str, datetime],
) -> None:
    url, at = history
    report = run_report(url, at, REPO / "slo" / "specs" / "inventory-api.yaml")
    burn_6h = report["inventory/api-availability"]["burn_rates"]["6h"]  # type: ignore[index]
    event_weighted = expected_availability(360) / Fraction(1, 1000)
    hourly = [
        Fraction(
            sum(traffic(m).errors for m in range(60 * h, 60 * h + 60)),
            sum(traffic(m).ok + traffic(m).errors for m in range(60 * h, 60 * h + 60)),
        )
        for h in range(6)
    ]
    average_of_ratios = sum(hourly) / 6 / Fraction(1, 1000)
    assert abs(event_weighted - average_of_ratios) > 1  # the two really differ here
    assert burn_6h == pytest.approx(float(event_weighted), abs=1e-9)


def test_the_spike_fires_the_fast_page_at_the_report_instant(
    history: tuple[str, datetime],
) -> None:
    url, at = history
    report = run_report(url, at, REPO / "slo" / "specs" / "inventory-api.yaml")
    alerts = report["inventory/api-availability"]["alerts"]
    assert isinstance(alerts, list)
    fast_page = next(a for a in alerts if a["long"] == "1h")
    # 1 h burn and 5 m burn: the spike is inside the last 30 min but not the last 5 min.
    burns = report["inventory/api-availability"]["burn_rates"]
    assert isinstance(burns, dict)
    assert burns["1h"] > 14.4
    assert burns["5m"] < 14.4
    assert fast_page["firing"] is False  # only one of its two windows burns
    slow_page = next(a for a in alerts if a["long"] == "6h")
    assert burns["6h"] > 6
    assert burns["30m"] > 6
    assert slow_page["firing"] is True


def test_before_any_history_the_report_says_no_data(history: tuple[str, datetime]) -> None:
    url, at = history
    long_ago = at - timedelta(days=60)
    report = run_report(url, long_ago, REPO / "slo" / "specs" / "inventory-api.yaml")
    for entry in report.values():
        assert entry["state"] == "no_data"
        assert entry["sli"] is None
        assert entry["budget_remaining_ratio"] is None


def test_unreachable_prometheus_is_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            CLI,
            "slo",
            "report",
            str(REPO / "slo" / "specs" / "inventory-api.yaml"),
            "--prometheus",
            "http://127.0.0.1:9",
            "--at",
            "2026-01-01T00:00:00Z",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "unreachable" in done.stderr
