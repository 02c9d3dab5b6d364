"""``python -m dashboards``: run the operator console (default http://127.0.0.1:8050).

    python -m dashboards --control-plane http://127.0.0.1:8080 --token-file dashboards.token

Options override the ``DASHBOARDS_*`` variables (``DASHBOARDS_CONTROL_PLANE_URL``,
``DASHBOARDS_TOKEN`` / ``DASHBOARDS_TOKEN_FILE``, ``DASHBOARDS_HOST``, ``DASHBOARDS_PORT``,
``DASHBOARDS_REFRESH_INTERVAL_SECONDS``, ...). A setting that cannot work stops the start with
exit code 2 and names it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from controlplane.client.http import ControlPlaneClient
from dashboards.app import create_app
from dashboards.auth import ConsoleAuth
from dashboards.config import DashboardSettings, SettingsError

logger = logging.getLogger("dashboards")


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m dashboards", description="Dash operator console of the control plane."
    )
    parser.add_argument("--control-plane", metavar="URL", help="control-plane base URL")
    parser.add_argument("--token-file", type=Path, metavar="FILE", help="file with the API token")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8050)")
    parser.add_argument(
        "--refresh", type=float, metavar="SECONDS", help="overview auto-refresh (default 15)"
    )
    parser.add_argument(
        "--page-size", type=int, metavar="N", help="rows per overview page (default 50)"
    )
    parser.add_argument(
        "--no-history-cache",
        action="store_true",
        help="reload every sparkline history on every refresh (benchmark baseline)",
    )
    parser.add_argument(
        "--no-history-batch",
        action="store_true",
        help="one history request per SLO instead of one for all (benchmark baseline)",
    )
    parser.add_argument(
        "--history-workers", type=int, metavar="N", help="parallel history requests (default 8)"
    )
    return parser.parse_args(argv)


def settings_from(arguments: argparse.Namespace) -> DashboardSettings:
    overrides: dict[str, Any] = {}
    if arguments.control_plane is not None:
        overrides["control_plane_url"] = arguments.control_plane
    if arguments.token_file is not None:
        overrides["token_file"] = arguments.token_file
        overrides["token"] = None
    if arguments.host is not None:
        overrides["host"] = arguments.host
    if arguments.port is not None:
        overrides["port"] = arguments.port
    if arguments.refresh is not None:
        overrides["refresh_interval_seconds"] = arguments.refresh
    if arguments.page_size is not None:
        overrides["overview_page_size"] = arguments.page_size
    if arguments.no_history_cache:
        overrides["history_cache"] = False
    if arguments.no_history_batch:
        overrides["history_batch"] = False
    if arguments.history_workers is not None:
        overrides["history_workers"] = arguments.history_workers
    return DashboardSettings(**overrides)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for chatty in ("werkzeug", "httpx"):  # one line per request: too much for a console log
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        settings = settings_from(_arguments(argv))
        token = settings.resolved_token()
        oidc = settings.oidc_secrets()
    except (ValidationError, SettingsError) as exc:
        logger.error("cannot start the console: %s", exc)
        return 2
    client = ControlPlaneClient(
        base_url=settings.control_plane_url,
        token=token,
        timeout=settings.request_timeout_seconds,
    )
    auth = None
    if settings.oidc_issuer is not None and oidc is not None:
        auth = ConsoleAuth(
            issuer=settings.oidc_issuer,
            client_id=settings.oidc_client_id,
            client_secret=oidc[0],
            scope=settings.oidc_scope,
            role_groups=settings.role_groups,
            mfa_role=settings.mfa_role,
            mfa_methods=settings.mfa_methods,
            max_age_seconds=settings.session_max_age_seconds,
            control_plane_url=settings.control_plane_url,
            request_timeout=settings.request_timeout_seconds,
        )
    app = create_app(
        client=client,
        settings=settings,
        auth=auth,
        session_secret=None if oidc is None else oidc[1],
    )
    logger.info(
        "operator console on http://%s:%d (control plane %s; %s)",
        settings.host,
        settings.port,
        settings.control_plane_url,
        f"sign-in through {settings.oidc_issuer}" if auth else "read-only: no sign-in configured",
    )
    try:
        app.run(host=settings.host, port=settings.port, debug=False, threaded=True)
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
