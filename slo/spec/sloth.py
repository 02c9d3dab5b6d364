"""Sloth's ``prometheus/v1`` spec files, read as OpenSLO v1.

A file (``version: "prometheus/v1"``) holds a ``service``, common ``labels`` and a list of
``slos``. Each SLO becomes one OpenSLO ``SLO`` document:

==================================  ===========================================================
Sloth                               OpenSLO v1 (and so this control plane)
==================================  ===========================================================
``service``, ``slos[].name``        ``spec.service``, ``metadata.name``
``slos[].description``              ``spec.description``
``slos[].objective`` (percent)      ``objectives[0].targetPercent``
(Sloth's default period, 30 days)   ``timeWindow: [{duration: 30d, isRolling: true}]``
``labels``, ``slos[].labels``       ``metadata.labels`` (a ``tier`` label must be a tier)
``sli.events.error_query``          ``ratioMetric.bad``; ``total_query`` → ``ratioMetric.total``
``error_query: total - good``       ``ratioMetric.good`` (the latency pattern)
``alerting.annotations.runbook``    ``metadata.annotations.runbook_url``
``page_alert``/``ticket_alert``     ``disable: true`` drops that severity's two conditions
``.disable``                        (the others become AlertPolicies; both: no alerts)
==================================  ===========================================================

Queries must read ``sum(rate(<series selector>[{{.window}}]))`` (``increase`` too), or the
total minus such a sum: the control plane writes the PromQL itself. ``sli.raw`` and
``sli.plugin`` cannot be read that way and are errors. Fields that shape Sloth's own rule
output (alert names, labels and annotations, SLO plugins) are not carried over and are
reported as notes by field path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, model_validator

from slo.maths import SRE_WORKBOOK_WINDOWS, burn_rate_factor
from slo.promql import Selector, SelectorError, parse_selector
from slo.spec.errors import SpecErrors, SpecNote, _FieldProblem, _Where
from slo.spec.openslo import _RULE_LABELS, _Condition, _ImportNotes, _SLOToWrite, _tier_label
from slo.spec.validators import _Input, _name

SLOTH_VERSION = "prometheus/v1"

#: Sloth's default SLO period (``sloth generate --default-slo-period``).
SLOTH_PERIOD = timedelta(days=30)


class _SlothEvents(_Input):
    error_query: str
    total_query: str


class _SlothRaw(_Input):
    error_ratio_query: str


class _SlothPlugin(_Input):
    id: str
    options: dict[str, Any] = Field(default_factory=dict)


class _SlothSLI(_Input):
    raw: _SlothRaw | None = None
    events: _SlothEvents | None = None
    plugin: _SlothPlugin | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> _SlothSLI:
        given = [k for k in ("raw", "events", "plugin") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one SLI type: events, raw or plugin")
        return self


class _SlothAlert(_Input):
    disable: bool = False
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class _SlothAlerting(_Input):
    name: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    page_alert: _SlothAlert = _SlothAlert()
    ticket_alert: _SlothAlert = _SlothAlert()


class _SlothPlugins(_Input):
    overridePrevious: bool = False
    chain: list[dict[str, Any]] = Field(default_factory=list)


class _SlothSLO(_Input):
    name: str
    description: str = ""
    objective: float
    plugins: _SlothPlugins = _SlothPlugins()
    labels: dict[str, str] = Field(default_factory=dict)
    sli: _SlothSLI
    alerting: _SlothAlerting = _SlothAlerting()


class _SlothDocument(_Input):
    version: Literal["prometheus/v1"]
    service: str
    labels: dict[str, str] = Field(default_factory=dict)
    slo_plugins: _SlothPlugins = _SlothPlugins()
    slos: list[_SlothSLO] = Field(min_length=1)


# --- queries ----------------------------------------------------------------------------------


def _closing(text: str, start: int) -> int:
    """Index of the parenthesis closing ``text[start]``, skipping quoted label values."""
    depth = 0
    quote: str | None = None
    index = start
    while index < len(text):
        char = text[index]
        if quote is not None:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = None
        elif char in "\"'`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return -1


def _unwrap(text: str) -> str:
    """``text`` without whitespace and enclosing parentheses."""
    text = text.strip()
    while text.startswith("(") and _closing(text, 0) == len(text) - 1:
        text = text[1:-1].strip()
    return text


def _call(text: str, names: Sequence[str]) -> str | None:
    """The argument of ``name(...)`` when ``text`` is exactly one call of one of ``names``."""
    for name in names:
        if text.startswith(name):
            rest = text[len(name) :].lstrip()
            offset = len(text) - len(rest)
            if rest.startswith("(") and _closing(text, offset) == len(text) - 1:
                return text[offset + 1 : -1]
    return None


_WINDOW = ("[{{.window}}]", "[{{ .window }}]")


def _sum_rate(text: str) -> Selector | None:
    """The selector of ``sum(rate(<selector>[{{.window}}]))`` (or ``increase``), else None."""
    inner = _call(_unwrap(text), ("sum",))
    if inner is None:
        return None
    argument = _call(_unwrap(inner), ("rate", "increase"))
    if argument is None:
        return None
    argument = argument.strip()
    window = next((w for w in _WINDOW if argument.endswith(w)), None)
    if window is None:
        return None
    try:
        return parse_selector(argument[: -len(window)])
    except SelectorError:
        return None


def _top_level_minus(text: str) -> tuple[str, str] | None:
    """``a - b`` split at its one top-level minus, or None."""
    depth = 0
    quote: str | None = None
    found: list[int] = []
    for index, char in enumerate(text):
        if quote is not None:
            if char == quote and text[index - 1] != "\\":
                quote = None
        elif char in "\"'`":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "-" and depth == 0:
            found.append(index)
    if len(found) != 1:
        return None
    return text[: found[0]], text[found[0] + 1 :]


_QUERY_SHAPE = (
    "sum(rate(<series selector>[{{.window}}])), or for error_query the total minus such a sum"
)


@dataclass(frozen=True, kw_only=True)
class _Ratio:
    good: Selector | None
    bad: Selector | None
    total: Selector


def _events_ratio(events: _SlothEvents, *, field: str) -> _Ratio:
    total = _sum_rate(events.total_query)
    if total is None:
        raise _FieldProblem(f"{field}.total_query", f"not supported: write it as {_QUERY_SHAPE}")
    bad = _sum_rate(events.error_query)
    if bad is not None:
        return _Ratio(good=None, bad=bad, total=total)
    parts = _top_level_minus(_unwrap(events.error_query))
    if parts is not None:
        minuend, good = _sum_rate(parts[0]), _sum_rate(parts[1])
        if minuend == total and good is not None:
            return _Ratio(good=good, bad=None, total=total)
    raise _FieldProblem(f"{field}.error_query", f"not supported: write it as {_QUERY_SHAPE}")


# --- conversion -------------------------------------------------------------------------------


def _conditions(alerting: _SlothAlerting) -> tuple[_Condition, ...] | None:
    """Sloth's alerts are the SRE Workbook's four: ``None`` keeps our same defaults; a
    disabled page or ticket alert leaves the other severity's conditions."""
    page, ticket = alerting.page_alert.disable, alerting.ticket_alert.disable
    if not page and not ticket:
        return None
    return tuple(
        _Condition(
            severity=severity,
            factor=burn_rate_factor(budget_share=share, period=SLOTH_PERIOD, long_window=long),
            long=long,
        )
        for severity, long, _short, share in SRE_WORKBOOK_WINDOWS
        if not (page if severity == "page" else ticket)
    )


def _alert_notes(alerting: _SlothAlerting, *, field: str, notes: _ImportNotes) -> dict[str, str]:
    """Report what Sloth's alerting shapes in its own rules; return the annotations kept."""
    if alerting.name:
        notes.add(
            f"{field}.name",
            "not carried over: the alerts are named ErrorBudgetBurn<long><short> and SLODataAbsent",
        )
    notes.fields(f"{field}.labels", alerting.labels, _RULE_LABELS)
    kept: dict[str, str] = {}
    for key in sorted(alerting.annotations):
        if key in ("runbook", "runbook_url"):
            kept["runbook_url"] = alerting.annotations[key]
        else:
            notes.add(
                f"{field}.annotations.{key}",
                "not carried over: the alerts' summary and description are generated",
            )
    for which in ("page_alert", "ticket_alert"):
        alert: _SlothAlert = getattr(alerting, which)
        notes.fields(f"{field}.{which}.labels", alert.labels, _RULE_LABELS)
        notes.fields(
            f"{field}.{which}.annotations",
            alert.annotations,
            "not carried over: the alerts' summary and description are generated",
        )
    return kept


def _plugins(plugins: _SlothPlugins, *, field: str, notes: _ImportNotes) -> None:
    if plugins.chain or plugins.overridePrevious:
        notes.add(field, "not carried over: Sloth SLO plugins shape Sloth's own rules")


def _slo(
    document: _SlothDocument,
    index: int,
    *,
    service: str,
    labels: dict[str, str],
    notes: _ImportNotes,
) -> _SLOToWrite:
    slo = document.slos[index]
    field = f"slos[{index}]"
    try:
        name = _name(slo.name)
    except ValueError as exc:
        raise _FieldProblem(f"{field}.name", str(exc)) from exc
    if not 0 < slo.objective < 100:
        raise _FieldProblem(
            f"{field}.objective",
            f"must be a percentage strictly between 0 and 100, got {slo.objective}",
        )
    if slo.sli.events is None:
        kind = "raw" if slo.sli.raw is not None else "plugin"
        raise _FieldProblem(
            f"{field}.sli.{kind}",
            "not supported: give sli.events (error_query and total_query) so that the control "
            "plane writes the ratio itself",
        )
    ratio = _events_ratio(slo.sli.events, field=f"{field}.sli.events")
    _plugins(slo.plugins, field=f"{field}.plugins", notes=notes)
    labels = {**labels, **_tier_label(slo.labels, field=f"{field}.labels", notes=notes)}
    annotations = _alert_notes(slo.alerting, field=f"{field}.alerting", notes=notes)
    conditions = _conditions(slo.alerting)
    return _SLOToWrite(
        name=name,
        service=service,
        description=slo.description,
        labels=labels,
        annotations=annotations,
        target_percent=slo.objective,
        window=SLOTH_PERIOD,
        good=ratio.good,
        bad=ratio.bad,
        total=ratio.total,
        conditions=conditions,
        no_data=True,
    )


def _sloth_to_openslo(
    document: _SlothDocument, *, where: _Where
) -> tuple[list[dict[str, Any]], list[SpecNote]]:
    """OpenSLO v1 ``SLO`` documents for each SLO of a Sloth file, and the notes on fields that
    are not carried over. Raises :class:`SpecErrors` naming the Sloth fields."""
    notes = _ImportNotes(where=where, items=[])
    try:
        service = _name(document.service)
    except ValueError as exc:
        raise SpecErrors([where.error("service", str(exc))]) from exc
    _plugins(document.slo_plugins, field="slo_plugins", notes=notes)
    labels = _tier_label(document.labels, field="labels", notes=notes)
    converted: list[dict[str, Any]] = []
    errors = []
    for index in range(len(document.slos)):
        try:
            slo = _slo(document, index, service=service, labels=labels, notes=notes)
            converted.append(slo.document())
        except _FieldProblem as problem:
            errors.append(where.error(problem.field, problem.message))
    if errors:
        raise SpecErrors(errors)
    return converted, notes.items
