"""Failover benchmark on the Patroni engine: what a client sees when the primary fails.

Two Patroni clusters on etcd (two members each, synchronous mode: a commit returns only once
the synchronous standby has it) are measured one after the other: one with the stack's timing,
the critical tier's (:data:`controlplane.stack.patroni.FAST_TIMING`, chosen by
:func:`~controlplane.stack.patroni.timing_for_tier`; docs/failover-tuning.md), and the baseline
with Patroni's default timing. Each round runs a numbered write probe through the multi-host
connection string (libpq finds the writable member), injects one fault into whichever member
leads, at a random point of its HA loop, and measures:

- postmaster SIGKILL: the primary's PostgreSQL killed, its Patroni alive;
- member SIGKILL: the primary's Patroni and PostgreSQL killed at once (a lost host); the member
  is started again once writes have resumed;
- switchover: a planned change of primary (Patroni's ``POST /switchover``).

RTO: what the client sees, from its first failed write to the first acknowledged one after it
(after a SIGKILL the first write fails within milliseconds; a switchover keeps taking writes
until the primary shuts down); the table also shows the time from the fault or the switchover
request to that write. Lost: acknowledged numbers the new primary lacks once the cluster is whole
again. Rejoin: from when the old primary can come back (writes resumed; for a killed member,
its restart) until Patroni reports it streaming from the new primary as its synchronous
standby. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from controlplane.failover.nodes import Node
from controlplane.failover.writeprobe import WriteProbe, missing_acknowledged
from controlplane.stack.patroni import (
    FAST_TIMING,
    PATRONI_DEFAULT_TIMING,
    PatroniCluster,
    PatroniMember,
    PatroniTiming,
)
from controlplane.stack.settings import StackSettings

#: Acknowledged writes before a fault: the probe runs against a healthy primary first.
WARM_WRITES = 100
#: Acknowledged writes after recovery, so that the loss check covers the new primary's writes too.
AFTER_WRITES = 50


class BenchError(RuntimeError):
    """A round did not complete: the benchmark stops rather than report a partial figure."""


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    inject: Callable[[PatroniCluster, PatroniMember, PatroniMember], None]
    #: Whether the faulted member is gone until the benchmark starts it again.
    restarts_member: bool = False


def _switchover(_: PatroniCluster, leader: PatroniMember, candidate: PatroniMember) -> None:
    answer = httpx.post(
        f"{leader.api_url}/switchover",
        json={"leader": leader.member, "candidate": candidate.member},
        timeout=60,
    )
    if answer.status_code != 200:
        raise BenchError(f"switchover refused: {answer.status_code} {answer.text}")


def _kill_postmaster(_: PatroniCluster, leader: PatroniMember, __: PatroniMember) -> None:
    leader.kill_postmaster()


def _kill_member(_: PatroniCluster, leader: PatroniMember, __: PatroniMember) -> None:
    leader.kill()


SCENARIOS = {
    s.key: s
    for s in (
        Scenario(key="crash", label="postmaster SIGKILL", inject=_kill_postmaster),
        Scenario(
            key="member_kill", label="member SIGKILL", inject=_kill_member, restarts_member=True
        ),
        Scenario(key="switchover", label="switchover", inject=_switchover),
    )
}


@dataclass(frozen=True)
class Round:
    #: First failed write → first acknowledged write after it.
    rto_s: float
    #: The fault (or switchover request) → that write.
    after_fault_s: float
    acked: int
    lost: int
    #: None when the primary stayed where it was (nothing had to rejoin).
    rejoin_s: float | None


def _nodes(cluster: PatroniCluster) -> list[Node]:
    return [Node(name=m.member, host="127.0.0.1", port=m.port) for m in cluster.members]


def one_round(cluster: PatroniCluster, scenario: Scenario, *, ready_timeout: float) -> Round:
    leader = cluster.wait_ready(ready_timeout)
    candidate = next(m for m in cluster.members if m is not leader)
    probe = WriteProbe(nodes=_nodes(cluster), interval=0.01)
    probe.prepare()
    probe.start()
    try:
        if not probe.wait_for_writes(WARM_WRITES, timeout=30):
            raise BenchError(f"no writes before the fault: {probe.report.last_error}")
        # A real fault lands anywhere in the leader's HA loop (since its last lease renewal);
        # rounds of equal length would otherwise all hit the same point of it.
        time.sleep(random.uniform(0, cluster.timing.loop_wait))
        faulted_at = datetime.now(UTC)
        scenario.inject(cluster, leader, candidate)
        if not probe.wait_for_recovery(timeout=ready_timeout):
            raise BenchError(f"writes did not resume: {probe.report.last_error}")
        # The probe keeps writing while the old primary comes back.
        back_from = datetime.now(UTC)
        if scenario.restarts_member:
            leader.spawn()
        new_leader = cluster.wait_ready(ready_timeout)
        whole_at = datetime.now(UTC)
        probe.wait_for_writes(len(probe.report.acked) + AFTER_WRITES, timeout=30)
    finally:
        report = probe.stop()
    resumed_at = report.first_success_after_failure_at
    if report.first_failure_at is None or resumed_at is None:
        raise BenchError("the probe never saw the primary fail")
    if report.first_failure_at < faulted_at:
        raise BenchError(f"a write failed before the fault: {report.last_error}")
    if not scenario.restarts_member:
        back_from = resumed_at  # the old primary could follow from the first write on the new
    lost = missing_acknowledged(
        Node(name=new_leader.member, host="127.0.0.1", port=new_leader.port), report.acked
    )
    return Round(
        rto_s=(resumed_at - report.first_failure_at).total_seconds(),
        after_fault_s=(resumed_at - faulted_at).total_seconds(),
        acked=len(report.acked),
        lost=len(lost),
        rejoin_s=None if new_leader is leader else (whole_at - back_from).total_seconds(),
    )


def run_timing(
    *,
    settings: StackSettings,
    base: Path,
    timing: PatroniTiming,
    label: str,
    scenarios: list[Scenario],
    rounds: int,
    console: Console,
) -> dict[str, list[Round]]:
    """Every scenario ``rounds`` times on one cluster of this timing."""
    workdir = Path(tempfile.mkdtemp(prefix="patroni-", dir=base))
    workdir.chmod(0o755)  # the members run as the service account
    cluster = PatroniCluster.on_free_ports(
        settings=settings, base=workdir, timing=timing, synchronous_mode=True
    )
    ready_timeout = float(3 * timing.ttl + 6 * timing.loop_wait + 60)
    results: dict[str, list[Round]] = {}
    cluster.start()
    try:
        for scenario in scenarios:
            for index in range(1, rounds + 1):
                result = one_round(cluster, scenario, ready_timeout=ready_timeout)
                results.setdefault(scenario.key, []).append(result)
                rejoin = "-" if result.rejoin_s is None else f"{result.rejoin_s:.2f} s"
                console.print(
                    f"{label} · {scenario.label} [{index}/{rounds}]: RTO {result.rto_s:.2f} s "
                    f"({result.after_fault_s:.2f} s after the fault), "
                    f"{result.lost} of {result.acked} acknowledged writes lost, rejoin {rejoin}"
                )
    finally:
        cluster.stop()
    return results


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="rounds per fault (default 10)")
    parser.add_argument(
        "--baseline-rounds", type=int, default=None, help="rounds with Patroni's default timing"
    )
    args = parser.parse_args()
    baseline_rounds = args.rounds if args.baseline_rounds is None else args.baseline_rounds
    console = Console(width=150)
    settings = StackSettings()
    base = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    base.chmod(0o755)
    plans = [
        ("tuned", FAST_TIMING, args.rounds),
        ("Patroni default", PATRONI_DEFAULT_TIMING, baseline_rounds),
    ]
    measured: dict[tuple[str, str], list[Round]] = {}
    try:
        for label, timing, rounds in plans:
            results = run_timing(
                settings=settings,
                base=base,
                timing=timing,
                label=label,
                scenarios=list(SCENARIOS.values()),
                rounds=rounds,
                console=console,
            )
            for key, items in results.items():
                measured[(label, key)] = items
    finally:
        shutil.rmtree(base, ignore_errors=True)

    table = Table(title="Patroni failover under a numbered write probe, synchronous replication")
    for column in (
        "timing",
        "fault",
        "rounds",
        "RTO median s",
        "RTO max s",
        "fault → write median s",
        "acked writes",
        "acked writes lost",
        "rejoin median s",
    ):
        table.add_column(column, justify="left" if column in {"timing", "fault"} else "right")
    for (label, key), items in measured.items():
        rejoins = [r.rejoin_s for r in items if r.rejoin_s is not None]
        table.add_row(
            label,
            SCENARIOS[key].label,
            str(len(items)),
            f"{statistics.median(r.rto_s for r in items):.2f}",
            f"{max(r.rto_s for r in items):.2f}",
            f"{statistics.median(r.after_fault_s for r in items):.2f}",
            str(sum(r.acked for r in items)),
            str(sum(r.lost for r in items)),
            f"{statistics.median(rejoins):.2f}" if rejoins else "-",
        )
    console.print(table)

    def rto(label: str, key: str) -> float | None:
        return median([r.rto_s for r in measured.get((label, key), [])])

    tuned_rejoins = [
        r.rejoin_s
        for (label, _), items in measured.items()
        if label == "tuned"
        for r in items
        if r.rejoin_s is not None
    ]
    figures = {
        "patroni_crash_rto_median_s": rto("tuned", "crash"),
        "patroni_member_kill_rto_median_s": rto("tuned", "member_kill"),
        "patroni_default_member_kill_rto_median_s": rto("Patroni default", "member_kill"),
        "switchover_rto_median_s": rto("tuned", "switchover"),
        "acked_writes_lost": sum(r.lost for items in measured.values() for r in items),
        "rejoin_median_s": median(tuned_rejoins),
        "patroni_default_crash_rto_median_s": rto("Patroni default", "crash"),
        "patroni_default_switchover_rto_median_s": rto("Patroni default", "switchover"),
        "switchover_after_request_median_s": median(
            [r.after_fault_s for r in measured.get(("tuned", "switchover"), [])]
        ),
        "rounds": sum(len(items) for items in measured.values()),
    }
    print(json.dumps(figures))  # noqa: T201 - the benchmark's last line


if __name__ == "__main__":
    main()
