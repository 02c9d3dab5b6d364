"""``/api/v1/me`` (any token) and ``/api/v1/tokens`` (admin): who is calling, which tokens exist.

Tokens are created and revoked with the CLI (``controlplane token``), never through the API.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from controlplane.api.deps import CurrentAdmin, CurrentViewer, ReaderDep
from controlplane.core.security import Role
from controlplane.store.tokens import StoredToken, list_tokens

router = APIRouter(tags=["tokens"])


class Me(BaseModel):
    name: str
    role: Role


@router.get("/me", response_model=Me, summary="The calling token's name and role")
def me(principal: CurrentViewer) -> Me:
    return Me(name=principal.name, role=principal.role)


@router.get("/tokens", response_model=list[StoredToken], summary="Active API tokens (admin only)")
def tokens(_admin: CurrentAdmin, session: ReaderDep) -> list[StoredToken]:
    return list_tokens(session)
