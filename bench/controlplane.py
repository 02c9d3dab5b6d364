"""``make bench-controlplane``: SLO evaluation for 1,000 and 10,000 SLOs on a real Prometheus,
webhook ingestion with durable storage, and the control plane's memory — all measured in one run.

Generates ``--slos`` SLO specs (ratio and latency SLIs over ``--services`` services; the first
``--small-slos`` of them are the small run), their Prometheus rules (``slo generate``'s groups,
written as JSON: ~25 rules in two groups per SLO, 250,000 rules for 10,000 SLOs), and a scrape
target serving the series they read. Each set gets its own Prometheus on a free loopback port,
holding only that set's rules, one after the other: the large set's (rules every
``--large-rule-interval`` seconds, 150: one Prometheus on two shared CPUs does not evaluate
250,000 rules a minute) for its in-process cycles and its ``controlplane serve``, stopped before
the small set's (rules every minute, Prometheus' default) for everything else, so the webhook runs
do not share the CPUs with the large set's rule evaluation. Each waits until every SLO's rules
have been evaluated and reports its own rule evaluation per round. Then:

- evaluation cycle, batched recording-rule plan (what ``controlplane serve`` runs: one query per
  record name for all SLOs, maths, one transaction into SQLite), ``--cycles`` times in process,
  for both sizes;
- ``controlplane slo report`` over the small set (its code in process: the evaluator's reader,
  recording rules at the report instant), ``--cycles`` times;
- the raw plan (event counts of every window, what the report and the evaluator use where the
  rules are not loaded): batched across SLOs, and as the baseline one instant query per SLO,
  window and count (the report's plan before it shared the evaluator's reader), timed on
  ``--naive-slos`` SLOs and scaled to the small set;
- ``controlplane serve`` (a real process) with each set of specs: the cycle time it reports on
  ``/metrics`` and its resident memory, against the same process with the 5 shipped SLOs;
- webhook ingestion into the small set's process (SQLite, ``synchronous=FULL``: an acknowledged
  alert is on disk), distinct firing alerts: the maxima with ``wrk`` (closed loop), 1 alert per
  delivery (baseline) and ``--batch`` per delivery (Alertmanager groups alerts), alerts/s and p99
  per delivery; then with vegeta (open loop) ``--webhook-rate`` deliveries per second (1,000) of
  one alert each, as Alertmanager sends with per-alert grouping: p50 / p99 per delivery at that
  rate and the alerts acknowledged per second.
  The load generator's own CPU is shown with each. The small set's Prometheus and vegeta run on
  one core each (``GOMAXPROCS=1``, see ``one_go_core``): they share the machine's two CPUs with
  the measured process.

Prints a table and, as the last line, one JSON object (``eval_cycle_10000_slos_s``,
``rss_mb_10000_slos``, ``eval_cycle_1000_slos_s``, ``rss_mb_1000_slos``, ... : the counts in the
names are ``--slos`` and ``--small-slos``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from bench import vegeta
from bench.vegeta import measured_run
from controlplane.core.processes import free_ports
from controlplane.core.security import Role
from controlplane.core.specs import load_spec_paths
from controlplane.evaluation.evaluator import SLOEvaluator
from controlplane.evaluation.events import WindowRequest, read_metrics_counts
from controlplane.evaluation.report import RAW, SLOReporter, build_report, report_windows
from controlplane.evaluation.service import insert_evaluations
from controlplane.sources.prometheus import MAX_BATCH_CHARS, PrometheusSource
from controlplane.stack.backends import Prometheus
from controlplane.stack.settings import REPO_ROOT, StackSettings
from controlplane.store.database import Database
from controlplane.store.models import Alert
from controlplane.store.tokens import create_token
from slo.rules import ERROR_RATIO, OBJECTIVE, RuleOptions, rule_groups
from slo.spec import SLO

ROUTES = 20
LATENCY_BUCKETS = ("0.1", "0.25", "0.5", "+Inf")
OBJECTIVES = (0.99, 0.995, 0.999)
WRK_SCRIPT = r"""
local counter = 0
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  batch = tonumber(args[1])
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. args[2]
  run = args[3]
end
function request()
  counter = counter + 1
  local alerts = {}
  for i = 1, batch do
    local fp = string.format("%s%02x%08x%04x", run, id, counter, i)
    alerts[i] = '{"status":"firing","labels":{"alertname":"BenchBurn","service":"bench",'
      .. '"slo":"slo-' .. i .. '","severity":"ticket"},"annotations":{"summary":"bench"},'
      .. '"startsAt":"2026-11-21T10:00:00Z","endsAt":"0001-01-01T00:00:00Z",'
      .. '"generatorURL":"http://127.0.0.1:9090/graph","fingerprint":"' .. fp .. '"}'
  end
  local body = '{"version":"4","groupKey":"{}:{alertname=\\"BenchBurn\\"}",'
    .. '"truncatedAlerts":0,"status":"firing","receiver":"controlplane",'
    .. '"groupLabels":{"alertname":"BenchBurn"},"commonLabels":{},"commonAnnotations":{},'
    .. '"externalURL":"http://127.0.0.1:9093","alerts":[' .. table.concat(alerts, ",") .. ']}'
  return wrk.format("POST", nil, nil, body)
end
function done(summary, latency, requests)
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,'
      .. '"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


# -- the workload: specs, rules, a scrape target -----------------------------------------------


def spec_documents(*, slos: int, services: int) -> dict[str, str]:
    """One multi-document native spec file per service; 70 % ratio, 30 % latency SLIs."""
    files: dict[str, list[str]] = {}
    for index in range(slos):
        service = f"svc-{index % services:02d}"
        route = f"r{(index // services) % ROUTES:02d}"
        labels = f'service="{service}",route="{route}"'
        if index % 10 < 7:
            sli = (
                "    ratio:\n"
                f'      bad: bench_requests_total{{{labels},code=~"5.."}}\n'
                f"      total: bench_requests_total{{{labels}}}\n"
            )
        else:
            sli = (
                "    latency:\n"
                f"      histogram: bench_request_duration_seconds{{{labels}}}\n"
                "      buckets: [0.1, 0.25, 0.5]\n"
                "      threshold: 250ms\n"
            )
        files.setdefault(service, []).append(
            "apiVersion: controlplane.slo/v1\nkind: SLO\n"
            f"metadata: {{name: slo-{index:05d}}}\n"
            f"spec:\n  service: {service}\n  tier: standard\n"
            f"  objective: {OBJECTIVES[index % len(OBJECTIVES)]}\n  window: 30d\n"
            "  sli:\n" + sli
        )
    return {f"{service}.yaml": "---\n".join(docs) for service, docs in files.items()}


class Exporter:
    """Counters of every (service, route), growing with time: ~2 % errors, ~5 % slow."""

    def __init__(self, *, services: int) -> None:
        self.services = services
        self.started = time.monotonic()

    def exposition(self) -> str:
        elapsed = time.monotonic() - self.started
        lines = []
        for s in range(self.services):
            for r in range(ROUTES):
                labels = f'service="svc-{s:02d}",route="r{r:02d}"'
                total = 1000 + 20.0 * elapsed * (1 + r / ROUTES)
                errors = 10 + total * (0.01 + 0.001 * r)
                lines.append(f'bench_requests_total{{{labels},code="200"}} {total - errors:.3f}')
                lines.append(f'bench_requests_total{{{labels},code="500"}} {errors:.3f}')
                shares = (0.80, 0.95, 0.99, 1.0)
                for le, share in zip(LATENCY_BUCKETS, shares, strict=True):
                    lines.append(
                        f'bench_request_duration_seconds_bucket{{{labels},le="{le}"}} '
                        f"{total * share:.3f}"
                    )
                lines.append(f"bench_request_duration_seconds_count{{{labels}}} {total:.3f}")
        return "\n".join(lines) + "\n"


@contextmanager
def serve_exporter(exporter: Exporter) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = exporter.exposition().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def wait_for_rules(url: str, *, slos: int, timeout: float) -> float:
    """Until every SLO has its objective and its 5-minute error ratio recorded; seconds waited."""
    started = time.monotonic()
    queries = (f"count({OBJECTIVE})", f"count({ERROR_RATIO.format(window='5m')})")
    counts: list[int] = []
    while True:
        try:
            counts = []
            for query in queries:
                answer = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=60)
                result = answer.json()["data"]["result"]
                counts.append(int(float(result[0]["value"][1])) if result else 0)
        except httpx.TimeoutException:
            counts = [-1]  # Prometheus busy with its first rounds: ask again
        if counts and all(count >= slos for count in counts):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"rules not evaluated for every SLO after {timeout} s: {counts}")
        time.sleep(2)


# -- measurements --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CycleTimes:
    label: str
    slos: int
    queries: int
    times: list[float]
    note: str = ""
    cpu: list[float] | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def timed_runs(
    *,
    label: str,
    slos: int,
    runs: int,
    run: Callable[[], tuple[Mapping[str, int], Mapping[str, int]]],
) -> CycleTimes:
    """``run`` (returning the SLOs per plan and the queries per plan) ``runs`` times; every
    SLO must have been read from the recording rules."""
    times: list[float] = []
    cpu: list[float] = []
    queries = 0
    for _ in range(runs):
        started, used = time.perf_counter(), time.process_time()
        plans, sent = run()
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - used)
        queries = sum(sent.values())
        if plans.get("recording_rules", 0) != slos:
            raise RuntimeError(f"not every SLO used the recording rules: {plans}")
    return CycleTimes(
        label=label,
        slos=slos,
        queries=queries,
        times=times,
        note=f"control plane CPU {statistics.median(cpu):.2f} s per run",
        cpu=cpu,
    )


def batched_cycles(
    *, slos: tuple[SLO, ...], url: str, database: Database, cycles: int
) -> CycleTimes:
    evaluator = SLOEvaluator(slos=slos, metrics=PrometheusSource(url=url, timeout=30), logs=None)

    def cycle() -> tuple[Mapping[str, int], Mapping[str, int]]:
        evaluated = evaluator.evaluate()
        with database.writer() as session:
            insert_evaluations(session, evaluations=evaluated.records)
        return evaluated.plans, evaluated.queries

    return timed_runs(
        label="batched recording-rule plan (+ store write)", slos=len(slos), runs=cycles, run=cycle
    )


def report_runs(*, slos: tuple[SLO, ...], url: str, runs: int) -> CycleTimes:
    """``controlplane slo report``'s read and maths over every SLO at one instant (the
    command's own code, without printing the table)."""
    metrics = PrometheusSource(url=url, timeout=30)
    reporter = SLOReporter(slos=slos, metrics=metrics, logs=None)

    def report() -> tuple[Mapping[str, int], Mapping[str, int]]:
        done = reporter.report(at=datetime.now(UTC))
        return done.plans, done.queries

    try:
        return timed_runs(
            label="slo report's read and maths (recording rules at the instant)",
            slos=len(slos),
            runs=runs,
            run=report,
        )
    finally:
        metrics.close()


def report_command(*, specs: Path, url: str, slos: int, runs: int) -> CycleTimes:
    """``controlplane slo report <specs> --prometheus <url> --json`` as a user runs it: a new
    process each time (start-up and spec parsing included), wall time until it exits."""
    cli = str(Path(sys.executable).with_name("controlplane"))
    times: list[float] = []
    cpu: list[float] = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            [cli, "slo", "report", str(specs), "--prometheus", url, "--json"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        times.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(
            after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime,
        )
        if done.returncode != 0:
            raise RuntimeError(f"slo report failed: {done.stderr[-2000:]}")
        reported = [line for line in done.stdout.splitlines() if line.strip()]
        if len(reported) != slos:
            raise RuntimeError(f"slo report printed {len(reported)} SLOs, not {slos}")
    return CycleTimes(
        label="controlplane slo report --json (new process)",
        slos=slos,
        queries=0,
        times=times,
        note=f"CPU {statistics.median(cpu):.2f} s; start-up and spec parsing included",
        cpu=cpu,
    )


def raw_counts_run(
    *,
    slos: tuple[SLO, ...],
    url: str,
    sample: int | None = None,
    batch_chars: int = MAX_BATCH_CHARS,
) -> CycleTimes:
    """Every window's event counts read the raw way (what ``slo report`` does where the rules
    are not loaded): batched across SLOs, or, with ``batch_chars=0``, one query per SLO, window
    and count (the plan ``slo report`` had before), timed on ``sample`` SLOs and scaled."""
    chosen = slos if sample is None else slos[:: max(1, len(slos) // sample)][:sample]
    slos_by_key = {slo.key: slo for slo in chosen}
    metrics = PrometheusSource(url=url, timeout=30, batch_chars=batch_chars)
    at = datetime.now(UTC)
    started = time.perf_counter()
    requests = [WindowRequest(slo=slo, windows=report_windows(slo, at=at)) for slo in chosen]
    # The baseline reads SLO by SLO (no expression shared between SLOs), as the old plan did.
    reads = [
        read_metrics_counts(group, metrics=metrics, at=at)
        for group in ([[request] for request in requests] if batch_chars == 0 else [requests])
    ]
    for read in reads:
        for key, counts in read.counts.items():
            build_report(slos_by_key[key], counts=counts, at=at, plan=RAW)
    elapsed = time.perf_counter() - started
    metrics.close()
    scale = len(slos) / len(chosen)
    one_each = batch_chars == 0
    return CycleTimes(
        label="raw counts: one query per SLO x window x count (baseline)"
        if one_each
        else "raw counts: every SLO per batched query",
        slos=len(slos),
        queries=round(sum(read.queries for read in reads) * scale),
        times=[elapsed * scale],
        note=f"timed on {len(chosen)} SLOs, scaled x{scale:g}" if scale != 1 else "",
    )


class ServeRun:
    """``controlplane serve`` as a process on its own SQLite store."""

    def __init__(self, *, base: Path, specs: Path, prometheus: str, interval: float) -> None:
        self.base = base
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self.webhook_token = uuid.uuid4().hex
        database_url = f"sqlite:///{base / 'controlplane.db'}"
        database = Database.from_url(database_url)
        database.migrate()
        with database.writer() as session:
            _, secret = create_token(session, name="bench", role=Role.VIEWER, at=datetime.now(UTC))
        database.dispose()
        self.headers = {"Authorization": f"Bearer {secret}"}
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")}
        env.update(
            {
                "CONTROLPLANE_DATABASE_URL": database_url,
                "CONTROLPLANE_PORT": str(self.port),
                "CONTROLPLANE_WEBHOOK_TOKEN": self.webhook_token,
                "CONTROLPLANE_SLO_SPECS": str(specs),
                "CONTROLPLANE_PROMETHEUS_URL": prometheus,
                "CONTROLPLANE_ELASTICSEARCH_URL": f"http://127.0.0.1:{free_ports(1)[0]}",
                "CONTROLPLANE_EVALUATION_INTERVAL_SECONDS": str(interval),
                "CONTROLPLANE_SOURCE_TIMEOUT_SECONDS": "30",
            }
        )
        self.log = (base / "controlplane.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "controlplane.commands.serve", "--log-level", "warning"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"controlplane serve exited; see {base / 'controlplane.log'}")
            try:
                httpx.get(f"{self.url}/api/v1/health/live", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("controlplane serve did not answer") from None
                time.sleep(0.2)

    def metrics(self) -> dict[str, float]:
        answer = httpx.get(f"{self.url}/metrics", headers=self.headers, timeout=30)
        answer.raise_for_status()
        values: dict[str, float] = {}
        for line in answer.text.splitlines():
            if line.startswith("controlplane_evaluation_") or line.startswith("process_"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def cycle_times(self, *, cycles: int, timeout: float) -> list[float]:
        """Durations of ``cycles`` complete cycles, as the process reports them."""
        seen: dict[float, float] = {}
        deadline = time.monotonic() + timeout
        while len(seen) < cycles + 1 and time.monotonic() < deadline:
            values = self.metrics()
            at = values.get("controlplane_evaluation_last_timestamp_seconds")
            duration = values.get("controlplane_evaluation_last_duration_seconds")
            if at is not None and duration is not None:
                seen[at] = duration
            time.sleep(0.5)
        ordered = [seen[at] for at in sorted(seen)]
        return ordered[1:] if len(ordered) > 1 else ordered  # the first cycle warms up

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text(encoding="utf-8")
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        if match is None:
            raise RuntimeError("no VmRSS")
        return int(match.group(1)) / 1024

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        self.log.close()


@dataclass(frozen=True)
class WebhookRun:
    batch: int
    deliveries: int
    alerts_per_s: float
    p50_ms: float
    p99_ms: float
    refused: int
    generator_cpu: float


def webhook_run(
    *, serve: ServeRun, batch: int, seconds: int, connections: int, script: Path
) -> WebhookRun:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (run `make bootstrap`)")
    output_path = script.with_suffix(f".{batch}.out")
    with output_path.open("w", encoding="utf-8") as output:
        run, stderr = measured_run(
            [
                wrk,
                "-t2",
                f"-c{connections}",
                f"-d{seconds}s",
                "--timeout",
                "30s",
                "-s",
                str(script),
                f"{serve.url}/api/v1/alerts/webhook",
                "--",
                str(batch),
                serve.webhook_token,
                uuid.uuid4().hex[:8],
            ],
            stdout=output,
            timeout=seconds + 120,
        )
    if run.returncode != 0:
        raise RuntimeError(f"wrk exited with {run.returncode}: {stderr.strip()[-500:]}")
    summary = json.loads(output_path.read_text(encoding="utf-8").strip().splitlines()[-1])
    accepted = summary["requests"] - summary["status_errors"]
    return WebhookRun(
        batch=batch,
        deliveries=accepted,
        alerts_per_s=accepted * batch / (summary["duration_us"] / 1e6),
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        refused=summary["status_errors"] + summary["socket_errors"],
        generator_cpu=run.cpu_share,
    )


def alert_delivery(*, run: str, number: int) -> bytes:
    """An Alertmanager webhook delivery of one new firing alert (per-alert grouping)."""
    alert = {
        "status": "firing",
        "labels": {"alertname": "BenchBurn", "service": "bench", "slo": f"slo-{number}"},
        "annotations": {"summary": "bench"},
        "startsAt": "2026-11-21T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph",
        "fingerprint": f"{run}{number:012x}",
    }
    return json.dumps(
        {
            "version": "4",
            "groupKey": f'{{}}:{{alertname="BenchBurn", slo="slo-{number}"}}',
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "controlplane",
            "groupLabels": {"alertname": "BenchBurn", "slo": f"slo-{number}"},
            "commonLabels": alert["labels"],
            "commonAnnotations": {},
            "externalURL": "http://127.0.0.1:9093",
            "alerts": [alert],
        }
    ).encode()


@dataclass(frozen=True)
class WebhookRateRun:
    """Deliveries of one alert each at a constant rate (vegeta, open loop)."""

    rate: float
    sent_per_s: float
    acknowledged: int
    acknowledged_per_s: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]
    generator_cpu: float

    @property
    def failed(self) -> int:
        return sum(n for code, n in self.statuses.items() if not 200 <= code < 300)


@contextmanager
def one_go_core() -> Iterator[None]:
    """Go programs started inside run on one core (``GOMAXPROCS=1``): the Prometheus and the
    load generator that share the machine's two CPUs with the measured process. Left to use
    both, they answer a burst (the evaluation's queries, the generator's sends) on both CPUs at
    once and take the control plane's CPU for tens of milliseconds; on one core each, their
    bursts queue on their own core (at 1,000/s vegeta uses about 0.2 of a core, Prometheus less
    between its rule rounds)."""
    before = os.environ.get("GOMAXPROCS")
    os.environ["GOMAXPROCS"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("GOMAXPROCS", None)
        else:
            os.environ["GOMAXPROCS"] = before


def webhook_rate_run(
    *, serve: ServeRun, rate: float, seconds: int, connections: int, workdir: Path
) -> WebhookRateRun:
    """``rate`` deliveries per second of one distinct firing alert each for ``seconds``;
    latency per delivery counted from its scheduled send (a slow store cannot hide its queue)."""
    run = uuid.uuid4().hex[:8]
    url = f"{serve.url}/api/v1/alerts/webhook"
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {serve.webhook_token}",
    }
    targets = [
        vegeta.Target("POST", url, headers, alert_delivery(run=run, number=n), route="webhook")
        for n in range(math.ceil(rate * seconds * 1.05) + 2)  # each alert sent once
    ]
    with one_go_core():
        attack = vegeta.attack(
            targets, rate=rate, duration=seconds, workdir=workdir, max_connections=connections
        )
    figures = attack.routes["webhook"]
    acknowledged = sum(n for code, n in figures.statuses.items() if 200 <= code < 300)
    duration = attack.report.duration_s or seconds
    return WebhookRateRun(
        rate=attack.target_rate,
        sent_per_s=attack.report.rate,
        acknowledged=acknowledged,
        acknowledged_per_s=acknowledged / (duration + attack.report.wait_s),
        p50_ms=figures.p50_ms,
        p99_ms=figures.p99_ms,
        statuses=figures.statuses,
        generator_cpu=attack.generator_cpu,
    )


def stored_alerts(serve: ServeRun) -> int:
    database = Database.from_url(f"sqlite:///{serve.base / 'controlplane.db'}")
    try:
        with database.reader() as session:
            return int(session.scalar(select(func.count()).select_from(Alert)) or 0)
    finally:
        database.dispose()


def rule_files(slos: tuple[SLO, ...], *, options: RuleOptions) -> tuple[dict[str, str], int]:
    """``slo generate``'s rule groups (:func:`slo.rules.rule_groups`), one file per service,
    written as JSON (which Prometheus reads as YAML) since emitting 250,000 rules as YAML takes
    minutes; and the number of rules."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for slo in slos:
        groups.setdefault(slo.service, []).extend(rule_groups(slo, options=options))
    count = sum(len(group["rules"]) for found in groups.values() for group in found)
    files = {
        f"{service}.rules.yml": json.dumps({"groups": found}) for service, found in groups.items()
    }
    return files, count


@dataclass(frozen=True)
class RuleEvaluation:
    """Prometheus' own account of its rule groups (its ``/metrics``)."""

    groups: int
    #: Sum of every group's last evaluation time: Prometheus' rule work per round.
    round_s: float
    slowest_group_s: float
    #: Group evaluations skipped because the previous one overran the interval.
    missed: int


def rule_evaluation(url: str) -> RuleEvaluation:
    text = httpx.get(f"{url}/metrics", timeout=60).text
    durations: list[float] = []
    missed = 0.0
    for line in text.splitlines():
        if line.startswith("prometheus_rule_group_last_duration_seconds{"):
            durations.append(float(line.rpartition(" ")[2]))
        elif line.startswith("prometheus_rule_group_iterations_missed_total{"):
            missed += float(line.rpartition(" ")[2])
    return RuleEvaluation(
        groups=len(durations),
        round_s=sum(durations),
        slowest_group_s=max(durations, default=0.0),
        missed=int(missed),
    )


def serve_cycles(
    *, base: Path, specs: Path, prometheus: str, interval: float, cycles: int
) -> tuple[ServeRun, list[float]]:
    """``controlplane serve`` on ``specs``, after ``cycles`` timed cycles (still running)."""
    serve = ServeRun(base=base, specs=specs, prometheus=prometheus, interval=interval)
    try:
        times = serve.cycle_times(cycles=cycles, timeout=interval * (cycles + 4) + 120)
    except BaseException:
        serve.stop()
        raise
    if not times:
        serve.stop()
        raise RuntimeError(f"controlplane serve on {specs} reported no cycle; see {base}")
    return serve, times


def peak_rss_mb(serve: ServeRun) -> float:
    status = Path(f"/proc/{serve.process.pid}/status").read_text(encoding="utf-8")
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else math.nan


# -- main ----------------------------------------------------------------------------------------


def _stop_on_sigterm(signum: int, frame: object) -> None:
    sys.exit(128 + signum)  # unwinds the finally blocks: servers stopped, files removed


def write_specs(folder: Path, *, slos: int, services: int) -> tuple[SLO, ...]:
    folder.mkdir()
    for name, text in spec_documents(slos=slos, services=services).items():
        (folder / name).write_text(text, encoding="utf-8")
    return load_spec_paths([folder])


def main() -> None:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slos", type=int, default=10_000, help="SLOs of the large run")
    parser.add_argument(
        "--small-slos", type=int, default=1_000, help="SLOs of the small run (a subset)"
    )
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument(
        "--rule-interval",
        type=int,
        default=60,
        help="Prometheus' rule evaluation interval in seconds (its default: 60)",
    )
    parser.add_argument(
        "--large-rule-interval",
        type=int,
        default=150,
        help="the same for the large run's Prometheus (its 250,000 rules every 60 s are more "
        "than two shared CPUs evaluate; under Prometheus' 5-minute lookback)",
    )
    parser.add_argument("--cycles", type=int, default=5, help="timed evaluation cycles")
    parser.add_argument("--naive-slos", type=int, default=50, help="SLOs the naive plan times")
    parser.add_argument("--interval", type=float, default=10.0, help="serve evaluation interval")
    parser.add_argument("--webhook-seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--batch", type=int, default=10, help="alerts per grouped delivery")
    parser.add_argument(
        "--webhook-rate",
        type=float,
        default=1000.0,
        help="deliveries of one alert per second in the constant-rate run (vegeta)",
    )
    args = parser.parse_args()
    if not 0 < args.small_slos <= args.slos:
        parser.error("--small-slos must be between 1 and --slos")
    console = Console(width=150)
    load_before = os.getloadavg()
    settings = StackSettings()
    base = Path(tempfile.mkdtemp(prefix="bench-controlplane-"))
    base.chmod(0o755)  # Prometheus may run as another account
    slos = write_specs(base / "specs", slos=args.slos, services=args.services)
    small_specs = base / "specs-small"
    small = write_specs(small_specs, slos=args.small_slos, services=args.services)
    script = base / "webhook.lua"
    script.write_text(WRK_SCRIPT, encoding="utf-8")
    exporter = Exporter(services=args.services)
    table = Table(
        title=f"Control plane: {len(small)} and {len(slos)} SLOs on a real Prometheus, "
        "webhook ingestion"
    )
    for column in ("measurement", "configuration", "n", "median", "p99 / max", "rate", "notes"):
        table.add_column(
            column,
            justify="left" if column in ("measurement", "configuration", "notes") else "right",
        )
    rulings: dict[int, RuleEvaluation] = {}

    @contextmanager
    def prometheus_for(
        chosen: tuple[SLO, ...], *, every: int, address: str, one_core: bool = False
    ) -> Iterator[str]:
        """A Prometheus holding only ``chosen``'s rules, evaluated every ``every`` seconds, once
        every SLO's rules have been evaluated; its rule evaluation goes in the table.
        ``one_core``: on one CPU (``one_go_core``)."""
        interval = timedelta(seconds=every)
        rules, rule_count = rule_files(chosen, options=RuleOptions(period_interval=interval))
        prometheus = Prometheus(
            settings=settings,
            workdir=base / f"prometheus-{len(chosen)}",
            ports={"http": free_ports(1)[0]},
            config={
                "global": {"scrape_interval": "5s", "evaluation_interval": f"{every}s"},
                "scrape_configs": [
                    {"job_name": "bench", "static_configs": [{"targets": [address]}]}
                ],
            },
            rules=rules,
        )
        started = time.monotonic()
        with one_go_core() if one_core else nullcontext():
            prometheus.start(timeout=600)
        loaded = time.monotonic() - started
        try:
            console.print(
                f"Prometheus {prometheus.url} ready with {len(rules)} rule files "
                f"({rule_count:,} rules) after {loaded:.0f} s"
            )
            waited = wait_for_rules(prometheus.url, slos=len(chosen), timeout=900 + 2 * every)
            console.print(f"every SLO's rules evaluated after {waited:.0f} s more")
            ruling = rulings[len(chosen)] = rule_evaluation(prometheus.url)
            table.add_row(
                "Prometheus rule evaluation",
                f"{ruling.groups:,} groups every {every} s",
                str(len(chosen)),
                f"{ruling.round_s:.1f} s",
                f"{ruling.slowest_group_s * 1000:.0f} ms",
                "per round",
                f"{ruling.missed} iterations missed; rules loaded in {loaded:.0f} s, "
                f"all evaluated {waited:.0f} s later; sum of the groups' last durations "
                "(they run at once: beyond the interval, they wait for CPU)",
            )
            yield prometheus.url
        finally:
            prometheus.stop()

    def evaluation_rows(rows: list[tuple[str, CycleTimes]]) -> None:
        for measurement, row in rows:
            table.add_row(
                measurement,
                row.label,
                str(row.slos),
                f"{row.median:.2f} s",
                f"{max(row.times):.2f} s",
                f"{row.queries} queries" if row.queries else "",
                row.note,
            )

    serve_times: dict[int, list[float]] = {}
    rss: dict[int, float] = {}
    batched: dict[int, CycleTimes] = {}
    database = Database.from_url(f"sqlite:///{base / 'inprocess.db'}")
    database.migrate()
    try:
        with serve_exporter(exporter) as address:
            # The large set on its own Prometheus (250,000 rules for 10,000 SLOs), stopped
            # before the rest: the small set's measurements and the webhook runs share the two
            # CPUs with a Prometheus holding only the small set's rules.
            with prometheus_for(slos, every=args.large_rule_interval, address=address) as url:
                batched[len(slos)] = batched_cycles(
                    slos=slos, url=url, database=database, cycles=args.cycles
                )
                console.print(
                    f"batched {len(slos)}: {[f'{t:.2f}' for t in batched[len(slos)].times]} s"
                )
                large, serve_times[len(slos)] = serve_cycles(
                    base=base / "serve-large",
                    specs=base / "specs",
                    prometheus=url,
                    interval=args.interval,
                    cycles=args.cycles,
                )
                rss[len(slos)] = large.rss_mb()
                peak_large = peak_rss_mb(large)
                large.stop()
            # The webhook runs share the CPUs with this one: on one core (``one_go_core``).
            with prometheus_for(
                small, every=args.rule_interval, address=address, one_core=True
            ) as url:
                batched[len(small)] = batched_cycles(
                    slos=small, url=url, database=database, cycles=args.cycles
                )
                database.dispose()
                console.print(
                    f"batched {len(small)}: {[f'{t:.2f}' for t in batched[len(small)].times]} s"
                )
                command = report_command(
                    specs=small_specs, url=url, slos=len(small), runs=args.cycles
                )
                console.print(f"slo report command: {[f'{t:.2f}' for t in command.times]} s")
                report = report_runs(slos=small, url=url, runs=args.cycles)
                console.print(f"slo report in process: {[f'{t:.2f}' for t in report.times]} s")
                raw = raw_counts_run(slos=small, url=url)
                console.print(f"raw counts, batched: {raw.times[0]:.2f} s")
                naive = raw_counts_run(slos=small, url=url, sample=args.naive_slos, batch_chars=0)
                console.print(f"naive (scaled): {naive.times[0]:.1f} s")
                evaluation_rows(
                    [
                        *(("evaluation cycle (in process)", batched[n]) for n in sorted(batched)),
                        ("slo report (command)", command),
                        ("slo report (in process)", report),
                        ("slo report (in process)", raw),
                        ("slo report (in process)", naive),
                    ]
                )
                shipped, _ = serve_cycles(
                    base=base / "serve-shipped",
                    specs=REPO_ROOT / "slo" / "specs",
                    prometheus=url,
                    interval=args.interval,
                    cycles=2,
                )
                rss_shipped = shipped.rss_mb()
                shipped.stop()

                serve, serve_times[len(small)] = serve_cycles(
                    base=base / "serve",
                    specs=small_specs,
                    prometheus=url,
                    interval=args.interval,
                    cycles=args.cycles,
                )
                try:
                    rss[len(small)] = serve.rss_mb()
                    for count in sorted(serve_times):
                        times = serve_times[count]
                        table.add_row(
                            "evaluation cycle (controlplane serve)",
                            "batched, stored, reported on /metrics",
                            str(count),
                            f"{statistics.median(times):.2f} s",
                            f"{max(times):.2f} s",
                            f"every {args.interval:g} s",
                            f"{len(times)} cycles",
                        )
                    for count in sorted(rss):
                        table.add_row(
                            "resident memory (controlplane serve)",
                            f"{count} SLOs loaded and evaluated",
                            str(count),
                            f"{rss[count]:.0f} MB",
                            f"{peak_large:.0f} MB" if count == len(slos) else "",
                            "",
                            f"baseline: {rss_shipped:.0f} MB with the 5 shipped SLOs"
                            + ("; p99 column: peak (VmHWM)" if count == len(slos) else ""),
                        )
                    runs = []
                    for batch in (1, args.batch):
                        run = webhook_run(
                            serve=serve,
                            batch=batch,
                            seconds=args.webhook_seconds,
                            connections=args.connections,
                            script=script,
                        )
                        runs.append(run)
                        table.add_row(
                            "webhook ingestion (SQLite, synchronous=FULL)",
                            f"{batch} alert(s) per delivery"
                            + (" (baseline)" if batch == 1 else ""),
                            str(run.deliveries),
                            f"{run.p50_ms:.1f} ms",
                            f"{run.p99_ms:.1f} ms",
                            f"{run.alerts_per_s:,.0f} alerts/s",
                            f"wrk, closed loop, {args.connections} connections; "
                            f"{run.refused} refused; wrk CPU {run.generator_cpu:.0%}; "
                            f"beside {len(small)} SLOs every {args.interval:g} s",
                        )
                    at_rate = webhook_rate_run(
                        serve=serve,
                        rate=args.webhook_rate,
                        seconds=args.webhook_seconds,
                        connections=args.connections,
                        workdir=base / "vegeta-webhook",
                    )
                    codes = " ".join(f"{c}:{n}" for c, n in sorted(at_rate.statuses.items()))
                    table.add_row(
                        "webhook ingestion (SQLite, synchronous=FULL)",
                        f"1 alert per delivery at {at_rate.rate:,.0f}/s (open loop)",
                        str(at_rate.acknowledged),
                        f"{at_rate.p50_ms:.1f} ms",
                        f"{at_rate.p99_ms:.1f} ms",
                        f"{at_rate.acknowledged_per_s:,.0f} alerts/s",
                        f"vegeta, sent {at_rate.sent_per_s:,.0f}/s, up to {args.connections} "
                        f"connections; statuses {codes} (0: no answer in 10 s); "
                        f"vegeta CPU {at_rate.generator_cpu:.0%}",
                    )
                    stored = stored_alerts(serve)
                    acknowledged = sum(run.deliveries * run.batch for run in runs)
                    acknowledged += at_rate.acknowledged
                finally:
                    serve.stop()
    finally:
        database.dispose()
        shutil.rmtree(base, ignore_errors=True)

    load_after = os.getloadavg()
    console.print(table)
    console.print(
        f"alerts acknowledged {acknowledged}, found in the store {stored}; "
        f"machine load (1, 5, 15 min) {', '.join(f'{x:.1f}' for x in load_before)} at the "
        f"start, {', '.join(f'{x:.1f}' for x in load_after)} at the end on {os.cpu_count()} "
        "CPUs (wall times stretch with it; control plane CPU does not)"
    )
    grouped = runs[-1]
    n_small, n_large = len(small), len(slos)
    figures: dict[str, Any] = {
        f"eval_cycle_{n_small}_slos_s": round(statistics.median(serve_times[n_small]), 3),
        f"eval_cycle_{n_large}_slos_s": round(statistics.median(serve_times[n_large]), 3),
        "eval_cycle_in_process_s": round(batched[n_small].median, 3),
        f"eval_cycle_in_process_{n_large}_slos_s": round(batched[n_large].median, 3),
        "eval_cycle_naive_plan_s": round(naive.median, 1),
        f"slo_report_{n_small}_slos_s": round(command.median, 3),
        "slo_report_command_cpu_s": round(statistics.median(command.cpu or [math.nan]), 3),
        "slo_report_in_process_s": round(report.median, 3),
        "slo_report_in_process_cpu_s": round(statistics.median(report.cpu or [math.nan]), 3),
        "slo_report_raw_batched_s": round(raw.median, 3),
        "slo_report_raw_per_query_s": round(naive.median, 1),
        "slo_report_queries": report.queries,
        "slo_report_raw_batched_queries": raw.queries,
        "eval_queries_per_cycle": batched[n_small].queries,
        "webhook_alerts_per_s": round(grouped.alerts_per_s, 1),
        "webhook_grouped_p99_ms": round(grouped.p99_ms, 1),
        "webhook_single_alert_per_s": round(runs[0].alerts_per_s, 1),
        "webhook_single_alert_p99_ms": round(runs[0].p99_ms, 1),
        "webhook_batch": grouped.batch,
        "webhook_p99_ms": round(at_rate.p99_ms, 1),
        "webhook_p50_ms": round(at_rate.p50_ms, 1),
        "webhook_rate_per_s": at_rate.rate,
        "webhook_rate_sent_per_s": round(at_rate.sent_per_s, 1),
        "webhook_rate_acknowledged_per_s": round(at_rate.acknowledged_per_s, 1),
        "webhook_rate_failed": at_rate.failed,
        "generator_cpu": {
            "webhook_single_alert_max": round(runs[0].generator_cpu, 3),
            "webhook_grouped_max": round(grouped.generator_cpu, 3),
            "webhook_at_rate": round(at_rate.generator_cpu, 3),
        },
        "alerts_lost": max(0, acknowledged - stored),
        f"rss_mb_{n_small}_slos": round(rss[n_small], 1),
        f"rss_mb_{n_large}_slos": round(rss[n_large], 1),
        f"rss_peak_mb_{n_large}_slos": round(peak_large, 1),
        "rss_mb_shipped_slos": round(rss_shipped, 1),
        "eval_cycle_cpu_s": round(statistics.median(batched[n_small].cpu or [math.nan]), 3),
        f"eval_cycle_cpu_{n_large}_slos_s": round(
            statistics.median(batched[n_large].cpu or [math.nan]), 3
        ),
        "prometheus_rule_round_s": round(rulings[n_small].round_s, 2),
        "prometheus_rule_iterations_missed": rulings[n_small].missed,
        "prometheus_rule_interval_s": args.rule_interval,
        f"prometheus_rule_round_{n_large}_slos_s": round(rulings[n_large].round_s, 2),
        f"prometheus_rule_iterations_missed_{n_large}_slos": rulings[n_large].missed,
        f"prometheus_rule_interval_{n_large}_slos_s": args.large_rule_interval,
        "slos": n_large,
        "loadavg_1m": [round(load_before[0], 1), round(load_after[0], 1)],
        "loadavg": [[round(x, 2) for x in load_before], [round(x, 2) for x in load_after]],
    }
    if not math.isfinite(figures["webhook_alerts_per_s"]):
        raise RuntimeError("no webhook deliveries measured")
    print(json.dumps(figures))  # noqa: T201 - the benchmark's last line


if __name__ == "__main__":
    main()
