"""A burn signal a test controls, on real servers: a gauge served over HTTP, a real Prometheus
that scrapes it every second and records it as ``slo:burn_rate:rate30s`` (the series the SLO
rules generate), and a real gunicorn master (two workers) for the local actuator to scale."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from controlplane.actuators.local import LocalGunicornActuator
from controlplane.core.processes import free_ports
from tests.support.backends import PrometheusFactory
from tests.support.gunicorn import running_gunicorn


@dataclass
class BurnRig:
    actuator: LocalGunicornActuator
    #: ``test_burn_rate{service, slo}``: what Prometheus records as the 30 s burn rate.
    burn: Gauge
    prometheus_url: str
    #: The gunicorn master's pidfile (``CONTROLPLANE_LOCAL_PIDFILE``).
    pidfile: Path
    stop_target: Callable[[], None]


def wait_for(check: Callable[[], bool], *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


@contextmanager
def burn_rig(folder: Path, prometheus_factory: PrometheusFactory) -> Iterator[BurnRig]:
    """Start the gauge, Prometheus and gunicorn (two workers); stop them on exit."""
    port, target_port = free_ports(2)  # one call: the two ports differ
    registry = CollectorRegistry()
    # The app exports the raw signal; Prometheus turns it into the recording-rule series the
    # engine reads, exactly as the generated SLO rules do.
    burn = Gauge("test_burn_rate", "burn", ["service", "slo"], registry=registry)
    server, thread = start_http_server(target_port, addr="127.0.0.1", registry=registry)
    stopped = False

    def stop_target() -> None:
        nonlocal stopped
        if not stopped:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
            stopped = True

    try:
        with running_gunicorn(folder, port=port) as gunicorn:
            prometheus = prometheus_factory(
                config={
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [
                        {
                            "job_name": "burn",
                            "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
                        }
                    ],
                },
                rules={
                    "burn.yml": "groups:\n- name: burn\n  interval: 1s\n  rules:\n"
                    "  - record: slo:burn_rate:rate30s\n    expr: test_burn_rate\n"
                },
            )
            actuator = LocalGunicornActuator(pidfile=gunicorn.pidfile)
            wait_for(lambda: actuator.current_replicas("inventory") == 2)  # both workers forked
            yield BurnRig(
                actuator=actuator,
                burn=burn,
                prometheus_url=prometheus.url,
                pidfile=gunicorn.pidfile,
                stop_target=stop_target,
            )
    finally:
        stop_target()
