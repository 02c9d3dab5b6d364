"""SLO maths against hand-computed vectors (the arithmetic is written out in each test)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from slo.maths import (
    BurnRateWindow,
    EventCounts,
    SLIState,
    both_windows_burning,
    burn_rate,
    burn_rate_factor,
    calendar_period,
    counter_increase,
    default_burn_rate_windows,
    error_budget,
    evaluate_burn_rate_alerts,
    evaluate_slo,
    event_weighted,
    ratio_timeslice_counts,
    rolling_period,
    sli_result,
    time_to_exhaustion,
    timeslice_counts,
)

pytestmark = pytest.mark.unit

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


# --- SLI and event weighting -------------------------------------------------------------------


def test_sli_from_counts() -> None:
    # 9 990 good of 10 000: sli = 0.999, error ratio = 10 / 10 000 = 0.001
    result = sli_result(EventCounts(good=9_990, total=10_000))
    assert result.state is SLIState.OK
    assert result.sli == pytest.approx(0.999, abs=1e-15)
    assert result.error_ratio == pytest.approx(0.001, abs=1e-15)


def test_counts_from_bad_and_total() -> None:
    counts = EventCounts.from_bad(bad=3, total=40)
    assert (counts.good, counts.bad, counts.total) == (37, 3, 40)


def test_spiky_traffic_is_event_weighted_not_an_average_of_ratios() -> None:
    # Two 5-minute windows: a busy clean one (0 bad / 1 000) and a quiet failing one (5 / 10).
    # Average of ratios: (0/1000 + 5/10) / 2 = 0.25  — what a naive long window would report.
    # Event-weighted:    (0 + 5) / (1000 + 10) = 5 / 1010 = 0.0049504950495...
    busy = EventCounts(good=1_000, total=1_000)
    quiet = EventCounts(good=5, total=10)
    combined = event_weighted([busy, quiet])
    assert combined == EventCounts(good=1_005, total=1_010)
    result = sli_result(combined)
    assert result.error_ratio == pytest.approx(5 / 1010, abs=1e-15)
    assert result.error_ratio == pytest.approx(0.0049504950495049506, abs=1e-15)
    average_of_ratios = (busy.bad / busy.total + quiet.bad / quiet.total) / 2
    assert average_of_ratios == 0.25
    assert abs(result.error_ratio - average_of_ratios) > 0.24


def test_event_weighted_skips_windows_without_data() -> None:
    assert event_weighted([None, EventCounts(good=3, total=4), None]) == EventCounts(
        good=3, total=4
    )
    assert event_weighted([None, None]) is None
    assert event_weighted([]) is None


def test_zero_traffic_is_insufficient_traffic_not_perfect() -> None:
    result = sli_result(EventCounts(good=0, total=0))
    assert result.state is SLIState.INSUFFICIENT_TRAFFIC
    assert result.sli is None
    assert result.error_ratio is None


def test_missing_series_is_no_data() -> None:
    result = sli_result(None)
    assert result.state is SLIState.NO_DATA
    assert (result.sli, result.error_ratio, result.counts) == (None, None, None)


def test_minimum_event_count_is_configurable() -> None:
    assert sli_result(EventCounts(good=99, total=99), min_events=100).state is (
        SLIState.INSUFFICIENT_TRAFFIC
    )
    assert sli_result(EventCounts(good=99, total=100), min_events=100).state is SLIState.OK


@pytest.mark.parametrize(
    ("good", "total"), [(-1, 5), (6, 5), (math.nan, 5), (1, math.inf)], ids=str
)
def test_impossible_counts_are_rejected(good: float, total: float) -> None:
    with pytest.raises(ValueError, match=r"event counts|exceed"):
        EventCounts(good=good, total=total)


# --- counters -----------------------------------------------------------------------------------


def test_counter_increase_counts_resets() -> None:
    # 0 → 10 (+10) → 25 (+15) → 5 (reset: the counter restarted at 0, so +5) → 12 (+7) = 37
    assert counter_increase([0, 10, 25, 5, 12]) == 37


def test_counter_increase_reset_to_zero_and_flat_counter() -> None:
    # 100 → 0 (reset, +0) → 4 (+4) = 4; a flat counter increased by 0
    assert counter_increase([100, 0, 4]) == 4
    assert counter_increase([7, 7, 7]) == 0


def test_counter_increase_needs_two_samples() -> None:
    assert counter_increase([42]) is None
    assert counter_increase([]) is None


def test_counter_reset_inside_a_window_gives_the_right_sli() -> None:
    # total: 0, 500, 1000, (restart) 200, 700 → 500 + 500 + 200 + 500 = 1700
    # bad:   0,   1,    2, (restart)   1,   3 → 1 + 1 + 1 + 2 = 5
    total = counter_increase([0, 500, 1000, 200, 700])
    bad = counter_increase([0, 1, 2, 1, 3])
    assert (total, bad) == (1700, 5)
    assert total is not None
    assert bad is not None
    result = sli_result(EventCounts.from_bad(bad=bad, total=total))
    assert result.error_ratio == pytest.approx(5 / 1700, abs=1e-15)


# --- budget, burn rate, exhaustion ----------------------------------------------------------------


def test_burn_rate() -> None:
    # 1.44 % errors against a 0.1 % budget: 0.0144 / 0.001 = 14.4
    assert burn_rate(error_ratio=0.0144, target=0.999) == pytest.approx(14.4, rel=1e-12)
    assert burn_rate(error_ratio=0.0, target=0.99) == 0


def test_error_budget_rolling_window() -> None:
    # 99.9 % over 30 d: budget 0.001 × 43 200 min = 43.2 min.
    # Error ratio 0.0005 spends half of it: consumed 0.5, 21.6 min; remaining 0.5, 21.6 min.
    budget = error_budget(target=0.999, error_ratio=0.0005, period=30 * DAY)
    assert budget.allowed_ratio == pytest.approx(0.001, abs=1e-15)
    assert budget.consumed_ratio == pytest.approx(0.5, abs=1e-12)
    assert budget.remaining_ratio == pytest.approx(0.5, abs=1e-12)
    assert budget.total_minutes == pytest.approx(43.2, abs=1e-9)
    assert budget.consumed_minutes == pytest.approx(21.6, abs=1e-9)
    assert budget.remaining_minutes == pytest.approx(21.6, abs=1e-9)


def test_error_budget_overspent_goes_negative() -> None:
    # error ratio 0.003 with a 0.001 budget: consumed 3, remaining -2, -86.4 min
    budget = error_budget(target=0.999, error_ratio=0.003, period=30 * DAY)
    assert budget.consumed_ratio == pytest.approx(3, abs=1e-12)
    assert budget.remaining_ratio == pytest.approx(-2, abs=1e-12)
    assert budget.remaining_minutes == pytest.approx(43.2 - 129.6, abs=1e-9)


def test_error_budget_since_calendar_window_start() -> None:
    # April 2024 (30 days), 10 days elapsed at an error ratio of 0.003 against 99.9 %:
    # consumed = 0.003 / 0.001 × 10/30 = 1 (all of it); 0.003 × 14 400 min = 43.2 min of 43.2.
    period = calendar_period(at=datetime(2024, 4, 11, tzinfo=UTC), unit="month")
    assert period.length == 30 * DAY
    assert period.elapsed == 10 * DAY
    budget = error_budget(
        target=0.999, error_ratio=0.003, period=period.length, elapsed=period.elapsed
    )
    assert budget.consumed_ratio == pytest.approx(1.0, abs=1e-12)
    assert budget.remaining_ratio == pytest.approx(0.0, abs=1e-12)
    assert budget.total_minutes == pytest.approx(43.2, abs=1e-9)
    assert budget.consumed_minutes == pytest.approx(43.2, abs=1e-9)


def test_error_budget_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        error_budget(target=1.0, error_ratio=0.1, period=DAY)
    with pytest.raises(ValueError, match="elapsed"):
        error_budget(target=0.99, error_ratio=0.1, period=DAY, elapsed=2 * DAY)
    with pytest.raises(ValueError, match="error ratio"):
        error_budget(target=0.99, error_ratio=1.5, period=DAY)


def test_time_to_exhaustion() -> None:
    # Half the 30-day budget left, burning at 14.4: 0.5 × 2 592 000 s / 14.4 = 90 000 s = 25 h
    assert time_to_exhaustion(remaining_ratio=0.5, burn=14.4, period=30 * DAY) == 25 * HOUR
    # Burn 1 with the full budget left lasts exactly the period
    assert time_to_exhaustion(remaining_ratio=1.0, burn=1.0, period=28 * DAY) == 28 * DAY
    assert time_to_exhaustion(remaining_ratio=0.5, burn=0.0, period=DAY) is None
    assert time_to_exhaustion(remaining_ratio=-0.1, burn=3.0, period=DAY) == timedelta(0)


# --- multi-window multi-burn-rate -------------------------------------------------------------


def test_sre_workbook_factors_for_30_days() -> None:
    windows = default_burn_rate_windows(30 * DAY)
    assert [(w.severity, w.long, w.short) for w in windows] == [
        ("page", HOUR, 5 * MINUTE),
        ("page", 6 * HOUR, 30 * MINUTE),
        ("ticket", DAY, 2 * HOUR),
        ("ticket", 3 * DAY, 6 * HOUR),
    ]
    # 2 % × 720 h / 1 h = 14.4; 5 % × 720 / 6 = 6; 10 % × 30 d / 1 d = 3; 10 % × 30 / 3 = 1
    assert [w.factor for w in windows] == [14.4, 6.0, 3.0, 1.0]


def test_factors_are_derived_from_the_period() -> None:
    # 28 days: 2 % × 672 h / 1 h = 13.44; 5 % × 672 / 6 = 5.6; 10 % × 28 = 2.8; 10 % × 28/3
    windows = default_burn_rate_windows(28 * DAY)
    assert [w.factor for w in windows] == [13.44, 5.6, 2.8, 28 / 30]
    assert burn_rate_factor(budget_share=Fraction(2, 100), period=7 * DAY, long_window=HOUR) == (
        3.36
    )


def test_pairs_longer_than_the_period_are_dropped() -> None:
    windows = default_burn_rate_windows(2 * DAY)
    assert [w.long for w in windows] == [HOUR, 6 * HOUR, DAY]


def _counts(bad: float, total: float) -> EventCounts:
    return EventCounts.from_bad(bad=bad, total=total)


def test_alert_fires_only_when_both_windows_burn_above_the_factor() -> None:
    page_fast, page_slow, ticket_fast, ticket_slow = default_burn_rate_windows(30 * DAY)
    counts = {
        # 1 h: 15 / 1000 = 1.5 % → burn 15 > 14.4; 5 m: 2 / 100 = 2 % → burn 20 > 14.4: fires
        HOUR: _counts(15, 1_000),
        5 * MINUTE: _counts(2, 100),
        # 6 h: 42 / 6000 = 0.7 % → burn 7 > 6; 30 m: 2 / 500 = 0.4 % → burn 4 < 6: long only
        6 * HOUR: _counts(42, 6_000),
        30 * MINUTE: _counts(2, 500),
        # 1 d: 48 / 24000 = 0.2 % → burn 2 < 3; 2 h: 8 / 2000 = 0.4 % → burn 4 > 3: short only
        DAY: _counts(48, 24_000),
        2 * HOUR: _counts(8, 2_000),
        # 3 d: no data at all (series missing)
    }
    results = evaluate_burn_rate_alerts(
        target=0.999,
        windows=[page_fast, page_slow, ticket_fast, ticket_slow],
        counts=counts,
    )
    by_long = {r.window.long: r for r in results}
    assert by_long[HOUR].firing
    assert by_long[HOUR].long_burn == pytest.approx(15, rel=1e-12)
    assert by_long[HOUR].short_burn == pytest.approx(20, rel=1e-12)
    assert not by_long[6 * HOUR].firing
    assert by_long[6 * HOUR].state is SLIState.OK
    assert not by_long[DAY].firing
    assert by_long[3 * DAY].state is SLIState.NO_DATA
    assert not by_long[3 * DAY].firing


def test_alert_does_not_fire_on_insufficient_traffic() -> None:
    # 1 bad of 2 events is a 50 % error ratio, but 2 events are below the minimum of 10
    window = BurnRateWindow(severity="page", long=HOUR, short=5 * MINUTE, factor=14.4)
    (result,) = evaluate_burn_rate_alerts(
        target=0.999,
        windows=[window],
        counts={HOUR: _counts(1, 2), 5 * MINUTE: _counts(1, 2)},
        min_events=10,
    )
    assert result.state is SLIState.INSUFFICIENT_TRAFFIC
    assert not result.firing


def test_inclusive_condition_fires_at_the_factor() -> None:
    # OpenSLO op: gte. Target 0.5 (budget exactly 0.5), 1 bad of 1 → burn 1.0 / 0.5 = 2.0 exactly:
    # ">= 2" fires, "> 2" does not.
    counts = {HOUR: _counts(1, 1), 5 * MINUTE: _counts(1, 1)}
    strict = BurnRateWindow(severity="ticket", long=HOUR, short=5 * MINUTE, factor=2.0)
    inclusive = BurnRateWindow(
        severity="ticket", long=HOUR, short=5 * MINUTE, factor=2.0, inclusive=True
    )
    results = evaluate_burn_rate_alerts(target=0.5, windows=[strict, inclusive], counts=counts)
    assert [r.long_burn for r in results] == [2.0, 2.0]
    assert [r.firing for r in results] == [False, True]


# --- time slices ----------------------------------------------------------------------------------


def test_timeslices_count_good_slices() -> None:
    # p99 per minute: 0.1 and 0.2 are under 0.3 (good), 0.5 is not (bad);
    # None (no data) and NaN (0/0) slices count neither way → 2 good of 3
    counts = timeslice_counts([0.1, 0.2, None, 0.5, math.nan], op="lt", threshold=0.3)
    assert counts == EventCounts(good=2, total=3)
    assert timeslice_counts([None, math.nan], op="lt", threshold=0.3) is None
    assert timeslice_counts([0.3], op="lte", threshold=0.3) == EventCounts(good=1, total=1)
    assert timeslice_counts([0.3], op="gt", threshold=0.3) == EventCounts(good=0, total=1)


def test_ratio_timeslices_average_slice_ratios() -> None:
    # slices: 9/10 = 0.9 and 1/2 = 0.5; the zero-traffic and missing slices are skipped
    # RatioTimeslices SLI = (0.9 + 0.5) / 2 = 0.7 (the method's definition, chosen by the spec)
    counts = ratio_timeslice_counts(
        [
            EventCounts(good=9, total=10),
            EventCounts(good=1, total=2),
            EventCounts(good=0, total=0),
            None,
        ]
    )
    assert counts is not None
    assert counts.total == 2
    assert counts.good == pytest.approx(1.4, abs=1e-15)
    assert sli_result(counts).sli == pytest.approx(0.7, abs=1e-15)
    assert ratio_timeslice_counts([None, EventCounts(good=0, total=0)]) is None


# --- windows --------------------------------------------------------------------------------------


def test_calendar_month_boundaries() -> None:
    # The last second of a leap February belongs to February (29 days) ...
    feb = calendar_period(at=datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC), unit="month")
    assert feb.start == datetime(2024, 2, 1, tzinfo=UTC)
    assert feb.end == datetime(2024, 3, 1, tzinfo=UTC)
    assert feb.length == 29 * DAY
    # ... and the boundary instant itself starts March, with nothing elapsed yet
    march = calendar_period(at=datetime(2024, 3, 1, tzinfo=UTC), unit="month")
    assert march.start == datetime(2024, 3, 1, tzinfo=UTC)
    assert march.elapsed == timedelta(0)
    assert march.length == 31 * DAY
    # December wraps into the next year
    dec = calendar_period(at=datetime(2023, 12, 15, tzinfo=UTC), unit="month")
    assert dec.end == datetime(2024, 1, 1, tzinfo=UTC)


def test_calendar_month_in_a_time_zone_with_dst() -> None:
    # 2024-03-31 22:30 UTC is already 1 April 00:30 in Paris (CEST, UTC+2): April's window
    april = calendar_period(
        at=datetime(2024, 3, 31, 22, 30, tzinfo=UTC), unit="month", timezone="Europe/Paris"
    )
    assert april.start == datetime(2024, 3, 31, 22, 0, tzinfo=UTC)
    assert april.end == datetime(2024, 4, 30, 22, 0, tzinfo=UTC)
    # March in Paris starts at 23:00 UTC (CET) and loses an hour to DST: 31 d - 1 h
    march = calendar_period(
        at=datetime(2024, 3, 15, tzinfo=UTC), unit="month", timezone="Europe/Paris"
    )
    assert march.start == datetime(2024, 2, 29, 23, 0, tzinfo=UTC)
    assert march.length == 31 * DAY - HOUR


def test_calendar_week_boundaries() -> None:
    # Sunday 2024-01-07 23:59 is in the week of Monday 2024-01-01; Monday 00:00 starts a new one
    sunday = calendar_period(at=datetime(2024, 1, 7, 23, 59, tzinfo=UTC), unit="week")
    assert (sunday.start, sunday.end) == (
        datetime(2024, 1, 1, tzinfo=UTC),
        datetime(2024, 1, 8, tzinfo=UTC),
    )
    monday = calendar_period(at=datetime(2024, 1, 8, tzinfo=UTC), unit="week")
    assert monday.start == datetime(2024, 1, 8, tzinfo=UTC)
    # Weeks starting on Sunday (week_start=6): Sunday 2024-01-07 starts its own week
    assert calendar_period(
        at=datetime(2024, 1, 7, 12, tzinfo=UTC), unit="week", week_start=6
    ).start == datetime(2024, 1, 7, tzinfo=UTC)


def test_windows_need_aware_instants() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar_period(at=datetime(2024, 1, 1), unit="month")
    with pytest.raises(ValueError, match="unknown time zone"):
        calendar_period(at=datetime(2024, 1, 1, tzinfo=UTC), unit="month", timezone="Mars/Base")


def test_rolling_period_ends_at_the_instant() -> None:
    at = datetime(2024, 5, 10, 12, tzinfo=ZoneInfo("Europe/Paris"))
    period = rolling_period(at=at, duration=30 * DAY)
    assert period.end == datetime(2024, 5, 10, 10, tzinfo=UTC)
    assert period.start == datetime(2024, 4, 10, 10, tzinfo=UTC)
    assert period.elapsed == 30 * DAY


# --- everything at once ---------------------------------------------------------------------------


def test_evaluate_slo() -> None:
    # 30-day 99.9 % SLO: 20 bad of 100 000 over the period → error ratio 0.0002,
    # consumed 0.2, remaining 0.8 (34.56 of 43.2 min). Last hour: 3 bad of 1 000 → burn 3;
    # exhaustion at burn 3: 0.8 × 30 d / 3 = 8 d.
    windows = default_burn_rate_windows(30 * DAY)
    status = evaluate_slo(
        target=0.999,
        period=30 * DAY,
        elapsed=None,
        period_counts=_counts(20, 100_000),
        window_counts={HOUR: _counts(3, 1_000), 5 * MINUTE: _counts(0, 80)},
        windows=windows,
    )
    assert status.state is SLIState.OK
    assert status.sli.error_ratio == pytest.approx(0.0002, abs=1e-15)
    assert status.budget is not None
    assert status.budget.remaining_ratio == pytest.approx(0.8, abs=1e-12)
    assert status.budget.remaining_minutes == pytest.approx(34.56, abs=1e-9)
    assert status.current_burn == pytest.approx(3, rel=1e-12)
    assert status.exhaustion is not None
    assert status.exhaustion.total_seconds() == pytest.approx(8 * 86_400, rel=1e-12)
    assert not any(a.firing for a in status.alerts)
    assert [a.state for a in status.alerts][1:] == [SLIState.NO_DATA] * 3


def test_evaluate_slo_without_data_has_no_budget() -> None:
    status = evaluate_slo(
        target=0.99,
        period=30 * DAY,
        elapsed=None,
        period_counts=None,
        window_counts={},
        windows=default_burn_rate_windows(30 * DAY),
    )
    assert status.state is SLIState.NO_DATA
    assert status.budget is None
    assert status.exhaustion is None


def test_the_burn_divides_by_the_budget_as_written() -> None:
    """``1 - 0.999`` in binary is 0.0010000000000000009: dividing by it would read an error
    ratio of exactly the budget as a burn just below 1 (the rules divide by 0.001)."""
    assert burn_rate(error_ratio=0.001, target=0.999) == 1.0
    assert burn_rate(error_ratio=0.0005, target=0.9995) == 1.0


def test_an_alert_fires_only_when_both_windows_burn_above_the_factor() -> None:
    page = BurnRateWindow(
        severity="page", long=timedelta(hours=1), short=timedelta(minutes=5), factor=14.4
    )
    assert both_windows_burning(page, long_burn=15.0, short_burn=20.0)
    assert not both_windows_burning(page, long_burn=15.0, short_burn=14.4)
    assert not both_windows_burning(page, long_burn=None, short_burn=20.0)
    inclusive = BurnRateWindow(
        severity="page", long=page.long, short=page.short, factor=14.4, inclusive=True
    )
    assert both_windows_burning(inclusive, long_burn=14.4, short_burn=14.4)
