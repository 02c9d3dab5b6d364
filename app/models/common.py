"""Shapes shared by several resources: identifiers and the page envelope."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

#: Free text may hold anything but NUL, which PostgreSQL cannot store in text: refused with 422
#: at the boundary instead of failing in the database.
NO_NUL = r"^[^\x00]*$"

#: A SKU or warehouse code: letters, digits and ``_.-``, 1–64 characters.
Code = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$", strip_whitespace=True)
]
Name = Annotated[
    str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True, pattern=NO_NUL)
]
IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL)]

T = TypeVar("T")


class StrictModel(BaseModel):
    """Request bodies: unknown fields are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class FieldProblem(BaseModel):
    field: str = Field(description="Where: ``body.quantity``, ``query.limit``, ...")
    reason: str


class ErrorBody(BaseModel):
    """Every error answer: a machine-readable ``code`` and a human-readable ``detail``."""

    code: str = Field(description="``not_found``, ``validation_error``, ``already_exists``, ...")
    detail: str
    errors: list[FieldProblem] | None = Field(
        default=None, description="Validation errors: one entry per field."
    )


class Page(BaseModel, Generic[T]):
    """One page of a list; pass ``next_cursor`` as ``cursor`` to get the next one."""

    items: list[T]
    next_cursor: str | None = Field(
        default=None, description="Cursor of the next page; null on the last page."
    )
