"""What the tests of the Patroni engine observe while they break it: every member written to
directly, to see which ones take writes at each instant."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from controlplane.failover.nodes import Node
from controlplane.failover.writeprobe import ProbeReport, WriteProbe, missing_acknowledged
from controlplane.stack.patroni import PatroniCluster, PatroniMember

TABLE = "fault_watch"


def nodes(cluster: PatroniCluster) -> list[Node]:
    """The members as the write probe addresses them (its multi-host string names them all)."""
    return [Node(name=m.member, host="127.0.0.1", port=m.port) for m in cluster.members]


def node(member: PatroniMember) -> Node:
    return Node(name=member.member, host="127.0.0.1", port=member.port)


class WriteLoad:
    """The numbered write probe through the multi-host connection string, as the inventory API
    writes: started on entry (once it has acknowledged writes), stopped on exit."""

    def __init__(self, cluster: PatroniCluster, *, warm_writes: int = 50) -> None:
        self.probe = WriteProbe(nodes=nodes(cluster), interval=0.02)
        self.warm_writes = warm_writes
        self.report = ProbeReport()

    def __enter__(self) -> WriteLoad:
        self.probe.prepare()
        self.probe.start()
        if not self.probe.wait_for_writes(self.warm_writes, timeout=30):
            self.report = self.probe.stop()
            raise AssertionError(f"no writes before the fault: {self.report.last_error}")
        return self

    def __exit__(self, *_: object) -> None:
        self.report = self.probe.stop()

    def wait_resumed(self, timeout: float) -> None:
        """Until a write is acknowledged after the first failed one."""
        if not self.probe.wait_for_recovery(timeout):
            raise AssertionError(
                f"writes did not resume within {timeout:.0f} s: {self.probe.report.last_error}"
            )

    def wait_more(self, count: int = 25, timeout: float = 30) -> None:
        """Until ``count`` more writes are acknowledged."""
        target = len(self.probe.report.acked) + count
        assert self.probe.wait_for_writes(target, timeout), self.probe.report.last_error

    def missing_on(self, member: PatroniMember) -> list[int]:
        return missing_acknowledged(node(member), self.report.acked)


@dataclass(frozen=True)
class Write:
    """One write sent straight to one member (monotonic seconds)."""

    member: str
    n: int
    sent_at: float
    #: When its commit returned (acknowledged) or it failed.
    ended_at: float
    acknowledged: bool


@dataclass
class MemberLog:
    writes: list[Write] = field(default_factory=list)
    #: (monotonic seconds, pg_is_in_recovery() = false) for every answered sample.
    samples: list[tuple[float, bool]] = field(default_factory=list)


class PrimaryWatch:
    """Two threads per member, each with its own connection straight to that member (not
    through the multi-host string): one samples ``pg_is_in_recovery()``, the other inserts a
    numbered row with the session's default ``synchronous_commit``, every ``interval`` seconds.
    A returned commit proves the member was a primary whose writes were acknowledged at that
    moment; a write that hangs (a primary waiting for a synchronous standby that left it) is
    never counted; on a replica the insert is refused at once.

    :meth:`stop` ends the threads; a write still hanging then fails the test (each member's
    PostgreSQL must have answered or ended it by then).
    """

    def __init__(self, cluster: PatroniCluster, *, interval: float = 0.05) -> None:
        self.cluster = cluster
        self.interval = interval
        self.logs = {m.member: MemberLog() for m in cluster.members}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=run, args=(m,), name=f"{what}-{m.member}", daemon=True)
            for m in cluster.members
            for what, run in (("sample", self._sample), ("write", self._write))
        ]
        self._counter = 0

    def prepare(self) -> None:
        leader = self.cluster.wait_ready()
        with psycopg.connect(leader.dsn(), autocommit=True) as conn:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} (n bigint PRIMARY KEY, member text NOT NULL)"
            )

    def __enter__(self) -> PrimaryWatch:
        self.prepare()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.stop(check=exc_type is None)  # a failure inside is the one worth reporting

    def stop(self, *, check: bool = True) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)
        hanging = [t.name for t in self._threads if t.is_alive()]
        if check:
            assert not hanging, f"still waiting for a member when the watch stopped: {hanging}"

    def _next(self) -> int:
        with self._lock:
            self._counter += 1
            return self._counter

    def _sample(self, member: PatroniMember) -> None:
        self._each_interval(member, self._sample_once)

    def _write(self, member: PatroniMember) -> None:
        self._each_interval(member, self._write_once)

    def _each_interval(
        self,
        member: PatroniMember,
        step: Callable[[psycopg.Connection[tuple[object, ...]], MemberLog, str], None],
    ) -> None:
        """``step`` every ``interval`` on a connection of its own, made again after an error."""
        log = self.logs[member.member]
        conn: psycopg.Connection[tuple[object, ...]] | None = None
        while not self._stop.is_set():
            try:
                if conn is None or conn.closed:
                    # A replica refuses every insert: not worth a line in its log each time.
                    conn = psycopg.connect(
                        member.dsn(),
                        autocommit=True,
                        connect_timeout=1,
                        options="-c log_min_messages=fatal -c log_min_error_statement=panic",
                    )
                step(conn, log, member.member)
            except psycopg.Error:
                if conn is not None:
                    conn.close()
                conn = None
            self._stop.wait(self.interval)
        if conn is not None:
            conn.close()

    def _sample_once(
        self, conn: psycopg.Connection[tuple[object, ...]], log: MemberLog, _: str
    ) -> None:
        row = conn.execute("SELECT NOT pg_is_in_recovery()").fetchone()
        with self._lock:
            log.samples.append((time.monotonic(), bool(row and row[0])))

    def _write_once(
        self, conn: psycopg.Connection[tuple[object, ...]], log: MemberLog, member: str
    ) -> None:
        n = self._next()
        sent_at = time.monotonic()
        acknowledged = False
        try:
            conn.execute(f"INSERT INTO {TABLE} (n, member) VALUES (%s, %s)", (n, member))
            acknowledged = True
        except psycopg.errors.ReadOnlySqlTransaction:
            pass  # a replica: refused at once, the connection stays good
        finally:
            with self._lock:
                log.writes.append(Write(member, n, sent_at, time.monotonic(), acknowledged))

    # -- what was seen ------------------------------------------------------------------------
    def acked(self, member: str | None = None) -> list[Write]:
        with self._lock:
            return [
                w
                for name, log in self.logs.items()
                if member in (None, name)
                for w in log.writes
                if w.acknowledged
            ]

    def attempts(self, member: str) -> list[Write]:
        with self._lock:
            return list(self.logs[member].writes)

    def primary_spans(self, member: str) -> list[tuple[float, float]]:
        """[first, last] sample of each run of samples in which ``member`` said primary."""
        with self._lock:
            samples = list(self.logs[member].samples)
        spans: list[tuple[float, float]] = []
        start: float | None = None
        last = 0.0
        for at, primary in samples:
            if primary and start is None:
                start = at
            if not primary and start is not None:
                spans.append((start, last))
                start = None
            last = at
        if start is not None:
            spans.append((start, last))
        return spans

    def overlapping_primaries(self) -> list[str]:
        """Every pair of members that both said primary at one instant (their spans of primary
        samples intersect)."""
        names = sorted(self.logs)
        found = []
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                for a0, a1 in self.primary_spans(a):
                    for b0, b1 in self.primary_spans(b):
                        if a0 <= b1 and b0 <= a1:
                            found.append(f"{a} [{a0:.2f}, {a1:.2f}] and {b} [{b0:.2f}, {b1:.2f}]")
        return found

    def overlapping_writers(self) -> list[str]:
        """Every pair of members whose acknowledged writes interleave: one took a write, then
        the other, then the first again (sent after the other's commit had returned). With one
        change of primary, that is two primaries taking writes at the same time."""
        found = []
        names = sorted(self.logs)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                mine, theirs = self.acked(a), self.acked(b)
                if not mine or not theirs:
                    continue
                a_first = min(w.ended_at for w in mine)
                b_first = min(w.ended_at for w in theirs)
                a_last = max(w.sent_at for w in mine)
                b_last = max(w.sent_at for w in theirs)
                if a_first < b_last and b_first < a_last:
                    found.append(
                        f"{a} acknowledged writes from {a_first:.2f} (last sent {a_last:.2f}), "
                        f"{b} from {b_first:.2f} (last sent {b_last:.2f})"
                    )
        return found

    def missing_on(self, member: PatroniMember) -> list[int]:
        """Acknowledged watch writes that ``member`` does not have."""
        with psycopg.connect(member.dsn(), autocommit=True, connect_timeout=5) as conn:
            present = {row[0] for row in conn.execute(f"SELECT n FROM {TABLE}")}
        return [w.n for w in self.acked() if w.n not in present]
