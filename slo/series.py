"""Pure helpers over series of points (no I/O): shared by the control plane's history route
and the console's sparklines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

__all__ = ["thin"]

T = TypeVar("T")


def thin(points: Sequence[T], *, most: int) -> list[T]:
    """At most ``most`` of ``points``, evenly spread by position, the first and last kept
    (only the last when ``most`` is 1)."""
    if most < 1:
        raise ValueError(f"most must be at least 1, got {most}")
    if len(points) <= most:
        return list(points)
    if most == 1:
        return [points[-1]]
    step = (len(points) - 1) / (most - 1)
    return [points[round(index * step)] for index in range(most)]
