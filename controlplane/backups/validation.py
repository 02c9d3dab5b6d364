"""Restore validation: restore the latest backup, and separately a point in time, into a scratch
folder, start it, check it against the source at the restore point, stop and remove it.

The reference point on the source (:func:`take_source_snapshot`) is exact under concurrent
writes: one session takes a ``SHARE`` lock on every permanent table of the database (writers
wait for the few milliseconds it is held; none is in progress once it is granted), a second
session takes its ``REPEATABLE READ`` snapshot while the lock is held, and the first creates a
named restore point and reads the clock before releasing it. No table of the database changes
inside that window, so the snapshot's row counts, the probe table's checksum, the restore point
and the instant read in the window all describe one and the same state. The second session
then counts the rows at leisure, without blocking anyone.

Then the WAL holding the restore point is switched out and waited for in the archive, and two
restores are checked the same way:

* ``backup``: the newest backup set, recovered to the named restore point;
* ``point_in_time``: recovery to the instant read in the window, from the backup set before the
  newest one when there is one (so the WAL archived between them is replayed too).

Each must come up promoted and match the snapshot: the row count of every table, the probe
table's checksum, and every invariant query of the DR policy returning 0 (no negative on-hand,
no more reserved than on hand). Each restore is one :class:`RestoreRun` with its duration (the
restore RTO: copying plus recovery until the server takes connections), the point reached (the
last transaction replayed) and every check; a run that fails says why, never "ok".
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from controlplane.backups.archive import wal_segment
from controlplane.backups.errors import BackupError, SourceSnapshotError
from controlplane.backups.pgbackrest import PgBackRest
from controlplane.backups.scratch import RestoreKind, RestoreTarget, restored

__all__ = [
    "PROBE_TABLE",
    "CheckResult",
    "InvariantQuery",
    "RestoreRun",
    "SourceSnapshot",
    "take_source_snapshot",
    "validate_restores",
    "wait_for_archive",
]

#: The table the validation writes a row into on the source each time: its checksum on the
#: restored copy must equal the source's at the restore point.
PROBE_TABLE = "controlplane_restore_probe"

_TABLES = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND c.relpersistence = 'p' AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_%'
ORDER BY 1, 2
"""
_CHECKSUM = sql.SQL(
    "SELECT count(*), md5(coalesce(string_agg(id::text || ':' || token, ',' ORDER BY id), ''))"
    " FROM {}"
).format(sql.Identifier(PROBE_TABLE))


@dataclass(frozen=True, kw_only=True)
class InvariantQuery:
    """A query that counts the rows breaking an invariant: a restored copy must return 0."""

    name: str
    sql: str


@dataclass(frozen=True, kw_only=True)
class SourceSnapshot:
    """The source at the restore point: what a restore to it must give back."""

    database: str
    restore_point: str
    restore_point_lsn: str
    #: An instant inside the locked window: recovering to it gives the same state.
    at: datetime
    counts: dict[str, int]
    probe_rows: int
    probe_checksum: str
    #: The WAL segment that holds the restore point (it must be archived before restoring).
    wal_segment: str
    #: How long writers were held off (the lock's window), seconds.
    locked_s: float


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    name: str
    expected: Any
    actual: Any
    passed: bool


@dataclass(frozen=True, kw_only=True)
class RestoreRun:
    """One restore of a validation: what was restored, how long it took, what was checked."""

    kind: RestoreKind
    target: str
    started_at: datetime
    finished_at: datetime
    succeeded: bool
    backup_set: str | None = None
    restore_s: float | None = None
    recovery_s: float | None = None
    #: Copying and recovery until the server took connections: the restore's RTO.
    duration_s: float | None = None
    validation_s: float | None = None
    #: The last transaction replayed (commit time), and the target instant for a time target.
    reached_at: datetime | None = None
    target_at: datetime | None = None
    checks: tuple[CheckResult, ...] = ()
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def pitr_error_s(self) -> float | None:
        """Seconds between the target instant and the last commit replayed."""
        if self.target_at is None or self.reached_at is None:
            return None
        return (self.target_at - self.reached_at).total_seconds()


def _tables(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    return [(str(schema), str(name)) for schema, name in conn.execute(_TABLES).fetchall()]


def _qualified(schema: str, name: str) -> str:
    return f"{schema}.{name}"


def take_source_snapshot(
    dsn: str, *, name: str | None = None, lock_timeout: float = 5.0, attempts: int = 3
) -> SourceSnapshot:
    """The source at a new named restore point (see the module docstring). The lock is retried
    ``attempts`` times when a long transaction holds a table past ``lock_timeout``."""
    point = name or (
        f"controlplane-validation-{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
    )
    try:
        with psycopg.connect(dsn, autocommit=True) as setup:
            setup.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (id bigserial PRIMARY KEY, token text NOT NULL,"
                    " written_at timestamptz NOT NULL DEFAULT now())"
                ).format(sql.Identifier(PROBE_TABLE))
            )
            setup.execute(
                sql.SQL("INSERT INTO {} (token) VALUES (%s)").format(sql.Identifier(PROBE_TABLE)),
                (secrets.token_hex(16),),
            )
            tables = _tables(setup)
            last: psycopg.Error | None = None
            for _ in range(attempts):
                try:
                    snapshot = _locked_snapshot(dsn, point, tables, lock_timeout)
                    break
                except psycopg.errors.LockNotAvailable as exc:
                    last = exc
            else:
                raise SourceSnapshotError(
                    f"could not lock the tables for a consistent restore point: {last}"
                )
            # A commit after the instant, so a time-targeted recovery can see it was passed.
            setup.execute(
                sql.SQL("INSERT INTO {} (token) VALUES (%s)").format(sql.Identifier(PROBE_TABLE)),
                (secrets.token_hex(16),),
            )
            row = setup.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
    except psycopg.Error as exc:
        raise SourceSnapshotError(f"cannot read the source database: {exc}") from exc
    assert row is not None
    database = str(conninfo_to_dict(dsn).get("dbname") or "postgres")
    return SourceSnapshot(**snapshot, database=database, wal_segment=str(row[0]))


def _locked_snapshot(
    dsn: str, point: str, tables: Sequence[tuple[str, str]], lock_timeout: float
) -> dict[str, Any]:
    identifiers = sql.SQL(", ").join(sql.Identifier(s, n) for s, n in tables)
    with psycopg.connect(dsn) as lock, psycopg.connect(dsn) as reader:
        reader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        reader.read_only = True
        lock.execute(f"SET lock_timeout = {int(lock_timeout * 1000)}")
        locked = time.perf_counter()
        lock.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(identifiers))
        reader.execute("SELECT 1")  # the snapshot: taken while no table can change
        row = lock.execute(
            "SELECT pg_create_restore_point(%s)::text, clock_timestamp()", (point,)
        ).fetchone()
        lock.commit()
        held = time.perf_counter() - locked
        assert row is not None
        counts = {_qualified(s, n): _count(reader, s, n) for s, n in tables}
        probe = reader.execute(_CHECKSUM).fetchone()
        reader.commit()
    assert probe is not None
    return {
        "restore_point": point,
        "restore_point_lsn": str(row[0]),
        "at": row[1],
        "counts": counts,
        "probe_rows": int(probe[0]),
        "probe_checksum": str(probe[1]),
        "locked_s": held,
    }


def _count(conn: psycopg.Connection[Any], schema: str, name: str) -> int:
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, name))
    ).fetchone()
    assert row is not None
    return int(row[0])


def wait_for_archive(dsn: str, *, segment: str, timeout: float = 120.0) -> None:
    """Until the primary has archived ``segment`` (or a later one); BackupError naming the
    archive's failure otherwise."""
    wanted = wal_segment(segment)
    if wanted is None:
        raise BackupError(f"{segment!r} is not a WAL segment name")
    deadline = time.monotonic() + timeout
    last: tuple[Any, ...] | None = None
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
                last = conn.execute(
                    "SELECT last_archived_wal, last_failed_wal, last_failed_time"
                    " FROM pg_stat_archiver"
                ).fetchone()
        except psycopg.Error as exc:
            raise BackupError(f"cannot read pg_stat_archiver: {exc}") from exc
        archived = wal_segment(last[0] if last else None)
        if archived is not None and archived[1:] >= wanted[1:]:
            return
        time.sleep(0.2)
    failed = "" if last is None or last[1] is None else f"; last failure {last[1]} at {last[2]}"
    raise BackupError(f"WAL segment {segment} was not archived within {timeout:.0f} s{failed}")


def check_restored(
    dsn: str, *, snapshot: SourceSnapshot, invariants: Sequence[InvariantQuery]
) -> tuple[list[CheckResult], datetime | None]:
    """Every check of a restored copy against the snapshot, and the last commit it replayed."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        results = [
            *_row_checks(conn, snapshot),
            CheckResult(
                name=f"checksum {PROBE_TABLE}",
                expected=snapshot.probe_checksum,
                actual=(checksum := _scalar(conn, _CHECKSUM, column=1)),
                passed=checksum == snapshot.probe_checksum,
            ),
        ]
        for invariant in invariants:
            violations = _scalar(conn, sql.SQL(invariant.sql))
            results.append(
                CheckResult(
                    name=invariant.name, expected=0, actual=violations, passed=violations == 0
                )
            )
        replayed = conn.execute("SELECT pg_last_xact_replay_timestamp()").fetchone()
    return results, None if replayed is None else replayed[0]


def _row_checks(conn: psycopg.Connection[Any], snapshot: SourceSnapshot) -> list[CheckResult]:
    """The row count of every table the source had, and no table it did not have."""
    present = {_qualified(s, n) for s, n in _tables(conn)}
    results = []
    for table, expected in snapshot.counts.items():
        schema, _, name = table.partition(".")
        actual = _count(conn, schema, name) if table in present else "missing"
        results.append(
            CheckResult(
                name=f"rows {table}", expected=expected, actual=actual, passed=actual == expected
            )
        )
    for table in sorted(present - set(snapshot.counts)):
        results.append(
            CheckResult(name=f"rows {table}", expected="absent", actual="present", passed=False)
        )
    return results


def _scalar(
    conn: psycopg.Connection[Any], query: sql.SQL | sql.Composed, *, column: int = 0
) -> Any:
    """One value of a query's first row; the error's text when the query fails."""
    try:
        row = conn.execute(query).fetchone()
    except psycopg.Error as exc:
        return f"error: {str(exc).strip()}"
    return None if row is None else row[column]


@dataclass(frozen=True, kw_only=True)
class ValidationSettings:
    """Where and how the restores run."""

    scratch: Path
    port: int = 0
    timeout: float = 3600.0
    archive_timeout: float = 120.0
    bindir: Path | None = None
    invariants: tuple[InvariantQuery, ...] = ()


def validate_restores(
    pgbackrest: PgBackRest,
    *,
    source_dsn: str,
    settings: ValidationSettings,
    restore_point: str | None = None,
) -> list[RestoreRun]:
    """Both restores of a validation (see the module docstring), each checked; a restore that
    cannot be made or does not match is a failed run with the reason."""
    started = datetime.now(UTC)
    try:
        info = pgbackrest.info()
        latest = info.latest()
        if latest is None:
            raise BackupError("no backup in the repository to restore")
        usable = sorted((b for b in info.backup if not b.error), key=lambda b: b.timestamp.stop)
        # The point in time is replayed from the set before the newest one when there is one:
        # it proves the WAL archived between them replays too.
        earlier = usable[-2] if len(usable) > 1 else latest
        snapshot = take_source_snapshot(source_dsn, name=restore_point)
        wait_for_archive(source_dsn, segment=snapshot.wal_segment, timeout=settings.archive_timeout)
    except BackupError as exc:
        return [
            RestoreRun(
                kind=kind,
                target="not reached: " + str(exc),
                started_at=started,
                finished_at=datetime.now(UTC),
                succeeded=False,
                error=str(exc),
            )
            for kind in ("backup", "point_in_time")
        ]
    details = {
        "restore_point": snapshot.restore_point,
        "restore_point_lsn": snapshot.restore_point_lsn,
        "writes_held_s": round(snapshot.locked_s, 4),
        "probe_rows": snapshot.probe_rows,
    }
    return [
        _one_restore(
            pgbackrest,
            target=target,
            snapshot=snapshot,
            settings=settings,
            needed=latest.info.size,
            details=details,
        )
        for target in (
            RestoreTarget.restore_point(snapshot.restore_point, backup_set=latest.label),
            RestoreTarget.time(snapshot.at, backup_set=earlier.label),
        )
    ]


def _one_restore(
    pgbackrest: PgBackRest,
    *,
    target: RestoreTarget,
    snapshot: SourceSnapshot,
    settings: ValidationSettings,
    needed: int,
    details: dict[str, Any],
) -> RestoreRun:
    started = datetime.now(UTC)
    target_at = snapshot.at if target.kind == "point_in_time" else None
    try:
        with restored(
            pgbackrest,
            target=target,
            scratch=settings.scratch,
            port=settings.port,
            needed_bytes=needed,
            timeout=settings.timeout,
            bindir=settings.bindir,
        ) as server:
            checking = time.perf_counter()
            checks, reached = check_restored(
                server.dsn(snapshot.database), snapshot=snapshot, invariants=settings.invariants
            )
            validation_s = time.perf_counter() - checking
    except (BackupError, psycopg.Error) as exc:
        return RestoreRun(
            kind=target.kind,
            target=target.description,
            started_at=started,
            finished_at=datetime.now(UTC),
            succeeded=False,
            target_at=target_at,
            error=str(exc).strip(),
            details=details,
        )
    failed = [check.name for check in checks if not check.passed]
    return RestoreRun(
        kind=target.kind,
        target=target.description,
        started_at=started,
        finished_at=datetime.now(UTC),
        succeeded=not failed,
        backup_set=server.backup_set,
        restore_s=server.restore_s,
        recovery_s=server.recovery_s,
        duration_s=server.ready_s,
        validation_s=validation_s,
        reached_at=reached,
        target_at=target_at,
        checks=tuple(checks),
        error=None if not failed else "checks failed: " + ", ".join(failed),
        details=details,
    )
