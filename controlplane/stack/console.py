"""The operator console as a process of the local stack.

It runs the console's own entry point (``python -m dashboards``) as a subprocess, against the
stack's control plane with a token of its own; the control plane never imports the console.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from controlplane.stack.backends import Backend
from controlplane.stack.settings import StackSettings

__all__ = ["CONSOLE_TITLE", "Dashboards"]

#: The page title the console serves (``dashboards.app``): tells it from another server.
CONSOLE_TITLE = "Inventory SLO console"


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
    ) -> None:
        super().__init__(settings=settings, workdir=workdir, ports=ports)
        self.control_plane_url = control_plane_url
        self.token_file = token_file

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
