"""The stream worker: read movements through the consumer group, apply them in batches, and
acknowledge only after the transaction committed.

Exactly-once effect from at-least-once delivery: an entry stays pending until XACK, which happens
after COMMIT; if the worker dies in between, the entry is delivered again (to whichever worker
claims it once it has been idle for ``worker_claim_idle_ms``) and the idempotency key recorded in
the same transaction turns the second apply into a skip.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import redis
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy import Engine

from app.core.config import Settings
from app.services.apply_plan import MalformedMessage, StreamMovement
from app.services.cache import REDIS_ERRORS, invalidate_sync, queue_invalidation
from app.services.movements import STATUS_PREFIX
from app.services.reservations import EXPIRE_DUE
from app.telemetry.metrics import WorkerMetrics
from app.worker.applier import BatchApplier, Committed, classify

log = logging.getLogger(__name__)

#: Where entries that are not movements at all are kept (with the reason), outside PostgreSQL.
MALFORMED_STREAM_SUFFIX = ":malformed"

_propagator = TraceContextTextMapPropagator()


@dataclass
class StepResult:
    read: int = 0
    applied: int = 0
    dead: int = 0
    duplicates: int = 0


class StreamWorker:
    def __init__(
        self,
        *,
        settings: Settings,
        client: redis.Redis,
        engine: Engine,
        metrics: WorkerMetrics,
        tracer: trace.Tracer,
        consumer: str,
    ) -> None:
        self.settings = settings
        self.client = client
        self.engine = engine
        self.metrics = metrics
        self.tracer = tracer
        self.consumer = consumer
        self.applier = BatchApplier(engine=engine)
        self.stream = settings.stream_key
        self.group = settings.consumer_group
        self.commits = 0
        self._next_claim = 0.0
        self._next_sweep = 0.0
        self._next_gauges = 0.0
        #: Entries read but not yet acknowledged because PostgreSQL or Redis failed; tried first.
        self._carry: list[tuple[str, dict[bytes, bytes] | None, int]] = []

    # -- setup ------------------------------------------------------------------------------
    def ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # -- main loop --------------------------------------------------------------------------
    def run(self, *, stop: threading.Event) -> None:
        backoff = 0.5
        group_ready = False
        while not stop.is_set():
            try:
                if not group_ready:
                    self.ensure_group()
                    group_ready = True
                self.step()
                backoff = 0.5
            except REDIS_ERRORS as exc:
                group_ready = False
                log.warning("redis unavailable, retrying in %.1fs: %s", backoff, exc)
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            except DatabaseUnavailable as exc:
                log.warning("postgresql unavailable, retrying in %.1fs: %s", backoff, exc)
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def step(self) -> StepResult:
        """One round: maybe reclaim, read a batch, apply it, acknowledge it."""
        now = time.monotonic()
        self._maybe_sweep(now)
        self._maybe_update_gauges(now)
        if self._carry:
            return self._process(self._carry)
        entries: list[tuple[str, dict[bytes, bytes] | None, int]] = []
        if now >= self._next_claim:
            entries = self._reclaim()
            if len(entries) < self.settings.worker_batch_size:
                self._next_claim = now + self.settings.worker_claim_interval_seconds
        if not entries:
            entries = self._read_new()
        if not entries:
            return StepResult()
        return self._process(entries)

    def _read_new(self) -> list[tuple[str, dict[bytes, bytes] | None, int]]:
        response: Any = self.client.xreadgroup(
            self.group,
            self.consumer,
            {self.stream: ">"},
            count=self.settings.worker_batch_size,
            block=self.settings.worker_block_ms,
        )
        entries: list[tuple[str, dict[bytes, bytes] | None, int]] = []
        for _stream, messages in response or []:
            for entry_id, fields in messages:
                entries.append((_text(entry_id), fields, 1))
        return entries

    def _reclaim(self) -> list[tuple[str, dict[bytes, bytes] | None, int]]:
        """Claim entries another (dead) consumer left pending for too long."""
        idle = self.settings.worker_claim_idle_ms
        pending: Any = self.client.xpending_range(
            self.stream,
            self.group,
            min="-",
            max="+",
            count=self.settings.worker_batch_size,
            idle=idle,
        )
        if not pending:
            return []
        deliveries = {_text(p["message_id"]): int(p["times_delivered"]) for p in pending}
        claimed: Any = self.client.xclaim(
            self.stream, self.group, self.consumer, idle, list(deliveries)
        )
        entries = [
            (_text(entry_id), fields, deliveries.get(_text(entry_id), 1) + 1)
            for entry_id, fields in claimed
        ]
        if entries:
            self.metrics.reclaimed.inc(len(entries))
            log.info("claimed %d pending movements of dead consumers", len(entries))
        return entries

    # -- applying ---------------------------------------------------------------------------
    def _process(self, entries: list[tuple[str, dict[bytes, bytes] | None, int]]) -> StepResult:
        self._carry = entries
        result = self._process_once(entries)
        self._carry = []
        return result

    def _process_once(
        self, entries: list[tuple[str, dict[bytes, bytes] | None, int]]
    ) -> StepResult:
        movements: list[StreamMovement] = []
        malformed: list[tuple[str, dict[bytes, bytes] | None, str]] = []
        for entry_id, fields, deliveries in entries:
            if fields is None:  # deleted meanwhile: already applied and acknowledged
                malformed.append((entry_id, None, "entry deleted"))
                continue
            try:
                movement = StreamMovement.from_fields(entry_id, fields)
            except MalformedMessage as exc:
                malformed.append((entry_id, fields, str(exc)))
                continue
            movements.append(_with_deliveries(movement, deliveries))
        if malformed:
            self._park_malformed(malformed)
        self.metrics.batch_size.observe(len(movements))
        result = StepResult(read=len(entries))
        if not movements:
            return result
        too_often = [m for m in movements if m.deliveries > self.settings.worker_max_deliveries]
        dead = [
            (m, f"not applied after {m.deliveries - 1} deliveries (the worker kept failing)")
            for m in too_often
        ]
        todo = [m for m in movements if m.deliveries <= self.settings.worker_max_deliveries]
        committed = self._apply_with_recovery(todo, dead)
        self.commits += len(committed)
        if self._crash_due("after_commit"):
            log.error("fault injection: SIGKILL after commit, before acknowledging")
            os.kill(os.getpid(), signal.SIGKILL)
        self._after_commit(movements, committed)
        for done in committed:
            result.applied += len(done.plan.applied)
            result.dead += len(done.plan.rejected)
            result.duplicates += len(done.plan.duplicates)
        return result

    def _apply_with_recovery(
        self, todo: Sequence[StreamMovement], dead: Sequence[tuple[StreamMovement, str]]
    ) -> list[Committed]:
        """Apply the batch; on a poison movement, apply one by one and dead-letter the culprit.
        Raises only when the database is unavailable (nothing is acknowledged then)."""
        links = [Link(ctx) for ctx in (_span_context(m) for m in todo[:128]) if ctx is not None]
        with self.tracer.start_as_current_span(
            "movements apply batch",
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": "redis",
                "messaging.destination.name": self.stream,
                "messaging.batch.message_count": len(todo) + len(dead),
            },
        ) as span:
            started = time.perf_counter()
            try:
                committed = [self._apply_retrying(todo, dead)]
            except _Poison as poison:
                span.add_event("poison batch, applying one by one", {"error": str(poison.cause)})
                committed = self._apply_singly(todo, dead)
            elapsed = time.perf_counter() - started
            span.set_attribute(
                "inventory.batch.applied", sum(len(c.plan.applied) for c in committed)
            )
        self.metrics.apply_duration.observe(elapsed)
        return committed

    def _crash_due(self, point: str) -> bool:
        crash_at = self.settings.worker_crash_after_commits
        if crash_at is None or self.settings.worker_crash_point != point:
            return False
        batch = self.commits + (1 if point == "before_commit" else 0)
        return batch >= crash_at

    def _crash_in_transaction(self) -> None:
        if self._crash_due("before_commit"):
            log.error("fault injection: SIGKILL inside the open transaction")
            os.kill(os.getpid(), signal.SIGKILL)

    def _apply_retrying(
        self, todo: Sequence[StreamMovement], dead: Sequence[tuple[StreamMovement, str]]
    ) -> Committed:
        attempts = 0
        while True:
            attempts += 1
            try:
                return self.applier.apply(todo, dead=dead, before_commit=self._crash_in_transaction)
            except Exception as exc:  # classified below; anything unknown is re-raised
                kind = classify(exc)
                self.metrics.apply_total.labels(outcome="failed").inc(len(todo))
                if kind == "retry" and attempts < 5:
                    log.info("batch conflict (%s), retrying", exc.__class__.__name__)
                    continue
                if kind == "unavailable" or kind == "retry":
                    raise DatabaseUnavailable(str(exc)) from exc
                raise _Poison(exc) from exc

    def _apply_singly(
        self, todo: Sequence[StreamMovement], dead: Sequence[tuple[StreamMovement, str]]
    ) -> list[Committed]:
        done: list[Committed] = []
        if dead:
            done.append(self._apply_retrying([], dead))
        for movement in todo:
            try:
                done.append(self._apply_retrying([movement], []))
            except _Poison as poison:
                reason = f"cannot be applied: {_short(poison.cause)}"
                done.append(self._apply_retrying([], [(movement, reason)]))
        return done

    def _after_commit(
        self, movements: Sequence[StreamMovement], committed: list[Committed]
    ) -> None:
        applied = dead = 0
        for done in committed:
            plan = done.plan
            for movement in plan.applied:
                lag = max(0.0, done.committed_at - movement.accepted_at_ms / 1000.0)
                self.metrics.apply_lag.observe(lag)
            applied += len(plan.applied)
            dead += len(plan.rejected)
            if plan.duplicates:
                self.metrics.duplicates.inc(len(plan.duplicates))
            self._trace_outcomes(plan.applied, "applied")
            self._trace_outcomes([m for m, _ in plan.rejected], "dead_letter")
        if applied:
            self.metrics.apply_total.labels(outcome="applied").inc(applied)
        if dead:
            self.metrics.apply_total.labels(outcome="dead_letter").inc(dead)
        changed = set().union(*(c.changed_skus for c in committed)) if committed else set()
        pipe = self.client.pipeline(transaction=False)
        for done in committed:
            for movement, holder in done.plan.duplicates:
                if holder != movement.movement_id:
                    pipe.set(
                        STATUS_PREFIX + str(movement.movement_id),
                        f"duplicate:{holder}",
                        ex=self.settings.idempotency_ttl_seconds,
                    )
        # One round trip: invalidate the cache of what changed, then acknowledge.
        queue_invalidation(pipe, changed)
        ids = [m.entry_id for m in movements]
        pipe.xack(self.stream, self.group, *ids)
        pipe.xdel(self.stream, *ids)
        pipe.execute()

    def _trace_outcomes(self, movements: Sequence[StreamMovement], outcome: str) -> None:
        """A short span per movement inside the trace of the request that queued it."""
        for movement in movements:
            parent = _parent_context(movement)
            if parent is None:
                continue
            token = otel_context.attach(parent)
            try:
                with self.tracer.start_as_current_span(
                    "movement apply",
                    kind=SpanKind.CONSUMER,
                    attributes={
                        "inventory.movement.id": str(movement.movement_id),
                        "inventory.movement.kind": movement.kind,
                        "inventory.movement.outcome": outcome,
                    },
                ) as span:
                    if outcome != "applied":
                        span.set_status(Status(StatusCode.ERROR, outcome))
            finally:
                otel_context.detach(token)

    def _park_malformed(self, bad: list[tuple[str, dict[bytes, bytes] | None, str]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for entry_id, fields, reason in bad:
            if fields is not None:
                log.error("dead-lettering malformed stream entry %s: %s", entry_id, reason)
                record = {k.decode(errors="replace"): v for k, v in fields.items()}
                record["dead_letter_reason"] = reason.encode()
                record["entry_id"] = entry_id.encode()
                pipe.xadd(self.stream + MALFORMED_STREAM_SUFFIX, record)  # type: ignore[arg-type]
                self.metrics.apply_total.labels(outcome="dead_letter").inc()
            pipe.xack(self.stream, self.group, entry_id)
            pipe.xdel(self.stream, entry_id)
        pipe.execute()

    # -- housekeeping -----------------------------------------------------------------------
    def _maybe_sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.settings.worker_sweep_interval_seconds
        try:
            with self.engine.begin() as conn:
                skus = {row[0] for row in conn.exec_driver_sql(EXPIRE_DUE, {"limit": 1000}).all()}
        except Exception as exc:  # the sweeper must never stop the applier
            if classify(exc) == "poison":
                raise
            log.warning("reservation sweep skipped: %s", exc)
            return
        if skus:
            self.metrics.reservations_expired.inc(len(skus))
            invalidate_sync(self.client, skus)

    def _maybe_update_gauges(self, now: float) -> None:
        if now < self._next_gauges:
            return
        self._next_gauges = now + 1.0
        pipe = self.client.pipeline(transaction=False)
        pipe.xlen(self.stream)
        pipe.xinfo_groups(self.stream)
        length, groups = pipe.execute(raise_on_error=False)
        if isinstance(length, int):
            self.metrics.stream.length.set(length)
        if isinstance(groups, list):
            for group in groups:
                if _text(group.get("name", b"")) == self.group:
                    self.metrics.stream.pending.set(group.get("pending") or 0)
                    lag = group.get("lag")
                    self.metrics.stream.lag.set(lag if lag is not None else length)


class DatabaseUnavailable(Exception):
    """PostgreSQL cannot be reached; the batch stays pending and is tried again later."""


class _Poison(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _short(exc: BaseException) -> str:
    orig = getattr(exc, "orig", exc)
    return f"{type(orig).__name__}: {str(orig).splitlines()[0] if str(orig) else ''}"[:500]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _with_deliveries(movement: StreamMovement, deliveries: int) -> StreamMovement:
    if deliveries == movement.deliveries:
        return movement
    return replace(movement, deliveries=deliveries)


def _parent_context(movement: StreamMovement) -> otel_context.Context | None:
    if not movement.traceparent:
        return None
    carrier = {"traceparent": movement.traceparent}
    if movement.tracestate:
        carrier["tracestate"] = movement.tracestate
    return _propagator.extract(carrier)


def _span_context(movement: StreamMovement) -> trace.SpanContext | None:
    parent = _parent_context(movement)
    if parent is None:
        return None
    context = trace.get_current_span(parent).get_span_context()
    return context if context.is_valid else None
