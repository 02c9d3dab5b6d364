"""Failover benchmark: SIGKILL the primary under a numbered write load, measure RTO and loss.

Each repetition builds a fresh primary + streaming replica on free loopback ports, starts a write
probe through the multi-host connection string, kills the primary's whole process group, and lets
the control plane's failover detect, fence and promote. RTO is measured as a client sees it: from
the kill to the first acknowledged write on the new primary.

Rows: our settings with synchronous replication (RPO 0), with asynchronous replication, and a
baseline with Patroni's default timing (loop_wait 10 s, ttl 30 s: a leader key expires after up to
30 s without renewal) emulated with the same code by probing every 10 s and declaring failure after
3 missed probes. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from controlplane.core.processes import free_ports
from controlplane.failover.fencing import LocalFencer
from controlplane.failover.nodes import Node
from controlplane.failover.run import Detection, Watch, fail_over, watch_primary
from controlplane.failover.writeprobe import WriteProbe, missing_acknowledged
from controlplane.stack.backends import PostgresPrimary, PostgresReplica
from controlplane.stack.settings import StackSettings

SLOT = "bench_replica"


@dataclass(frozen=True)
class Run:
    mode: str
    detect_s: float
    promote_s: float
    rto_s: float
    acked: int
    lost: int
    lost_bytes: int | None


def one_run(
    *, base: Path, settings: StackSettings, synchronous: bool, interval: float, threshold: int
) -> Run:
    conf = {"fsync": "off"}
    if synchronous:
        conf["synchronous_standby_names"] = f"'FIRST 1 ({SLOT})'"
    workdir = Path(tempfile.mkdtemp(prefix="pair-", dir=base))
    workdir.chmod(0o755)  # the servers run as the unprivileged service account
    primary = PostgresPrimary(
        settings=settings,
        workdir=workdir / "primary",
        ports={"postgres": free_ports(1)[0]},
        extra_conf=conf,
    )
    primary.start()
    replica = PostgresReplica(
        settings=settings,
        workdir=workdir / "replica",
        ports={"postgres": free_ports(1)[0]},
        primary=primary,
        slot=SLOT,
    )
    try:
        replica.start()
        old = Node(name="primary", host="127.0.0.1", port=primary.port)
        new = Node(name=SLOT, host="127.0.0.1", port=replica.port)
        probe = WriteProbe(nodes=[old, new], interval=0.01)
        probe.prepare()
        probe.start()
        state = Watch()
        result: list[Detection | None] = []
        watcher = threading.Thread(
            target=lambda: result.append(
                watch_primary(
                    old, interval=interval, threshold=threshold, max_wait=300, state=state
                )
            ),
            daemon=True,
        )
        watcher.start()
        deadline = time.monotonic() + 60
        while state.healthy_probes < 1 or len(probe.report.acked) < 100:
            if time.monotonic() > deadline:
                raise RuntimeError("the pair never became healthy under load")
            time.sleep(0.02)
        assert primary.process is not None
        assert primary.process.pid is not None
        killed_at = datetime.now(UTC)
        os.killpg(primary.process.pid, signal.SIGKILL)
        watcher.join(timeout=320)
        detection = result[0] if result else None
        if detection is None:
            raise RuntimeError("failure not detected")
        record = fail_over(
            detection,
            standbys=[new],
            fencer=LocalFencer(data_dirs={old.name: primary.data_dir}),
            rpo=timedelta(minutes=5),
        )
        if not record.promoted or record.promoted_at is None:
            raise RuntimeError(f"not promoted: {record.refused}")
        if not probe.wait_for_recovery(timeout=60):
            raise RuntimeError(f"writes did not resume: {probe.report.last_error}")
        report = probe.stop()
        assert report.first_success_after_failure_at is not None
        lost = missing_acknowledged(new, report.acked)
        return Run(
            mode="sync" if synchronous else "async",
            detect_s=(detection.detected_at - killed_at).total_seconds(),
            promote_s=(record.promoted_at - detection.detected_at).total_seconds(),
            rto_s=(report.first_success_after_failure_at - killed_at).total_seconds(),
            acked=len(report.acked),
            lost=len(lost),
            lost_bytes=record.lost_bytes,
        )
    finally:
        replica.stop()
        primary.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="synchronous runs (default 10)")
    parser.add_argument("--async-repeat", type=int, default=3)
    parser.add_argument("--baseline-repeat", type=int, default=2)
    parser.add_argument("--interval", type=float, default=0.25, help="probe interval, seconds")
    parser.add_argument("--threshold", type=int, default=3, help="failed probes to declare failure")
    args = parser.parse_args()
    console = Console(width=150)
    settings = StackSettings()
    base = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    base.chmod(0o755)
    plans = (
        [("ours, synchronous", True, args.interval, args.threshold)] * args.repeat
        + [("ours, asynchronous", False, args.interval, args.threshold)] * args.async_repeat
        + [("baseline: Patroni default timing, sync", True, 10.0, 3)] * args.baseline_repeat
    )
    runs: dict[str, list[Run]] = {}
    try:
        for index, (label, synchronous, interval, threshold) in enumerate(plans, start=1):
            run = one_run(
                base=base,
                settings=settings,
                synchronous=synchronous,
                interval=interval,
                threshold=threshold,
            )
            runs.setdefault(label, []).append(run)
            console.print(
                f"[{index}/{len(plans)}] {label}: RTO {run.rto_s:.2f} s "
                f"(detect {run.detect_s:.2f} s, promote {run.promote_s:.2f} s), "
                f"{run.lost} of {run.acked} acknowledged writes lost"
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)

    table = Table(title="Failover: SIGKILL of the primary under write load")
    for column in (
        "configuration",
        "runs",
        "RTO median s",
        "RTO max s",
        "detect median s",
        "promote median s",
        "acked writes lost",
        "WAL bytes lost (max)",
    ):
        table.add_column(column, justify="left" if column == "configuration" else "right")
    for label, items in runs.items():
        table.add_row(
            label,
            str(len(items)),
            f"{statistics.median(r.rto_s for r in items):.2f}",
            f"{max(r.rto_s for r in items):.2f}",
            f"{statistics.median(r.detect_s for r in items):.2f}",
            f"{statistics.median(r.promote_s for r in items):.2f}",
            str(sum(r.lost for r in items)),
            str(max((r.lost_bytes or 0) for r in items)),
        )
    console.print(table)
    ours = runs.get("ours, synchronous", [])
    baseline = runs.get("baseline: Patroni default timing, sync", [])
    figures = {
        "rto_median_s": round(statistics.median(r.rto_s for r in ours), 3) if ours else None,
        "rto_max_s": round(max(r.rto_s for r in ours), 3) if ours else None,
        "acked_writes_lost": sum(r.lost for r in ours),
        "async_acked_writes_lost": sum(r.lost for r in runs.get("ours, asynchronous", [])),
        "baseline_patroni_timing_rto_median_s": round(
            statistics.median(r.rto_s for r in baseline), 3
        )
        if baseline
        else None,
    }
    print(json.dumps(figures))  # noqa: T201 - the benchmark's last line


if __name__ == "__main__":
    main()
