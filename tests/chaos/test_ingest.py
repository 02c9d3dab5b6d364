"""Faults under ingest: Redis SIGKILLed, a stream worker SIGKILLed mid-batch, the PostgreSQL
primary SIGKILLed (a Patroni cluster fails over). Clients keep posting movements throughout and
retry what is not acknowledged with the same key; afterwards every acknowledged movement is
applied exactly once and the stock adds up to the movements applied.

The inventory API (gunicorn, two workers) and its stream worker run as processes, as in
production; Redis keeps an append-only file synced on every write, as production Redis does
(``app/README.md``: a 202 means the movement is in Redis, and must survive a Redis crash).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from app.migrate import upgrade
from controlplane.stack.backends import PostgresPrimary, PostgresReplica, Redis
from controlplane.stack.patroni import SUPERUSER
from tests.chaos.tools import Ingest, IngestReport, Query, Reconciled, reconcile, summary
from tests.integration.app.conftest import (
    Api,
    Databases,
    ManagedProcess,
    Stack,
    create_database,
    eventually,
    make_item,
    unique,
)
from tests.support.backends import BackendPool, PatroniFactory
from tests.support.figures import Figures
from tests.support.ledger import stream_backlog, stream_pending

#: Every acknowledged movement must be applied within this long of the end of the load.
SETTLE_S = 90.0


@pytest.fixture(scope="module")
def durable_redis(backend_pool: BackendPool) -> Iterator[Redis]:
    server = backend_pool.start(
        Redis(
            settings=backend_pool.settings,
            workdir=backend_pool.workdir(Redis.name),
            ports=backend_pool.ports_for(Redis.name),
            appendfsync="always",
        )
    )
    yield server
    backend_pool.stop(server)


@pytest.fixture(scope="module")
def databases(postgres_primary: PostgresPrimary, postgres_replica: PostgresReplica) -> Databases:
    return Databases(
        name=create_database(postgres_primary), primary=postgres_primary, replica=postgres_replica
    )


def _stack(
    tmp: Path, *, database_url: str, redis: Redis, replica_url: str | None = None
) -> tuple[Stack, str]:
    stream = unique("chaos:movements")
    dbs_env = {
        "INVENTORY_DATABASE_URL": database_url,
        "INVENTORY_REDIS_URL": redis.url,
        "INVENTORY_STREAM_KEY": stream,
        "INVENTORY_LOG_LEVEL": "INFO",
        "INVENTORY_WORKER_BLOCK_MS": "50",
        "INVENTORY_WORKER_BATCH_SIZE": "50",
        "INVENTORY_WORKER_CLAIM_IDLE_MS": "2000",
        "INVENTORY_WORKER_CLAIM_INTERVAL_SECONDS": "1",
        "INVENTORY_WORKER_SWEEP_INTERVAL_SECONDS": "1",
    }
    if replica_url is not None:
        dbs_env["INVENTORY_REPLICA_URL"] = replica_url
    return Stack(tmp=tmp, base_env=dbs_env), stream


@dataclass
class Run:
    """One ingest under a fault: the processes, the clients, and at the end what they saw."""

    stack: Stack
    stream: str
    api: Api
    worker: ManagedProcess
    sku: str
    ingest: Ingest
    report: IngestReport | None = None
    result: Reconciled | None = None

    def until_acked(self, more: int, *, timeout: float = 60.0) -> None:
        """Keep the load on until ``more`` movements more are acknowledged."""
        wanted = self.ingest.acked() + more
        eventually(
            lambda: self.ingest.acked() >= wanted, timeout=timeout, what=f"{wanted} acknowledged"
        )

    def refused(self) -> int:
        return sum(n for code, n in self.ingest.report.answers.items() if code != "202")


@contextmanager
def ingest_run(
    tmp_path: Path,
    *,
    database_url: str,
    query: Query,
    redis: Redis,
    replica_url: str | None = None,
    rate: float = 25.0,
) -> Iterator[Run]:
    """The API and a worker under load; the fault is the caller's, between enough
    acknowledged movements before and after it. On exit the stream settles and everything is
    reconciled (``run.result``)."""
    stack, stream = _stack(
        tmp_path, database_url=database_url, redis=redis, replica_url=replica_url
    )
    try:
        api = stack.api(workers=2)
        worker = stack.worker()
        with api.client() as client:
            sku = make_item(client)
        run = Run(
            stack=stack,
            stream=stream,
            api=api,
            worker=worker,
            sku=sku,
            ingest=Ingest(api_url=api.url, sku=sku, rate=rate).start(),
        )
        try:
            run.until_acked(150)
            yield run
            run.until_acked(150)
        finally:
            run.report = run.ingest.stop()
        eventually(
            lambda: stream_backlog(redis_url=redis.url, stream=stream) == 0,
            timeout=SETTLE_S,
            what="the stream to settle",
        )
        run.result = reconcile(query, sku=sku, warehouse="W1", report=run.report)
    finally:
        stack.stop_all()


def record(
    figures: Figures,
    run: Run,
    *,
    fault: str,
    must_hold: str,
    detail: str,
    also: bool = True,
    **measures: float,
) -> bool:
    """The fault's row; whether it held (nothing acknowledged lost, nothing applied twice, the
    stock equal to the movements applied, and ``also``)."""
    result, report = run.result, run.report
    assert result is not None
    assert report is not None
    held = (
        also
        and result.acked > 0
        and result.acked_lost == 0
        and result.applied_twice == 0
        and result.unknown == 0
        and result.on_hand == result.expected_on_hand
    )
    figures.fault(
        fault,
        must_hold=must_hold,
        seen=f"{detail}; {result.acked} acknowledged, answers {summary(report.answers)}; "
        f"{result.applied} applied; lost {result.acked_lost}, twice {result.applied_twice}, "
        f"unknown {result.unknown}; stock {result.on_hand} = movements {result.expected_on_hand}",
        survived=held,
        acked_lost=result.acked_lost,
        actions_doubled=result.applied_twice,
        **measures,
    )
    return held


NOTHING_LOST = "no acknowledged movement lost, none applied twice"


def test_redis_sigkilled_during_ingest_loses_no_acknowledged_movement(
    tmp_path: Path, databases: Databases, durable_redis: Redis, figures: Figures
) -> None:
    with ingest_run(
        tmp_path,
        database_url=databases.write_dsn,
        replica_url=databases.read_dsn,
        query=databases.query,
        redis=durable_redis,
    ) as run:
        assert durable_redis.process is not None
        killed_at = time.monotonic()
        durable_redis.process.stop(sig=signal.SIGKILL, timeout=10)
        durable_redis.process = None
        refused_before = run.refused()
        time.sleep(5)
        durable_redis.start()
        down_s = time.monotonic() - killed_at
        refused = run.refused() - refused_before
    held = record(
        figures,
        run,
        fault="Redis SIGKILLed during ingest (down 5 s, append-only file synced per write)",
        must_hold=f"{NOTHING_LOST}; refused (503) while down, never acknowledged and dropped",
        detail=f"down {down_s:.1f} s, {refused} refused",
        also=refused > 0,
        redis_down_s=round(down_s, 1),
    )
    assert held, run.result


def test_a_worker_sigkilled_mid_batch_loses_nothing_and_applies_nothing_twice(
    tmp_path: Path, databases: Databases, durable_redis: Redis, figures: Figures
) -> None:
    with ingest_run(
        tmp_path,
        database_url=databases.write_dsn,
        replica_url=databases.read_dsn,
        query=databases.query,
        redis=durable_redis,
        rate=40,
    ) as run:
        # Killed while it holds a batch of at least 10 entries read and not acknowledged:
        # held back for 2 s first (SIGSTOP), it then reads a full batch from the backlog.
        run.worker.kill(signal.SIGSTOP)
        time.sleep(2)
        run.worker.kill(signal.SIGCONT)
        held_batch = eventually(
            lambda: (
                (n := stream_pending(redis_url=durable_redis.url, stream=run.stream)) >= 10 and n
            ),
            timeout=30,
            interval=0.005,
            what="a batch in hand",
        )
        run.worker.kill(signal.SIGKILL)
        killed_at = time.monotonic()
        time.sleep(2)
        run.stack.worker()
        restarted_s = time.monotonic() - killed_at
    held = record(
        figures,
        run,
        fault="stream worker SIGKILLed mid-batch under ingest",
        must_hold=f"the batch it held is claimed by the next worker: {NOTHING_LOST}",
        detail=f"killed holding {held_batch} unacknowledged entries, new worker "
        f"{restarted_s:.1f} s later",
    )
    assert held, run.result


def test_the_postgresql_primary_sigkilled_under_ingest_fails_over_and_loses_nothing(
    tmp_path: Path, patroni_factory: PatroniFactory, durable_redis: Redis, figures: Figures
) -> None:
    cluster = patroni_factory(synchronous_mode=True)
    leader = cluster.wait_ready()
    name = f"inv_{unique('chaos').split('-')[1]}"
    with psycopg.connect(leader.dsn(), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    ports = ",".join(f"127.0.0.1:{member.port}" for member in cluster.members)
    url = f"postgresql://{SUPERUSER}@{ports}/{name}"
    upgrade(url)

    def query(sql: str, params: object = None) -> list[tuple[object, ...]]:
        with psycopg.connect(url, target_session_attrs="read-write", connect_timeout=3) as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]

    def applied() -> int | None:
        try:
            return int(query("SELECT count(*) FROM movements")[0][0])  # type: ignore[call-overload]
        except psycopg.Error:
            return None

    with ingest_run(tmp_path, database_url=url, query=query, redis=durable_redis) as run:
        before = applied()
        killed = cluster.leader()
        assert killed is not None
        assert before is not None
        killed.kill()  # Patroni and every PostgreSQL process of the primary, at once
        killed_at = time.monotonic()
        eventually(
            lambda: (applied() or 0) > before,
            timeout=120,
            interval=0.5,
            what="movements applied again",
        )
        recovered_s = time.monotonic() - killed_at
        new_leader = cluster.leader()
    moved = new_leader is not None and new_leader.name != killed.name
    held = record(
        figures,
        run,
        fault="PostgreSQL primary SIGKILLed under ingest (Patroni, synchronous mode)",
        must_hold=f"the standby takes over, the workers follow it: {NOTHING_LOST}",
        detail=f"{killed.name} killed, {new_leader.name if new_leader else 'nobody'} leads; "
        f"movements applied again after {recovered_s:.1f} s",
        also=moved,
        failover_applying_again_s=round(recovered_s, 1),
    )
    assert held, run.result
