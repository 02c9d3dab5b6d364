"""Backup benchmark: pgBackRest on a seeded inventory database of at least 1 GB.

One PostgreSQL primary archiving into a pgBackRest repository (the stack's configuration:
lz4, two processes, ``archive_timeout`` 60 s). The inventory schema is seeded server-side
(``generate_series``) until the database holds ``--size-gb``. Then, in one run:

* a full backup with pgBackRest, and as its baseline in the same run ``pg_basebackup`` of the
  same database (plain format, WAL fetched, no compression) into a folder on the same disk;
* the ingest load: numbered movements written with ``COPY`` in batches (the stream workers'
  bulk insert) at ``--ingest-rows-per-s`` for ``--ingest-s`` seconds, while the archive lag
  (the WAL not yet archived, as the DR check reads it) is sampled every 0.5 s; a differential
  backup runs in the middle of it;
* a point-in-time restore to an instant in the middle of the ingest: the seconds between the
  target and the last commit the restored copy replayed (PITR accuracy);
* the restore validation as the control plane runs it: the newest backup to an exact restore
  point and a point in time, each restored into a scratch server, checked and removed; its
  wall time, and the time the newest backup took to come up (copy + recovery: the restore RTO)
  against the critical tier's 15 min.

Prints a table, then one JSON line (``backup_full_mb_per_s``, ``basebackup_mb_per_s``,
``restore_mb_per_s``, ``restore_rto_s``, ``restore_validation_s``, ``pitr_error_s``,
``archive_lag_s_p95``, ...). Wall times stretch with the machine's load (printed with it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql
from rich.console import Console
from rich.table import Table

from app.migrate import upgrade
from controlplane.backups.archive import read_archive_status
from controlplane.backups.backup import take_backup
from controlplane.backups.pgbackrest import PgBackRest
from controlplane.backups.scratch import RestoreTarget, restored
from controlplane.backups.validation import (
    InvariantQuery,
    ValidationSettings,
    validate_restores,
    wait_for_archive,
)
from controlplane.core.processes import chown_tree, free_ports, run_checked
from controlplane.stack.backends import PostgresPrimary
from controlplane.stack.pgbackrest import PgBackRestRepository, PgInstance
from controlplane.stack.settings import StackSettings
from controlplane.targets.policy import load_dr_policy

MB = 1024 * 1024
DATABASE = "inventory"
RTO_S = 15 * 60.0
RPO_S = 5 * 60.0


@dataclass
class Ingest:
    """Movements written with COPY in batches at a steady rate, in a thread."""

    dsn: str
    skus: list[str]
    warehouses: list[str]
    rows_per_s: float
    batch: int = 500
    written: int = 0
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ingest", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _run(self) -> None:
        every = self.batch / self.rows_per_s
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            next_at = time.monotonic()
            while not self._stop.is_set():
                rows = []
                for index in range(self.batch):
                    number = self.written + index
                    rows.append(
                        (
                            uuid.uuid4(),
                            f"bench-{number}-{uuid.uuid4().hex[:8]}",
                            "receive",
                            self.skus[number % len(self.skus)],
                            self.warehouses[number % len(self.warehouses)],
                            1 + number % 7,
                            datetime.now(UTC),
                        )
                    )
                try:
                    with (
                        conn.cursor() as cursor,
                        cursor.copy(
                            "COPY movements (id, idempotency_key, kind, sku, warehouse, quantity,"
                            " accepted_at) FROM STDIN"
                        ) as copy,
                    ):
                        for row in rows:
                            copy.write_row(row)
                    self.written += len(rows)
                except psycopg.Error as exc:
                    self.errors.append(str(exc).strip())
                next_at += every
                self._stop.wait(max(0.0, next_at - time.monotonic()))


def database_bytes(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    return int(row[0])


@contextmanager
def bulk_load(
    conn: psycopg.Connection[tuple[object, ...]], tables: Sequence[str]
) -> Iterator[None]:
    """Load ``tables`` without their keys, foreign keys and indexes, then build them back
    exactly as the catalog had them (one sorted build each instead of a row-by-row upkeep)."""
    keys: list[tuple[str, str, str, str]] = []
    indexes: list[str] = []
    for table in tables:
        for name, kind, definition in conn.execute(
            "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = %s::regclass AND contype IN ('p', 'u', 'f')",
            (table,),
        ):
            keys.append((table, str(name), str(kind), str(definition)))
        indexes += [
            str(definition)
            for (definition,) in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = %s"
                " AND indexname NOT IN (SELECT conname FROM pg_constraint"
                " WHERE conrelid = %s::regclass)",
                (table, table),
            )
        ]
    for table, name, _, _ in sorted(keys, key=lambda key: key[2] != "f"):  # foreign keys first
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.Identifier(table), sql.Identifier(name)
            )
        )
    for definition in indexes:
        name = definition.split(" INDEX ", 1)[1].split(" ON ", 1)[0]
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    yield
    for table, name, _, definition in sorted(keys, key=lambda key: key[2] == "f"):
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(
                sql.Identifier(table), sql.Identifier(name)
            )
            + sql.SQL(definition)  # from the catalog
        )
    for definition in indexes:
        conn.execute(sql.SQL(definition))  # from the catalog


MOVEMENTS = (
    "INSERT INTO movements (id, idempotency_key, kind, sku, warehouse, quantity, reason,"
    " accepted_at) SELECT gen_random_uuid(), 'seed-' || %s || '-' || g, 'receive',"
    " 'sku-' || (1 + g %% 250000), 'w' || lpad((1 + g %% 20)::text, 2, '0'), 1 + g %% 9,"
    " 'initial stock of the benchmark', now() FROM generate_series(1, %s) g"
)


def seed(dsn: str, *, size_bytes: int, console: Console) -> tuple[list[str], list[str]]:
    """The inventory schema, filled server-side until the database holds ``size_bytes``: the
    bulk of it loaded without keys and indexes (to about 3/5 of the size; building them adds
    most of the rest), then topped up with everything in place."""
    upgrade(dsn, create=True)
    batch = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '256MB'")
        conn.execute(
            "INSERT INTO warehouses (code, name) SELECT 'w' || lpad(i::text, 2, '0'),"
            " 'warehouse ' || i FROM generate_series(1, 20) i ON CONFLICT DO NOTHING"
        )
        conn.execute(
            "INSERT INTO items (sku, name) SELECT 'sku-' || i, 'item number ' || i"
            " FROM generate_series(1, 250000) i ON CONFLICT DO NOTHING"
        )
        with bulk_load(conn, ["stock_levels", "movements"]):
            conn.execute(
                "INSERT INTO stock_levels (sku, warehouse, on_hand, reserved)"
                " SELECT i.sku, w.code, 100 + length(i.sku), 5"
                " FROM items i CROSS JOIN warehouses w"
            )
            while database_bytes(dsn) < size_bytes * 0.62:
                batch += 1
                conn.execute(MOVEMENTS, (batch, 500_000))
            console.print(f"loaded {database_bytes(dsn) / MB:.0f} MB; building keys and indexes")
        while database_bytes(dsn) < size_bytes:
            batch += 1
            conn.execute(MOVEMENTS, (batch, 100_000))
        skus = [str(row[0]) for row in conn.execute("SELECT sku FROM items LIMIT 5000")]
        warehouses = [str(row[0]) for row in conn.execute("SELECT code FROM warehouses")]
        conn.execute("VACUUM ANALYZE")
    return skus, warehouses


def basebackup_seconds(primary: PostgresPrimary, target: Path) -> float:
    """``pg_basebackup`` of the whole server (plain format, WAL fetched, no compression)."""
    started = time.perf_counter()
    run_checked(
        "pg_basebackup",
        [
            str(primary.settings.pg_bindir / "pg_basebackup"),
            "-d",
            f"host=127.0.0.1 port={primary.port} user=postgres",
            "-D",
            str(target),
            "--wal-method=fetch",
            "--checkpoint=fast",
            "--no-sync",
        ],
        user=primary.user,
        timeout=3600,
    )
    return time.perf_counter() - started


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=1.0, help="database size to seed")
    parser.add_argument("--ingest-rows-per-s", type=float, default=5000)
    parser.add_argument("--ingest-s", type=float, default=90, help="seconds of ingest load")
    args = parser.parse_args()
    console = Console(width=150)
    settings = StackSettings()
    base = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    base.chmod(0o755)
    repository = PgBackRestRepository(settings=settings, base=base / "pgbackrest")
    repository.prepare()
    primary = PostgresPrimary(
        settings=settings,
        workdir=base / "primary",
        ports={"postgres": free_ports(1)[0]},
        extra_conf={**repository.postgres_conf(), "max_wal_size": "'4GB'"},
    )
    figures: dict[str, float | int | None] = {}
    rows: list[tuple[str, str, str, str]] = []
    try:
        primary.start()
        repository.write_config(
            [
                PgInstance(
                    data_dir=primary.data_dir, port=primary.port, socket_dir=primary.socket_dir
                )
            ]
        )
        repository.stanza_create()
        repository.check()
        pgbackrest = PgBackRest(
            config=repository.config_path, stanza=repository.stanza, user=repository.user
        )
        dsn = primary.dsn(DATABASE)
        started = time.perf_counter()
        skus, warehouses = seed(dsn, size_bytes=int(args.size_gb * 1024 * MB), console=console)
        size = database_bytes(dsn)
        console.print(f"seeded {size / MB:.0f} MB in {time.perf_counter() - started:.0f} s")
        with psycopg.connect(primary.dsn(), autocommit=True) as conn:
            row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
        assert row is not None
        wait_for_archive(dsn, segment=str(row[0]), timeout=900)  # the seeding's WAL

        began = time.perf_counter()
        full = take_backup(pgbackrest, backup_type="full", timeout=3600)
        full_s = time.perf_counter() - began
        full_mb = full.info.size / MB
        figures["backup_full_mb_per_s"] = round(full_mb / full_s, 1)
        rows.append(
            (
                "pgBackRest full backup (lz4, 2 processes)",
                f"{full_mb:.0f} MB → {(full.info.repository.size or 0) / MB:.0f} MB stored",
                f"{full_s:.1f} s",
                f"{full_mb / full_s:.1f} MB/s",
            )
        )
        copy = base / "basebackup"
        copy.mkdir(mode=0o700)
        chown_tree(copy, primary.user)
        base_s = basebackup_seconds(primary, copy)
        base_mb = sum(f.stat().st_size for f in copy.rglob("*") if f.is_file()) / MB
        shutil.rmtree(copy)
        figures["basebackup_mb_per_s"] = round(base_mb / base_s, 1)
        rows.append(
            (
                "baseline: pg_basebackup (plain, uncompressed)",
                f"{base_mb:.0f} MB",
                f"{base_s:.1f} s",
                f"{base_mb / base_s:.1f} MB/s",
            )
        )

        ingest = Ingest(
            dsn=dsn, skus=skus, warehouses=warehouses, rows_per_s=args.ingest_rows_per_s
        )
        lags: list[float] = []
        lag_bytes: list[int] = []
        ingest.start()
        ingest_started = time.monotonic()
        instant: datetime | None = None
        diff_s: float | None = None
        try:
            while time.monotonic() - ingest_started < args.ingest_s:
                status = read_archive_status(dsn)
                if status.lag is not None:
                    lags.append(status.lag.total_seconds())
                if status.lag_bytes is not None:
                    lag_bytes.append(status.lag_bytes)
                elapsed = time.monotonic() - ingest_started
                if instant is None and elapsed > args.ingest_s / 3:
                    instant = datetime.now(UTC)
                if diff_s is None and elapsed > args.ingest_s / 2:
                    began = time.perf_counter()
                    take_backup(pgbackrest, backup_type="diff", timeout=3600)
                    diff_s = time.perf_counter() - began
                time.sleep(0.5)
        finally:
            ingest.stop()
        ingest_rate = ingest.written / args.ingest_s
        figures["archive_lag_s_p95"] = round(percentile(lags, 0.95), 1)
        figures["archive_lag_s_max"] = round(max(lags), 1)
        figures["ingest_rows_per_s"] = round(ingest_rate)
        rows.append(
            (
                f"archive lag under ingest ({ingest_rate:.0f} movements/s by COPY, "
                f"{len(lags)} samples)",
                f"p95 {percentile(lag_bytes, 0.95) / MB:.1f} MB not archived",
                f"p50 {statistics.median(lags):.1f} s · p95 {percentile(lags, 0.95):.1f} s · "
                f"max {max(lags):.1f} s",
                f"RPO {RPO_S:.0f} s",
            )
        )
        rows.append(("differential backup during the ingest", "", f"{diff_s or 0:.1f} s", ""))
        if ingest.errors:
            console.print(f"[red]{len(ingest.errors)} ingest batches failed: {ingest.errors[0]}")

        with psycopg.connect(primary.dsn(), autocommit=True) as conn:
            row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
        assert row is not None
        assert instant is not None
        wait_for_archive(dsn, segment=str(row[0]), timeout=600)
        scratch = base / "scratch"
        with (
            restored(
                pgbackrest, target=RestoreTarget.time(instant), scratch=scratch, timeout=3600
            ) as server,
            psycopg.connect(server.dsn(DATABASE)) as conn,
        ):
            replayed = conn.execute("SELECT pg_last_xact_replay_timestamp()").fetchone()
        assert replayed is not None
        assert replayed[0] is not None
        pitr_error = (instant - replayed[0]).total_seconds()
        figures["pitr_error_s"] = round(pitr_error, 4)
        figures["restore_mb_per_s"] = round(full_mb / server.restore_s, 1)
        rows.append(
            (
                "point-in-time restore mid-ingest (copy + replay to T)",
                f"set {server.backup_set}",
                f"copy {server.restore_s:.1f} s + recovery {server.recovery_s:.1f} s",
                f"target − last commit {pitr_error * 1000:.1f} ms",
            )
        )
        rows.append(
            (
                "pgBackRest restore (copy)",
                f"{full_mb:.0f} MB",
                f"{server.restore_s:.1f} s",
                f"{full_mb / server.restore_s:.1f} MB/s",
            )
        )

        policy = load_dr_policy()
        began = time.perf_counter()
        runs = validate_restores(
            pgbackrest,
            source_dsn=dsn,
            settings=ValidationSettings(
                scratch=scratch,
                timeout=3600,
                invariants=tuple(
                    InvariantQuery(name=c.name, sql=c.sql)
                    for c in policy.spec.backups.restore_checks
                ),
            ),
        )
        validation_s = time.perf_counter() - began
        for run in runs:
            if not run.succeeded:
                console.print(f"[red]{run.kind} restore failed: {run.error}")
        newest = runs[0]
        figures["restore_validation_s"] = round(validation_s, 1)
        figures["restore_rto_s"] = (
            None if newest.duration_s is None else round(newest.duration_s, 1)
        )
        figures["validation_pitr_error_s"] = (
            None if runs[1].pitr_error_s is None else round(runs[1].pitr_error_s, 4)
        )
        figures["database_mb"] = round(size / MB)
        for run in runs:
            rows.append(
                (
                    f"restore validation: {run.kind.replace('_', ' ')}",
                    f"{len(run.checks)} checks, {'passed' if run.succeeded else 'FAILED'}",
                    f"up after {run.duration_s or 0:.1f} s (RTO {RTO_S:.0f} s)",
                    f"checks {run.validation_s or 0:.1f} s",
                )
            )
        rows.append(("restore validation, both restores", "", f"{validation_s:.1f} s", ""))
    finally:
        primary.stop()
        shutil.rmtree(base, ignore_errors=True)

    table = Table(title=f"Backups with pgBackRest ({os.getloadavg()[0]:.1f} load, 1 min)")
    for column in ("what", "data", "time", "rate / against"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    print(json.dumps(figures))  # noqa: T201 - the benchmark's last line


if __name__ == "__main__":
    main()
