"""``controlplane drill``: drills on the local stack, measured (DR drills also stored).

The stack's PostgreSQL is a Patroni cluster, and Patroni is the engine that moves the leader:
``switchover`` asks it for a planned switchover (``POST /switchover``) under a numbered write
probe (no acknowledged write may be lost); ``failover`` SIGKILLs the member that leads (Patroni
and its PostgreSQL, as a crashed host), lets Patroni elect a new leader, starts the killed member
again (it rejoins as a replica, through pg_rewind when needed) and shows the decision the stack's
control plane audited. Both print the RTO a client saw and the acknowledged writes lost, compare
them with the tier's RTO / RPO, and store the drill where the stack's control plane reads it, so
its DR checks and the console see it: through its API (``POST /api/v1/dr/drills`` with the
stack's admin token) when it runs, else straight into its store.

``scaling`` injects slowness into the stack's API under extra load; the running control plane
must add workers (TTIN). It prints the reaction time and the audited decisions.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import typer
from rich.console import Console

from controlplane.actions.engine import INEFFECTIVE
from controlplane.actions.policy import ServiceScaling, load_action_policy
from controlplane.actions.scaling_drill import run_scaling_drill
from controlplane.actuators.base import ActuatorError
from controlplane.actuators.local import LocalGunicornActuator
from controlplane.client.http import ClientError, ControlPlaneClient
from controlplane.client.models import AuditEntry
from controlplane.core.config import ControlPlaneSettings
from controlplane.core.processes import BackendStartError
from controlplane.failover.nodes import Node
from controlplane.failover.writeprobe import WriteProbe, missing_acknowledged
from controlplane.stack.patroni import PatroniMember
from controlplane.stack.runner import ControlPlane, LocalStack
from controlplane.stack.settings import REPO_ROOT, StackSettings
from controlplane.stack.topology import MemberView
from controlplane.stack.workload import InventoryAPI, api_requests
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

#: Seconds a client may go without a write before the failover drill gives up on Patroni
#: (the lease alone is 20 s on the stack).
FAILOVER_LIMIT_S = 90.0
#: Seconds Patroni's switchover may take.
SWITCHOVER_LIMIT_S = 60.0
#: Seconds a restarted or demoted member may take to stream from the new leader.
REJOIN_LIMIT_S = 120.0
#: Seconds the cluster may take to settle before a drill (a member just started or rejoined).
SETTLE_LIMIT_S = 60.0
#: Seconds to wait for the control plane's audited failover decision.
DECISION_WAIT_S = 30.0
#: Outcomes of an audit entry whose action has not finished ("handed-off": the engine's note
#: before the failover runs).
PENDING_OUTCOMES = (None, "handed-off")


def _stack(home: Path) -> LocalStack:
    return LocalStack.at(settings=StackSettings(), home=home)


def _control_plane(home: Path) -> ControlPlaneClient | None:
    """The stack's running ``controlplane serve``, reached through its API with the admin token:
    when it runs, it audits the failover (its driver follows Patroni) and it stores the drills
    (wherever it runs, its store is the one its DR checks and console read)."""
    stack = _stack(home)
    backend = stack.backends.get(ControlPlane.name)
    if not isinstance(backend, ControlPlane) or ControlPlane.name not in stack.running():
        return None
    try:
        token = backend.admin_token_file.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return ControlPlaneClient(base_url=backend.url, token=token, timeout=5)


def _audit_since(
    control_plane: ControlPlaneClient, since: datetime, action: str | None = None
) -> list[AuditEntry]:
    """Audit entries since ``since``, oldest first."""
    return list(reversed(control_plane.audit(since=since, action=action)))


def _database(home: Path) -> tuple[LocalStack, PatroniMember, list[PatroniMember]]:
    """The running stack's Patroni cluster: the member that leads and the others, which must
    all be streaming from it."""
    stack = _stack(home)
    if not stack.running():
        err.print(f"the local stack in {home} is not running (controlplane stack up)")
        raise typer.Exit(1)
    # Right after a start, a switchover or a rejoin the cluster may need a few seconds more.
    settled = stack.wait_database_settled(timeout=SETTLE_LIMIT_S)
    leader = stack.database.leader() if settled else None
    if leader is None:
        try:
            seen = "; ".join(f"{v.member}: {v.describe()}" for v in stack.database_members())
        except BackendStartError as exc:
            seen = str(exc)
        err.print(
            "need a leader with every other member streaming (one of them its synchronous "
            f"standby in synchronous mode) in the stack's Patroni cluster; found {seen}"
        )
        raise typer.Exit(1)
    return stack, leader, [m for m in stack.database.members if m is not leader]


def _node(member: PatroniMember) -> Node:
    return Node(name=member.member, host="127.0.0.1", port=member.port)


def _start_probe(stack: LocalStack) -> WriteProbe:
    """Numbered writes through every member (libpq finds the leader), 100 of them through
    before the drill breaks anything."""
    writes = WriteProbe(nodes=[_node(m) for m in stack.database.members])
    writes.prepare()
    writes.start()
    if not writes.wait_for_writes(100, timeout=30):
        writes.stop()
        err.print(f"the write probe could not write: {writes.report.last_error}")
        raise typer.Exit(1)
    return writes


def _wait_for_member(
    stack: LocalStack, member: str, *, leads: bool | None, timeout: float
) -> MemberView | None:
    """Until the cluster is settled (a leader, every other member streaming, a synchronous
    standby in synchronous mode) with ``member`` leading (``leads`` True), streaming (False) or
    either (None); its view, or None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.database_settled():
            with contextlib.suppress(BackendStartError):
                for view in stack.database_members():
                    if view.member == member and leads in (None, view.leads):
                        return view
        time.sleep(0.5)
    return None


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
    backend = _stack(home).backends[ControlPlane.name]
    assert isinstance(backend, ControlPlane)
    backend.workdir.mkdir(parents=True, exist_ok=True)
    database = Database.from_url(backend.database_url)
    try:
        database.migrate()
        with database.writer() as session:
            record_drill(session, drill=drill)
    finally:
        database.dispose()


def _drill_record(
    *,
    kind: Literal["switchover", "failover"],
    database: str,
    started: datetime,
    rto: timedelta,
    lost: int,
    acked: int,
    targets: tuple[timedelta, timedelta],
    healthy_after: bool,
    details: dict[str, Any],
) -> NewDrill:
    """What the store keeps of a drill: it succeeded when the RTO held, no acknowledged write
    was lost (unless the tier allows some) and the cluster was whole again after it
    (``healthy_after``); RPO 0 when no acknowledged write was lost."""
    rto_target, rpo_target = targets
    return NewDrill(
        database=database,
        kind=kind,
        started_at=started,
        finished_at=datetime.now(UTC),
        succeeded=healthy_after and rto <= rto_target and (lost == 0 or rpo_target > timedelta(0)),
        measured_rto_s=rto.total_seconds(),
        measured_rpo_s=0.0 if lost == 0 else None,
        lost_acknowledged_writes=lost,
        acknowledged_writes=acked,
        details=details,
    )


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
    """Planned switchover through Patroni (``POST /switchover``) under a write probe: the
    leader hands over to a streaming replica and follows it; no acknowledged write may be lost."""
    rto_target, rpo_target = _targets(database)
    stack, leader, replicas = _database(home)
    candidate = replicas[0]
    control_plane = _control_plane(home)
    writes = _start_probe(stack)
    try:
        started = datetime.now(UTC)
        console.print(
            f"switching over {leader.member} → {candidate.member} "
            "(Patroni POST /switchover) under a write probe"
        )
        try:
            answer = httpx.post(
                f"{leader.api_url}/switchover",
                json={"leader": leader.member, "candidate": candidate.member},
                timeout=SWITCHOVER_LIMIT_S,
            )
        except httpx.HTTPError as exc:
            err.print(f"Patroni did not answer the switchover: {exc}")
            raise typer.Exit(1) from exc
        if not answer.is_success:
            err.print(f"Patroni refused the switchover ({answer.status_code}): {answer.text}")
            raise typer.Exit(1)
        # Writes go on through the new leader (after an outage, if the client saw one).
        writes.wait_for_writes(len(writes.report.acked) + 10, timeout=SWITCHOVER_LIMIT_S)
    finally:
        report = writes.stop()
    # The outage the client saw (none when no write failed), or the whole limit.
    outage = 0.0 if report.first_failure_at is None else report.client_rto_s
    rto = timedelta(seconds=SWITCHOVER_LIMIT_S if outage is None else outage)
    lost = missing_acknowledged(_node(candidate), report.acked)
    following = _wait_for_member(stack, leader.member, leads=False, timeout=REJOIN_LIMIT_S)
    _record(
        home=home,
        drill=_drill_record(
            kind="switchover",
            database=database,
            started=started,
            rto=rto,
            lost=len(lost),
            acked=len(report.acked),
            targets=(rto_target, rpo_target),
            healthy_after=following is not None,
            details={
                "engine": "patroni",
                "old_leader": leader.member,
                "new_leader": candidate.member,
                "old_primary_following": following is not None,
            },
        ),
        control_plane=control_plane,
    )
    _report("switchover", rto, len(lost), len(report.acked), rto_target)
    if following is None:
        err.print(f"{leader.member} is not streaming from {candidate.member} yet")
        raise typer.Exit(1)
    console.print(f"{leader.member} follows {candidate.member}: {following.describe()}")


@app.command("failover")
def failover_command(
    home: HomeOption = REPO_ROOT / ".stack", database: DatabaseOption = "inventory"
) -> None:
    """SIGKILL the Patroni member that leads (Patroni and its PostgreSQL: a crashed host)
    under a write probe; Patroni elects a new leader; print the client RTO and the writes
    lost, start the killed member again (it rejoins as a replica, through pg_rewind when its
    WAL went further) and show the control plane's audited decision. Stored as a drill."""
    rto_target, rpo_target = _targets(database)
    stack, leader, _ = _database(home)
    control_plane = _control_plane(home)
    writes = _start_probe(stack)
    try:
        started = datetime.now(UTC)
        console.print(
            f"SIGKILL {leader.name} (Patroni and its PostgreSQL, a crashed host) "
            "under a write probe; Patroni elects a new leader"
        )
        leader.kill()
        recovered = writes.wait_for_recovery(timeout=FAILOVER_LIMIT_S)
    finally:
        report = writes.stop()
    rto = (
        report.first_success_after_failure_at - started
        if recovered and report.first_success_after_failure_at is not None
        else timedelta(seconds=FAILOVER_LIMIT_S)
    )
    new_leader = stack.database.leader()
    lost = (
        missing_acknowledged(_node(new_leader), report.acked)
        if new_leader is not None and new_leader is not leader
        else report.acked
    )
    _report("failover", rto, len(lost), len(report.acked), rto_target)
    if new_leader is not None and new_leader is not leader:
        console.print(f"{new_leader.member} leads now")

    rejoined, rewound = _rejoin(stack, leader, as_replica=recovered)
    entry = _failover_decision(control_plane, since=started)
    details: dict[str, Any] = {
        "engine": "patroni",
        "killed": leader.member,
        "new_leader": None if new_leader is None else new_leader.member,
        "rejoined": rejoined is not None,
        "pg_rewind": rewound,
        "timeline": None if rejoined is None else rejoined.timeline,
    }
    if entry is not None:
        details["decision_id"] = entry.decision_id
    _record(
        home=home,
        drill=_drill_record(
            kind="failover",
            database=database,
            started=started,
            rto=rto,
            lost=len(lost),
            acked=len(report.acked),
            targets=(rto_target, rpo_target),
            healthy_after=recovered and rejoined is not None,
            details=details,
        ),
        control_plane=control_plane,
    )
    if not recovered:
        err.print(f"no write went through within {FAILOVER_LIMIT_S:g} s of the kill")
    if rejoined is None:
        err.print(
            f"{leader.member} did not rejoin within {REJOIN_LIMIT_S:g} s: see {leader.log_path}"
        )
    if not recovered or rejoined is None:
        raise typer.Exit(1)


def _rejoin(
    stack: LocalStack, member: PatroniMember, *, as_replica: bool
) -> tuple[MemberView | None, bool]:
    """Start a killed member again on its data folder: it rejoins as a replica of the new
    leader (``as_replica``; else in whatever role Patroni gives it). Its view once the cluster
    is ready (None if it was not within the limit), and whether Patroni ran pg_rewind for it
    (its WAL had gone past the new leader's timeline switch)."""
    log_start = member.log_path.stat().st_size if member.log_path.is_file() else 0
    member.spawn()
    assert member.process is not None
    assert member.process.pid is not None
    stack.adopt(member.name, member.process.pid)
    view = _wait_for_member(
        stack, member.member, leads=False if as_replica else None, timeout=REJOIN_LIMIT_S
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
    """The newest ``failover_database`` entry the stack's control plane audited since the kill
    (waiting up to DECISION_WAIT_S for one with an outcome), printed."""
    if control_plane is None:
        console.print("the stack's control plane is not running: no audited decision to show")
        return None
    deadline = time.monotonic() + DECISION_WAIT_S
    entry: AuditEntry | None = None
    while True:
        try:
            audited = _audit_since(control_plane, since, "failover_database")
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
            "the control plane audited no failover_database decision within "
            f"{DECISION_WAIT_S:g} s (GET /api/v1/audit?action=failover_database; its log: "
            "logs/controlplane.log in the stack's folder)"
        )
        return None
    console.print(
        f"control plane: {entry.action} {entry.decision} → {entry.outcome or 'no outcome yet'} "
        f"({entry.outcome_detail or entry.reason}), decision {entry.decision_id}"
    )
    return entry


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
    listing = httpx.get(f"{api.url}/api/v1/items", params={"limit": 50}, timeout=5)
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
