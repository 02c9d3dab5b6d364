"""A write probe: numbered writes through the multi-host connection string, as a client sees it.

Each write inserts the next sequence number and counts as *acknowledged* only when its commit
returned. After a failover, the acknowledged numbers missing from the new primary are the
writes lost (RPO in writes); the time from the first failed write to the first successful one
after it is the RTO a client sees.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

from controlplane.failover.nodes import Node

TABLE = "controlplane_write_probe"


def multi_host_dsn(nodes: Sequence[Node], *, timeout: float = 1.0) -> str:
    """``host=a,b port=p,q target_session_attrs=read-write``: libpq finds the writable one."""
    hosts = ",".join(n.host for n in nodes)
    ports = ",".join(str(n.port) for n in nodes)
    user, dbname = nodes[0].user, nodes[0].dbname
    return (
        f"host={hosts} port={ports} user={user} dbname={dbname} "
        f"target_session_attrs=read-write connect_timeout={max(1, round(timeout))} "
        "application_name=controlplane-write-probe"
    )


@dataclass
class ProbeReport:
    acked: list[int] = field(default_factory=list)
    #: Writes whose commit failed from the client's view but turned out durable.
    committed_unacknowledged: list[int] = field(default_factory=list)
    failures: int = 0
    first_failure_at: datetime | None = None
    first_success_after_failure_at: datetime | None = None
    last_error: str | None = None

    @property
    def client_rto_s(self) -> float | None:
        if self.first_failure_at is None or self.first_success_after_failure_at is None:
            return None
        return (self.first_success_after_failure_at - self.first_failure_at).total_seconds()


class WriteProbe:
    """Writes numbered rows in a background thread until stopped (bounded by ``max_writes``)."""

    def __init__(
        self,
        *,
        nodes: Sequence[Node],
        interval: float = 0.02,
        max_writes: int = 1_000_000,
        timeout: float = 1.0,
    ) -> None:
        self.dsn = multi_host_dsn(nodes, timeout=timeout)
        self.interval = interval
        self.max_writes = max_writes
        self.timeout = timeout
        self.report = ProbeReport()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="write-probe", daemon=True)
        self._lock = threading.Lock()

    def prepare(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} "
                "(seq bigint PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT now())"
            )
            conn.execute(f"TRUNCATE {TABLE}")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> ProbeReport:
        self._stop.set()
        self._thread.join(timeout=30)
        with self._lock:
            return self.report

    def wait_for_recovery(self, timeout: float) -> bool:
        """Block until a write succeeded after the first failure (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.report.first_success_after_failure_at is not None:
                    return True
            time.sleep(0.02)
        return False

    def wait_for_writes(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.report.acked) >= count:
                    return True
            time.sleep(0.02)
        return False

    def _run(self) -> None:
        seq = 0
        conn: psycopg.Connection[tuple[object, ...]] | None = None
        while not self._stop.is_set() and seq < self.max_writes:
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.dsn, autocommit=True)
                    conn.execute(f"SET statement_timeout = {int(self.timeout * 5000)}")
                conn.execute(f"INSERT INTO {TABLE} (seq) VALUES (%s)", (seq + 1,))
            except psycopg.errors.UniqueViolation:
                # The previous attempt of this number committed but its acknowledgement was lost
                # with the old primary: durable, never acknowledged. Move on to the next number.
                seq += 1
                with self._lock:
                    self.report.committed_unacknowledged.append(seq)
                continue
            except psycopg.Error as exc:
                now = datetime.now(UTC)
                with self._lock:
                    self.report.failures += 1
                    self.report.last_error = str(exc).splitlines()[0] if str(exc) else repr(exc)
                    if self.report.first_failure_at is None:
                        self.report.first_failure_at = now
                if conn is not None:
                    conn.close()
                conn = None
                self._stop.wait(0.1)
                continue
            seq += 1
            now = datetime.now(UTC)
            with self._lock:
                self.report.acked.append(seq)
                if (
                    self.report.first_failure_at is not None
                    and self.report.first_success_after_failure_at is None
                ):
                    self.report.first_success_after_failure_at = now
            self._stop.wait(self.interval)
        if conn is not None:
            conn.close()


def missing_acknowledged(node: Node, acked: Sequence[int]) -> list[int]:
    """Acknowledged sequence numbers that ``node`` (the new primary) does not have."""
    with psycopg.connect(node.dsn(timeout=5), autocommit=True) as conn:
        present = {row[0] for row in conn.execute(f"SELECT seq FROM {TABLE}")}
    return [seq for seq in acked if seq not in present]
