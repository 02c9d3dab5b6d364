"""Every figure builder with fixed inputs: axes, series and thresholds are present."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import plotly.graph_objects as go

from dashboards.pages.alerts.figures import decisions_figure
from dashboards.pages.capacity.figures import cpu_figure, replicas_figure, scaling_timeline_figure
from dashboards.pages.dr.figures import drills_figure, replication_lag_figure
from dashboards.pages.overview.figures import sparkline_svg
from dashboards.pages.slo_detail.figures import (
    TIME_AXIS_TITLE,
    budget_figure,
    burn_rate_figure,
    events_figure,
    sli_figure,
)
from dashboards.status import alert_windows
from tests.unit.dashboards.data import (
    NOW,
    alert,
    audit,
    capacity_service,
    database,
    status,
)

START = NOW - timedelta(hours=6)


def _trace(figure: go.Figure, name: str) -> Any:
    found = [trace for trace in figure.data if trace.name == name]
    assert found, f"no trace {name!r} in {[trace.name for trace in figure.data]}"
    return found[0]


def _names(figure: go.Figure) -> list[str]:
    return [trace.name for trace in figure.data]


# -- overview sparkline ----------------------------------------------------------------------


def _points(svg: str) -> list[tuple[float, float]]:
    found = re.findall(r"class='series'[^>]*points='([^']+)'", svg)
    return [tuple(map(float, pair.split(","))) for line in found for pair in line.split()]


def test_sparkline_draws_the_series_scaled_to_its_box_with_the_reference_line() -> None:
    svg = sparkline_svg([0.5, 0.25, -0.25], width=100, height=20, reference=0.0, title="budget")
    points = _points(svg)
    assert len(points) == 3
    xs = [x for x, _ in points]
    assert xs == sorted(xs)
    assert xs[0] == 2.0
    assert xs[-1] == 98.0
    ys = [y for _, y in points]
    assert ys[0] == 2.0  # the highest value at the top
    assert ys[-1] == 18.0  # the lowest at the bottom
    assert ys[1] == 7.0  # 0.25 lies a third of the 16-pixel span below the top (2 + 5.3)
    reference = re.search(r"class='reference'[^>]*y1='([\d.]+)'", svg)
    assert reference is not None
    assert 2.0 < float(reference.group(1)) < 18.0  # 0 lies between -0.25 and 0.5
    assert "<title>budget</title>" in svg


def test_sparkline_breaks_at_missing_values_and_says_no_data_when_all_are() -> None:
    svg = sparkline_svg([0.9, 0.8, None, 0.7, 0.6], reference=0.0)
    assert svg.count("class='series'") == 2
    assert "class='reference'" not in svg  # 0 is outside the values' range
    empty = sparkline_svg([None, None])
    assert "no data" in empty
    assert "polyline" not in empty


def test_sparkline_of_a_flat_series_is_a_visible_line() -> None:
    points = _points(sparkline_svg([0.5, 0.5, 0.5], height=20))
    assert {y for _, y in points} == {10.0}
    assert "class='sparkline'" in sparkline_svg([0.5])


def test_sparkline_places_each_value_at_its_position() -> None:
    """Uneven spacing (a thinned series extended by new evaluations) draws true in time."""
    svg = sparkline_svg([0.5, 0.4, 0.3], positions=[0.0, 0.9, 1.0], width=100, height=20)
    assert [x for x, _ in _points(svg)] == [2.0, 88.0, 98.0]


# -- SLO detail ---------------------------------------------------------------------------------


def test_sli_figure_has_the_sli_the_objective_and_a_utc_time_axis() -> None:
    times = [START + timedelta(hours=h) for h in range(4)]
    figure = sli_figure(
        times=times, sli=[0.999, None, 0.985, 0.99], objective=0.99, start=START, end=NOW
    )
    sli = _trace(figure, "SLI")
    assert list(sli.y) == [99.9, None, 98.5, 99.0]
    objective = _trace(figure, "objective 99 %")
    assert list(objective.y) == [99.0, 99.0]
    assert figure.layout.xaxis.title.text == TIME_AXIS_TITLE == "time (UTC)"
    assert list(figure.layout.xaxis.range) == [START, NOW]
    assert figure.layout.yaxis.title.text == "SLI (%)"


def test_budget_figure_forecasts_exhaustion_from_now() -> None:
    times = [START, START + timedelta(hours=3), NOW]
    exhaustion = NOW + timedelta(hours=5)
    figure = budget_figure(
        times=times, budget=[0.6, 0.5, 0.4], now=NOW, exhaustion=exhaustion, start=START, end=NOW
    )
    assert list(_trace(figure, "budget remaining").y) == [60.0, 50.0, 40.0]
    assert list(_trace(figure, "exhausted (0 %)").y) == [0, 0]
    forecast = _trace(figure, "forecast: exhausted 2026-11-21 17:00 UTC")
    assert list(forecast.x) == [NOW, exhaustion]
    assert list(forecast.y) == [40.0, 0]
    assert figure.layout.xaxis.title.text == "time (UTC)"
    assert figure.layout.xaxis.range[1] > NOW  # room for the forecast


def test_budget_figure_without_burn_has_no_forecast() -> None:
    figure = budget_figure(
        times=[NOW], budget=[0.9], now=NOW, exhaustion=None, start=START, end=NOW
    )
    assert not [name for name in _names(figure) if name.startswith("forecast")]


def test_burn_rate_figure_compares_each_window_with_its_alert_factors() -> None:
    burning = status(burn_rates={"5m": 20.0, "1h": 16.0, "30m": 2.0, "6h": None})
    figure = burn_rate_figure(burn_rates=burning.burn_rates, windows=alert_windows(burning))
    bars = _trace(figure, "burn rate")
    labels = list(bars.x)
    assert labels[:4] == ["5m", "30m", "1h", "2h"]
    values = dict(zip(labels, bars.y, strict=True))
    assert values["5m"] == 20.0
    assert values["6h"] is None
    colours = dict(zip(labels, bars.marker.color, strict=True))
    assert colours["1h"] == "#c0392b"  # 16 > 14.4
    assert colours["30m"] != "#c0392b"  # 2 < 6
    page = _trace(figure, "page 14.4× (1h & 5m) · firing")  # 20 and 16 both above 14.4
    assert list(page.x) == ["1h", "5m"]
    assert list(page.y) == [14.4, 14.4]
    assert page.marker.symbol == "line-ew"  # filled while it fires
    quiet = _trace(figure, "ticket 1× (3d & 6h)")
    assert quiet.y[0] == 1.0
    assert quiet.marker.symbol == "line-ew-open"
    assert figure.layout.yaxis.title.text == "burn rate (× budget)"
    assert figure.layout.xaxis.title.text == "window"


def test_burn_rate_figure_uses_the_evaluations_own_alerts_and_period() -> None:
    """``details.alerts`` (the control plane's verdicts, for a 28-day period) win over the
    defaults: their factors are the markers, their ``firing`` the legend."""
    evaluated = status(
        burn_rates={"5m": 2.0, "1h": 13.5, "6h": 1.0},
        details={
            "period": "28d",
            "alerts": [
                {
                    "severity": "page",
                    "long": "1h",
                    "short": "5m",
                    "factor": 13.44,
                    "firing": False,
                    "state": "ok",
                },
                {
                    "severity": "ticket",
                    "long": "6h",
                    "short": "30m",
                    "factor": 0.93,
                    "firing": True,
                    "state": "ok",
                },
            ],
        },
    )
    figure = burn_rate_figure(
        burn_rates=evaluated.burn_rates, windows=alert_windows(evaluated), period="28d"
    )
    assert figure.layout.title.text == (
        "Burn rate per window against the alert factors (28d period)"
    )
    assert list(_trace(figure, "page 13.44× (1h & 5m)").y) == [13.44, 13.44]
    assert _trace(figure, "ticket 0.93× (6h & 30m) · firing").marker.symbol == "line-ew"
    bars = _trace(figure, "burn rate")
    colours = dict(zip(bars.x, bars.marker.color, strict=True))
    assert colours["1h"] == "#c0392b"  # 13.5 > 13.44, the evaluation's factor, not 14.4
    assert "30m" in list(bars.x)  # an alert window without data is still named


def test_events_figure_puts_alerts_and_actions_on_the_sli_time_axis() -> None:
    alerts = [
        alert(),
        alert(
            id=2,
            status="resolved",
            alertname="SLONoData",
            severity="ticket",
            closed_at=NOW - timedelta(hours=1),
        ),
    ]
    actions = [audit(), audit(id=2, decision_id="d2", decision="refused", at=NOW)]
    figure = events_figure(alerts=alerts, actions=actions, start=START, end=NOW)
    firing = _trace(figure, "SLOBurnRateHigh (page, firing)")
    assert list(firing.x) == [NOW - timedelta(hours=2), NOW]  # still open: to the axis end
    resolved = _trace(figure, "SLONoData (ticket, resolved)")
    assert list(resolved.x)[1] == NOW - timedelta(hours=1)
    assert _trace(figure, "actions taken").marker.symbol == "circle"
    assert _trace(figure, "actions refused").marker.symbol == "x"
    assert list(figure.layout.xaxis.range) == [START, NOW]
    assert figure.layout.xaxis.title.text == "time (UTC)"
    empty = events_figure(alerts=[], actions=[], start=START, end=NOW)
    assert empty.layout.annotations[0].text == "no alerts and no actions in this range"


# -- capacity -------------------------------------------------------------------------------------


def test_replicas_figure_shows_live_replicas_against_policy_and_hpa_bounds() -> None:
    services = [capacity_service(), capacity_service("analytics", autoscaler=None)]
    figure = replicas_figure(services)
    assert list(_trace(figure, "current").y) == [4, 4]
    assert list(_trace(figure, "desired").y) == [5, 5]
    assert list(_trace(figure, "policy min").y) == [3, 3]
    assert list(_trace(figure, "policy max").y) == [20, 20]
    assert list(_trace(figure, "HPA max").y) == [10, None]  # no HPA on analytics
    assert list(_trace(figure, "current").x) == ["inventory", "analytics"]
    assert figure.layout.yaxis.title.text == "replicas"


def test_cpu_figure_marks_services_above_their_target() -> None:
    figure = cpu_figure([capacity_service(), capacity_service("analytics", cpu_percent=None)])
    bars = _trace(figure, "CPU %")
    assert list(bars.y) == [85, None]
    assert list(bars.text) == ["85 %", "no data"]
    assert bars.marker.color[0] == "#c0392b"
    assert list(_trace(figure, "target CPU %").y) == [70, 70]
    assert figure.layout.yaxis.title.text == "CPU (% of requests)"


def test_scaling_timeline_has_one_series_per_action_and_decision() -> None:
    decisions = [
        audit(),
        audit(id=2, decision_id="d2", action="scale_in", decision="refused"),
    ]
    figure = scaling_timeline_figure(decisions, start=START, end=NOW)
    out = _trace(figure, "scale_out taken")
    assert out.marker.symbol == "triangle-up"
    assert list(out.y) == ["inventory"]
    assert _trace(figure, "scale_in refused").marker.symbol == "triangle-down-open"
    assert list(figure.layout.xaxis.range) == [START, NOW]
    assert figure.layout.xaxis.title.text == "time (UTC)"


# -- DR --------------------------------------------------------------------------------------------


def test_replication_lag_figure_compares_each_replica_with_the_rpo() -> None:
    figure = replication_lag_figure([database()])
    lag = _trace(figure, "replay lag (s)")
    assert list(lag.x) == ["inventory/replica1", "inventory/replica2"]
    assert list(lag.y) == [2.5, 400.0]
    assert lag.marker.color[1] == "#c0392b"  # 400 s > RPO 300 s
    assert list(_trace(figure, "RPO of the tier (s)").y) == [300, 300]
    assert figure.layout.yaxis.title.text == "seconds"
    empty = replication_lag_figure([database(replicas=None)])
    assert [a.text for a in empty.layout.annotations] == ["no replica reported"]
    assert empty.data == ()  # no empty bars or markers
    assert empty.layout.xaxis.visible is False
    assert empty.layout.yaxis.visible is False


def test_drills_figure_plots_measured_rto_and_rpo_with_the_targets() -> None:
    figure = drills_figure([database()])
    rto = _trace(figure, "inventory RTO")
    assert list(rto.y) == [12.5, 1200.0]  # oldest first
    assert list(_trace(figure, "inventory RPO").y) == [0.0, None]
    lines = {shape.y0 for shape in figure.layout.shapes}
    assert lines == {900, 300}
    texts = {annotation.text for annotation in figure.layout.annotations}
    assert "inventory RTO target 900 s" in texts
    assert "inventory RPO target 300 s" in texts
    assert figure.layout.xaxis.type == "date"


def test_drills_figure_without_a_drill_shows_the_empty_state_and_no_axes() -> None:
    for databases in ([database(drills=[])], []):
        never = drills_figure(databases)
        assert [annotation.text for annotation in never.layout.annotations] == [
            "no drill on record"
        ]
        assert never.data == ()  # no empty series for plotly to give a default date range
        assert never.layout.shapes == ()
        assert never.layout.xaxis.visible is False
        assert never.layout.yaxis.visible is False


# -- alerts & actions ----------------------------------------------------------------------------


def test_decisions_figure_counts_decisions_per_hour() -> None:
    entries = [
        audit(at=NOW - timedelta(minutes=50)),
        audit(id=2, decision_id="d2", at=NOW - timedelta(minutes=40)),
        audit(id=3, decision_id="d3", at=NOW - timedelta(minutes=30), decision="refused"),
    ]
    figure = decisions_figure(entries, start=NOW - timedelta(hours=3), end=NOW)
    taken = _trace(figure, "taken")
    refused = _trace(figure, "refused")
    assert len(taken.x) == 4  # 09:00 .. 12:00
    assert list(taken.y) == [0, 0, 2, 0]
    assert list(refused.y) == [0, 0, 1, 0]
    assert figure.layout.barmode == "stack"
    assert figure.layout.xaxis.title.text == "hour (UTC)"
