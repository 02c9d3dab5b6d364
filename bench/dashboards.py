"""Overview benchmark: 200 seeded SLOs, first render and refresh callback in headless Chromium.

Seeds an embedded SQLite store with ``--slos`` SLOs (one evaluation every 30 s over the last
hour each), starts the control-plane API (uvicorn) and, per variant, the console
(``python -m dashboards``) and a fresh headless Chromium:

* first render: from navigation start to the moment the table holds every SLO row (the page's
  own ``performance.now()``), with the console's caches cold (a fresh console process per
  repetition);
* refresh callback: "Refresh now" clicked ``--refreshes`` times; each refresh's
  ``/_dash-update-component`` round trip as the browser's resource timing measured it.

Variants: the console as shipped (every sparkline series fetched once, in one
``GET /slos/history``, then extended from ``/slos``; an unchanged table not sent again) and a
baseline of the same page without the cache and the batch route (every history fetched one
SLO after the other on every render). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table
from selenium import webdriver

from controlplane.core.processes import free_ports
from controlplane.core.security import Role
from controlplane.store.database import Database
from controlplane.store.evaluations import EvaluationRecord, record_evaluations
from controlplane.store.tokens import create_token
from dashboards.testing import chromium_driver, chromium_paths, refresh_overview

SERVICES = ("inventory", "inventory-worker", "demand-planning", "analytics")
TIERS = ("critical", "standard", "batch", "reporting")
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


@dataclass(frozen=True)
class Variant:
    name: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class Result:
    variant: Variant
    first_render_s: list[float]
    sparklines_s: list[float]
    refresh_ms: list[float]

    @property
    def first_render_max(self) -> float:
        return max(self.first_render_s)

    @property
    def refresh_p50(self) -> float:
        return statistics.median(self.refresh_ms)

    @property
    def refresh_p95(self) -> float:
        ordered = sorted(self.refresh_ms)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def seed(database_url: str, *, slos: int, now: datetime) -> str:
    """``slos`` SLOs with an hour of 30-second evaluations each; returns a viewer token."""
    database = Database.from_url(database_url)
    database.migrate()
    with database.writer() as session:
        _, token = create_token(session, name="bench", role=Role.VIEWER, at=now)
        for number in range(slos):
            burn = 0.2 + (number % 23)  # some burn, some don't
            budget = 1.0 - (number % 97) / 100
            record_evaluations(
                session,
                evaluations=[
                    EvaluationRecord(
                        slo_id=f"slo-{number:03d}",
                        service=SERVICES[number % len(SERVICES)],
                        at=now - timedelta(seconds=30 * step),
                        state="no_data" if number % 17 == 0 else "ok",
                        sli=None if number % 17 == 0 else 0.999,
                        objective=0.99,
                        budget_remaining=None if number % 17 == 0 else budget + step / 1000,
                        burn_rates=dict.fromkeys(WINDOWS, burn),
                        no_data_reason="no samples" if number % 17 == 0 else None,
                        details={"tier": TIERS[number % len(TIERS)]},
                    )
                    for step in range(120)
                ],
            )
    database.dispose()
    return token


def _wait_http(url: str, process: subprocess.Popen[bytes], *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not answering after {timeout} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


def start_control_plane(*, database_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")}
    env.update(
        {
            "CONTROLPLANE_DATABASE_URL": database_url,
            "CONTROLPLANE_WEBHOOK_TOKEN": "bench-webhook-token-0123456789",
            "CONTROLPLANE_EVALUATION_INTERVAL_SECONDS": "3600",
            "CONTROLPLANE_LEADER_ELECTION": "false",
        }
    )
    command = [sys.executable, "-m", "uvicorn", "--factory", "alerts.wiring:create_app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    with log.open("ab") as output:
        process = subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    _wait_http(f"http://127.0.0.1:{port}/api/v1/health/live", process)
    return process


def start_console(
    *, control_plane: str, token_file: Path, port: int, variant: Variant, log: Path
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHBOARDS_")}
    command = [sys.executable, "-m", "dashboards", "--control-plane", control_plane]
    command += ["--token-file", str(token_file), "--port", str(port), "--refresh", "3600"]
    with log.open("ab") as output:
        process = subprocess.Popen(
            [*command, *variant.args],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _wait_http(f"http://127.0.0.1:{port}/", process)
    return process


def _rows(driver: webdriver.Chrome) -> int:
    return int(driver.execute_script("return document.querySelectorAll('tr[data-slo]').length"))


def _until(driver: webdriver.Chrome, selector: str, *, count: int, timeout: float) -> float:
    """Seconds from navigation start until ``count`` elements match ``selector``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = driver.execute_script(
            "return document.querySelectorAll(arguments[0]).length >= arguments[1]"
            " ? performance.now() : null",
            selector,
            count,
        )
        if done is not None:
            return float(done) / 1000
        time.sleep(0.005)
    raise RuntimeError(f"no {count} x {selector} within {timeout} s")


def first_render(
    driver: webdriver.Chrome, url: str, *, rows: int, timeout: float = 120
) -> tuple[float, float]:
    """Seconds from navigation start until the table holds ``rows`` rows, and until every row
    has its sparkline."""
    driver.get("about:blank")
    driver.get(url)
    table = _until(driver, "tr[data-slo]", count=rows, timeout=timeout)
    sparklines = _until(driver, "tr[data-slo] svg.sparkline", count=rows, timeout=timeout)
    return table, sparklines


def refreshes(driver: webdriver.Chrome, *, count: int) -> list[float]:
    """Milliseconds of each refresh callback's round trip (browser resource timing)."""
    driver.execute_script(
        "performance.setResourceTimingBufferSize(10000); performance.clearResourceTimings();"
    )
    for _ in range(count):
        refresh_overview(driver)
    durations = driver.execute_script(
        "return performance.getEntriesByType('resource')"
        ".filter(e => e.name.includes('_dash-update-component')).map(e => e.duration)"
    )
    return [float(value) for value in durations]


def run_variant(
    variant: Variant,
    *,
    control_plane: str,
    token_file: Path,
    slos: int,
    repeats: int,
    refresh_count: int,
    work: Path,
    chromium: str,
    chromedriver: str,
) -> Result:
    renders: list[float] = []
    sparklines: list[float] = []
    refresh_ms: list[float] = []
    for repeat in range(repeats):
        port = free_ports(1)[0]
        console = start_console(
            control_plane=control_plane,
            token_file=token_file,
            port=port,
            variant=variant,
            log=work / "console.log",
        )
        profile = Path(tempfile.mkdtemp(prefix="bench-chromium-", dir=work))
        driver = chromium_driver(chromium=chromium, chromedriver=chromedriver, profile=profile)
        try:
            table, complete = first_render(driver, f"http://127.0.0.1:{port}/", rows=slos)
            renders.append(table)
            sparklines.append(complete)
            if repeat == repeats - 1:
                refresh_ms = refreshes(driver, count=refresh_count)
        finally:
            driver.quit()
            _stop(console)
    return Result(
        variant=variant, first_render_s=renders, sparklines_s=sparklines, refresh_ms=refresh_ms
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slos", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3, help="cold first renders per variant")
    parser.add_argument("--refreshes", type=int, default=20, help="refresh clicks per variant")
    arguments = parser.parse_args()
    paths = chromium_paths()
    if paths is None:
        Console(stderr=True).print("chromium and chromedriver are needed (make bootstrap)")
        return 2
    chromium, chromedriver = paths
    console = Console(width=140)
    variants = (
        Variant("console (batch fetch once, cached)", ()),
        Variant(
            "baseline (sequential, no cache)",
            ("--no-history-cache", "--no-history-batch", "--history-workers", "1"),
        ),
    )
    work = Path(tempfile.mkdtemp(prefix="bench-dashboards-"))
    try:
        database_url = f"sqlite:///{work}/controlplane.db"
        console.print(f"seeding {arguments.slos} SLOs x 120 evaluations ...")
        token = seed(database_url, slos=arguments.slos, now=datetime.now(UTC))
        token_file = work / "token"
        token_file.write_text(token, encoding="utf-8")
        api_port = free_ports(1)[0]
        api = start_control_plane(
            database_url=database_url, port=api_port, log=work / "controlplane.log"
        )
        try:
            results = [
                run_variant(
                    variant,
                    control_plane=f"http://127.0.0.1:{api_port}",
                    token_file=token_file,
                    slos=arguments.slos,
                    repeats=arguments.repeats,
                    refresh_count=arguments.refreshes,
                    work=work,
                    chromium=chromium,
                    chromedriver=chromedriver,
                )
                for variant in variants
            ]
        finally:
            _stop(api)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    table = Table(title=f"Overview with {arguments.slos} SLOs (headless Chromium)")
    table.add_column("variant")
    table.add_column("first render (s), each cold", justify="right")
    table.add_column("first render max (s)", justify="right")
    table.add_column("all sparklines max (s)", justify="right")
    table.add_column("refreshes", justify="right")
    table.add_column("refresh p50 (ms)", justify="right")
    table.add_column("refresh p95 (ms)", justify="right")
    for result in results:
        table.add_row(
            result.variant.name,
            " ".join(f"{value:.2f}" for value in result.first_render_s),
            f"{result.first_render_max:.2f}",
            f"{max(result.sparklines_s):.2f}",
            str(len(result.refresh_ms)),
            f"{result.refresh_p50:.0f}",
            f"{result.refresh_p95:.0f}",
        )
    console.print(table)
    ours, baseline = results
    summary = {
        "slos": arguments.slos,
        "overview_first_render_s": round(ours.first_render_max, 3),
        "refresh_callback_p95_ms": round(ours.refresh_p95, 1),
        "refresh_callback_p50_ms": round(ours.refresh_p50, 1),
        "overview_sparklines_complete_s": round(max(ours.sparklines_s), 3),
        "baseline_first_render_s": round(baseline.first_render_max, 3),
        "baseline_refresh_callback_p95_ms": round(baseline.refresh_p95, 1),
        "targets": {"overview_first_render_s": 1.5, "refresh_callback_p95_ms": 300},
    }
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
