"""The operator console as a process of the local stack.

It runs the console's own entry point (``python -m dashboards``) as a subprocess, against the
stack's control plane with a token of its own; the control plane never imports the console.
"""

from __future__ import annotations

import logging
import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from controlplane.stack.backends import Backend
from controlplane.stack.settings import StackSettings

__all__ = ["CONSOLE_TITLE", "ConsoleSignIn", "Dashboards"]

logger = logging.getLogger(__name__)

#: The page title the console serves (``dashboards.app``): tells it from another server.
CONSOLE_TITLE = "Inventory SLO console"


@dataclass(frozen=True)
class ConsoleSignIn:
    """Sign-in through the stack's identity provider: its issuer, the console client's secret
    file, and how to allow the console's address as a place to come back to after sign-out."""

    issuer: str
    client_secret_file: Path
    allow_redirect: Callable[[str], None]


class Dashboards(Backend):
    """The Dash console on its port, reading the control plane at ``control_plane_url`` with
    the token in ``token_file`` (the console only reads with it: the kill switch and approvals
    need a person signed in through the identity provider). The command line sets those four;
    any other ``DASHBOARDS_*`` variable (refresh interval, sign-in, ...) passes through."""

    name = "dashboards"

    def __init__(
        self,
        *,
        settings: StackSettings,
        workdir: Path,
        ports: Mapping[str, int],
        control_plane_url: str,
        token_file: Path,
        sign_in: ConsoleSignIn | None = None,
    ) -> None:
        super().__init__(settings=settings, workdir=workdir, ports=ports)
        self.control_plane_url = control_plane_url
        self.token_file = token_file
        self.sign_in = sign_in

    @property
    def session_secret_file(self) -> Path:
        """The key that signs the console's session cookie (made once, 0600)."""
        return self.workdir / "session.secret"

    def prepare(self) -> None:
        if self.sign_in is None:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.session_secret_file.is_file():
            self.session_secret_file.touch(mode=0o600)
            self.session_secret_file.write_text(secrets.token_urlsafe(48) + "\n", "utf-8")
        try:  # where the provider sends the browser back after sign-out
            self.sign_in.allow_redirect(f"{self.url}/")
        except httpx.HTTPError as exc:
            logger.warning("the identity provider did not take the console's address: %s", exc)

    def environment(self) -> dict[str, str]:
        env = super().environment()
        if self.sign_in is not None:
            env.update(
                {
                    "DASHBOARDS_OIDC_ISSUER": self.sign_in.issuer,
                    "DASHBOARDS_OIDC_CLIENT_SECRET_FILE": str(self.sign_in.client_secret_file),
                    "DASHBOARDS_SESSION_SECRET_FILE": str(self.session_secret_file),
                }
            )
        return env

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    def executable(self) -> Path:
        return Path(sys.executable)

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "dashboards",
            "--control-plane",
            self.control_plane_url,
            "--token-file",
            str(self.token_file),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.ports["http"]),
        ]

    def healthy(self) -> bool:
        """The console's page answers 200 (and is the console, not another server)."""
        answer = httpx.get(f"{self.url}/", timeout=2)
        return answer.status_code == 200 and CONSOLE_TITLE in answer.text

    def query_version(self) -> str:
        return "operator console (this repository)"
