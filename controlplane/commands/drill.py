"""``controlplane drill``: DR drills on the local stack, measured and stored.

``switchover`` moves the primary role to the standby under a numbered write probe (no write may
be lost); ``failover`` SIGKILLs the primary and lets the control plane detect, fence and promote.
Both print the RTO a client saw and the acknowledged writes lost, compare them with the tier's
RTO / RPO, and store the drill so the DR checks and the dashboards see it.
"""

from __future__ import annotations

import os
import signal
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from controlplane.core.config import ControlPlaneSettings
from controlplane.failover.fencing import LocalFencer
from controlplane.failover.local import LocalNodeControl
from controlplane.failover.nodes import Node, NodeUnreachable, probe
from controlplane.failover.run import Detection, Watch, fail_over, watch_primary
from controlplane.failover.switchover import SwitchoverAborted, switchover_drill
from controlplane.failover.writeprobe import WriteProbe, missing_acknowledged
from controlplane.stack.backends import PostgresPrimary, PostgresReplica
from controlplane.stack.runner import LocalStack
from controlplane.stack.settings import REPO_ROOT, StackSettings
from controlplane.store.database import Database
from controlplane.store.drills import NewDrill, record_drill
from controlplane.targets.policy import load_dr_policy

app = typer.Typer(help="DR drills on the local stack (measured RTO / RPO, stored).")
console = Console()
err = Console(stderr=True)

HomeOption = Annotated[
    Path, typer.Option("--home", envvar="STACK_HOME", help="The local stack's folder.")
]
DatabaseOption = Annotated[str, typer.Option(help="Database name in the DR policy.")]


def _stack(home: Path) -> LocalStack:
    return LocalStack.at(settings=StackSettings(), home=home)


def _topology(home: Path) -> tuple[Node, Node, dict[str, PostgresPrimary]]:
    stack = _stack(home)
    if not stack.running():
        err.print(f"the local stack in {home} is not running (controlplane stack up)")
        raise typer.Exit(1)
    backends: dict[str, PostgresPrimary] = {}
    nodes: list[Node] = []
    for name in (PostgresPrimary.name, PostgresReplica.name):
        backend = stack.backends[name]
        assert isinstance(backend, PostgresPrimary)
        node = Node(name=name, host="127.0.0.1", port=backend.port)
        backends[name] = backend
        nodes.append(node)
    primary = standby = None
    seen: list[str] = []
    for node in nodes:
        try:
            status = probe(node, timeout=2)
        except NodeUnreachable as exc:
            seen.append(f"{node.name}: unreachable ({str(exc).splitlines()[0]})")
            continue
        if status.in_recovery:
            standby = node
            seen.append(f"{node.name}: standby ({'streaming' if status.streaming else 'idle'})")
        else:
            primary = node
            seen.append(f"{node.name}: primary")
    if primary is None or standby is None:
        err.print(
            "need a writable primary and a streaming standby in the local stack; found "
            + "; ".join(seen)
        )
        raise typer.Exit(1)
    return primary, standby, backends


def _store(drill: NewDrill) -> None:
    database = Database.from_settings(ControlPlaneSettings())
    try:
        database.migrate()
        with database.writer() as session:
            record_drill(session, drill=drill)
    finally:
        database.dispose()


def _targets(database: str) -> tuple[timedelta, timedelta]:
    policy = load_dr_policy()
    entry = next((d for d in policy.spec.databases if d.name == database), None)
    if entry is None:
        err.print(f"database {database} is not in the DR policy")
        raise typer.Exit(2)
    tier = policy.spec.tiers[entry.tier]
    return tier.rto, tier.rpo


def _report(kind: str, rto: timedelta, lost: int, acked: int, rto_target: timedelta) -> None:
    verdict = "[green]within[/green]" if rto <= rto_target else "[red]over[/red]"
    console.print(
        f"{kind} drill: RTO {rto.total_seconds():.2f} s ({verdict} the {rto_target} target), "
        f"{lost} of {acked} acknowledged writes lost"
    )


@app.command("switchover")
def switchover_command(
    home: HomeOption = REPO_ROOT / ".stack", database: DatabaseOption = "inventory"
) -> None:
    """Planned switchover under a write probe; the old primary follows the new one."""
    rto_target, rpo_target = _targets(database)
    primary, standby, backends = _topology(home)
    control = LocalNodeControl(dict(backends), on_started=_stack(home).adopt)
    console.print(f"switching over {primary.name} → {standby.name} under a write probe")
    started = datetime.now(UTC)
    try:
        result, record = switchover_drill(
            database=database,
            primary=primary,
            standby=standby,
            control=control,
            rto_target=rto_target,
            rpo_target=rpo_target,
        )
    except SwitchoverAborted as exc:
        err.print(f"switchover aborted, nothing promoted: {exc}")
        raise typer.Exit(1) from exc
    _store(
        NewDrill(
            database=database,
            kind="switchover",
            started_at=started,
            finished_at=result.finished_at,
            succeeded=result.succeeded,
            measured_rto_s=result.measured_rto.total_seconds(),
            measured_rpo_s=0.0 if result.lost_acknowledged_writes == 0 else None,
            lost_acknowledged_writes=result.lost_acknowledged_writes,
            acknowledged_writes=result.acknowledged_writes,
            details={"old_primary_following": record.old_primary_following},
        )
    )
    _report(
        "switchover",
        result.measured_rto,
        result.lost_acknowledged_writes,
        result.acknowledged_writes,
        rto_target,
    )


@app.command("failover")
def failover_command(
    home: HomeOption = REPO_ROOT / ".stack", database: DatabaseOption = "inventory"
) -> None:
    """SIGKILL the primary under a write probe; detect, fence and promote; measure and store."""
    rto_target, rpo_target = _targets(database)
    primary, standby, backends = _topology(home)
    writes = WriteProbe(nodes=[primary, standby])
    writes.prepare()
    writes.start()
    state = Watch()
    found: list[Detection | None] = []
    watcher = threading.Thread(
        target=lambda: found.append(
            watch_primary(primary, interval=0.25, threshold=3, max_wait=120, state=state)
        ),
        daemon=True,
    )
    watcher.start()
    try:
        if not writes.wait_for_writes(100, timeout=30):
            raise typer.Exit(1)
        while state.healthy_probes < 2:
            threading.Event().wait(0.05)
        started = datetime.now(UTC)
        process = backends[primary.name].process
        pid = _postmaster_pid(backends[primary.name].data_dir) if process is None else process.pid
        if pid is None:
            err.print(f"no postmaster pid for {primary.name}")
            raise typer.Exit(1)
        console.print(f"SIGKILL {primary.name} (pid {pid}) under a write probe")
        os.killpg(pid, signal.SIGKILL)
        watcher.join(timeout=150)
        detection = found[0] if found else None
        if detection is None:
            err.print("the primary failure was not detected")
            raise typer.Exit(1)
        record = fail_over(
            detection,
            standbys=[standby],
            fencer=LocalFencer(data_dirs={primary.name: backends[primary.name].data_dir}),
            rpo=rpo_target,
        )
        if not record.promoted:
            err.print(f"failover refused: {record.refused}")
            raise typer.Exit(1)
        writes.wait_for_recovery(timeout=60)
    finally:
        report = writes.stop()
    rto = (
        (report.first_success_after_failure_at - started)
        if report.first_success_after_failure_at is not None
        else timedelta(seconds=60)
    )
    lost = missing_acknowledged(standby, report.acked)
    _store(
        NewDrill(
            database=database,
            kind="failover",
            started_at=started,
            finished_at=datetime.now(UTC),
            succeeded=rto <= rto_target and (not lost or rpo_target > timedelta(0)),
            measured_rto_s=rto.total_seconds(),
            measured_rpo_s=None,
            lost_acknowledged_writes=len(lost),
            acknowledged_writes=len(report.acked),
            details=record.evidence(),
        )
    )
    _report("failover", rto, len(lost), len(report.acked), rto_target)
    console.print(f"{primary.name} is fenced: a restart brings it back read-only")


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        first = (data_dir / "postmaster.pid").read_text(encoding="utf-8").splitlines()[0]
    except (OSError, IndexError):
        return None
    return int(first) if first.strip().isdigit() else None
