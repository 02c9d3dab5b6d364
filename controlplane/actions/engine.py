"""The action engine: triggers → recommendation → gate → audit → act → audit → verify.

Every decision, taken or refused, is written to the audit log (with the gate's checks and the
inputs as evidence) before anything runs, and the outcome is added after. A trigger decides at
most once per action (a unique trigger key in the store), so an alert Alertmanager repeats, or
delivers to two replicas, never acts twice. Writes carry the leader's fencing token: a replica
that lost the lease cannot even record a decision, let alone act.

Actions the engine does not run itself (failover, switchover, drills, a member's rejoin) are run
by the executor registered for them (:meth:`ActionEngine.register_executor`), whether the gate
let them act at once or an operator approved them later; their :class:`Execution` becomes the
decision's outcome. An action without an executor is only marked ``handed-off``.

A scale-out is verified ``verify_after`` later on two counts, both written into its audit entry:
the replicas ready in the system against those it asked for (fewer: the finding
:data:`UNFULFILLED`), and the short-window burn (not lower: the finding :data:`INEFFECTIVE` and an
escalation). What scale-outs added is given back by a scale-in once every burn signal of the
service has stayed under its target for ``scale_in_after`` (``release.py``).
"""

from __future__ import annotations

import logging
import os
import signal as signals
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from controlplane.actions.gate import (
    ActionKind,
    ActionRequest,
    ActionRule,
    GateContext,
    GateResult,
    InputValue,
    PastAction,
    evaluate_gate,
)
from controlplane.actions.policy import ActionPolicy, ServiceScaling
from controlplane.actions.recommend import ScaleEvent, ScalingSpec, Signal, recommend
from controlplane.actions.release import (
    Bounds,
    Raise,
    combined_bounds,
    outstanding_raise,
    release_step,
    restore_target,
)
from controlplane.actuators.base import Actuator, ActuatorError
from controlplane.core.errors import ControlPlaneError
from controlplane.leader import Leadership
from controlplane.store.actions import (
    KILL_SWITCH,
    DuplicateTrigger,
    claim_execution,
    decide_once,
    get_flag,
    list_interrupted,
    list_unexecuted,
    merge_evidence,
)
from controlplane.store.alerts import AlertChange
from controlplane.store.audit import AuditDecision, StoredAuditEntry, list_audit, record_outcome
from controlplane.store.database import Database
from controlplane.store.errors import FencingTokenStale
from controlplane.store.findings import list_findings, observe_finding, resolve_finding
from controlplane.targets.policy import CapacityPolicy

logger = logging.getLogger(__name__)

#: Fault injection points of ``CONTROLPLANE_ACTIONS_CRASH_POINT``: the execution of a taken
#: decision claimed and nothing done yet, or the actuator done and its outcome not recorded.
CrashPoint = Literal["after_decision", "after_act"]

#: Reads one SLO's burn rate over one window for a service: (service, slo, window) → value.
BurnReader = Callable[[str, str, str], InputValue]

SCALING: tuple[ActionKind, ...] = ("scale_out", "scale_in")
#: Actions on the database (its failover and its backups): their audit target is
#: ``database/<name>``.
DATABASE_ACTIONS: frozenset[str] = frozenset(
    {"failover_database", "switchover_database", "rejoin_member", "backup", "validate_restore"}
)


@dataclass(frozen=True, kw_only=True)
class Execution:
    """What an executor did: the outcome (``succeeded``, ``failed``, ``refused``, ``skipped``
    ...), one line for people, and facts merged into the decision's evidence."""

    outcome: str
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)


#: Runs one taken decision of an action the engine does not run itself.
Executor = Callable[[StoredAuditEntry], Execution]

#: A burn trigger decides at most once per this period (taken or refused), however often the
#: engine ticks while the SLO burns.
BURN_DECISION_EVERY = timedelta(seconds=30)

#: The finding opened when a scale-out did not reduce the burn.
INEFFECTIVE = "actions.scale_out_ineffective"
#: The finding opened when fewer replicas were ready than a scale-out asked for by its
#: verification (resolved once they are, or once a scale-in withdraws the ask).
UNFULFILLED = "actions.scale_out_unfulfilled"

#: Taken scaling decisions read back (per action) to find what scale-outs added and no scale-in
#: gave back: the rate budgets allow a few an hour, so this reaches many hours back.
RAISE_HISTORY = 50


@dataclass
class _Verification:
    decision_id: str
    service: str
    due: datetime
    #: The replica count the scale-out asked for.
    requested: int
    burn_before: dict[str, float | None]


class ActionEngine:
    def __init__(
        self,
        *,
        policy: ActionPolicy,
        database: Database,
        leadership: Leadership,
        lease_name: str,
        actuator: Actuator | None,
        burn_reader: BurnReader,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        actor: str = "controlplane",
        leader_max_age: float = 15.0,
        capacity: CapacityPolicy | None = None,
        crash_point: CrashPoint | None = None,
    ) -> None:
        """``capacity``: the capacity policy, when the orchestrator holds the services to it
        (Kubernetes, whose HPAs carry its bounds). Scaling then also stays within its replica
        bounds, so a scale-in never takes an HPA's minimum below the policy's; the action
        policy's own bounds are those of the local gunicorn workers."""
        self.policy = policy
        self.database = database
        self.leadership = leadership
        self.lease_name = lease_name
        self.actuator = actuator
        self.burn_reader = burn_reader
        self.clock = clock
        self.actor = actor
        self.leader_max_age = leader_max_age
        self.capacity = capacity
        self.crash_point = crash_point
        self._verifications: list[_Verification] = []
        self.executors: dict[str, Executor] = {}
        #: Since when every burn signal of a service has been under its target (scale-in).
        self._calm_since: dict[str, datetime] = {}
        self._lock = threading.RLock()  # tick() holds it around decide()

    def register_executor(self, action: ActionKind, executor: Executor) -> None:
        """``executor`` runs every taken (or approved) decision of ``action`` from now on. It
        runs in the deciding thread, under the engine's lock: a failover or a drill holds back
        other decisions for the seconds it takes, never two database actions at once."""
        self.executors[action] = executor

    # -- triggers ---------------------------------------------------------------------------
    def on_alert_changes(self, changes: Sequence[AlertChange]) -> list[StoredAuditEntry]:
        """Alert listener: newly opened firing alerts that a rule names lead to decisions."""
        decided: list[StoredAuditEntry] = []
        for change in changes:
            if change.outcome != "opened" or change.status != "firing":
                continue
            name = change.labels.get("alertname", "")
            for rule in self.policy.spec.rules:
                trigger = rule.trigger.alert
                if trigger is None or not trigger.matches(name, change.labels):
                    continue
                entry = self.decide(
                    rule.action,
                    rule.service,
                    trigger_key=f"alert:{change.fingerprint}:{change.starts_at.isoformat()}"
                    f":{rule.action}",
                    trigger=f"alert {name} #{change.alert_id} (rule {rule.name})",
                    evidence={
                        "alert_id": change.alert_id,
                        "alertname": name,
                        "fingerprint": change.fingerprint,
                        "labels": change.labels,
                        "rule": rule.name,
                    },
                )
                if entry is not None:
                    decided.append(entry)
        return decided

    def on_burn(self) -> list[StoredAuditEntry]:
        """Burn-tier triggers: each rule whose SLO burns above its tier decides its action —
        at most once per :data:`BURN_DECISION_EVERY` (the trigger key), and not while an
        earlier scale-out of the service is still being verified (that action answers this
        burn; deciding again would stack actions on a lagging signal)."""
        decided: list[StoredAuditEntry] = []
        for rule in self.policy.spec.rules:
            burn = rule.trigger.burn
            if burn is None:
                continue
            reading = self.burn_reader(rule.service, burn.slo, burn.window)
            if reading.value is None:
                continue  # nothing to act on; the gate would refuse missing inputs anyway
            if reading.value <= burn.above:
                self._recovered(rule.service, burn.slo, reading.value)
                continue
            if rule.action in SCALING and self._awaiting_verification(rule.service):
                logger.debug("%s: burn %.1f; awaiting verification", rule.name, reading.value)
                continue
            now = self.clock()
            bucket = int(now.timestamp() // BURN_DECISION_EVERY.total_seconds())
            entry = self.decide(
                rule.action,
                rule.service,
                trigger_key=f"burn:{rule.name}:{bucket}",
                trigger=f"{burn.slo} burn {reading.value:.1f}× over {burn.window} above "
                f"{burn.above:g}× (rule {rule.name})",
                evidence={
                    "rule": rule.name,
                    "burn_trigger": {
                        "slo": burn.slo,
                        "window": burn.window,
                        "above": burn.above,
                        "value": reading.value,
                        "observed_at": None
                        if reading.observed_at is None
                        else reading.observed_at.isoformat(),
                    },
                },
            )
            if entry is not None:
                decided.append(entry)
        return decided

    def _awaiting_verification(self, service: str) -> bool:
        return any(v.service == service for v in self._verifications)

    def _escalated(self, service: str) -> bool:
        with self.database.reader() as session:
            return any(
                f.subject == f"service/{service}"
                for f in list_findings(session, open_only=True, kind=INEFFECTIVE)
            )

    def _recovered(self, service: str, slo: str, value: float) -> None:
        """The burn is back under its tier: an escalation about this service is over."""
        if not self._escalated(service):
            return
        with self.database.writer() as session:
            resolve_finding(
                session, kind=INEFFECTIVE, subject=f"service/{service}", at=self.clock()
            )
        logger.info(
            "%s: %s burn %.1f back under its tier; escalation resolved", service, slo, value
        )

    def on_calm(self) -> list[StoredAuditEntry]:
        """Scale-in triggers: a service whose burn signals have all stayed at or under their
        targets for its ``scale_in_after`` gets back what the engine's scale-outs added — at
        most once per :data:`BURN_DECISION_EVERY`, not while a scale-out of it is being
        verified, and never on a missing or stale signal (nothing scales in blind)."""
        decided: list[StoredAuditEntry] = []
        now = self.clock()
        for service, scaling in self.policy.spec.scaling.items():
            rule = self._rule("scale_in", service)
            if rule is None or not rule.allowed:
                continue
            since = self._calm_since_for(service, scaling, rule, now)
            if since is None or now - since < scaling.scale_in_after:
                continue
            if self._awaiting_verification(service):
                continue
            raised = self._outstanding_raise(service)
            if raised is None or not self._gives_back(service, raised, rule):
                continue
            bucket = int(now.timestamp() // BURN_DECISION_EVERY.total_seconds())
            window = scaling.scale_in_after.total_seconds()
            entry = self.decide(
                "scale_in",
                service,
                trigger_key=f"calm:{service}:{bucket}",
                trigger=f"every burn signal of {service} under its target since "
                f"{since.isoformat()} (scale-in after {window:g} s)",
                evidence={"calm_since": since.isoformat()},
            )
            if entry is not None:
                decided.append(entry)
        return decided

    def _calm_since_for(
        self, service: str, scaling: ServiceScaling, rule: ActionRule, now: datetime
    ) -> datetime | None:
        """Since when every burn signal of ``service`` has been fresh and at or under its
        target (None: one is above, missing or stale now, which restarts the window)."""
        for signal in scaling.burn_signals:
            reading = self.burn_reader(service, signal.slo, signal.window)
            fresh = reading.observed_at is not None and now - reading.observed_at <= (
                rule.max_input_age
            )
            if reading.value is None or not fresh or reading.value > signal.target:
                self._calm_since.pop(service, None)
                return None
        if not scaling.burn_signals:
            return None
        return self._calm_since.setdefault(service, now)

    def _outstanding_raise(self, service: str) -> Raise | None:
        with self.database.reader() as session:
            entries = [
                entry
                for action in SCALING
                for entry in list_audit(
                    session, action=action, decision="taken", limit=RAISE_HISTORY
                )
            ]
        entries.sort(key=lambda e: (e.at, e.id), reverse=True)
        return outstanding_raise(entries, service)

    def _gives_back(self, service: str, raised: Raise, rule: ActionRule) -> bool:
        """Whether a scale-in would remove anything now (a count already back at its target,
        e.g. lowered by an operator, is left alone rather than refused every period)."""
        if self.actuator is None or rule.min_replicas is None:
            return False
        try:
            current = self.actuator.current_replicas(service)
        except ActuatorError as exc:
            logger.warning("%s: cannot read the replicas to give back: %s", service, exc)
            return False
        return restore_target(raised, floor=rule.min_replicas) < current

    # -- one decision -----------------------------------------------------------------------
    def decide(
        self,
        action: ActionKind,
        service: str,
        *,
        trigger_key: str | None,
        trigger: str,
        evidence: dict[str, Any],
        refusal: str | None = None,
        actor: str | None = None,
    ) -> StoredAuditEntry | None:
        """Decide (and, if the gate says so, act). None when the trigger was decided before, or
        when this replica lost the leadership before it could claim the execution.

        ``refusal``: the caller's plan refuses the action (e.g. no failover candidate within
        the RPO); the decision is audited as refused with that reason if the gate would have
        let it pass. ``actor``: who asks (an operator), else the engine itself."""
        with self._lock:
            now = self.clock()
            request, notes = self._request(action, service, trigger, evidence, now)
            if refusal is not None:
                notes["plan_refusal"] = refusal
            with self.database.reader() as session:
                kill_switch = get_flag(session, KILL_SWITCH).enabled
                history = self._history(session, now)
            status = self.leadership.status()
            context = GateContext(
                now=now,
                kill_switch=kill_switch,
                is_leader=status.leads(now=now, max_age=self.leader_max_age),
                fencing_token=status.fencing_token,
                global_cap_per_hour=self.policy.spec.global_cap_per_hour,
                history=history,
            )
            result = evaluate_gate(request, rule=self._rule(action, service), context=context)
            refused = (
                f"recommendation: {notes['refusal']}"
                if notes.get("refusal")
                else f"plan: {notes['plan_refusal']}"
                if notes.get("plan_refusal")
                else None
            )
            if result.allowed and refused:
                result = GateResult(
                    outcome="refuse",
                    reason=refused,
                    checks=result.checks,
                    fencing_token=result.fencing_token,
                )
            entry = self._record(request, result, trigger_key, notes, now, actor=actor)
            if entry is None:
                return None
            if entry.decision == "refused":  # the gate's or the store's (stale fencing token)
                return entry
            if result.outcome == "act":
                # None when its execution was not this replica's to run (its lease lapsed
                # between decision and claim): an executor of its own (failover) must not run.
                return self._execute(entry, request, token=result.fencing_token)
            if result.outcome == "dry-run":
                with self.database.writer() as session:
                    updated = record_outcome(
                        session,
                        decision_id=entry.decision_id,
                        outcome="dry-run",
                        at=self.clock(),
                        detail=f"nothing changed; would have run {request.action} "
                        f"{request.current_replicas} → {request.desired_replicas}",
                    )
                return updated or entry
            return entry

    def _bounds(self, service: str, scaling: ServiceScaling) -> Bounds:
        """The replica bounds of ``service``: the action policy's, within the capacity policy's
        when the orchestrator holds services to it."""
        system = None
        entry = None if self.capacity is None else self.capacity.spec.service(service)
        if entry is not None:
            system = (entry.replicas.min, entry.replicas.max)
        return combined_bounds((scaling.min_replicas, scaling.max_replicas), system)

    def _rule(self, action: ActionKind, service: str) -> ActionRule | None:
        """The gate's rule for ``action`` on ``service``, with the service's bounds."""
        rule = self.policy.rule_for(action, service)
        scaling = self.policy.spec.scaling.get(service)
        if rule is None or scaling is None:
            return rule
        low, high = self._bounds(service, scaling)
        return replace(rule, min_replicas=low, max_replicas=high)

    def _request(
        self,
        action: ActionKind,
        service: str,
        trigger: str,
        evidence: dict[str, Any],
        now: datetime,
    ) -> tuple[ActionRequest, dict[str, Any]]:
        notes: dict[str, Any] = {}
        if action not in SCALING:
            target = f"database/{service}" if action in DATABASE_ACTIONS else f"service/{service}"
            return (
                ActionRequest(
                    action=action,
                    service=service,
                    target=target,
                    trigger=trigger,
                    evidence=evidence,
                ),
                notes,
            )
        scaling = self.policy.spec.scaling.get(service)
        inputs: dict[str, InputValue] = {}
        signals: list[Signal] = []
        for burn in scaling.burn_signals if scaling else ():
            name = f"{burn.slo} burn {burn.window}"
            value = self.burn_reader(service, burn.slo, burn.window)
            inputs[name] = value
            signals.append(
                Signal(
                    name=name,
                    kind="slo_burn",
                    value=value.value,
                    target=burn.target,
                    observed_at=value.observed_at,
                )
            )
        current: int | None = None
        gate_inputs: dict[str, InputValue] | None = None
        if self.actuator is None:
            inputs["replicas"] = InputValue(value=None, observed_at=None)
        else:
            try:
                current = self.actuator.current_replicas(service)
                inputs["replicas"] = InputValue(value=float(current), observed_at=now)
            except ActuatorError as exc:
                inputs["replicas"] = InputValue(value=None, observed_at=None)
                notes["actuator_error"] = str(exc)
        desired = current
        if current is not None and scaling is not None and signals:
            if action == "scale_out":
                desired, gate_inputs = self._scale_out(
                    service, current, self._bounds(service, scaling), signals, inputs, now, notes
                )
            else:
                desired = self._scale_in(
                    service, current, self._bounds(service, scaling), signals, notes
                )
        elif current is not None and not signals:
            notes["refusal"] = f"no scaling signals configured for {service}"
        merged = {
            **evidence,
            "service": service,
            "inputs": {
                k: {
                    "value": v.value,
                    "observed_at": None if v.observed_at is None else v.observed_at.isoformat(),
                }
                for k, v in inputs.items()
            },
            **notes,
        }
        return (
            ActionRequest(
                action=action,
                service=service,
                target=f"service/{service}",
                trigger=trigger,
                current_replicas=current,
                desired_replicas=desired,
                inputs=inputs if gate_inputs is None else gate_inputs,
                evidence=merged,
            ),
            notes,
        )

    def _scale_out(
        self,
        service: str,
        current: int,
        bounds: Bounds,
        signals: Sequence[Signal],
        inputs: dict[str, InputValue],
        now: datetime,
        notes: dict[str, Any],
    ) -> tuple[int, dict[str, InputValue]]:
        """The recommended count and the inputs the gate checks: a scale-out depends on the
        signals that drive it (and the replica count); a missing unrelated signal must not
        block it."""
        spec = ScalingSpec(min_replicas=bounds[0], max_replicas=bounds[1])
        recommendation = recommend(
            spec=spec, current=current, signals=signals, now=now, events=self._events(now)
        )
        desired = recommendation.desired
        notes["recommendation"] = {
            "proposed": recommendation.proposed,
            "desired": recommendation.desired,
            "reason": recommendation.reason,
            "per_signal": recommendation.per_signal,
            "limited_by": recommendation.limited_by,
        }
        if desired <= current:
            notes["refusal"] = recommendation.reason
        elif self._awaiting_verification(service):
            notes["refusal"] = "an earlier scale-out is still being verified"
        elif self._escalated(service):
            notes["refusal"] = (
                "escalated: scaling out did not reduce the burn; waiting for the burn to "
                "fall or for an operator"
            )
        drivers = {
            name
            for name, proposal in recommendation.per_signal.items()
            if proposal is not None and proposal > current
        }
        return desired, {
            name: value for name, value in inputs.items() if name in drivers or name == "replicas"
        }

    def _scale_in(
        self,
        service: str,
        current: int,
        bounds: Bounds,
        signals: Sequence[Signal],
        notes: dict[str, Any],
    ) -> int:
        """One step of giving back what the engine's scale-outs added (``release.py``). A
        scale-in depends on every signal (the gate checks them all), and is refused while any
        burns above its target or when no scale-out is outstanding."""
        raised = self._outstanding_raise(service)
        if raised is None:
            notes["refusal"] = f"nothing to give back: no scale-out of {service} is outstanding"
            return current
        spec = self.policy.spec.actions.get("scale_in")
        target = restore_target(raised, floor=bounds[0])
        desired = release_step(
            current=current, target=target, max_step=None if spec is None else spec.max_step
        )
        notes["release"] = {
            "raised_by": raised.decision_id,
            "raised_at": raised.at.isoformat(),
            "before": raised.before,
            "via": raised.via,
            "target": target,
        }
        burning = [s.name for s in signals if s.value is not None and s.value > s.target]
        if burning:
            notes["refusal"] = f"still burning above target: {', '.join(burning)}"
        elif desired >= current:
            notes["refusal"] = (
                f"nothing to give back: {current} running, the restore target is {target}"
            )
        return desired

    def _history(self, session: Any, now: datetime) -> list[PastAction]:
        entries = list_audit(session, since=now - timedelta(hours=2), limit=1000)
        return [
            PastAction(at=e.at, service=str(e.evidence.get("service", "")), action=e.action)  # type: ignore[arg-type]
            for e in entries
            if e.decision == "taken" and not e.dry_run and e.action in _ACTIONS
        ]

    def _events(self, now: datetime) -> list[ScaleEvent]:
        with self.database.reader() as session:
            entries = list_audit(session, since=now - timedelta(minutes=10), limit=200)
        events = []
        for entry in entries:
            result = entry.evidence.get("result")
            if entry.action in SCALING and isinstance(result, dict) and "after" in result:
                events.append(
                    ScaleEvent(at=entry.at, old=int(result["before"]), new=int(result["after"]))
                )
        return events

    def _record(
        self,
        request: ActionRequest,
        result: GateResult,
        trigger_key: str | None,
        notes: dict[str, Any],
        now: datetime,
        actor: str | None = None,
    ) -> StoredAuditEntry | None:
        kind = {"act": "taken", "dry-run": "taken", "await-approval": "pending"}.get(
            result.outcome, "refused"
        )
        evidence = {
            **request.evidence,
            **result.evidence(),
            "trigger": request.trigger,
            "policy_version": self.policy.metadata.version,
            "current_replicas": request.current_replicas,
            "desired_replicas": request.desired_replicas,
        }
        decision = AuditDecision(
            at=now,
            actor=actor or self.actor,
            action=request.action,
            target=request.target,
            decision=kind,  # type: ignore[arg-type]
            reason=result.reason,
            evidence=evidence,
            fencing_token=result.fencing_token if kind != "refused" else None,
            dry_run=result.outcome == "dry-run",
            trigger_key=trigger_key,
        )
        try:
            with self.database.writer() as session:
                return decide_once(session, decision=decision, lease_name=self.lease_name)
        except DuplicateTrigger:
            logger.info("trigger %s already decided; nothing to do", trigger_key)
            return None
        except FencingTokenStale as exc:
            # A stale leader may not decide; record the refusal without consuming the trigger,
            # so the real leader still decides it.
            stale = decision.model_copy(
                update={
                    "decision": "refused",
                    "reason": f"leader: {exc}",
                    "trigger_key": None,
                    "dry_run": False,
                }
            )
            with self.database.writer() as session:
                return decide_once(session, decision=stale)

    # -- acting -----------------------------------------------------------------------------
    def _claim(self, entry: StoredAuditEntry, token: int | None, *, resume: bool) -> bool:
        """Claim the execution of a taken decision under ``token`` (fenced in the store) and
        check, on this replica's own clock, that it still leads: a replica that lost its lease
        (frozen, cut off, replaced) runs nothing. False: not this replica's to run."""
        now = self.clock()
        try:
            with self.database.writer() as session:
                claimed = claim_execution(
                    session,
                    decision_id=entry.decision_id,
                    at=now,
                    by=self.actor,
                    token=token,
                    lease_name=None if token is None else self.lease_name,
                    resume=resume,
                )
        except FencingTokenStale as exc:
            logger.warning("%s %s not run: %s", entry.action, entry.decision_id, exc)
            return False
        if not claimed:
            logger.info("%s %s is claimed by another run", entry.action, entry.decision_id)
            return False
        if token is not None and not self._still_leads(token):
            logger.warning(
                "%s %s claimed, not run: the leadership ended meanwhile",
                entry.action,
                entry.decision_id,
            )
            return False
        return True

    def _still_leads(self, token: int) -> bool:
        """Whether this replica still leads with ``token`` (its lease valid on its own clock):
        asked by the actuator before each change it makes."""
        status = self.leadership.status()
        return status.fencing_token == token and status.leads(
            now=self.clock(), max_age=self.leader_max_age
        )

    def _crash_at(self, point: CrashPoint) -> None:
        """Fault injection (``CONTROLPLANE_ACTIONS_CRASH_POINT``): SIGKILL this process."""
        if self.crash_point == point:
            logger.critical("fault injection: SIGKILL at %s", point)
            for handler in logging.getLogger().handlers:
                handler.flush()
            os.kill(os.getpid(), signals.SIGKILL)

    def _execute(
        self,
        entry: StoredAuditEntry,
        request: ActionRequest,
        *,
        token: int | None,
        resume: bool = False,
    ) -> StoredAuditEntry | None:
        """Claim, act and record the outcome; None when the execution was not this replica's
        to run (claimed elsewhere, or fenced). Scaling sets an absolute replica count, so an
        execution resumed after its leader died mid-way does it once, however far that got."""
        if not self._claim(entry, token, resume=resume):
            return None
        self._crash_at("after_decision")
        outcome, detail, result = "failed", "", None
        extra: dict[str, Any] = {}
        if request.action in SCALING and request.desired_replicas is not None:
            if self.actuator is None:
                detail = "no actuator configured"
            elif resume and (reached := self._reached(request)) is not None:
                outcome, detail = (
                    "succeeded",
                    f"already {reached} (asked {request.desired_replicas})",
                )
                result = {"before": reached, "after": reached, "via": "none"}
            else:
                try:
                    scaled = self.actuator.scale(
                        request.service,
                        replicas=request.desired_replicas,
                        guard=None if token is None else lambda: self._still_leads(token),
                    )
                except ActuatorError as exc:
                    detail = str(exc)
                else:
                    result = {"before": scaled.before, "after": scaled.after, "via": scaled.via}
                    outcome = "succeeded" if scaled.reached else "partial"
                    detail = (
                        f"{scaled.via}: {scaled.before} → {scaled.after} (asked {scaled.requested})"
                    )
        elif request.action in self.executors:
            try:
                done = self.executors[request.action](entry)
            except ControlPlaneError as exc:
                detail = f"{type(exc).__name__}: {exc}"
            else:
                outcome, detail, extra = done.outcome, done.detail, done.evidence
        else:
            detail = f"{request.action} is run by its own executor"
            outcome = "handed-off"
        self._crash_at("after_act")
        if resume:
            detail = f"resumed after a leader change: {detail}"
        with self.database.writer() as session:
            updated = record_outcome(
                session,
                decision_id=entry.decision_id,
                outcome=outcome,
                at=self.clock(),
                detail=detail,
                executed_token=token,
            )
            if updated is None:
                # A later leader took this execution over (this replica froze or was cut off
                # mid-way): the outcome is its to record.
                logger.warning(
                    "%s %s: outcome %s not recorded, another leader took the execution over",
                    entry.action,
                    entry.decision_id,
                    outcome,
                )
                return None
            if result is not None:
                extra = {**extra, "result": result}
            if extra:
                updated = merge_evidence(session, decision_id=entry.decision_id, extra=extra)
            if outcome == "succeeded" and request.action == "scale_in":
                # The replicas an unfulfilled scale-out asked for are no longer wanted.
                resolve_finding(
                    session, kind=UNFULFILLED, subject=f"service/{request.service}", at=self.clock()
                )
        if outcome == "succeeded" and request.action == "scale_out":
            self._schedule_verification(entry, request)
        return updated

    def _reached(self, request: ActionRequest) -> int | None:
        """The current replica count when it already went the way ``request`` asks (a resumed
        scale-out never scales in, nor a scale-in out); None otherwise or when unreadable."""
        assert self.actuator is not None
        assert request.desired_replicas is not None
        try:
            current = self.actuator.current_replicas(request.service)
        except ActuatorError:
            return None
        if request.action == "scale_out":
            return current if current >= request.desired_replicas else None
        return current if current <= request.desired_replicas else None

    def _schedule_verification(self, entry: StoredAuditEntry, request: ActionRequest) -> None:
        scaling = self.policy.spec.scaling.get(request.service)
        if scaling is None or request.desired_replicas is None:
            return
        before = {name: value.value for name, value in request.inputs.items() if "burn" in name}
        self._verifications.append(
            _Verification(
                decision_id=entry.decision_id,
                service=request.service,
                due=self.clock() + scaling.verify_after,
                requested=request.desired_replicas,
                burn_before=before,
            )
        )

    @staticmethod
    def _request_of(entry: StoredAuditEntry, *, trigger: str) -> ActionRequest:
        """The request a stored decision was taken for (to run it later)."""
        return ActionRequest(
            action=entry.action,  # type: ignore[arg-type]
            service=str(entry.evidence.get("service", "")),
            target=entry.target,
            trigger=str(entry.evidence.get("trigger", trigger)),
            current_replicas=entry.evidence.get("current_replicas"),
            desired_replicas=entry.evidence.get("desired_replicas"),
            evidence=entry.evidence,
        )

    def _leading_token(self, now: datetime) -> int | None:
        """This replica's token when it leads and the kill switch is off, else None."""
        status = self.leadership.status()
        if not status.leads(now=now, max_age=self.leader_max_age):
            return None
        with self.database.reader() as session:
            if get_flag(session, KILL_SWITCH).enabled:
                return None
        return status.fencing_token

    def run_approved(self) -> list[StoredAuditEntry]:
        """Run decisions an operator approved (leader only; the kill switch still applies)."""
        token = self._leading_token(self.clock())
        if token is None:
            return []
        with self.database.reader() as session:
            approved = list_unexecuted(session)
        ran = []
        for entry in approved:
            done = self._execute(entry, self._request_of(entry, trigger="approved"), token=token)
            if done is not None:
                ran.append(done)
        return ran

    def resume_interrupted(self) -> list[StoredAuditEntry]:
        """Finish the scaling decisions a previous leader took and did not see through (it died
        or lost its lease between its decision and its outcome): once each, under this leader's
        token. One older than its rule's ``max_input_age`` is not run on inputs that old: it is
        closed as ``abandoned`` instead."""
        now = self.clock()
        token = self._leading_token(now)
        if token is None:
            return []
        with self.database.reader() as session:
            interrupted = list_interrupted(session, token=token, actions=SCALING)
        finished = []
        for entry in interrupted:
            request = self._request_of(entry, trigger="resumed")
            rule = self._rule(request.action, request.service)
            started = entry.outcome_at or entry.at
            if rule is None or now - started > rule.max_input_age:
                finished.extend(self._abandon(entry, token=token, started=started))
                continue
            logger.warning(
                "resuming %s %s (%s → %s) interrupted by a leader change",
                entry.action,
                entry.decision_id,
                request.current_replicas,
                request.desired_replicas,
            )
            done = self._execute(entry, request, token=token, resume=True)
            if done is not None:
                finished.append(done)
        return finished

    def _abandon(
        self, entry: StoredAuditEntry, *, token: int, started: datetime
    ) -> list[StoredAuditEntry]:
        age = (self.clock() - started).total_seconds()
        with self.database.writer() as session:
            if not claim_execution(
                session,
                decision_id=entry.decision_id,
                at=self.clock(),
                by=self.actor,
                token=token,
                lease_name=self.lease_name,
                resume=True,
            ):
                return []
            updated = record_outcome(
                session,
                decision_id=entry.decision_id,
                outcome="abandoned",
                at=self.clock(),
                detail=f"interrupted by a leader change {age:.0f} s ago: too old to run now",
            )
        return [] if updated is None else [updated]

    def verify_due(self) -> list[str]:
        """Check scale-outs whose verification time has come: the replicas ready against those
        asked for, and the burn; escalate those that did not reduce the burn. Both counts are
        written into the scale-out's audit entry (``verification``)."""
        now = self.clock()
        due = [v for v in self._verifications if v.due <= now]
        self._verifications = [v for v in self._verifications if v.due > now]
        escalated = []
        scaling = self.policy.spec.scaling
        for item in due:
            signals = scaling[item.service].burn_signals if item.service in scaling else ()
            after = {
                f"{s.slo} burn {s.window}": self.burn_reader(item.service, s.slo, s.window).value
                for s in signals
            }
            helped = any(
                before is not None and after.get(name) is not None and after[name] < before  # type: ignore[operator]
                for name, before in item.burn_before.items()
            )
            subject = f"service/{item.service}"
            with self.database.writer() as session:
                self._verify_ready(session, item, now, helped=helped, burn_after=after)
                if helped:
                    resolve_finding(session, kind=INEFFECTIVE, subject=subject, at=now)
                    continue
                observe_finding(
                    session,
                    kind=INEFFECTIVE,
                    subject=subject,
                    severity="critical",
                    at=now,
                    summary=f"{item.service}: the short-window burn did not drop after scaling "
                    "out; escalating instead of scaling further",
                    evidence={
                        "decision_id": item.decision_id,
                        "before": item.burn_before,
                        "after": after,
                    },
                )
                decide_once(
                    session,
                    decision=AuditDecision(
                        at=now,
                        actor=self.actor,
                        action="escalate",
                        target=subject,
                        decision="taken",
                        reason="scale-out did not reduce the burn: a human is needed",
                        evidence={
                            "service": item.service,
                            "decision_id": item.decision_id,
                            "before": item.burn_before,
                            "after": after,
                        },
                        trigger_key=f"verify:{item.decision_id}",
                    ),
                )
            escalated.append(item.decision_id)
        return escalated

    def _ready(self, service: str) -> tuple[int | None, str | None]:
        """The ready replicas read from the system, or None and why not."""
        if self.actuator is None:
            return None, "no actuator configured"
        try:
            return self.actuator.ready_replicas(service), None
        except ActuatorError as exc:
            return None, str(exc)

    def _verify_ready(
        self,
        session: Any,
        item: _Verification,
        now: datetime,
        *,
        helped: bool,
        burn_after: dict[str, float | None],
    ) -> None:
        """Record what was ready against what was asked, and open :data:`UNFULFILLED` when
        fewer replicas are ready (resolve it when all are). An unreadable count changes no
        finding: it is recorded as unknown."""
        ready, error = self._ready(item.service)
        verification: dict[str, Any] = {
            "at": now.isoformat(),
            "requested": item.requested,
            "ready": ready,
            "burn_before": item.burn_before,
            "burn_after": burn_after,
            "burn_reduced": helped,
        }
        if error is not None:
            verification["ready_error"] = error
        merge_evidence(session, decision_id=item.decision_id, extra={"verification": verification})
        subject = f"service/{item.service}"
        if ready is None:
            return
        if ready >= item.requested:
            resolve_finding(session, kind=UNFULFILLED, subject=subject, at=now)
            return
        observe_finding(
            session,
            kind=UNFULFILLED,
            subject=subject,
            severity="warning",
            at=now,
            summary=f"{item.service}: {ready} of the {item.requested} replicas a scale-out asked "
            "for are ready at its verification",
            evidence={"decision_id": item.decision_id, "requested": item.requested, "ready": ready},
        )

    def recheck_unfulfilled(self) -> list[str]:
        """Resolve the open :data:`UNFULFILLED` findings whose replicas are now all ready;
        returns the services resolved."""
        with self.database.reader() as session:
            open_findings = list_findings(session, open_only=True, kind=UNFULFILLED)
        resolved = []
        for finding in open_findings:
            service = finding.subject.removeprefix("service/")
            requested = finding.evidence.get("requested")
            ready, _ = self._ready(service)
            if ready is None or not isinstance(requested, int) or ready < requested:
                continue
            with self.database.writer() as session:
                resolve_finding(session, kind=UNFULFILLED, subject=finding.subject, at=self.clock())
            resolved.append(service)
        return resolved

    def tick(self) -> None:
        """Periodic work (leader only): executions a previous leader left unfinished, approved
        decisions, due verifications, burn triggers, scale-ins of services calm long enough."""
        with self._lock:
            self.resume_interrupted()
            self.run_approved()
            self.verify_due()
            self.recheck_unfulfilled()
            self.on_burn()
            self.on_calm()


_ACTIONS = {
    "scale_out",
    "scale_in",
    "set_replica_bounds",
    "failover_database",
    "switchover_database",
    "run_drill",
    "rejoin_member",
    "backup",
    "validate_restore",
}
