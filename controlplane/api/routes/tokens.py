"""``/api/v1/me`` (any token) and ``/api/v1/tokens`` (admin): who is calling, which tokens exist.

Tokens are created and revoked with the CLI (``controlplane token``), never through the API.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from controlplane.api.deps import CurrentAdmin, CurrentViewer, ReaderDep
from controlplane.core.security import Role
from controlplane.store.tokens import StoredToken, list_tokens

router = APIRouter(tags=["tokens"])


class Me(BaseModel):
    name: str
    role: Role
    kind: Literal["token", "oidc"] = Field(
        default="token", description="An API token, or an access token of the identity provider"
    )
    subject: str | None = None
    username: str | None = None
    full_name: str | None = None
    second_factor: bool | None = Field(
        default=None,
        description="A provider token: whether its amr claim names a second factor "
        "(CONTROLPLANE_OIDC_MFA_METHODS); an API token: null",
    )


@router.get("/me", response_model=Me, summary="Who is calling: token name or person, and role")
def me(principal: CurrentViewer) -> Me:
    assert principal.role is not None  # the viewer requirement let it through
    return Me(
        name=principal.name,
        role=principal.role,
        kind=principal.kind,
        subject=principal.subject,
        username=principal.username,
        full_name=principal.full_name,
        second_factor=principal.second_factor,
    )


@router.get("/tokens", response_model=list[StoredToken], summary="Active API tokens (admin only)")
def tokens(_admin: CurrentAdmin, session: ReaderDep) -> list[StoredToken]:
    return list_tokens(session)
