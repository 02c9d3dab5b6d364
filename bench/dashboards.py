"""Overview benchmark: 200 and 2,000 seeded SLOs, first render, refresh callback and memory in
headless Chromium.

For each size (``--slos 200,2000``) an embedded SQLite store is seeded with that many SLOs (one
evaluation every 30 s over the last hour each, the control plane's four burn-rate alerts with
their verdicts: a few SLOs burn), the control-plane API (uvicorn) is started and, per variant,
the console (``python -m dashboards``) and a fresh headless Chromium:

* first render: from navigation start to the moment the table holds the first page of rows
  and the pager counts every SLO (the page's own ``performance.now()``), with the console's
  caches cold (a fresh console process per repetition); then until every row shown has its
  sparkline;
* refresh callback: "Refresh now" clicked ``--refreshes`` times; each refresh's
  ``/_dash-update-component`` round trip and body size as the browser's resource timing
  measured them;
* memory after the refreshes: the console process's resident set (``VmRSS``, and its peak
  ``VmHWM``, from ``/proc``), the page's JavaScript heap after a garbage collection and its DOM
  nodes (Chromium's ``Performance.getMetrics``).

Variants: the console as shipped (one page of 50 rows; the page's sparkline series in one
``GET /slos/history?slo=...``, kept and extended from ``/slos``; an unchanged table not sent
again); every row on one page (``--page-size N``: the overview as it was before paging); and
the baseline of the same page without the cache and the batch route (every history of the page
fetched one SLO after the other on every render). The last line is one JSON object; its keys
carry the number of SLOs and the unit.
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
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from selenium import webdriver
from sqlalchemy import insert

from controlplane.core.processes import free_ports, tail
from controlplane.core.security import Role
from controlplane.store.database import Database
from controlplane.store.evaluations import EvaluationRecord
from controlplane.store.models import SLOEvaluation
from controlplane.store.tokens import create_token
from dashboards.config import DashboardSettings
from dashboards.pages.overview.layout import OverviewIds
from dashboards.testing import chromium_driver, chromium_paths, refresh_overview

SERVICES = ("inventory", "inventory-worker", "demand-planning", "analytics")
TIERS = ("critical", "standard", "batch", "reporting")
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
#: The control plane's multi-window alerts (severity, long, short, factor).
ALERTS = (
    ("page", "1h", "5m", 14.4),
    ("page", "6h", "30m", 6.0),
    ("ticket", "1d", "2h", 3.0),
    ("ticket", "3d", "6h", 1.0),
)
EVALUATIONS = 120
PAGE_SIZE = int(DashboardSettings.model_fields["overview_page_size"].default)
TARGETS = {
    "overview_first_render_2000_slos_s": 2.0,
    "refresh_callback_p95_2000_slos_ms": 300.0,
    "overview_first_render_200_slos_s": 1.5,
    "refresh_callback_p95_200_slos_ms": 300.0,
}


@dataclass(frozen=True)
class Variant:
    name: str
    #: Prefix of its JSON keys ("" for the console as shipped).
    key: str
    args: tuple[str, ...]
    page_size: int


@dataclass(frozen=True)
class Memory:
    console_rss_mib: float
    console_peak_rss_mib: float
    js_heap_used_mib: float
    dom_nodes: int


@dataclass(frozen=True)
class Result:
    variant: Variant
    slos: int
    first_render_s: list[float]
    sparklines_s: list[float]
    refresh_ms: list[float]
    refresh_bytes: list[int]
    first_render_bytes: int
    memory: Memory

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

    def summary(self) -> dict[str, Any]:
        n, prefix = self.slos, self.variant.key
        render = "overview_first_render" if not prefix else f"{prefix}first_render"
        return {
            f"{render}_{n}_slos_s": round(self.first_render_max, 3),
            f"{prefix}sparklines_complete_{n}_slos_s": round(max(self.sparklines_s), 3),
            f"{prefix}refresh_callback_p95_{n}_slos_ms": round(self.refresh_p95, 1),
            f"{prefix}refresh_callback_p50_{n}_slos_ms": round(self.refresh_p50, 1),
            f"{prefix}refresh_payload_p50_{n}_slos_bytes": int(
                statistics.median(self.refresh_bytes)
            ),
            f"{prefix}first_render_payload_{n}_slos_bytes": self.first_render_bytes,
            f"{prefix}console_rss_{n}_slos_mib": round(self.memory.console_rss_mib, 1),
            f"{prefix}console_peak_rss_{n}_slos_mib": round(self.memory.console_peak_rss_mib, 1),
            f"{prefix}browser_js_heap_used_{n}_slos_mib": round(self.memory.js_heap_used_mib, 1),
            f"{prefix}browser_dom_nodes_{n}_slos": self.memory.dom_nodes,
        }


#: The sequential baseline is measured up to this many SLOs: beyond, its refreshes take
#: seconds each and tell nothing the 200-SLO figures do not (every row on one page is the
#: comparison that matters there).
SEQUENTIAL_UP_TO = 500


def variants(slos: int) -> tuple[Variant, ...]:
    found = (
        Variant(
            f"console (pages of {PAGE_SIZE}, page's history batched, cached)", "", (), PAGE_SIZE
        ),
        Variant(
            "every row on one page (before paging)",
            "every_row_",
            ("--page-size", str(max(slos, 10))),
            max(slos, 10),
        ),
        Variant(
            "baseline (sequential, no cache)",
            "baseline_",
            ("--no-history-cache", "--no-history-batch", "--history-workers", "1"),
            PAGE_SIZE,
        ),
    )
    return found if slos <= SEQUENTIAL_UP_TO else found[:2]


def _burn(number: int) -> float:
    """Most SLOs burn slowly; every 37th fast enough to page, every 53rd to open a ticket."""
    if number % 37 == 5:
        return 16.0 + number % 5
    if number % 53 == 11:
        return 4.0
    return 0.2 + (number % 7) / 10


def _details(number: int, burn: float, *, no_data: bool) -> dict[str, Any]:
    alerts = [
        {
            "severity": severity,
            "long": long,
            "short": short,
            "factor": factor,
            "firing": not no_data and burn > factor,
            "state": "no_data" if no_data else "ok",
        }
        for severity, long, short, factor in ALERTS
    ]
    return {"tier": TIERS[number % len(TIERS)], "period": "30d", "alerts": alerts}


def seed(database_url: str, *, slos: int, now: datetime) -> str:
    """``slos`` SLOs with an hour of 30-second evaluations each; returns a viewer token."""
    database = Database.from_url(database_url)
    database.migrate()
    with database.writer() as session:
        _, token = create_token(session, name="bench", role=Role.VIEWER, at=now)
        for number in range(slos):
            burn = _burn(number)
            budget = 1.0 - (number % 97) / 100
            no_data = number % 17 == 0
            details = _details(number, burn, no_data=no_data)
            # One checked record, then its fields with the time and budget of each step.
            record = EvaluationRecord(
                slo_id=f"slo-{number:04d}",
                service=SERVICES[number % len(SERVICES)],
                at=now,
                state="no_data" if no_data else "ok",
                sli=None if no_data else 0.999,
                objective=0.99,
                budget_remaining=None if no_data else budget,
                burn_rates=dict.fromkeys(WINDOWS, None if no_data else burn),
                no_data_reason="no samples" if no_data else None,
                details=details,
            ).model_dump()
            rows = [
                {
                    **record,
                    "at": now - timedelta(seconds=30 * step),
                    "budget_remaining": None if no_data else budget + step / 1000,
                }
                for step in range(EVALUATIONS)
            ]
            session.execute(insert(SLOEvaluation), rows)
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
    try:
        _wait_http(f"http://127.0.0.1:{port}/api/v1/health/live", process)
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}:\n{tail(log, 30)}") from exc
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
    try:
        _wait_http(f"http://127.0.0.1:{port}/", process)
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}:\n{tail(log, 30)}") from exc
    return process


#: performance.now() once the table holds ``rows`` rows (each with a sparkline when asked) and
#: the pager counts ``total`` SLOs, else null.
_DRAWN = """
const [selector, rows, pager, total] = arguments;
const text = (document.getElementById(pager) || {}).textContent || "";
return document.querySelectorAll(selector).length >= rows && text.includes("of " + total + " ")
    ? performance.now() : null;
"""


def _until(
    driver: webdriver.Chrome, selector: str, *, rows: int, total: int, timeout: float
) -> float:
    """Seconds from navigation start until ``rows`` elements match ``selector`` and the pager
    says the page is one of ``total`` SLOs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = driver.execute_script(_DRAWN, selector, rows, OverviewIds.PAGER, f"{total:,}")
        if done is not None:
            return float(done) / 1000
        time.sleep(0.005)
    raise RuntimeError(f"no {rows} x {selector} of {total} SLOs within {timeout} s")


def first_render(
    driver: webdriver.Chrome, url: str, *, rows: int, total: int, timeout: float = 120
) -> tuple[float, float]:
    """Seconds from navigation start until the table holds ``rows`` rows, and until every row
    has its sparkline."""
    driver.get("about:blank")
    driver.get(url)
    table = _until(driver, "tr[data-slo]", rows=rows, total=total, timeout=timeout)
    sparklines = _until(
        driver, "tr[data-slo] svg.sparkline", rows=rows, total=total, timeout=timeout
    )
    return table, sparklines


_UPDATES = (
    "return performance.getEntriesByType('resource')"
    ".filter(e => e.name.includes('_dash-update-component'))"
    ".map(e => [e.duration, e.encodedBodySize])"
)


def _updates(driver: webdriver.Chrome) -> list[tuple[float, int]]:
    return [(float(duration), int(size)) for duration, size in driver.execute_script(_UPDATES)]


def refreshes(driver: webdriver.Chrome, *, count: int) -> list[tuple[float, int]]:
    """Milliseconds and body bytes of each refresh callback (browser resource timing)."""
    driver.execute_script(
        "performance.setResourceTimingBufferSize(10000); performance.clearResourceTimings();"
    )
    for _ in range(count):
        refresh_overview(driver)
    return _updates(driver)


def _proc_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def memory(driver: webdriver.Chrome, console: subprocess.Popen[bytes]) -> Memory:
    driver.execute_cdp_cmd("HeapProfiler.collectGarbage", {})
    driver.execute_cdp_cmd("Performance.enable", {})
    metrics = {
        item["name"]: item["value"]
        for item in driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]
    }
    return Memory(
        console_rss_mib=_proc_mib(console.pid, "VmRSS"),
        console_peak_rss_mib=_proc_mib(console.pid, "VmHWM"),
        js_heap_used_mib=float(metrics["JSHeapUsedSize"]) / 2**20,
        dom_nodes=int(metrics["Nodes"]),
    )


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
    updates: list[tuple[float, int]] = []
    first_bytes = 0
    measured: Memory | None = None
    rows = min(variant.page_size, slos)
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
            url = f"http://127.0.0.1:{port}/"
            table, complete = first_render(driver, url, rows=rows, total=slos)
            renders.append(table)
            sparklines.append(complete)
            if repeat == repeats - 1:
                first_bytes = sum(size for _, size in _updates(driver))
                updates = refreshes(driver, count=refresh_count)
                measured = memory(driver, console)
        finally:
            driver.quit()
            _stop(console)
    assert measured is not None
    return Result(
        variant=variant,
        slos=slos,
        first_render_s=renders,
        sparklines_s=sparklines,
        refresh_ms=[duration for duration, _ in updates],
        refresh_bytes=[size for _, size in updates],
        first_render_bytes=first_bytes,
        memory=measured,
    )


def measure(
    slos: int, *, arguments: argparse.Namespace, work: Path, chromium: str, chromedriver: str
) -> list[Result]:
    folder = work / f"slos-{slos}"
    folder.mkdir()
    database_url = f"sqlite:///{folder}/controlplane.db"
    token = seed(database_url, slos=slos, now=datetime.now(UTC))
    token_file = folder / "token"
    token_file.write_text(token, encoding="utf-8")
    api_port = free_ports(1)[0]
    api = start_control_plane(
        database_url=database_url, port=api_port, log=folder / "controlplane.log"
    )
    try:
        # The control plane keeps the newest evaluations between requests: its first /slos
        # after a start reads them all. A running control plane has; so has this one now.
        httpx.get(
            f"http://127.0.0.1:{api_port}/api/v1/slos",
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        ).raise_for_status()
        return [
            run_variant(
                variant,
                control_plane=f"http://127.0.0.1:{api_port}",
                token_file=token_file,
                slos=slos,
                repeats=arguments.repeats,
                refresh_count=arguments.refreshes,
                work=folder,
                chromium=chromium,
                chromedriver=chromedriver,
            )
            for variant in variants(slos)
        ]
    finally:
        _stop(api)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--slos: numbers separated by commas: {exc}") from exc
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("--slos: at least one positive number")
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slos", type=_sizes, default=[200, 2000], help="e.g. 200,2000")
    parser.add_argument("--repeats", type=int, default=3, help="cold first renders per variant")
    parser.add_argument("--refreshes", type=int, default=20, help="refresh clicks per variant")
    arguments = parser.parse_args()
    paths = chromium_paths()
    if paths is None:
        Console(stderr=True).print("chromium and chromedriver are needed (make bootstrap)")
        return 2
    chromium, chromedriver = paths
    console = Console(width=160)
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench-dashboards-"))
    results: list[Result] = []
    try:
        for slos in arguments.slos:
            console.print(f"seeding {slos} SLOs x {EVALUATIONS} evaluations ...")
            results += measure(
                slos, arguments=arguments, work=work, chromium=chromium, chromedriver=chromedriver
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()

    table = Table(title="Overview in headless Chromium (first render: cold console each time)")
    for column in (
        "SLOs",
        "variant",
        "first render (s), each",
        "sparklines max (s)",
        "refresh p50 / p95 (ms)",
        "refresh body p50 (B)",
        "console RSS / peak (MiB)",
        "JS heap (MiB)",
        "DOM nodes",
    ):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for result in results:
        table.add_row(
            f"{result.slos:,}",
            result.variant.name,
            " ".join(f"{value:.2f}" for value in result.first_render_s),
            f"{max(result.sparklines_s):.2f}",
            f"{result.refresh_p50:.0f} / {result.refresh_p95:.0f}",
            f"{statistics.median(result.refresh_bytes):,.0f}",
            f"{result.memory.console_rss_mib:.0f} / {result.memory.console_peak_rss_mib:.0f}",
            f"{result.memory.js_heap_used_mib:.1f}",
            f"{result.memory.dom_nodes:,}",
        )
    console.print(table)
    summary: dict[str, Any] = {"slos": arguments.slos, "page_size": PAGE_SIZE}
    for result in results:
        summary.update(result.summary())
    summary["targets"] = {key: value for key, value in TARGETS.items() if key in summary}
    summary["targets_met"] = all(
        summary[key] <= value for key, value in TARGETS.items() if key in summary
    )
    summary["load_average_before"] = [round(value, 2) for value in load_before]
    summary["load_average_after"] = [round(value, 2) for value in load_after]
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
