"""Overview components from data (pure: statuses and series in, Dash components out).

With thousands of SLOs the overview shows one page of rows at a time: :class:`View` is what the
person asked for (search, service / tier / status filters, order, page), :func:`select` applies
it to every SLO and :func:`page_of` cuts the page that is drawn.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from html import escape as html_escape
from urllib.parse import quote

from dash import html

from controlplane.client.models import SLOStatus
from dashboards.history import Point
from dashboards.pages.overview.figures import sparkline_svg
from dashboards.status import (
    STATUS_LABELS,
    Status,
    alert_windows,
    max_burn_rate,
    window_seconds,
    worst_first,
)
from dashboards.ui import DASH, percent, utc
from slo.durations import format_duration
from slo.series import thin

__all__ = [
    "DEFAULT_SORT",
    "NO_TIER",
    "SORTS",
    "Page",
    "View",
    "burn_windows",
    "detail_href",
    "filter_statuses",
    "overview_table_html",
    "page_of",
    "pager_text",
    "select",
    "stamp",
    "summary",
]

#: At most this many points per sparkline (evenly spaced, the newest kept).
SPARKLINE_POINTS = 30
#: Filter value of SLOs whose evaluation names no tier.
NO_TIER = "none"

#: The orders a person can choose (value -> label); each keeps worst first among equals.
SORTS: Mapping[str, str] = {
    "worst": "worst first",
    "burn": "highest burn rate",
    "budget": "least budget left",
    "id": "SLO id (A-Z)",
}
DEFAULT_SORT = "worst"


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        return ()
    return tuple(item for item in value if isinstance(item, str))


@dataclass(frozen=True, kw_only=True)
class View:
    """What the person asked the overview for; nothing chosen = every SLO, worst first."""

    search: str = ""
    services: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    sort: str = DEFAULT_SORT
    page: int = 1

    @classmethod
    def from_data(cls, data: object) -> View:
        """From the browser's view store; anything unreadable falls back to the default."""
        if not isinstance(data, Mapping):
            return cls()
        search, sort, page = data.get("search"), data.get("sort"), data.get("page")
        return cls(
            search=search.strip()[:200] if isinstance(search, str) else "",
            services=_strings(data.get("services")),
            tiers=_strings(data.get("tiers")),
            statuses=_strings(data.get("statuses")),
            sort=sort if isinstance(sort, str) and sort in SORTS else DEFAULT_SORT,
            page=page if isinstance(page, int) and not isinstance(page, bool) and page > 0 else 1,
        )


@dataclass(frozen=True, kw_only=True)
class Page:
    """The rows drawn: page ``number`` of ``pages`` (both from 1), rows ``first``..``last`` of
    ``total`` (``first`` is 0 when nothing matches)."""

    items: list[tuple[SLOStatus, Status]] = field(default_factory=list)
    number: int = 1
    pages: int = 1
    first: int = 0
    last: int = 0
    total: int = 0


def detail_href(slo_id: str) -> str:
    return f"/slo/{quote(slo_id, safe='')}"


def filter_statuses(
    items: Sequence[tuple[SLOStatus, Status]],
    *,
    services: Sequence[str] | None,
    tiers: Sequence[str] | None,
    statuses: Sequence[str] | None = None,
    search: str = "",
) -> list[tuple[SLOStatus, Status]]:
    """Keep the SLOs of the chosen services, tiers and statuses whose id or service contains
    ``search`` (any case); nothing chosen = everything."""
    needle = search.strip().casefold()
    return [
        (status, kind)
        for status, kind in items
        if (not services or status.service in services)
        and (not tiers or (status.tier or NO_TIER) in tiers)
        and (not statuses or kind in statuses)
        and (not needle or needle in f"{status.slo_id}\n{status.service}".casefold())
    ]


def _burn_key(item: tuple[SLOStatus, Status]) -> float:
    burn = max_burn_rate(item[0])
    return -burn if burn is not None else math.inf


def _budget_key(item: tuple[SLOStatus, Status]) -> float:
    budget = item[0].budget_remaining
    return budget if budget is not None else math.inf


def select(statuses: Sequence[SLOStatus], view: View) -> list[tuple[SLOStatus, Status]]:
    """Every SLO the view keeps, in its order (stable: worst first among equals; an SLO
    without burn rates or budget comes last)."""
    items = filter_statuses(
        worst_first(statuses),
        services=view.services,
        tiers=view.tiers,
        statuses=view.statuses,
        search=view.search,
    )
    if view.sort == "burn":
        items.sort(key=_burn_key)
    elif view.sort == "budget":
        items.sort(key=_budget_key)
    elif view.sort == "id":
        items.sort(key=lambda item: item[0].slo_id)
    return items


def page_of(items: Sequence[tuple[SLOStatus, Status]], *, page: int, size: int) -> Page:
    """Page ``page`` of ``items`` (the last one when there are fewer pages now)."""
    pages = max(1, math.ceil(len(items) / size))
    number = min(max(page, 1), pages)
    start = (number - 1) * size
    shown = list(items[start : start + size])
    return Page(
        items=shown,
        number=number,
        pages=pages,
        first=start + 1 if shown else 0,
        last=start + len(shown),
        total=len(items),
    )


def pager_text(page: Page) -> str:
    if not page.total:
        return "no SLO"
    return (
        f"SLOs {page.first:,}–{page.last:,} of {page.total:,} · page {page.number:,} "
        f"of {page.pages:,}"
    )


def burn_windows(statuses: Sequence[SLOStatus]) -> list[str]:
    """Every burn-rate window of these SLOs, shortest first."""
    found = {window for status in statuses for window in status.burn_rates}
    return sorted(found, key=lambda window: (window_seconds(window), window))


def _factors(status: SLOStatus) -> dict[str, float]:
    """window label -> the factor it is compared with (the highest alert using it)."""
    factors: dict[str, float] = {}
    for window in alert_windows(status):
        for span in (window.long, window.short):
            label = format_duration(span)
            factors[label] = max(factors.get(label, 0.0), window.factor)
    return factors


def _escape(value: object) -> str:
    return html_escape(str(value), quote=True)


def _element(tag: str, content: str = "", **attributes: str) -> str:
    """``<tag attr="...">content</tag>``; attribute values are escaped, ``content`` must
    already be (use :func:`_escape`). ``class_`` becomes ``class``, ``data_x`` ``data-x``."""
    attrs = "".join(
        f" {name.rstrip('_').replace('_', '-')}='{_escape(value)}'"
        for name, value in attributes.items()
    )
    return f"<{tag}{attrs}>{content}</{tag}>"


def _badge(kind: Status) -> str:
    return _element(
        "span", _escape(STATUS_LABELS[kind]), class_=f"badge badge-{kind.replace('_', '-')}"
    )


def _budget(remaining: float | None) -> str:
    if remaining is None:
        return _element("div", DASH, class_="budget budget-unknown", title="no data")
    shown = min(max(remaining, 0.0), 1.0)
    level = "low" if remaining < 0.25 else "mid" if remaining < 0.5 else "high"
    fill = _element("div", class_=f"budget-fill budget-{level}", style=f"width: {shown:.1%}")
    return _element(
        "div",
        _element("div", fill, class_="budget-track")
        + _element("span", f"{remaining * 100:.1f} %", class_="budget-value"),
        class_="budget",
        title=f"error budget remaining: {remaining * 100:.2f} %",
    )


def _burn_cell(rate: float | None, factor: float | None) -> str:
    if rate is None:
        return _element("span", DASH, class_="burn-none")
    if factor is not None and rate > factor:
        return _element("span", f"{rate:.2f}×", class_="burn-over")
    return f"{rate:.2f}×"


def _sparkline(points: Sequence[Point] | None, *, label: str) -> str:
    if points is None:
        return _element("span", "…", class_="muted", title="loading the history")
    shown = thin(points, most=SPARKLINE_POINTS)
    values = tuple(point.budget_remaining for point in shown)
    if len(shown) < 2:
        return _sparkline_markup(values, None, label)
    start, span = shown[0].at, (shown[-1].at - shown[0].at).total_seconds() or 1.0
    positions = tuple(round((point.at - start).total_seconds() / span, 3) for point in shown)
    return _sparkline_markup(values, positions, label)


@lru_cache(maxsize=4096)
def _sparkline_markup(
    values: tuple[float | None, ...], positions: tuple[float, ...] | None, label: str
) -> str:
    """The same values draw the same line: kept between refreshes."""
    return sparkline_svg(values, positions=positions, reference=0.0, title=label)


def overview_table_html(
    items: Sequence[tuple[SLOStatus, Status]],
    *,
    series: Mapping[str, Sequence[Point]],
    windows: Sequence[str],
    sparkline_label: str,
) -> str:
    """One row per SLO in the given (worst-first) order, as one escaped HTML fragment.

    Hundreds of rows as Dash components weigh about 1 MB of JSON and half a second of
    serialisation per refresh, and ``dcc.Markdown`` takes seconds to parse a fragment this
    size; the browser's own HTML parser takes milliseconds (a clientside callback places it,
    see ``callbacks.py`` and ``make bench-dashboards``). Every value from the API goes through
    :func:`_escape`, so the fragment carries no markup but ours."""
    header = [
        "Status",
        "SLO",
        "Service",
        "Tier",
        "SLI",
        "Objective",
        "Budget remaining",
        *[f"Burn {window}" for window in windows],
        sparkline_label,
        "Evaluated",
    ]
    rows: list[str] = []
    for status, kind in items:
        factors = _factors(status)
        evaluated = _escape(utc(status.evaluated_at))
        if status.stale:
            evaluated += _element("span", "stale", class_="badge badge-stale")
        if status.sli is None:
            reason = status.no_data_reason or status.state
            sli = _element("span", _escape(f"no data: {reason}"), class_="no-data")
        else:
            sli = _escape(percent(status.sli))
        cells = [
            _badge(kind),
            _element(
                "a", _escape(status.slo_id), href=detail_href(status.slo_id), class_="slo-link"
            ),
            _escape(status.service),
            _escape(status.tier or DASH),
            sli,
            _escape(percent(status.objective)),
            _budget(status.budget_remaining),
            *[_burn_cell(status.burn_rates.get(w), factors.get(w)) for w in windows],
            _sparkline(series.get(status.slo_id), label=sparkline_label),
            evaluated,
        ]
        rows.append(
            _element(
                "tr",
                "".join(f"<td>{cell}</td>" for cell in cells),
                data_slo=status.slo_id,
                data_status=kind,
            )
        )
    head = "".join(f"<th>{_escape(name)}</th>" for name in header)
    return (
        f"<table id='overview-slo-table' class='grid slo-table' style='--burns: {len(windows)}'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def summary(items: Sequence[tuple[SLOStatus, Status]], *, total: int) -> list[html.Span]:
    counts = Counter(kind for _, kind in items)
    spans = [html.Span(f"{len(items):,} of {total:,} SLOs", className="summary-total")]
    for kind, label in STATUS_LABELS.items():
        if counts[kind]:
            spans.append(
                html.Span(
                    f"{counts[kind]:,} {label}",
                    className=f"summary-item badge-{kind.replace('_', '-')}",
                )
            )
    return spans


def stamp(now: datetime) -> str:
    return f"updated {utc(now)}"
