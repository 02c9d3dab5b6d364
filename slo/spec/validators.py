"""Validators shared by both formats: names, targets, durations, thresholds, selectors,
Elasticsearch queries, time zones; and the base class of the input documents."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from slo.durations import DurationError, parse_duration
from slo.promql import Selector, SelectorError, parse_selector

_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


class _Input(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _exactly_one(model: object, first: str, second: str) -> None:
    """A document that takes one of two fields, never both and never neither."""
    if (getattr(model, first) is None) == (getattr(model, second) is None):
        raise ValueError(f"give exactly one of {first} and {second}")


def _check_target(value: float) -> float:
    if not 0 < value < 1:
        raise ValueError(f"target must be strictly between 0 and 1, got {value}")
    return value


def _duration(value: object) -> timedelta:
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r}: expected a string such as 5m, 1h or 28d")
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise ValueError(str(exc)) from exc


def _threshold_seconds(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"invalid threshold {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _duration(value).total_seconds()
    else:
        raise ValueError(f"invalid threshold {value!r}: give seconds (0.25) or a duration (250ms)")
    if seconds <= 0:
        raise ValueError(f"threshold must be positive, got {value!r}")
    return seconds


def _fmt_bound(value: float) -> str:
    return repr(float(value))


def _check_bucket(threshold: float, buckets: Sequence[float] | None, metric: str) -> None:
    """A latency threshold must equal one bucket bound exactly (no silent rounding)."""
    if buckets is None or threshold in buckets:
        return
    listed = ", ".join(_fmt_bound(b) for b in sorted(buckets))
    raise ValueError(
        f"no histogram bucket with le={_fmt_bound(threshold)} in {metric}; buckets are {listed}"
    )


def _selector(value: str, *, forbid_le: bool = False) -> Selector:
    try:
        selector = parse_selector(value)
    except SelectorError as exc:
        raise ValueError(str(exc)) from exc
    if forbid_le and any(m.label == "le" for m in selector.matchers):
        raise ValueError("do not set le: it is chosen from the threshold")
    return selector


def _es_query(value: str | Mapping[str, Any]) -> str:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("query must not be empty")
        return json.dumps({"query_string": {"query": value}}, sort_keys=True)
    if len(value) != 1:
        raise ValueError("a query DSL object has exactly one top-level key, e.g. {match: {...}}")
    return json.dumps(value, sort_keys=True, default=str)


def _name(value: str) -> str:
    if not _NAME.fullmatch(value) or len(value) > 63:
        raise ValueError(
            f"invalid name {value!r}: use lower-case letters, digits and '-', at most 63 characters"
        )
    return value


Name = Annotated[str, Field(min_length=1)]


def _check_zone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value
