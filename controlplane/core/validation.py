"""Validated types the settings and the policy files share: each check is written once here.

Pure functions and ``Annotated`` aliases, no I/O: durations (``30s``, ``5m``, ``1h``), positive
seconds, http(s) URLs, ``PATH``-like lists of paths and ``name=value`` lists.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, SecretStr

from slo.durations import DurationError, parse_duration

__all__ = [
    "NO_NUL",
    "POSTGRES_BIGINT_MAX",
    "POSTGRES_INT_MAX",
    "Duration",
    "HttpUrl",
    "HttpUrlList",
    "IsoDateTime",
    "NameList",
    "PathList",
    "PositiveSeconds",
    "SecretUnreadable",
    "Window",
    "duration",
    "first_nul",
    "parse_pairs",
    "read_secret",
    "refuse_nul",
]

T = TypeVar("T")

#: The largest value of a PostgreSQL ``integer`` column: larger counts are refused with a 422.
POSTGRES_INT_MAX = 2**31 - 1
#: The largest ``bigint`` (row ids).
POSTGRES_BIGINT_MAX = 2**63 - 1
#: A string without NUL (for query and path parameters compared in the store).
NO_NUL = r"^[^\x00]*$"


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _iso_text(value: Any) -> Any:
    """A date-time must be written as one: pydantic would read a bare number as Unix time."""
    if isinstance(value, bool | int | float) or (
        isinstance(value, str) and _NUMBER.fullmatch(value.strip())
    ):
        raise ValueError("an ISO 8601 date-time is expected (2026-11-21T10:00:00Z), not a number")
    return value


#: A timezone-aware date-time given as ISO 8601 text (query parameters, request bodies).
IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_iso_text)]


def first_nul(value: Any, path: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
    """Where the first NUL character is in a JSON-like value (a key or a string, at any depth),
    or None. PostgreSQL stores no NUL in ``text`` nor in ``jsonb``: a request carrying one is
    refused at the boundary instead of failing in the database."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in str(key):
                return (*path, str(key))
            found = first_nul(item, (*path, str(key)))
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = first_nul(item, (*path, index))
            if found is not None:
                return found
    return None


def refuse_nul(value: Any) -> None:
    """Raise ``ValueError`` naming the field when ``value`` holds a NUL character (for a
    pydantic model validator: the answer is a 422 that says where).

    A JSON-ready value is first written by the C JSON encoder, which spells every NUL
    ``\\u0000``: only when that text holds one (or the value is not JSON-ready) is the value
    walked in Python to name the field; a large webhook payload is one C call, not a walk."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = "\\u0000"  # not JSON-ready: walk it
    if "\\u0000" not in text:
        return
    found = first_nul(value)
    if found is not None:
        where = ".".join(str(part) for part in found) or "the value"
        raise ValueError(f"{where}: NUL characters (\\u0000) cannot be stored")


def duration(value: Any) -> timedelta:
    """``30s`` / ``5m`` / ``1h`` / ``7d`` (or a ``timedelta``) to a ``timedelta``."""
    if isinstance(value, timedelta):
        return value
    try:
        return parse_duration(str(value))
    except DurationError as exc:
        raise ValueError(str(exc)) from exc


def _window(value: str) -> str:
    duration(value)
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"expected an http(s) URL with a host, got {value!r}")
    return value.rstrip("/")


def _split_paths(value: Any) -> Any:
    if isinstance(value, str):
        parts = tuple(Path(part) for part in value.split(os.pathsep) if part.strip())
        if not parts:
            raise ValueError("give at least one file or folder")
        return parts
    return value


def _split_names(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


#: A duration such as ``5m`` or ``30d``, as a ``timedelta``.
Duration = Annotated[timedelta, BeforeValidator(duration)]
#: A PromQL range such as ``1m`` or ``5m`` (checked, kept as written).
Window = Annotated[str, AfterValidator(_window)]
PositiveSeconds = Annotated[float, Field(gt=0)]
#: An http(s) URL with a host, without the trailing slash.
HttpUrl = Annotated[str, AfterValidator(_http_url)]
#: Paths in one string, separated like ``PATH`` (``:`` on POSIX), or a sequence of paths.
PathList = Annotated[tuple[Path, ...], BeforeValidator(_split_paths)]
#: Names in one string, separated by commas, or a sequence of names.
NameList = Annotated[tuple[str, ...], BeforeValidator(_split_names)]
#: http(s) URLs in one string, separated by commas, or a sequence of URLs; each checked.
HttpUrlList = Annotated[tuple[HttpUrl, ...], BeforeValidator(_split_names)]


class SecretUnreadable(ValueError):
    """A secret file that cannot be read, or a secret that is empty."""


def read_secret(*, value: SecretStr | None, file: Path | None) -> str | None:
    """A secret (a token) given inline or in a file, stripped; None when neither is given."""
    if value is not None:
        secret = value.get_secret_value().strip()
    elif file is not None:
        try:
            secret = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretUnreadable(f"cannot read {file}: {exc}") from exc
    else:
        return None
    if not secret:
        raise SecretUnreadable(f"{file} is empty" if value is None else "the value is empty")
    return secret


def parse_pairs(text: str, *, value: Callable[[str], T], shape: str) -> dict[str, T]:
    """``a=x,b=y`` to ``{"a": value("x"), "b": value("y")}``; ``shape`` names the expected form
    of one pair in the error (``name=path``). ``value`` raises ValueError on a bad right side."""
    pairs: dict[str, T] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, right = part.partition("=")
        if not sep or not name.strip() or not right.strip():
            raise ValueError(f"{part!r} is not {shape}")
        if name.strip() in pairs:
            raise ValueError(f"{name.strip()!r} is given twice")
        try:
            pairs[name.strip()] = value(right.strip())
        except ValueError as exc:
            raise ValueError(f"{part!r} is not {shape}") from exc
    return pairs
