"""Settings of the operator console (``DASHBOARDS_*`` variables, overridden by the command line).

The console reads everything through the control-plane API with one bearer token, given either
as ``DASHBOARDS_TOKEN`` or as a file (``DASHBOARDS_TOKEN_FILE`` / ``--token-file``), never both.
With ``DASHBOARDS_OIDC_ISSUER`` people sign in through the identity provider; operator actions
are made with the signed-in person's access token (see ``dashboards/auth.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from controlplane.core.security import (
    DEFAULT_MFA_METHODS,
    DEFAULT_ROLE_GROUPS,
    Role,
    RoleGroups,
    mfa_methods_setting,
    mfa_role_setting,
    parse_mfa_methods,
    parse_role_groups,
)
from controlplane.core.validation import HttpUrl, SecretUnreadable, read_secret

__all__ = ["DashboardSettings", "SettingsError"]


class SettingsError(ValueError):
    """A setting that cannot work (named in the message)."""


def _role_groups(value: Any) -> Any:
    return parse_role_groups(value) if isinstance(value, str) else value


class DashboardSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DASHBOARDS_", extra="ignore", frozen=True, validate_default=True
    )

    control_plane_url: HttpUrl = Field(
        default="http://127.0.0.1:8080", description="Base URL of the control plane (no /api/v1)"
    )
    token: SecretStr | None = Field(default=None, description="API token (viewer or operator)")
    token_file: Path | None = Field(default=None, description="File holding the API token")
    host: str = "127.0.0.1"
    port: int = Field(default=8050, ge=1, le=65535)
    refresh_interval_seconds: float = Field(default=15.0, ge=1, le=3600)
    #: Rows per page of the overview (the page's sparklines are the only ones fetched and drawn).
    overview_page_size: int = Field(default=50, ge=10, le=5_000)
    request_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    #: Overview sparklines: how far back and how many evaluations per SLO (fetched and kept,
    #: evenly thinned over the window).
    sparkline_window_seconds: float = Field(default=3600.0, gt=0)
    sparkline_points: int = Field(default=30, ge=2, le=1_000)
    #: Parallel history requests when sparklines are (re)loaded; 1 = one after the other.
    history_workers: int = Field(default=8, ge=1, le=64)
    #: Keep sparkline histories between refreshes and extend them from ``/slos`` (the default);
    #: off = reload every history on every refresh (the benchmark's baseline).
    history_cache: bool = True
    #: off = one history request per SLO instead of ``GET /slos/history`` (the baseline).
    history_batch: bool = True
    #: Sign-in through OpenID Connect; unset: nobody signs in and the console only reads.
    oidc_issuer: HttpUrl | None = None
    oidc_client_id: str = Field(default="inventory-console", min_length=1)
    oidc_client_secret_file: Path | None = None
    oidc_scope: str = Field(default="openid profile", min_length=1)
    #: ``role=group|group,...``: the provider groups giving each role (as the control plane's
    #: ``CONTROLPLANE_OIDC_ROLE_GROUPS``).
    role_groups: Annotated[RoleGroups, BeforeValidator(_role_groups)] = Field(
        default_factory=lambda: parse_role_groups(DEFAULT_ROLE_GROUPS)
    )
    #: The role that needs a second factor (the ``amr`` claim names one of ``mfa_methods``),
    #: below it otherwise; ``none``: no role does (as the control plane's
    #: ``CONTROLPLANE_OIDC_MFA_ROLE`` / ``CONTROLPLANE_OIDC_MFA_METHODS``).
    mfa_role: Annotated[Role | None, BeforeValidator(mfa_role_setting)] = Role.ADMIN
    mfa_methods: Annotated[tuple[str, ...], BeforeValidator(mfa_methods_setting)] = Field(
        default_factory=lambda: parse_mfa_methods(DEFAULT_MFA_METHODS)
    )
    #: File holding the key that signs the session cookie (required with sign-in).
    session_secret_file: Path | None = None
    #: A session ends this long after sign-in at the latest (earlier when the provider's does).
    session_max_age_seconds: float = Field(default=8 * 3600.0, ge=60, le=7 * 24 * 3600.0)
    #: Send the session cookie over HTTPS only (set it when the console is served over TLS).
    session_cookie_secure: bool = False

    @model_validator(mode="after")
    def _one_token_source(self) -> DashboardSettings:
        if self.token is not None and self.token_file is not None:
            raise ValueError("set DASHBOARDS_TOKEN or DASHBOARDS_TOKEN_FILE, not both")
        return self

    def oidc_secrets(self) -> tuple[str, str] | None:
        """(client secret, session secret) when sign-in is configured, else None;
        :class:`SettingsError` naming what is missing or unreadable."""
        if self.oidc_issuer is None:
            return None
        found: list[str] = []
        for variable, path in (
            ("DASHBOARDS_OIDC_CLIENT_SECRET_FILE", self.oidc_client_secret_file),
            ("DASHBOARDS_SESSION_SECRET_FILE", self.session_secret_file),
        ):
            if path is None:
                raise SettingsError(
                    f"DASHBOARDS_OIDC_ISSUER is set: {variable} is required (sign-in needs it)"
                )
            try:
                secret = read_secret(value=None, file=path)
            except SecretUnreadable as exc:
                raise SettingsError(f"{variable}: {exc}") from exc
            assert secret is not None
            found.append(secret)
        if len(found[1]) < 32:
            raise SettingsError(
                "DASHBOARDS_SESSION_SECRET_FILE: the session secret must be at least 32 "
                "characters (python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        return found[0], found[1]

    def resolved_token(self) -> str:
        """The API token; :class:`SettingsError` when none is configured or the file is empty."""
        try:
            secret = read_secret(value=self.token, file=self.token_file)
        except SecretUnreadable as exc:
            raise SettingsError(f"DASHBOARDS_TOKEN / DASHBOARDS_TOKEN_FILE: {exc}") from exc
        if secret is None:
            raise SettingsError(
                "no API token: set DASHBOARDS_TOKEN or DASHBOARDS_TOKEN_FILE (or --token-file)"
            )
        return secret
