"""API tokens: created by an admin with the CLI, shown once, stored as a SHA-256 hash."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controlplane.core.security import Role, generate_token, hash_token
from controlplane.store.errors import DuplicateTokenName, UnknownTokenName
from controlplane.store.models import ApiToken

__all__ = ["StoredToken", "authenticate", "create_token", "list_tokens", "revoke_token"]


class StoredToken(BaseModel):
    """A token's record (never the token itself)."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: int
    name: str
    role: Role
    created_at: AwareDatetime
    revoked_at: AwareDatetime | None


def create_token(
    session: Session, *, name: str, role: Role, at: datetime
) -> tuple[StoredToken, str]:
    """Create a token; returns its record and the secret (the only time it is available)."""
    if session.scalar(
        select(ApiToken.id).where((ApiToken.name == name) & ApiToken.revoked_at.is_(None))
    ):
        raise DuplicateTokenName(name)
    secret = generate_token()
    row = ApiToken(name=name, role=role.value, token_hash=hash_token(secret), created_at=at)
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create of the same name
        raise DuplicateTokenName(name) from exc
    return StoredToken.model_validate(row), secret


def authenticate(session: Session, *, secret: str) -> StoredToken | None:
    """The active token with this secret, or None (unknown or revoked)."""
    row = session.scalars(
        select(ApiToken).where(
            (ApiToken.token_hash == hash_token(secret)) & ApiToken.revoked_at.is_(None)
        )
    ).one_or_none()
    return None if row is None else StoredToken.model_validate(row)


def revoke_token(session: Session, *, name: str, at: datetime) -> StoredToken:
    row = session.scalars(
        select(ApiToken).where((ApiToken.name == name) & ApiToken.revoked_at.is_(None))
    ).one_or_none()
    if row is None:
        raise UnknownTokenName(name)
    row.revoked_at = at
    session.flush()
    return StoredToken.model_validate(row)


def list_tokens(session: Session, *, include_revoked: bool = False) -> list[StoredToken]:
    statement = select(ApiToken)
    if not include_revoked:
        statement = statement.where(ApiToken.revoked_at.is_(None))
    statement = statement.order_by(ApiToken.created_at, ApiToken.id)
    return [StoredToken.model_validate(row) for row in session.scalars(statement)]
