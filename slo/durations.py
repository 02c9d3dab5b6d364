"""Durations in the Prometheus / OpenSLO notation.

A duration is one or more ``<integer><unit>`` terms, largest unit first, e.g. ``5m``, ``1h30m``,
``28d``, ``250ms``. Units: ``ms``, ``s``, ``m`` (minutes), ``h``, ``d``, ``w``. Months (``M``) and
years have no fixed length; they are only accepted where a calendar window is meant (see
:func:`parse_calendar_unit`).
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import lru_cache
from typing import Literal

__all__ = [
    "CalendarUnit",
    "DurationError",
    "format_duration",
    "parse_calendar_unit",
    "parse_duration",
]

CalendarUnit = Literal["week", "month"]

_UNIT_MS: dict[str, int] = {
    "w": 7 * 24 * 3600 * 1000,
    "d": 24 * 3600 * 1000,
    "h": 3600 * 1000,
    "m": 60 * 1000,
    "s": 1000,
    "ms": 1,
}
_ORDER = ("w", "d", "h", "m", "s", "ms")
_TERM = re.compile(r"(\d+)(ms|[wdhms])")
_FULL = re.compile(r"(?:\d+(?:ms|[wdhms]))+")


class DurationError(ValueError):
    """A string is not a valid duration."""


def parse_duration(text: str) -> timedelta:
    """Parse ``text`` (e.g. ``"1h30m"``) into a positive :class:`~datetime.timedelta`.

    Units must appear at most once and in decreasing order, as Prometheus requires.
    """
    if not isinstance(text, str) or not _FULL.fullmatch(text):
        raise DurationError(
            f"invalid duration {text!r}: expected terms like 30s, 5m, 1h or 28d "
            "(units ms, s, m, h, d, w)"
        )
    total_ms = 0
    last_rank = -1
    for match in _TERM.finditer(text):
        rank = _ORDER.index(match.group(2))
        if rank <= last_rank:
            raise DurationError(f"invalid duration {text!r}: units must be in decreasing order")
        last_rank = rank
        total_ms += int(match.group(1)) * _UNIT_MS[match.group(2)]
    if total_ms == 0:
        raise DurationError(f"invalid duration {text!r}: must be greater than zero")
    return timedelta(milliseconds=total_ms)


@lru_cache(maxsize=4096)
def format_duration(value: timedelta) -> str:
    """Format ``value`` in the shortest Prometheus notation using d, h, m, s and ms.

    Weeks are not used so that a 28-day period reads ``28d``. ``format_duration(parse_duration(x))``
    returns the canonical spelling of ``x``. Cached: an evaluation cycle spells the same few
    windows for every SLO (18 times per SLO).
    """
    total_ms = round(value.total_seconds() * 1000)
    if total_ms <= 0:
        raise DurationError(f"duration must be positive, got {value}")
    parts: list[str] = []
    for unit in ("d", "h", "m", "s", "ms"):
        size = _UNIT_MS[unit]
        count, total_ms = divmod(total_ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_calendar_unit(text: str) -> CalendarUnit:
    """Map a calendar duration (``1w``/``week``, ``1M``/``month``) to its unit."""
    normalized = text.strip()
    if normalized in ("1w", "week", "1 week"):
        return "week"
    if normalized in ("1M", "month", "1 month"):
        return "month"
    raise DurationError(f"invalid calendar window {text!r}: expected 1w (week) or 1M (month)")
