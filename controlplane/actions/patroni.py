"""Failover through Patroni, behind the action gate: watching, deciding, recording.

:class:`PatroniFailover` reads ``GET /cluster`` every ``interval`` on the leader replica of the
control plane, and samples the leader's ``pg_stat_replication`` (the replay lag of each member,
and proof that the leader's PostgreSQL answers). What it does with that depends on the mode
(``CONTROLPLANE_FAILOVER_MODE``):

* ``auto``: Patroni fails over by itself. When the leader changes, the control plane records a
  ``leader_change`` audit entry (actor ``patroni``) with the evidence of :meth:`_record_change`
  (old and new leader and timeline, the lag of the new leader before, how long no writable
  leader was seen). The DR checks open ``dr.replica_missing`` while the old primary is away and
  resolve it when Patroni has made it a replica again.
* ``controlled``: Patroni is paused (``PATCH /config {"pause": true}``, applied when this
  replica starts leading), so it never fails over by itself. After ``threshold`` consecutive
  reads with no leader, the control plane decides ``failover_database`` through the gate with
  the candidate :func:`~controlplane.failover.plan.choose_member` chose (the smallest lag
  within the tier's RPO; a synchronous standby counts as zero); a taken — or, in approval mode,
  approved — decision calls ``POST /failover`` with that candidate. Patroni does not start a
  stopped PostgreSQL while paused, so a member that comes back ``stopped`` (the old primary
  after its host restarts) is let rejoin by a ``rejoin_member`` decision: Patroni is resumed
  until the member streams from the leader (``pg_rewind`` when needed), then paused again.

A planned switchover (``switchover_database``, an operator's request, default mode approval)
and the drills (``run_drill``) move the leader through :func:`~controlplane.failover.operations.
move_leader`; the control plane knows it caused those changes and records them as the
decisions' outcomes, not as ``leader_change`` events.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from controlplane.actions.drills import DrillKind
from controlplane.actions.engine import ActionEngine, Execution
from controlplane.core.config import FailoverMode
from controlplane.core.errors import ControlPlaneError
from controlplane.failover.driver import (
    ClusterState,
    DriverError,
    DriverRefused,
    FailoverDriver,
    Member,
)
from controlplane.failover.nodes import NodeUnreachable, replication_samples
from controlplane.failover.operations import (
    RoleChange,
    member_streams,
    move_leader,
    wait_for_cluster,
)
from controlplane.failover.plan import MemberChoice, choose_member
from controlplane.failover.switchover import DrillResult, SwitchoverAborted, drill_under_probe
from controlplane.store.actions import DuplicateTrigger, decide_once
from controlplane.store.audit import AuditDecision, StoredAuditEntry, record_outcome
from controlplane.store.errors import FencingTokenStale

__all__ = ["LEADER_CHANGE", "PatroniDrillRunner", "PatroniFailover", "leader_lags"]

logger = logging.getLogger(__name__)

#: The audit action of a leader change the control plane observed but did not make.
LEADER_CHANGE = "leader_change"
#: The audit action of applying the failover mode to Patroni (its pause).
FAILOVER_MODE = "failover_mode"
#: States of a member whose Patroni runs but whose PostgreSQL does not.
STOPPED_STATES = frozenset({"stopped", "crashed"})

#: The leader's replay lag per member: reads the leader's ``pg_stat_replication``; raises a
#: ControlPlaneError when the leader's PostgreSQL does not answer.
LagReader = Callable[[Member], dict[str, timedelta]]


def leader_lags(leader: Member, *, timeout: float = 1.0) -> dict[str, timedelta]:
    """Replay lag of every member connected to ``leader`` (``pg_stat_replication``; Patroni's
    members connect with their name as ``application_name``)."""
    node = leader.node()
    if node is None:
        raise NodeUnreachable(f"{leader.name}: no PostgreSQL address in the cluster state")
    return {
        sample.name: sample.replay_lag
        for sample in replication_samples(node, timeout=timeout)
        if sample.replay_lag is not None
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _members(state: ClusterState) -> list[dict[str, Any]]:
    return [
        {
            "name": m.name,
            "role": m.role,
            "state": m.state,
            "timeline": m.timeline,
            "lag_bytes": m.lag_bytes,
        }
        for m in state.members
    ]


def _no_candidate(choice: MemberChoice, *, why: str | None) -> Execution:
    return Execution(
        outcome="refused",
        detail=f"no candidate now: {why}",
        evidence={"execution": {"plan": choice.evidence()}},
    )


class PatroniFailover:
    """Watches a Patroni cluster for the control plane; the executor of its database actions."""

    def __init__(
        self,
        *,
        engine: ActionEngine,
        driver: FailoverDriver,
        database: str,
        mode: FailoverMode,
        rpo: timedelta,
        interval: float = 1.0,
        threshold: int = 3,
        lag_reader: LagReader = leader_lags,
        promote_timeout: float = 60.0,
        rejoin_timeout: float = 60.0,
        retry_refused_after: timedelta = timedelta(minutes=1),
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        self.engine = engine
        self.driver = driver
        self.database = database
        self.mode = mode
        self.rpo = rpo
        self.interval = interval
        self.threshold = threshold
        self.lag_reader = lag_reader
        self.promote_timeout = promote_timeout
        self.rejoin_timeout = rejoin_timeout
        self.retry_refused_after = retry_refused_after
        #: Decisions this watcher asked for and leader changes it recorded (newest last).
        self.decisions: list[StoredAuditEntry] = []
        self.events: list[StoredAuditEntry] = []
        # What the last reads showed (the watcher thread, or a test calling observe()).
        self._last: ClusterState | None = None  # the last state with a running leader
        self._lags: dict[str, timedelta] = {}
        self._leader_seen_at: datetime | None = None  # its PostgreSQL answered
        self._misses = 0
        self._lost_since: datetime | None = None
        self._change_waits = 0
        self._change_seen_at: datetime | None = None
        self._stopped_polls: dict[str, int] = {}
        self._episode: str | None = None
        self._attempt = 0
        self._episode_closed = False
        self._refused_at: datetime | None = None
        self._mode_applied = False
        #: Candidates of leader moves the control plane made itself → their decision.
        self._expected: dict[str, str] = {}
        #: A move of the control plane's is under way: the leaderless moment is not a failure.
        self._busy = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        engine.register_executor("failover_database", self.execute_failover)
        engine.register_executor("switchover_database", self.execute_switchover)
        engine.register_executor("rejoin_member", self.execute_rejoin)

    # -- the background watch ----------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="patroni-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.rejoin_timeout + self.promote_timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.observe()
            except Exception:  # the store, a bug: logged; the watch must outlive one read
                logger.exception("Patroni watch: one observation failed")
            self._stop.wait(self.interval)

    def _now(self) -> datetime:
        return self.engine.clock()

    def _leads(self) -> bool:
        status = self.engine.leadership.status()
        return status.leads(now=self._now(), max_age=self.engine.leader_max_age)

    def observe(self) -> ClusterState | None:
        """One read of the cluster and what follows from it (leader replica only); the state
        read, or None (not leading, or Patroni did not answer: nothing is concluded)."""
        if not self._leads():
            self._mode_applied = False
            return None
        try:
            state = self.driver.cluster()
        except DriverError as exc:
            logger.info("Patroni watch: %s", exc)
            return None
        if not self._mode_applied:
            self._apply_mode(state)
        if self._busy.is_set():
            return state  # the control plane's own move: its executor records it
        leader = state.leader
        if leader is None:
            self._leaderless(state)
        else:
            self._led(state, leader)
        return state

    # -- a leader ---------------------------------------------------------------------------
    def _led(self, state: ClusterState, leader: Member) -> None:
        previous = self._last
        old = None if previous is None else previous.leader
        if previous is not None and old is not None and old.name != leader.name:
            if (leader.timeline or 0) <= (old.timeline or 0) and self._change_waits < 5:
                # Patroni names the new leader a moment before its new timeline shows.
                self._change_waits += 1
                self._change_seen_at = self._change_seen_at or state.observed_at
                return
            seen_at = self._change_seen_at or state.observed_at
            if self._expected.pop(leader.name, None) is None:
                self._record_change(previous, state, seen_at=seen_at)
            self._leader_seen_at = None
        self._change_waits, self._change_seen_at = 0, None
        self._last = state
        self._misses, self._lost_since, self._episode = 0, None, None
        try:
            self._lags = self.lag_reader(leader)
            self._leader_seen_at = state.observed_at
        except ControlPlaneError as exc:
            logger.info("Patroni watch: leader %s's PostgreSQL: %s", leader.name, exc)
        if self.mode == "controlled" and state.paused:
            self._rejoin_stopped(state, leader)

    def _record_change(
        self, previous: ClusterState, state: ClusterState, *, seen_at: datetime
    ) -> None:
        """A leader change the control plane did not make. Evidence:

        * ``old_leader_last_seen_at``: the last read in which the old leader's PostgreSQL
          answered (its ``pg_stat_replication``); ``new_leader_seen_at``: the first read in
          which Patroni named the new leader; ``observed_rto_s``: the time between, i.e. how
          long the control plane saw no writable leader (to within ``poll_interval_s``);
        * ``lag_before_bytes`` / ``lag_before_s`` / ``synchronous_before``: how far the new
          leader was behind in the last read before the change (bytes from Patroni, time from
          the old leader's ``pg_stat_replication``); ``measured_rpo_s`` is 0 when it was the
          synchronous standby or 0 bytes behind (no acknowledged commit was lost), else null
          (the byte lag bounds the loss).
        """
        old, new = previous.leader, state.leader
        assert old is not None
        assert new is not None
        before = previous.member(new.name)
        lag_bytes = None if before is None else before.lag_bytes
        synchronous = before is not None and before.synchronous
        lag_time = timedelta(0) if synchronous else self._lags.get(new.name)
        last_seen = self._leader_seen_at or previous.observed_at
        rto = (seen_at - last_seen).total_seconds()
        evidence = {
            "service": self.database,
            "driver": "patroni",
            "mode": self.mode,
            "old_leader": old.name,
            "new_leader": new.name,
            "old_timeline": old.timeline,
            "new_timeline": new.timeline,
            "old_leader_last_seen_at": last_seen.isoformat(),
            "new_leader_seen_at": seen_at.isoformat(),
            "observed_rto_s": rto,
            "lag_before_bytes": lag_bytes,
            "lag_before_s": None if lag_time is None else lag_time.total_seconds(),
            "synchronous_before": synchronous,
            "measured_rpo_s": 0.0 if synchronous or lag_bytes == 0 else None,
            "poll_interval_s": self.interval,
            "members": _members(state),
        }
        by = "on its own" if self.mode == "auto" else "without the control plane"
        entry = self._record_event(
            LEADER_CHANGE,
            actor="patroni",
            reason=f"Patroni moved the leader {by}: {old.name} → {new.name} "
            f"(timeline {old.timeline} → {new.timeline})",
            evidence=evidence,
            trigger_key=f"{LEADER_CHANGE}:{self.database}:{old.name}:tl{old.timeline}:{new.name}",
            outcome="observed",
            detail=f"{old.name} → {new.name}: no writable leader seen for {rto:.1f} s; "
            + (
                "the new leader was the synchronous standby"
                if synchronous
                else f"the new leader was {lag_bytes if lag_bytes is not None else '?'} bytes "
                "behind"
            ),
        )
        if entry is not None:
            self.events.append(entry)
            logger.warning("leader change observed: %s", entry.outcome_detail)

    # -- no leader ----------------------------------------------------------------------------
    def _leaderless(self, state: ClusterState) -> None:
        self._misses += 1
        self._lost_since = self._lost_since or state.observed_at
        if self.mode != "controlled" or self._misses < self.threshold:
            return
        old = None if self._last is None else self._last.leader
        episode = (
            f"failover:{self.database}:{old.name if old else '-'}:tl{old.timeline if old else '-'}"
        )
        if episode != self._episode:
            self._episode, self._attempt, self._episode_closed = episode, 0, False
            self._refused_at = None
        now = self._now()
        if self._episode_closed or (
            self._refused_at is not None and now - self._refused_at < self.retry_refused_after
        ):
            return
        choice = choose_member(
            state.members,
            lag_times=self._lags,
            rpo=self.rpo,
            leader=None if old is None else old.name,
        )
        entry = self.engine.decide(
            "failover_database",
            self.database,
            trigger_key=f"{episode}:{self._attempt}",
            trigger=f"no leader in Patroni for {self._misses} reads "
            f"(last leader {old.name if old else 'unknown'})",
            evidence={
                "service": self.database,
                "driver": "patroni",
                "mode": self.mode,
                "old_leader": None if old is None else old.name,
                "old_timeline": None if old is None else old.timeline,
                "old_leader_last_seen_at": _iso(self._leader_seen_at),
                "leaderless_since": _iso(self._lost_since),
                "missed_reads": self._misses,
                "poll_interval_s": self.interval,
                "rpo_s": self.rpo.total_seconds(),
                "members": _members(state),
                "plan": choice.evidence(),
            },
            refusal=None if choice.allowed else choice.refused,
        )
        self._attempt += 1
        if entry is None:  # decided before (by another replica, or before a restart)
            self._episode_closed = True
            return
        self.decisions.append(entry)
        if entry.decision == "refused":
            self._refused_at = now  # asked again later: a candidate may catch up, a switch flip
        else:
            self._episode_closed = True
        logger.warning(
            "failover of %s: %s (%s)",
            self.database,
            entry.decision,
            entry.outcome_detail or entry.reason,
        )

    # -- stopped members in a paused cluster ----------------------------------------------------
    def _rejoin_stopped(self, state: ClusterState, leader: Member) -> None:
        stopped = {m.name: m for m in state.replicas if m.state in STOPPED_STATES}
        self._stopped_polls = {n: c for n, c in self._stopped_polls.items() if n in stopped}
        for name, member in stopped.items():
            polls = self._stopped_polls.get(name, 0) + 1
            self._stopped_polls[name] = polls
            if polls < self.threshold:
                continue
            self._stopped_polls[name] = 0
            bucket = int(self._now().timestamp() // 60)
            entry = self.engine.decide(
                "rejoin_member",
                self.database,
                trigger_key=f"rejoin:{self.database}:{name}:tl{leader.timeline}:{bucket}",
                trigger=f"{name} is {member.state} in paused Patroni while {leader.name} leads",
                evidence={
                    "service": self.database,
                    "driver": "patroni",
                    "member": name,
                    "state": member.state,
                    "leader": leader.name,
                    "timeline": leader.timeline,
                },
            )
            if entry is not None:
                self.decisions.append(entry)

    # -- the mode -----------------------------------------------------------------------------
    def _apply_mode(self, state: ClusterState) -> None:
        """Make Patroni's pause match the mode, once per leadership; recorded when changed."""
        want = self.mode == "controlled"
        if state.paused != want:
            try:
                self.driver.set_paused(want)
            except DriverError as exc:
                logger.warning("cannot %s Patroni: %s", "pause" if want else "resume", exc)
                return  # tried again at the next read
            self._record_event(
                FAILOVER_MODE,
                actor=self.engine.actor,
                reason=f"failover mode {self.mode}: Patroni "
                + ("paused: it never fails over by itself" if want else "fails over by itself"),
                evidence={
                    "service": self.database,
                    "driver": "patroni",
                    "mode": self.mode,
                    "paused_before": state.paused,
                    "paused_after": want,
                    "endpoints": list(self.driver.endpoints),
                },
                trigger_key=None,
                outcome="succeeded",
                detail=f"PATCH /config pause={str(want).lower()}",
            )
        self._mode_applied = True

    def _record_event(
        self,
        action: str,
        *,
        actor: str,
        reason: str,
        evidence: dict[str, Any],
        trigger_key: str | None,
        outcome: str,
        detail: str,
    ) -> StoredAuditEntry | None:
        """An audit entry for something that happened rather than a gated decision, written
        with the leader's fencing token (a replica that lost the lease writes nothing)."""
        now = self._now()
        decision = AuditDecision(
            at=now,
            actor=actor,
            action=action,
            target=f"database/{self.database}",
            decision="taken",
            reason=reason,
            evidence=evidence,
            fencing_token=self.engine.leadership.status().fencing_token,
            trigger_key=trigger_key,
        )
        try:
            with self.engine.database.writer() as session:
                entry = decide_once(session, decision=decision, lease_name=self.engine.lease_name)
                return record_outcome(
                    session, decision_id=entry.decision_id, outcome=outcome, at=now, detail=detail
                )
        except DuplicateTrigger:
            return None
        except FencingTokenStale as exc:
            logger.info("not recorded (%s): %s", action, exc)
            return None

    # -- moving the leader ----------------------------------------------------------------------
    def plan(
        self, state: ClusterState, *, leader: str | None, kind: DrillKind, force: bool = False
    ) -> MemberChoice:
        """The candidate for a move. A switchover loses nothing (the leader hands over
        cleanly), so only a failover is held to the RPO budget."""
        return choose_member(
            state.members,
            lag_times=self._lags,
            rpo=self.rpo,
            leader=leader,
            force=force or kind == "switchover",
        )

    def move(
        self,
        *,
        kind: DrillKind,
        candidate: Member,
        leader: Member | None,
        follow: bool,
        decision_id: str | None = None,
    ) -> RoleChange:
        """Move the leader (the watcher takes the change for the control plane's own, made
        for ``decision_id``)."""
        self._busy.set()
        self._expected[candidate.name] = decision_id or "control plane"
        try:
            return move_leader(
                self.driver,
                kind=kind,
                candidate=candidate,
                leader=leader,
                promote_timeout=self.promote_timeout,
                follow_timeout=self.rejoin_timeout if follow else None,
            )
        except DriverError:
            self._expected.pop(candidate.name, None)  # nothing moved (or not seen to)
            raise
        finally:
            self._busy.clear()

    def request_switchover(self, *, actor: str, candidate: str | None = None) -> StoredAuditEntry:
        """An operator's planned switchover, decided through the gate (``switchover_database``,
        approval mode by default); ``candidate`` None: the control plane chooses."""
        state = self.driver.cluster()
        leader = state.leader
        choice = self.plan(state, leader=None if leader is None else leader.name, kind="switchover")
        refusal = None if leader is not None else "no leader to switch over from"
        if refusal is None and candidate is not None:
            if candidate not in {c.name for c in choice.considered}:
                refusal = f"{candidate} cannot take over: " + choice.excluded.get(
                    candidate, "not a member of the cluster"
                )
        elif refusal is None and not choice.allowed:
            refusal = choice.refused
        entry = self.engine.decide(
            "switchover_database",
            self.database,
            trigger_key=None,
            trigger=f"switchover asked for by {actor}",
            evidence={
                "service": self.database,
                "driver": "patroni",
                "leader": None if leader is None else leader.name,
                "timeline": None if leader is None else leader.timeline,
                "requested_candidate": candidate,
                "members": _members(state),
                "plan": choice.evidence(),
            },
            refusal=refusal,
            actor=actor,
        )
        assert entry is not None  # no trigger key: never a duplicate
        return entry

    def _refused(self, exc: DriverError) -> Execution:
        if isinstance(exc, DriverRefused):
            return Execution(
                outcome="failed",
                detail=f"Patroni refused: {exc.reason}",
                evidence={"patroni": {"status": exc.status, "reason": exc.reason}},
            )
        return Execution(
            outcome="failed", detail=str(exc), evidence={"patroni": {"error": str(exc)}}
        )

    def execute_switchover(self, entry: StoredAuditEntry) -> Execution:
        """The executor of ``switchover_database``: hand over from the leader to the candidate
        (the requested one, else the plan's), then wait for the old leader to follow."""
        try:
            state = self.driver.cluster()
            leader = state.leader
            if leader is None:
                return Execution(outcome="failed", detail="no leader to switch over from")
            choice = self.plan(state, leader=leader.name, kind="switchover")
            wanted = entry.evidence.get("requested_candidate") or (
                None if choice.candidate is None else choice.candidate.name
            )
            candidate = None if wanted is None else state.member(str(wanted))
            if candidate is None or wanted not in {c.name for c in choice.considered}:
                return _no_candidate(choice, why=choice.refused or f"{wanted} cannot take over")
            change = self.move(
                kind="switchover",
                candidate=candidate,
                leader=leader,
                follow=True,
                decision_id=entry.decision_id,
            )
        except DriverError as exc:
            return self._refused(exc)
        return Execution(
            outcome="succeeded" if change.old_leader_following else "partial",
            detail=f"switchover {change.old_leader} → {change.new_leader} (timeline "
            f"{change.new_timeline}): {change.message}"
            + ("" if change.old_leader_following else f"; {change.old_leader} does not follow yet"),
            evidence={"execution": {"plan": choice.evidence(), "role_change": change.evidence()}},
        )

    def execute_failover(self, entry: StoredAuditEntry) -> Execution:
        """The executor of ``failover_database`` (at once, or once an operator approved):
        read the cluster again; if a leader is back there is nothing to do, else promote the
        candidate chosen now by the same rule (``POST /failover``)."""
        try:
            state = self.driver.cluster()
            if state.leader is not None:
                return Execution(
                    outcome="skipped",
                    detail=f"{state.leader.name} leads (timeline {state.leader.timeline}): "
                    "nothing to fail over",
                    evidence={"execution": {"members": _members(state)}},
                )
            old_name = entry.evidence.get("old_leader")
            plan = entry.evidence.get("plan")
            forced = isinstance(plan, dict) and bool(plan.get("forced"))
            choice = choose_member(
                state.members,
                lag_times=self._lags,
                rpo=self.rpo,
                leader=None if old_name is None else str(old_name),
                force=forced,
            )
            candidate = None if choice.candidate is None else state.member(choice.candidate.name)
            if candidate is None or not choice.allowed:
                return _no_candidate(choice, why=choice.refused)
            previous = None if self._last is None else self._last.leader
            old = previous if previous is not None and previous.name == old_name else None
            change = self.move(
                kind="failover",
                candidate=candidate,
                leader=old,
                follow=False,
                decision_id=entry.decision_id,
            )
        except DriverError as exc:
            return self._refused(exc)
        return Execution(
            outcome="succeeded",
            detail=f"Patroni promoted {change.new_leader} (timeline {change.new_timeline}): "
            f"{change.message}",
            evidence={"execution": {"plan": choice.evidence(), "role_change": change.evidence()}},
        )

    def execute_rejoin(self, entry: StoredAuditEntry) -> Execution:
        """The executor of ``rejoin_member``: resume Patroni until the member streams from the
        leader (Patroni starts it as a replica, rewinding it when needed), then pause again."""
        name = str(entry.evidence.get("member"))
        self._busy.set()
        try:
            self.driver.set_paused(False)
            try:
                state = wait_for_cluster(
                    self.driver, member_streams(name), timeout=self.rejoin_timeout
                )
            finally:
                if self.mode == "controlled":
                    self.driver.set_paused(True)
        except DriverError as exc:
            return self._refused(exc)
        finally:
            self._busy.clear()
        if state is None:
            return Execution(
                outcome="failed",
                detail=f"{name} did not stream within {self.rejoin_timeout:.0f} s; Patroni is "
                "paused again",
            )
        member = state.member(name)
        leader = state.leader
        return Execution(
            outcome="succeeded",
            detail=f"{name} streams from {leader.name if leader else '?'} again "
            f"(timeline {None if member is None else member.timeline}); Patroni paused again",
            evidence={"rejoin": {"members": _members(state)}},
        )


class PatroniDrillRunner:
    """Drills through Patroni: a switchover (``POST /switchover``) or a failover to the chosen
    candidate (``POST /failover`` while the leader runs; Patroni demotes it), under the write
    probe through every member's PostgreSQL."""

    kinds: frozenset[DrillKind] = frozenset({"switchover", "failover"})

    def __init__(self, failover: PatroniFailover) -> None:
        self.failover = failover

    def roles(self) -> tuple[str | None, str | None]:
        try:
            state = self.failover.driver.cluster()
        except DriverError:
            return None, None
        leader = state.leader
        choice = self.failover.plan(
            state, leader=None if leader is None else leader.name, kind="switchover"
        )
        return (
            None if leader is None else leader.name,
            None if choice.candidate is None else choice.candidate.name,
        )

    def run(
        self, *, kind: DrillKind, database: str, rto_target: timedelta, rpo_target: timedelta
    ) -> tuple[DrillResult, dict[str, Any]]:
        state = self.failover.driver.cluster()
        leader = state.leader
        if leader is None:
            raise SwitchoverAborted("no leader: nothing to drill")
        choice = self.failover.plan(state, leader=leader.name, kind=kind)
        candidate = None if choice.candidate is None else state.member(choice.candidate.name)
        if candidate is None or not choice.allowed:
            raise SwitchoverAborted(f"no candidate: {choice.refused}")
        result, change = drill_under_probe(
            kind=kind,
            database=database,
            nodes=state.nodes(),
            act=lambda: self.failover.move(
                kind=kind,
                candidate=candidate,
                leader=leader,
                follow=True,
            ),
            new_primary=lambda change: change.new_leader_node,
            rto_target=rto_target,
            rpo_target=rpo_target,
        )
        return result, {
            "driver": "patroni",
            "old_primary": change.old_leader,
            "new_primary": change.new_leader,
            "old_primary_following": change.old_leader_following,
            "timeline": change.new_timeline,
            "patroni": change.message,
            "plan": choice.evidence(),
        }
