"""``controlplane serve``: the API, the installed extensions (the Alertmanager receiver), the
evaluation scheduler and the action engine (with automatic failover) in one process.

Settings come from ``CONTROLPLANE_*`` variables (``controlplane/README.md``); ``--host`` and
``--port`` override ``CONTROLPLANE_HOST`` / ``CONTROLPLANE_PORT``. Invalid settings, SLO specs or
policy files, and an API extension of ``CONTROLPLANE_REQUIRED_EXTENSIONS`` that no installed
package offers (the webhook receiver by default), stop the start with exit code 2 and one line
per problem. Also runnable as
``python -m controlplane.commands.serve``.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from typing import Annotated

import typer
import uvicorn
from pydantic import ValidationError
from rich.console import Console

from controlplane.actions.service import ActionService
from controlplane.api.app import (
    BackgroundService,
    MissingExtension,
    create_app,
    installed_extensions,
)
from controlplane.core.config import (
    ControlPlaneSettings,
    SettingsError,
    setting_name,
    unknown_environment,
)
from controlplane.evaluation.metrics import ControlPlaneMetrics
from controlplane.evaluation.service import EvaluationService
from controlplane.runtime import Runtime
from controlplane.targets.policy import PolicyError
from slo.spec import SpecErrors

__all__ = ["EXIT_CONFIG", "serve"]

#: Exit code when the configuration (settings, specs, policies) cannot work.
EXIT_CONFIG = 2

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

logger = logging.getLogger(__name__)


def _fail(lines: list[str]) -> typer.Exit:
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    for line in lines:
        console.print(line, markup=False)
    return typer.Exit(EXIT_CONFIG)


#: Python's thread switch interval in this process (see ``serve``).
SWITCH_INTERVAL_S = 0.001

#: The garbage collector's thresholds in this process (Python's: 700, 10, 10). A collection of
#: the oldest generation stops every thread (15-35 ms here under load, with an evaluation
#: cycle's objects in it), and Python's defaults ran one in nearly every cycle: at 1,000 webhook
#: deliveries/s each such stop put 50-100 ms on the deliveries behind it. A young collection
#: every 10,000 allocations (about 1 ms each) and an old one after 100 middle ones make that
#: about ten times rarer. They cost no memory that shows: with 10,000 SLOs the process settled at
#: the same resident size with these and with Python's defaults.
GC_THRESHOLDS = (10_000, 10, 100)


def _setting_problem(location: tuple[int | str, ...], message: str) -> str:
    name = setting_name(location)
    if name is not None:
        return f"{name}: {message}"
    return f"settings{f' ({location[0]})' if location else ''}: {message}"


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
    # One line per job run, per health check's schema read, per Elasticsearch request: noise at
    # info level (their failures still show, and the evaluation logs what failed).
    for noisy in ("apscheduler", "alembic", "elastic_transport"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def serve(
    host: Annotated[
        str | None, typer.Option(help="Listen address (default: CONTROLPLANE_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Listen port (default: CONTROLPLANE_PORT).")
    ] = None,
    log_level: Annotated[
        str, typer.Option(help="debug, info, warning or error.", case_sensitive=False)
    ] = "info",
) -> None:
    """Run the control plane: API on /api/v1, /metrics, webhook receiver and the scheduler."""
    _configure_logging(log_level)
    overrides = {key: value for key, value in (("host", host), ("port", port)) if value}
    try:
        settings = ControlPlaneSettings().with_values(api=overrides)
    except ValidationError as exc:
        raise _fail(
            [_setting_problem(error["loc"], error["msg"]) for error in exc.errors()]
        ) from exc
    for name in unknown_environment(os.environ):
        logger.warning("%s is not a setting of the control plane (ignored)", name)
    metrics = ControlPlaneMetrics()
    services: list[BackgroundService] = []
    try:
        runtime = Runtime.from_settings(settings)
        if settings.evaluation.evaluation_enabled:
            services.append(
                EvaluationService.from_settings(settings, runtime=runtime, metrics=metrics)
            )
        if settings.actions.actions_enabled:
            services.append(ActionService.from_settings(settings, runtime=runtime))
        extensions = installed_extensions(settings)
    except SpecErrors as exc:
        raise _fail([str(error) for error in exc.errors]) from exc
    except (PolicyError, SettingsError, MissingExtension, ValueError) as exc:
        raise _fail([str(exc)]) from exc
    app = create_app(
        settings, extensions=extensions, services=services, runtime=runtime, metrics=metrics
    )
    # Modules, the app and the loaded SLO specs live as long as the process: collect once and
    # move them to the permanent generation, so a full collection (a pause of every request
    # and of the webhook writer) walks only what came later.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    # The event loop answers webhooks while the evaluation and the webhook's writer compute in
    # threads: with one GIL, a thread that wants it waits up to the switch interval (5 ms by
    # default), several times per request. 1 ms keeps the loop's turns short during a cycle.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    uvicorn.run(
        app,
        host=settings.api.host,
        port=settings.api.port,
        log_level=log_level.lower(),
        access_log=log_level.lower() == "debug",
        log_config=None,
    )


def main() -> None:
    typer.run(serve)


if __name__ == "__main__":
    main()
