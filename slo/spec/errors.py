"""Spec errors, and pydantic's validation errors turned into them.

Every problem becomes one :class:`SpecError` located by file, document and field path of the
input; the loaders raise them together as :class:`SpecErrors`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True, kw_only=True)
class _Located:
    file: str
    field: str
    message: str
    document: int | None = None

    def __str__(self) -> str:
        where = self.file if self.document is None else f"{self.file}#{self.document}"
        return f"{where}: {self.field}: {self.message}"


@dataclass(frozen=True, kw_only=True)
class SpecError(_Located):
    """One problem in one spec document: ``file[#document]: field.path: message``."""


@dataclass(frozen=True, kw_only=True)
class SpecNote(_Located):
    """A field that was read but not carried over (a Sloth alert's labels, a DataSource's
    connection details...), same shape as :class:`SpecError`: reported every time the spec is
    read, never silently dropped, and never a reason to refuse the spec."""


class SpecErrors(Exception):
    """Raised by the loaders with every problem found (one :class:`SpecError` each)."""

    def __init__(self, errors: Sequence[SpecError]) -> None:
        self.errors = tuple(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


class _FieldProblem(Exception):
    """A problem found while normalizing, located relative to the current document."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, kw_only=True)
class _Where:
    file: str
    document: int | None

    def error(self, field: str, message: str) -> SpecError:
        return SpecError(file=self.file, document=self.document, field=field, message=message)

    def note(self, field: str, message: str) -> SpecNote:
        return SpecNote(file=self.file, document=self.document, field=field, message=message)


def _loc(parts: Iterable[int | str]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(document)"


def _message(error: Mapping[str, Any], *, openslo: bool) -> str:
    kind = error.get("type", "")
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return (
            "unsupported field (not in the supported OpenSLO v1 subset)"
            if openslo
            else "unknown field"
        )
    message = str(error.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    return " ".join(message.split())


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "dict", "list", "none"})


def _is_union_tag(part: str) -> bool:
    """Pydantic adds the union member (``str``, ``_NativeCalendar``...) to error locations."""
    return part in _TYPE_TAGS or "[" in part or part[:1] == "_" or part[:1].isupper()


def _strip_union_tags(loc: Sequence[int | str], data: object) -> tuple[tuple[int | str, ...], bool]:
    """Drop the union-member parts of an error location, walking the input alongside it."""
    kept: list[int | str] = []
    stripped = False
    current = data
    for part in loc:
        if isinstance(part, int):
            kept.append(part)
            current = current[part] if isinstance(current, list) and part < len(current) else None
            continue
        if isinstance(current, dict) and part in current:
            kept.append(part)
            current = current[part]
            continue
        if _is_union_tag(part):
            stripped = True
            continue
        kept.append(part)
        current = None
    return tuple(kept), stripped


def _validation_errors(
    exc: ValidationError,
    *,
    where: _Where,
    data: object = None,
    prefix: tuple[str, ...] = (),
    openslo: bool,
) -> list[SpecError]:
    """One :class:`SpecError` per field, located by the field path of the input document."""
    found: list[tuple[str, str, bool]] = []
    for error in exc.errors():
        loc, stripped = _strip_union_tags(error["loc"], data)
        found.append((_loc((*prefix, *loc)), _message(error, openslo=openslo), stripped))
    errors: list[SpecError] = []
    seen: set[str] = set()
    for field, text, stripped in found:
        deeper = any(
            other.startswith((field + ".", field + "[")) for other, _, _ in found if other != field
        )
        if field in seen or (stripped and deeper):
            continue  # one line per field: the most specific problem is the one to fix
        seen.add(field)
        errors.append(where.error(field, text))
    return errors


def _validate(
    model: type[_M], data: object, *, where: _Where, prefix: tuple[str, ...] = (), openslo: bool
) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SpecErrors(
            _validation_errors(exc, where=where, data=data, prefix=prefix, openslo=openslo)
        ) from exc
