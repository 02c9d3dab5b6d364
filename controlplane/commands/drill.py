"""``controlplane drill``: drills on the local stack (or the control plane at ``--url``),
measured and stored.

On a control plane whose failover driver is Patroni (``GET /api/v1/dr`` says which), both drills
are the control plane's own: ``POST /api/v1/dr/drills/run`` decides ``run_drill`` through its
gate for the operator, and Patroni moves the leader under the control plane's numbered write
probe — ``switchover`` with ``POST /switchover``, ``failover`` with ``POST /failover`` to the
candidate the control plane chose. The control plane stores the drill where its DR checks and
the console read it; the command prints the decision and the figures.

With the local driver (two plain PostgreSQL servers of the stack): ``switchover`` moves the
primary role to the standby under the write probe (the stack's control plane, when it runs,
has its kill switch on for the planned stop); ``failover`` SIGKILLs the primary and lets the
stack's control plane detect, fence and promote (it needs the control plane: this command never
fences). Both print the RTO a client saw and the acknowledged writes lost, compared with the
tier's RTO / RPO, and store the drill where the stack's control plane reads it: through its API
(``POST /api/v1/dr/drills``) when it runs, else straight into its store.

``scaling`` injects slowness into the stack's API under extra load; the running control plane
must add workers (TTIN). It prints the reaction time and the audited decisions.

``restore`` validates a restore now with pgBackRest: the newest backup restored to a fresh
restore point and, separately, a point in time, each started in a scratch server on a free port,
checked against the source (row counts, the probe table's checksum, the DR policy's
invariants), stopped and removed. It reads the settings the stack's control plane runs with
(its pgBackRest configuration, database nodes and DR policy), prints each restore's time to
come up against the tier's RTO and every check, and stores the restores like the scheduled
ones, so the DR check and the console see them.

``crash`` (``make demo-failover``) SIGKILLs the Patroni member that leads the stack's database
(a crashed host) under the write probe, measures what a client sees, starts the killed member
again (it rejoins as a replica) and shows the failover the stack's control plane audited.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from controlplane.actions.backups import restore_summary
from controlplane.actions.drills import DrillKind, drill_record
from controlplane.actions.engine import INEFFECTIVE
from controlplane.actions.policy import ServiceScaling, load_action_policy
from controlplane.actions.scaling_drill import run_scaling_drill
from controlplane.actions.service import source_of, validation_settings
from controlplane.actuators.base import ActuatorError
from controlplane.actuators.local import LocalGunicornActuator
from controlplane.backups.pgbackrest import PgBackRest
from controlplane.backups.records import restore_record
from controlplane.backups.validation import RestoreRun, validate_restores
from controlplane.client.http import ClientError, ControlPlaneClient
from controlplane.client.models import AuditEntry
from controlplane.core.config import ControlPlaneSettings, environment_names
from controlplane.core.errors import ControlPlaneError
from controlplane.core.oidc import inventory_api_auth
from controlplane.core.processes import postmaster_pid
from controlplane.failover.local import LocalNodeControl
from controlplane.failover.nodes import Node, NodeUnreachable, probe
from controlplane.failover.switchover import SwitchoverAborted, switchover_drill
from controlplane.failover.writeprobe import ProbeReport, WriteProbe, missing_acknowledged
from controlplane.stack.backends import PostgresPrimary, PostgresReplica
from controlplane.stack.patroni import PatroniMember
from controlplane.stack.runner import ControlPlane, LocalStack
from controlplane.stack.settings import REPO_ROOT, StackSettings
from controlplane.stack.topology import MemberView
from controlplane.stack.workload import InventoryAPI, api_requests
from controlplane.store.backups import NewRestoreRun, record_restore_run
from controlplane.store.database import Database
from controlplane.store.drills import NewDrill, record_drill
from controlplane.targets.policy import PolicyError, load_dr_policy

app = typer.Typer(help="DR drills on the local stack (measured RTO / RPO, stored).")
console = Console()
err = Console(stderr=True)

HomeOption = Annotated[
    Path, typer.Option("--home", envvar="STACK_HOME", help="The local stack's folder.")
]
DatabaseOption = Annotated[str, typer.Option(help="Database name in the DR policy.")]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="A control plane's base URL (e.g. http://127.0.0.1:8080) to run the drill; "
        "default: the local stack's, when it runs.",
    ),
]
TokenFileOption = Annotated[
    Path | None,
    typer.Option("--token-file", help="File holding an operator token of the --url control plane."),
]


def _stack(home: Path) -> LocalStack:
    return LocalStack.at(settings=StackSettings(), home=home)


def _control_plane(home: Path) -> ControlPlaneClient | None:
    """The stack's running ``controlplane serve``, reached through its API with the admin token:
    when it runs, it owns failover (the drills only break things and measure) and it stores the
    drills (wherever it runs, its store is the one its DR checks and console read)."""
    stack = _stack(home)
    backend = stack.backends.get(ControlPlane.name)
    if not isinstance(backend, ControlPlane) or ControlPlane.name not in stack.running():
        return None
    try:
        token = backend.admin_token_file.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return ControlPlaneClient(base_url=backend.url, token=token, timeout=5)


def _reach(home: Path, url: str | None, token_file: Path | None) -> ControlPlaneClient | None:
    """The control plane at ``--url`` (with ``--token-file``), else the stack's when it runs."""
    if url is None:
        return _control_plane(home)
    if token_file is None:
        err.print("--url needs --token-file (a file holding an operator token)")
        raise typer.Exit(2)
    try:
        token = token_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        err.print(f"--token-file: cannot read {token_file}: {exc}")
        raise typer.Exit(2) from exc
    return ControlPlaneClient(base_url=url, token=token, timeout=10)


def _driver(control_plane: ControlPlaneClient) -> str | None:
    """The control plane's failover driver (``local``, ``patroni``; None: it does not say)."""
    try:
        return control_plane.dr().failover_driver
    except ClientError as exc:
        err.print(f"the control plane did not answer GET /api/v1/dr: {exc}")
        raise typer.Exit(1) from exc


def _drill_through(control_plane: ControlPlaneClient, kind: DrillKind) -> None:
    """Have the control plane run the drill through its gate; print the decision and figures."""
    console.print(f"asking the control plane for a {kind} drill (decided through its gate)")
    try:
        entry = control_plane.run_drill(kind=kind)
    except ClientError as exc:
        err.print(f"the control plane did not run the drill: {exc}")
        raise typer.Exit(1) from exc
    console.print(
        f"control plane: {entry.action} {entry.decision}"
        + (f" → {entry.outcome}" if entry.outcome else "")
        + f" ({entry.outcome_detail or entry.reason}), decision {entry.decision_id}"
    )
    if entry.decision == "pending":
        console.print("the drill runs once an operator approves it (GET /api/v1/actions/pending)")
        return
    figures = entry.evidence.get("drill")
    if entry.decision == "refused" or not isinstance(figures, dict):
        raise typer.Exit(1)
    _report(
        kind,
        timedelta(seconds=float(figures["measured_rto_s"])),
        int(figures["lost_acknowledged_writes"]),
        int(figures["acknowledged_writes"]),
        timedelta(seconds=float(figures["rto_target_s"])),
    )
    if entry.outcome != "succeeded":
        raise typer.Exit(1)


def _audit_since(
    control_plane: ControlPlaneClient, since: datetime, action: str | None = None
) -> list[AuditEntry]:
    """Audit entries since ``since``, oldest first."""
    return list(reversed(control_plane.audit(since=since, action=action)))


def _topology(home: Path) -> tuple[Node, Node, dict[str, PostgresPrimary]]:
    stack = _stack(home)
    if not stack.running():
        err.print(f"the local stack in {home} is not running (controlplane stack up)")
        raise typer.Exit(1)
    backends: dict[str, PostgresPrimary] = {}
    nodes: list[Node] = []
    for name in (PostgresPrimary.name, PostgresReplica.name):
        backend = stack.backends.get(name)
        if not isinstance(backend, PostgresPrimary):
            err.print(
                f"the stack in {home} runs no plain PostgreSQL pair: its drills run through its "
                "control plane (start it, or give --url)"
            )
            raise typer.Exit(1)
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


def _record(*, home: Path, drill: NewDrill, control_plane: ControlPlaneClient | None) -> None:
    """Store the drill where the stack's control plane reads it: through its API when it runs,
    else straight into its store (read when it starts)."""
    if control_plane is not None:
        try:
            control_plane.record_drill(drill)
        except ClientError as exc:
            err.print(f"the control plane did not store the drill: {exc}")
            raise typer.Exit(1) from exc
        return
    with _stack_store(home) as session:
        record_drill(session, drill=drill)


@contextmanager
def _stack_store(home: Path) -> Iterator[Session]:
    """A write transaction on the stack's control-plane store (migrated first)."""
    backend = _stack(home).backends[ControlPlane.name]
    assert isinstance(backend, ControlPlane)
    backend.workdir.mkdir(parents=True, exist_ok=True)
    database = Database.from_url(backend.database_url)
    try:
        database.migrate()
        with database.writer() as session:
            yield session
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
    home: HomeOption = REPO_ROOT / ".stack",
    database: DatabaseOption = "inventory",
    url: UrlOption = None,
    token_file: TokenFileOption = None,
) -> None:
    """Planned switchover under a write probe; the old primary follows the new one."""
    control_plane = _reach(home, url, token_file)
    if control_plane is not None and (url is not None or _driver(control_plane) == "patroni"):
        _drill_through(control_plane, "switchover")
        return
    rto_target, rpo_target = _targets(database)
    primary, standby, backends = _topology(home)
    control = LocalNodeControl(dict(backends), on_started=_stack(home).adopt)
    console.print(f"switching over {primary.name} → {standby.name} under a write probe")
    started = datetime.now(UTC)
    # A planned switchover stops the primary on purpose: the stack's control plane must not
    # take that for a failure. Its kill switch is on meanwhile (any failover decision it makes
    # is refused and audited), and put back as it was.
    paused = control_plane is not None and not control_plane.action_state().kill_switch
    if paused:
        assert control_plane is not None
        control_plane.set_kill_switch(enabled=True, reason="planned switchover drill")
        console.print("control plane: kill switch on for the planned switchover")
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
    finally:
        if paused:
            assert control_plane is not None
            control_plane.set_kill_switch(enabled=False, reason="switchover drill finished")
            console.print("control plane: kill switch off again")
    _record(
        home=home,
        drill=drill_record(
            result,
            started=started,
            details={"old_primary_following": record.old_primary_following},
        ),
        control_plane=control_plane,
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
    home: HomeOption = REPO_ROOT / ".stack",
    database: DatabaseOption = "inventory",
    url: UrlOption = None,
    token_file: TokenFileOption = None,
) -> None:
    """A failover under a write probe, by the control plane: through Patroni (POST /failover to
    the candidate it chose), or, with the local driver, SIGKILL of the stack's primary and the
    control plane's detection, fencing and promotion. Measured and stored."""
    control_plane = _reach(home, url, token_file)
    if control_plane is None:
        err.print(
            f"a failover drill needs the stack's control plane (it fails over; this command "
            f"never fences): the control plane of {home} is not running (make demo), or give --url"
        )
        raise typer.Exit(1)
    if url is not None or _driver(control_plane) == "patroni":
        _drill_through(control_plane, "failover")
        return
    rto_target, rpo_target = _targets(database)
    primary, standby, backends = _topology(home)
    _failover_by_control_plane(
        home=home,
        control_plane=control_plane,
        database=database,
        primary=primary,
        standby=standby,
        backends=backends,
        rto_target=rto_target,
        rpo_target=rpo_target,
    )


@app.command("scaling")
def scaling_command(
    home: HomeOption = REPO_ROOT / ".stack",
    rate: Annotated[
        float,
        typer.Option(
            help="Extra reads per second at least; raised so that the reads reach 1.3 times "
            "what the running workers can serve."
        ),
    ] = 10,
    service_time_ms: Annotated[
        int, typer.Option(help="Slowness injected per read (the worker is held that long).")
    ] = 100,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a reaction.")] = 240,
    settle: Annotated[float, typer.Option(help="Seconds of load after the reaction.")] = 40,
) -> None:
    """Inject slowness into the stack's API under load; the control plane must add a worker.

    Prints the time from onset to the first response of an added worker, the latency before,
    during and after, and the control plane's audited decisions."""
    stack = _stack(home)
    api = stack.backends.get(InventoryAPI.name)
    control_plane = _control_plane(home)
    if not isinstance(api, InventoryAPI) or InventoryAPI.name not in stack.running():
        err.print(f"the stack's inventory API is not running in {home} (make demo)")
        raise typer.Exit(1)
    if control_plane is None:
        err.print(f"the stack's control plane is not running in {home} (make demo)")
        raise typer.Exit(1)
    try:
        auth = inventory_api_auth(stack.inventory_client())
    except ControlPlaneError as exc:
        err.print(f"cannot authenticate to the inventory API: {exc}")
        raise typer.Exit(1) from exc
    listing = httpx.get(f"{api.url}/api/v1/items", params={"limit": 50}, timeout=5, auth=auth)
    skus = [item["sku"] for item in listing.json().get("items", [])] if listing.is_success else []
    if not skus:
        err.print("the API has no items yet: let the demo traffic run a few seconds")
        raise typer.Exit(1)
    scaling = _scaling_policy(ControlPlaneSettings().policies.action_policy)
    _wait_until_settled(control_plane, scaling=scaling)
    try:
        workers = LocalGunicornActuator(pidfile=api.pidfile).current_replicas("inventory")
    except ActuatorError as exc:
        err.print(f"cannot count the API's workers: {exc}")
        raise typer.Exit(1) from exc
    ceiling = None if scaling is None else scaling.max_replicas
    if ceiling is not None and workers >= ceiling:
        err.print(
            f"the API already runs {workers} workers, the action policy's maximum ({ceiling}): "
            "the control plane cannot add one (restart the demo to start from 2)"
        )
        raise typer.Exit(1)
    # Size the extra reads to the workers running now (an earlier burn may have added some) and
    # to the reads already arriving: over what they can serve (1.3 times, at least 1.1 times),
    # yet at most 0.65 times what the policy's maximum of workers can, so that scaling out helps.
    per_worker = 1000 / service_time_ms
    capacity = workers * per_worker
    background = _read_rate(api.url)
    ceiling_reads = 0.65 * (ceiling or workers * 2) * per_worker
    target = max(min(1.3 * capacity, ceiling_reads), 1.1 * capacity)
    needed = round(max(rate, target - background), 1)
    console.print(
        f"{workers} workers serve {capacity:g} reads/s with the slowness; {background:.1f} "
        f"reads/s arrive already; the drill adds {needed:g}"
    )
    rate = needed
    picks = itertools.cycle(skus)
    started = datetime.now(UTC)
    result = run_scaling_drill(
        api_url=api.url,
        auth=auth,
        faults_file=api.faults_file,
        path=lambda: f"/api/v1/stock/{next(picks)}",
        rate=rate,
        service_time_ms=service_time_ms,
        timeout_s=timeout,
        settle_s=settle,
        on_progress=console.print,
    )
    for name, phase in (
        ("before", result.before),
        ("during", result.during),
        ("after", result.after),
    ):
        if phase is not None:
            console.print(
                f"{name:>6}: {phase.requests} reads, p50 {phase.p50_ms} ms, p95 {phase.p95_ms} ms,"
                f" {phase.over_threshold:.0%} over 250 ms"
            )
    for entry in _audit_since(control_plane, started):
        console.print(
            f"audit: {entry.at.isoformat()} {entry.action} {entry.decision} → "
            f"{entry.outcome or '-'}: {entry.outcome_detail or entry.reason}"
        )
    if not result.reacted:
        err.print(f"no worker was added within {timeout:g} s")
        raise typer.Exit(1)
    console.print(
        f"scale reaction: {result.reaction_s:.1f} s from onset to an added worker serving"
    )


def _read_rate(api_url: str, seconds: float = 3.0) -> float:
    """GET requests per second the API serves now (its own request counter, over ``seconds``)."""
    first = api_requests(api_url, method="GET")
    time.sleep(seconds)
    return max(0.0, (api_requests(api_url, method="GET") - first) / seconds)


def _scaling_policy(path: Path) -> ServiceScaling | None:
    """The local API's scaling section of the action policy the control plane uses."""
    try:
        policy = load_action_policy(path)
    except PolicyError:
        return None
    return policy.spec.scaling.get("inventory")


def _wait_until_settled(
    control_plane: ControlPlaneClient, *, scaling: ServiceScaling | None, limit: float = 300
) -> None:
    """A drill measures one reaction: first let an earlier scale-out (the demo's own traffic can
    cause one, e.g. while the stack warms up) finish its verification, and an escalation clear."""
    verify = scaling.verify_after if scaling is not None else timedelta(minutes=2)
    deadline = time.monotonic() + limit
    announced = False
    while time.monotonic() < deadline:
        now = datetime.now(UTC)
        recent = [
            e
            for e in _audit_since(control_plane, now - verify - timedelta(seconds=15), "scale_out")
            if e.decision == "taken"
        ]
        escalated = control_plane.findings(open_only=True, kind=INEFFECTIVE)
        if not recent and not escalated:
            return
        if not announced:
            console.print(
                "waiting for the control plane's last scale-out to be verified"
                + (" and its escalation to clear" if escalated else "")
            )
            announced = True
        time.sleep(5)
    err.print(f"the control plane did not settle within {limit:g} s (see GET /api/v1/findings)")
    raise typer.Exit(1)


def _failover_by_control_plane(
    *,
    home: Path,
    control_plane: ControlPlaneClient,
    database: str,
    primary: Node,
    standby: Node,
    backends: dict[str, PostgresPrimary],
    rto_target: timedelta,
    rpo_target: timedelta,
) -> None:
    """SIGKILL the primary and let the stack's control plane detect, fence and promote; measure
    what a client sees and show the control plane's audited decision."""
    if control_plane.action_state().kill_switch:
        err.print("the control plane's kill switch is on: it would not fail over; not killing")
        raise typer.Exit(1)
    writes = WriteProbe(nodes=[primary, standby])
    writes.prepare()
    writes.start()
    try:
        if not writes.wait_for_writes(100, timeout=30):
            raise typer.Exit(1)
        pid = postmaster_pid(backends[primary.name].data_dir)
        if pid is None:
            err.print(f"no postmaster pid for {primary.name}")
            raise typer.Exit(1)
        started = datetime.now(UTC)
        console.print(f"SIGKILL {primary.name} (pid {pid}); the control plane fails over")
        os.killpg(pid, signal.SIGKILL)
        recovered = writes.wait_for_recovery(timeout=90)
    finally:
        report = writes.stop()
    entries: list[AuditEntry] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        # "handed-off" is the engine's note before the failover runs: wait for its result.
        audited = _audit_since(control_plane, started, "failover_database")
        entries = [e for e in audited if e.outcome not in (None, "handed-off")]
        if entries:
            break
        time.sleep(0.5)
    if not recovered or not entries:
        err.print(
            "the control plane did not fail over: see GET /api/v1/audit and its log "
            "(CONTROLPLANE_DATABASE_DATA_DIRS set? policy allows failover_database?)"
        )
        raise typer.Exit(1)
    entry = entries[0]
    console.print(
        f"control plane: {entry.action} {entry.decision} → {entry.outcome} "
        f"({entry.outcome_detail or entry.reason}), decision {entry.decision_id}"
    )
    details = {"decision_id": entry.decision_id, **entry.evidence.get("failover", {})}
    _store_failover(
        home=home,
        control_plane=control_plane,
        database=database,
        started=started,
        report=report,
        standby=standby,
        targets=(rto_target, rpo_target),
        details=details,
        limit=90,
    )
    console.print(f"{primary.name} is fenced: a restart brings it back read-only")


def _store_failover(
    *,
    home: Path,
    control_plane: ControlPlaneClient | None,
    database: str,
    started: datetime,
    report: ProbeReport,
    standby: Node,
    targets: tuple[timedelta, timedelta],
    details: dict[str, Any],
    limit: float,
) -> None:
    """Measure (client RTO, acknowledged writes missing on the new primary), store, print."""
    rto_target, rpo_target = targets
    rto = (
        (report.first_success_after_failure_at - started)
        if report.first_success_after_failure_at is not None
        else timedelta(seconds=limit)
    )
    lost = missing_acknowledged(standby, report.acked)
    _record(
        home=home,
        drill=NewDrill(
            database=database,
            kind="failover",
            started_at=started,
            finished_at=datetime.now(UTC),
            succeeded=rto <= rto_target and (not lost or rpo_target > timedelta(0)),
            measured_rto_s=rto.total_seconds(),
            measured_rpo_s=None,
            lost_acknowledged_writes=len(lost),
            acknowledged_writes=len(report.acked),
            details=details,
        ),
        control_plane=control_plane,
    )
    _report("failover", rto, len(lost), len(report.acked), rto_target)


def _stack_settings(home: Path) -> ControlPlaneSettings:
    """The settings the stack's control plane runs with (its environment) when the stack runs,
    else those of this process's ``CONTROLPLANE_*`` variables."""
    stack = _stack(home)
    backend = stack.backends.get(ControlPlane.name)
    environ = dict(os.environ)
    if isinstance(backend, ControlPlane) and stack.running():
        environ = backend.environment()
    values: dict[str, dict[str, str]] = {}
    for variable, (group, field) in environment_names().items():
        if variable in environ:
            values.setdefault(group, {})[field] = environ[variable]
    return ControlPlaneSettings.model_validate(values)


def _store_restores(
    *, home: Path, runs: list[NewRestoreRun], control_plane: ControlPlaneClient | None
) -> None:
    """Where the stack's control plane reads them: its API when it runs, else its store."""
    if control_plane is not None:
        try:
            for run in runs:
                control_plane.record_restore_validation(run)
        except ClientError as exc:
            err.print(f"the control plane did not store the restore validation: {exc}")
            raise typer.Exit(1) from exc
        return
    with _stack_store(home) as session:
        for run in runs:
            record_restore_run(session, run=run)


def _print_restores(runs: list[RestoreRun], *, rto_target: timedelta) -> None:
    table = Table(title="restore validation")
    for column in ("restore", "backup set", "copy", "recovery", "up after (RTO)", "checks"):
        table.add_column(column)
    for run in runs:
        passed = sum(1 for check in run.checks if check.passed)
        up = "—" if run.duration_s is None else f"{run.duration_s:.1f} s"
        verdict = (
            ""
            if run.duration_s is None
            else (
                " [green]✓[/green]"
                if run.duration_s <= rto_target.total_seconds()
                else " [red]✗[/red]"
            )
        )
        table.add_row(
            f"{run.kind.replace('_', ' ')}: {run.target}",
            run.backup_set or "—",
            "—" if run.restore_s is None else f"{run.restore_s:.1f} s",
            "—" if run.recovery_s is None else f"{run.recovery_s:.1f} s",
            up + verdict,
            f"{passed} of {len(run.checks)} passed",
        )
    console.print(table)
    for run in runs:
        for check in run.checks:
            if not check.passed:
                err.print(
                    f"{run.kind}: {check.name}: expected {check.expected!r}, got {check.actual!r}"
                )


@app.command("restore")
def restore_command(
    home: HomeOption = REPO_ROOT / ".stack", database: DatabaseOption = "inventory"
) -> None:
    """Validate a restore now: the newest backup and a point in time, each restored into a
    scratch server, checked against the source, stopped and removed; measured and stored."""
    rto_target, _ = _targets(database)
    try:
        settings = _stack_settings(home)
    except ValueError as exc:
        err.print(f"the control plane's settings are not valid: {exc}")
        raise typer.Exit(2) from exc
    if not settings.backups.configured:
        err.print(
            "no pgBackRest configuration: set CONTROLPLANE_PGBACKREST_CONFIG (and "
            "CONTROLPLANE_DATABASE_NODES), or run the stack that sets them"
        )
        raise typer.Exit(2)
    if settings.failover.database_name != database:
        err.print(f"the control plane backs up {settings.failover.database_name}, not {database}")
        raise typer.Exit(2)
    validation = validation_settings(settings)
    # Beside the control plane's own scratch folder: a scheduled validation may run meanwhile.
    validation = replace(validation, scratch=validation.scratch.with_name("restore-drill"))
    try:
        source = source_of(settings)()
    except ControlPlaneError as exc:
        err.print(f"no primary to take the restore point on: {exc}")
        raise typer.Exit(1) from exc
    console.print(f"validating a restore of {database} (scratch folder {validation.scratch})")
    runs = validate_restores(
        PgBackRest.from_settings(settings.backups), source_dsn=source, settings=validation
    )
    run_id = f"drill-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    _store_restores(
        home=home,
        runs=[restore_record(run, database=database, run_id=run_id) for run in runs],
        control_plane=_control_plane(home),
    )
    _print_restores(runs, rto_target=rto_target)
    console.print(restore_summary(runs))
    if not all(run.succeeded for run in runs):
        raise typer.Exit(1)


# -- a crashed leader on the Patroni stack (make demo-failover) -------------------------------

#: Seconds a client may go without a write before the crash drill gives up on Patroni (the
#: lease alone is 20 s on the stack).
CRASH_LIMIT_S = 90.0
#: Seconds the stack's database may take to settle (before the drill, and for the restarted
#: member to rejoin).
SETTLE_LIMIT_S = 120.0
#: Seconds to wait for the control plane's audited failover decision.
DECISION_WAIT_S = 30.0
#: Outcomes of an audit entry whose action has not finished ("handed-off": the engine's note
#: before the failover runs).
PENDING_OUTCOMES = (None, "handed-off")
#: The control plane's audit actions for a failover: its own decision, or the leader change it
#: records when Patroni fails over by itself (``CONTROLPLANE_FAILOVER_MODE=auto``).
FAILOVER_ACTIONS = ("failover_database", "leader_change")


@app.command("crash")
def crash_command(
    home: HomeOption = REPO_ROOT / ".stack", database: DatabaseOption = "inventory"
) -> None:
    """SIGKILL the stack's Patroni member that leads (Patroni and its PostgreSQL at once: a
    crashed host) under a write probe; a new leader takes the writes. Print the client RTO and
    the acknowledged writes lost, start the killed member again (it rejoins as a replica,
    through pg_rewind when its WAL went further) and show the failover the stack's control
    plane audited. Stored as a failover drill."""
    rto_target, rpo_target = _targets(database)
    stack, leader = _settled_stack(home)
    control_plane = _control_plane(home)
    writes = WriteProbe(nodes=[_member_node(m) for m in stack.database.members])
    writes.prepare()
    writes.start()
    try:
        if not writes.wait_for_writes(100, timeout=30):
            err.print(f"the write probe could not write: {writes.report.last_error}")
            raise typer.Exit(1)
        started = datetime.now(UTC)
        console.print(
            f"SIGKILL {leader.name} (Patroni and its PostgreSQL, a crashed host) "
            "under a write probe; Patroni elects a new leader"
        )
        leader.kill()
        recovered = writes.wait_for_recovery(timeout=CRASH_LIMIT_S)
    finally:
        report = writes.stop()
    new_leader = stack.database.leader()
    others = [m for m in stack.database.members if m is not leader]
    survivor = new_leader if new_leader in others else None
    if recovered and survivor is not None:
        console.print(f"{survivor.member} leads now: writes go through it again")
    rejoined, rewound = _rejoin(stack, leader, as_replica=recovered and survivor is not None)
    if not recovered or survivor is None:
        err.print(
            f"no other member took the writes within {CRASH_LIMIT_S:g} s of the kill: "
            + stack.describe_database()
        )
        raise typer.Exit(1)
    entry = _failover_decision(control_plane, since=started)
    details: dict[str, Any] = {
        "engine": "patroni",
        "killed": leader.member,
        "new_leader": survivor.member,
        "rejoined": rejoined is not None,
        "pg_rewind": rewound,
        "timeline": None if rejoined is None else rejoined.timeline,
    }
    if entry is not None:
        details["decision_id"] = entry.decision_id
    # Stored and printed: the client RTO, and the acknowledged writes the new leader lacks.
    _store_failover(
        home=home,
        control_plane=control_plane,
        database=database,
        started=started,
        report=report,
        standby=_member_node(survivor),
        targets=(rto_target, rpo_target),
        details=details,
        limit=CRASH_LIMIT_S,
    )
    if rejoined is None:
        err.print(
            f"{leader.member} did not rejoin within {SETTLE_LIMIT_S:g} s: see {leader.log_path}"
        )
        raise typer.Exit(1)


def _settled_stack(home: Path) -> tuple[LocalStack, PatroniMember]:
    """The running stack and the Patroni member that leads its settled database (every other
    member streaming, one of them its synchronous standby in synchronous mode)."""
    stack = _stack(home)
    if not stack.running():
        err.print(f"the local stack in {home} is not running (controlplane stack up)")
        raise typer.Exit(1)
    # Right after a start or a rejoin the cluster may need a few seconds more.
    leader = (
        stack.database.leader() if stack.wait_database_settled(timeout=SETTLE_LIMIT_S) else None
    )
    if leader is None:
        err.print(
            "need a leader with every other member streaming (one of them its synchronous "
            "standby in synchronous mode) in the stack's Patroni cluster; found "
            + stack.describe_database()
        )
        raise typer.Exit(1)
    return stack, leader


def _member_node(member: PatroniMember) -> Node:
    return Node(name=member.member, host="127.0.0.1", port=member.port)


def _rejoin(
    stack: LocalStack, member: PatroniMember, *, as_replica: bool
) -> tuple[MemberView | None, bool]:
    """Start a killed member again on its data folder: it rejoins as a replica of the new
    leader (``as_replica``; else in whatever role Patroni gives it). Its view once the database
    is settled (None if it was not within the limit), and whether Patroni ran pg_rewind for it
    (its WAL had gone past the new leader's timeline switch)."""
    log_start = member.log_path.stat().st_size if member.log_path.is_file() else 0
    member.spawn()
    assert member.process is not None
    assert member.process.pid is not None
    stack.adopt(member.name, member.process.pid)
    view = stack.wait_for_member(
        member.member, leads=False if as_replica else None, timeout=SETTLE_LIMIT_S
    )
    with member.log_path.open("rb") as log:
        log.seek(log_start)
        rewound = b"running pg_rewind" in log.read()
    if view is not None:
        how = "through pg_rewind" if rewound else "without a rewind (its WAL had not diverged)"
        console.print(f"{member.member} rejoined {how}: {view.describe()}")
    return view, rewound


def _failover_decision(
    control_plane: ControlPlaneClient | None, *, since: datetime
) -> AuditEntry | None:
    """The newest failover entry (:data:`FAILOVER_ACTIONS`) the stack's control plane audited
    since the kill (waiting up to DECISION_WAIT_S for one with an outcome), printed."""
    if control_plane is None:
        console.print("the stack's control plane is not running: no audited decision to show")
        return None
    deadline = time.monotonic() + DECISION_WAIT_S
    entry: AuditEntry | None = None
    while True:
        try:
            audited = [
                e for e in _audit_since(control_plane, since) if e.action in FAILOVER_ACTIONS
            ]
        except ClientError as exc:
            err.print(f"could not read the control plane's audit log: {exc}")
            return None
        if audited:
            entry = audited[-1]
        if (entry is not None and entry.outcome not in PENDING_OUTCOMES) or (
            time.monotonic() > deadline
        ):
            break
        time.sleep(0.5)
    if entry is None:
        err.print(
            f"the control plane audited no {' or '.join(FAILOVER_ACTIONS)} within "
            f"{DECISION_WAIT_S:g} s of the kill (GET /api/v1/audit; its log: "
            "logs/controlplane.log in the stack's folder)"
        )
        return None
    console.print(
        f"control plane: {entry.action} {entry.decision} → {entry.outcome or 'no outcome yet'} "
        f"({entry.outcome_detail or entry.reason}), decision {entry.decision_id}"
    )
    return entry
