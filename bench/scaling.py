"""Scaling reaction benchmark: ``make bench-scaling``.

Each round starts a fresh inventory API (gunicorn, one worker, fault injection configured), a
Prometheus scraping it every 2 s, and a fresh ``controlplane serve`` (the shipped action policy,
orchestrator ``local`` on the API's pidfile, evaluation off). The scaling drill then sends
open-loop reads at ``--rate``/s, injects ``--service-time-ms`` of slowness per read (the worker
is now over capacity and the read-latency SLO burns) and measures the time from that onset to
the first response served by a worker the control plane added.

Baselines, measured in the same rounds:

* **CPU-only HPA**: the HPA algorithm (our ``recommend``, utilisation signal only, target 70 %)
  fed each second with the workers' real CPU utilisation read from ``/proc`` — what a
  utilisation-driven autoscaler (the Kubernetes HPA, or KEDA on CPU) sees of this overload;
* **page alert** (computed, not waited for): the multi-window page alert (1 h and 5 m burn above
  14.4×) of an SLO with a normal hour behind it fires at the earliest after
  ``3600 s × 14.4 × (1 − objective) / bad share``, with the bad share measured in the round.

CPU utilisation is that of the workers running at onset, over the same span as our reaction
(onset → added worker serving); the boot of an added worker is not load and does not count.

Then a **Kubernetes round** on the real cluster of the test stack (``bench/kubernetes.py``; skip it
with ``--no-kubernetes``): burn onset → the Deployment's readyReplicas raised through the HPA,
against the CPU-only HPA on the same cluster, and one capacity cycle over 1,000 Deployments with
HPAs, watched caches against one GET per object.

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import kubernetes as k8s_round
from bench.bench_api import (
    HOST,
    Proc,
    app_env,
    backends,
    inventory_database,
    log,
    out,
    start_api,
)
from controlplane.actions.recommend import ScalingSpec, Signal, recommend
from controlplane.actions.scaling_drill import ScalingDrillResult, run_scaling_drill
from controlplane.core.processes import free_ports
from controlplane.core.specs import load_spec_paths
from controlplane.stack.backends import Prometheus
from controlplane.stack.settings import StackSettings
from controlplane.store.audit import list_audit
from controlplane.store.database import Database

REPO_ROOT = Path(__file__).resolve().parents[1]
SLOS = load_spec_paths([REPO_ROOT / "slo" / "specs" / "inventory-api.yaml"])
CPU_TARGET_PERCENT = 70.0
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Round:
    drill: ScalingDrillResult
    decision_after_onset_s: float | None
    cpu_peak_percent: float
    cpu_hpa_desired_max: int
    page_alert_earliest_s: float | None


class CpuWatch:
    """Samples, each second, the CPU utilisation of the workers a gunicorn master runs at the
    start (workers added later are not counted: their boot is not load) and asks the HPA
    algorithm, utilisation only, what it would do."""

    def __init__(self, master_pid: int) -> None:
        self.master_pid = master_pid
        self.samples: list[tuple[float, float, int]] = []  # (t, utilisation %, desired)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _children(self) -> list[int]:
        found: list[int] = []
        for task in Path(f"/proc/{self.master_pid}/task").glob("*/children"):
            found += [int(p) for p in task.read_text().split()]
        return found

    @staticmethod
    def _cpu_seconds(pid: int) -> float:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / TICKS

    def _run(self) -> None:
        workers = self._children()
        previous = {pid: self._cpu_seconds(pid) for pid in workers}
        last = time.monotonic()
        while not self._stop.wait(1.0):
            now = time.monotonic()
            current = {pid: self._cpu_seconds(pid) for pid in workers}
            used = sum(current[p] - previous[p] for p in workers)
            utilisation = 100.0 * used / max(now - last, 1e-6) / max(len(workers), 1)
            at = datetime.now(UTC)
            desired = recommend(
                spec=ScalingSpec(min_replicas=1, max_replicas=8),
                current=len(workers),
                signals=[
                    Signal(
                        name="cpu",
                        kind="utilization",
                        value=utilisation,
                        target=CPU_TARGET_PERCENT,
                        observed_at=at,
                    )
                ],
                now=at,
            ).desired
            self.samples.append((now, utilisation, desired))
            previous, last = current, now

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def one_round(
    number: int, *, home: Path, base_env: dict[str, str], skus: list[str], args: argparse.Namespace
) -> Round:
    work = home / f"round-{number}"
    work.mkdir()
    api_port, cp_port, prom_port = free_ports(3)
    pidfile, faults = work / "gunicorn.pid", work / "faults.json"
    api = start_api(
        env=app_env(base_env, INVENTORY_FAULTS_FILE=str(faults), INVENTORY_ACCESS_LOG="false"),
        port=api_port,
        workers=1,
        logs=work,
        pidfile=pidfile,
    )
    prometheus = Prometheus(
        settings=StackSettings(),
        workdir=work / "prometheus",
        ports={"http": prom_port},
        config={
            "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
            "scrape_configs": [
                {"job_name": "inventory", "static_configs": [{"targets": [f"{HOST}:{api_port}"]}]}
            ],
        },
    )
    prometheus.start()
    token = secrets.token_urlsafe(24)
    database_url = f"sqlite:///{work / 'controlplane.db'}"
    control_plane = Proc(
        [
            sys.executable,
            "-m",
            "controlplane.commands.serve",
            "--log-level",
            "info",
        ],
        env={
            **os.environ,
            "CONTROLPLANE_HOST": HOST,
            "CONTROLPLANE_PORT": str(cp_port),
            "CONTROLPLANE_DATA_DIR": str(work),
            "CONTROLPLANE_DATABASE_URL": database_url,
            "CONTROLPLANE_WEBHOOK_TOKEN": token,
            "CONTROLPLANE_PROMETHEUS_URL": prometheus.url,
            "CONTROLPLANE_EVALUATION_ENABLED": "false",
            "CONTROLPLANE_ORCHESTRATOR": "local",
            "CONTROLPLANE_LOCAL_PIDFILE": str(pidfile),
        },
        log_path=work / "controlplane.log",
    )
    cpu = CpuWatch(int(pidfile.read_text().strip()))
    onset_wall: list[datetime] = []
    onset_clock: list[float] = []

    def mark_onset() -> None:
        onset_wall.append(datetime.now(UTC))
        onset_clock.append(time.monotonic())

    cycle = itertools.cycle(skus)
    try:
        deadline = time.monotonic() + 60
        while "action engine started" not in (work / "controlplane.log").read_text():
            if time.monotonic() > deadline or control_plane.popen.poll() is not None:
                raise SystemExit(f"controlplane serve did not start; see {work}/controlplane.log")
            time.sleep(0.3)
        cpu.start()
        drill = run_scaling_drill(
            api_url=f"http://{HOST}:{api_port}",
            faults_file=faults,
            path=lambda: f"/api/v1/stock/{next(cycle)}",
            rate=args.rate,
            service_time_ms=args.service_time_ms,
            warmup_s=args.warmup,
            timeout_s=args.timeout,
            settle_s=args.settle,
            on_progress=lambda line: log(f"round {number}: {line}"),
            on_onset=mark_onset,
        )
    finally:
        cpu.stop()
        control_plane.stop()
        prometheus.stop()
        api.stop()
    database = Database.from_url(database_url)
    try:
        with database.reader() as session:
            taken = [
                e
                for e in list_audit(session, action="scale_out")
                if e.decision == "taken" and e.outcome == "succeeded"
            ]
    finally:
        database.dispose()
    first = min((e.at for e in taken), default=None)
    decided = (first - onset_wall[0]).total_seconds() if first and onset_wall else None
    start = onset_clock[0] if onset_clock else 0.0
    end = start + (drill.reaction_s if drill.reaction_s is not None else args.timeout)
    span = [(u, d) for t, u, d in cpu.samples if start <= t <= end]
    bad = drill.during.over_threshold
    objective = next(s.target for s in SLOS if s.name == "read-latency")
    return Round(
        drill=drill,
        decision_after_onset_s=None if decided is None else round(decided, 2),
        cpu_peak_percent=round(max((u for u, _ in span), default=0.0), 1),
        cpu_hpa_desired_max=max((d for _, d in span), default=1),
        page_alert_earliest_s=round(3600 * 14.4 * (1 - objective) / bad, 1) if bad else None,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=15.0, help="reads per second")
    parser.add_argument("--service-time-ms", type=int, default=100)
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--settle", type=float, default=20.0)
    parser.add_argument(
        "--kubernetes",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the Kubernetes round (real API server, controllers, KWOK)",
    )
    parser.add_argument("--k8s-rounds", type=int, default=3)
    parser.add_argument("--k8s-workloads", type=int, default=1000)
    parser.add_argument("--k8s-cycles", type=int, default=5)
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    skus = [f"SCALE-{i:03d}" for i in range(20)]
    rounds: list[Round] = []
    try:
        with backends(home, auth=False) as (primary, redis, _):
            dsn = inventory_database(primary, skus)
            base = {"INVENTORY_DATABASE_URL": dsn, "INVENTORY_REDIS_URL": redis.url}
            for number in range(1, args.rounds + 1):
                rounds.append(one_round(number, home=home, base_env=base, skus=skus, args=args))
    finally:
        shutil.rmtree(home, ignore_errors=True)

    table = Table(title="Scaling reaction: burn onset → an added worker serves traffic")
    for column in (
        "round",
        "reaction s (ours)",
        "scale-out decided s",
        "p95 ms during → after",
        "CPU peak % / HPA-on-CPU desired",
        "page alert earliest s (computed)",
    ):
        table.add_column(column)
    for number, r in enumerate(rounds, start=1):
        after = r.drill.after.p95_ms if r.drill.after else None
        table.add_row(
            str(number),
            "no reaction" if r.drill.reaction_s is None else f"{r.drill.reaction_s:.1f}",
            "-" if r.decision_after_onset_s is None else f"{r.decision_after_onset_s:.1f}",
            f"{r.drill.during.p95_ms} → {after}",
            f"{r.cpu_peak_percent:.0f} / {r.cpu_hpa_desired_max} (of 1)",
            "-" if r.page_alert_earliest_s is None else f"{r.page_alert_earliest_s:.0f}",
        )
    Console().print(table)
    reactions = [r.drill.reaction_s for r in rounds if r.drill.reaction_s is not None]
    pages = [r.page_alert_earliest_s for r in rounds if r.page_alert_earliest_s is not None]
    figures: dict[str, float | int | None] = {
        "scale_reaction_s": round(statistics.median(reactions), 2) if reactions else None,
        "scale_reaction_max_s": max(reactions) if reactions else None,
        "rounds_reacted": len(reactions),
        "rounds": len(rounds),
        "scale_decision_median_s": round(
            statistics.median(
                [r.decision_after_onset_s for r in rounds if r.decision_after_onset_s is not None]
                or [math.nan]
            ),
            2,
        ),
        "cpu_only_hpa_scaled_rounds": sum(1 for r in rounds if r.cpu_hpa_desired_max > 1),
        "cpu_peak_percent_max": max(r.cpu_peak_percent for r in rounds),
        "page_alert_earliest_median_s": round(statistics.median(pages), 1) if pages else None,
        "latency_p95_ms_after_median": statistics.median(
            [r.drill.after.p95_ms for r in rounds if r.drill.after and r.drill.after.p95_ms]
            or [math.nan]
        ),
    }
    if args.kubernetes:
        figures.update(kubernetes_figures(args))
    out(json.dumps(figures))


def kubernetes_figures(args: argparse.Namespace) -> dict[str, float | int | None]:
    scale, capacity = k8s_round.run(
        rounds=args.k8s_rounds, workloads=args.k8s_workloads, cycles=args.k8s_cycles
    )
    table = Table(title="Kubernetes: burn onset → readyReplicas raised (ours) vs the CPU-only HPA")
    for column in ("round", "ours s", "decided s", "replicas", "CPU-only HPA s", "replicas"):
        table.add_column(column)
    for number, r in enumerate(scale, start=1):
        table.add_row(
            str(number),
            "no reaction" if r.reaction_s is None else f"{r.reaction_s:.1f}",
            "-" if r.decided_s is None else f"{r.decided_s:.1f}",
            str(r.replicas),
            "no reaction" if r.cpu_hpa_reaction_s is None else f"{r.cpu_hpa_reaction_s:.1f}",
            str(r.cpu_hpa_replicas),
        )
    Console().print(table)
    cycle = Table(title=f"One capacity cycle over {capacity.workloads} Deployments with HPAs")
    for column in ("read", "median s", "requests per cycle"):
        cycle.add_column(column)
    cycle.add_row("list + watch caches (ours)", f"{capacity.watched_cycle_s:.3f}", "0")
    cycle.add_row(
        "one GET per object (baseline)",
        f"{capacity.get_per_object_cycle_s:.3f}",
        str(2 * capacity.workloads),
    )
    Console().print(cycle)
    ours = [r.reaction_s for r in scale if r.reaction_s is not None]
    cpu = [r.cpu_hpa_reaction_s for r in scale if r.cpu_hpa_reaction_s is not None]
    return {
        "k8s_scale_reaction_s": round(statistics.median(ours), 2) if ours else None,
        "k8s_scale_reaction_max_s": max(ours) if ours else None,
        "k8s_rounds_reacted": len(ours),
        "k8s_cpu_hpa_reaction_s": round(statistics.median(cpu), 2) if cpu else None,
        "capacity_check_1000_workloads_s": capacity.watched_cycle_s,
        "capacity_check_1000_workloads_get_per_object_s": capacity.get_per_object_cycle_s,
        "capacity_initial_sync_s": capacity.initial_sync_s,
    }


if __name__ == "__main__":
    main()
