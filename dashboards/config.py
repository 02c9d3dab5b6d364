"""Settings of the operator console (``DASHBOARDS_*`` variables, overridden by the command line).

The console reads everything through the control-plane API with one bearer token, given either
as ``DASHBOARDS_TOKEN`` or as a file (``DASHBOARDS_TOKEN_FILE`` / ``--token-file``), never both.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from controlplane.core.validation import HttpUrl, SecretUnreadable, read_secret

__all__ = ["DashboardSettings", "SettingsError"]


class SettingsError(ValueError):
    """A setting that cannot work (named in the message)."""


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

    @model_validator(mode="after")
    def _one_token_source(self) -> DashboardSettings:
        if self.token is not None and self.token_file is not None:
            raise ValueError("set DASHBOARDS_TOKEN or DASHBOARDS_TOKEN_FILE, not both")
        return self

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
