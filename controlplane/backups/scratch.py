"""A backup restored into a scratch folder and started on loopback, then stopped and removed.

:func:`restored` is a context manager: it refuses early with the reason when the scratch
folder's filesystem has less room than the backup needs or the port asked for is taken, runs
``pgbackrest restore`` into ``<scratch>/data`` (archiving off in the copy, so it can never push
WAL into the repository it came from), starts PostgreSQL on that copy as the account pgBackRest
runs as, and waits until recovery has reached its target and the server has been promoted. On
leaving — normally or after any failure — the server is stopped, every process still working in
the folder is killed, and the folder is removed: nothing is left running.
"""

from __future__ import annotations

import logging
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import psycopg

from controlplane.backups.errors import RestoreFailed
from controlplane.backups.pgbackrest import PgBackRest
from controlplane.core.processes import (
    BackendStartError,
    ServerProcess,
    chown_tree,
    free_ports,
    kill_processes_under,
    port_is_free,
    tail,
)

__all__ = ["RestoreTarget", "RestoredServer", "clear_scratch", "restored"]

logger = logging.getLogger(__name__)

RestoreKind = Literal["backup", "point_in_time"]
POSTGRES_LIBS = Path("/usr/lib/postgresql")
MB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class RestoreTarget:
    """Where recovery stops: a named restore point of a given backup set, or an instant."""

    kind: RestoreKind
    description: str
    options: tuple[str, ...]

    @classmethod
    def restore_point(cls, name: str, *, backup_set: str) -> RestoreTarget:
        """Backup set ``backup_set`` replayed up to the restore point ``name``."""
        return cls(
            kind="backup",
            description=f"backup {backup_set} to restore point {name}",
            options=(
                f"--set={backup_set}",
                "--type=name",
                f"--target={name}",
                "--target-action=promote",
            ),
        )

    @classmethod
    def time(cls, at: datetime, *, backup_set: str | None = None) -> RestoreTarget:
        """Every transaction committed at or before ``at``, replayed from ``backup_set`` (None:
        pgBackRest picks the newest set that stopped before it — to the second, so not one
        that stopped within the same second)."""
        moment = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
        chosen = () if backup_set is None else (f"--set={backup_set}",)
        return cls(
            kind="point_in_time",
            description=f"point in time {moment}"
            + ("" if backup_set is None else f" from backup {backup_set}"),
            options=(*chosen, "--type=time", f"--target={moment}", "--target-action=promote"),
        )


@dataclass(frozen=True, kw_only=True)
class RestoredServer:
    """The restored copy while it runs."""

    port: int
    backup_set: str | None
    #: ``pgbackrest restore`` (copying the files), recovery (replaying WAL up to the target and
    #: promoting), and the two together: the RTO of a restore.
    restore_s: float
    recovery_s: float
    ready_s: float
    log_path: Path

    def dsn(self, dbname: str = "postgres") -> str:
        return self.dsn_for(self.port, dbname)

    @staticmethod
    def dsn_for(port: int, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={port} user=postgres dbname={dbname} connect_timeout=5"


def clear_scratch(folder: Path) -> None:
    """Kill whatever still works in ``folder`` and remove it."""
    survivors = kill_processes_under(folder)
    if survivors:
        logger.error("processes %s survived in %s", sorted(survivors), folder)
    shutil.rmtree(folder, ignore_errors=True)


def _bindir(data: Path, configured: Path | None) -> Path:
    if configured is not None:
        return configured
    try:
        major = (data / "PG_VERSION").read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise RestoreFailed(f"the restored folder has no PG_VERSION: {exc}") from exc
    return POSTGRES_LIBS / major / "bin"


def _last_failure(log: Path) -> str:
    lines = [line for line in tail(log, 60).splitlines() if line.strip()]
    fatal = [line for line in lines if "FATAL" in line or "PANIC" in line or "ERROR" in line]
    return " | ".join((fatal or lines)[-3:]) or "no log output"


def _promoted(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    except psycopg.Error:
        return False
    return row is not None and row[0] is False


@contextmanager
def restored(
    pgbackrest: PgBackRest,
    *,
    target: RestoreTarget,
    scratch: Path,
    port: int = 0,
    needed_bytes: int | None = None,
    timeout: float = 3600.0,
    bindir: Path | None = None,
) -> Iterator[RestoredServer]:
    """Restore ``target`` into ``scratch``, run it, yield it; always stop and remove it.

    Raises :class:`RestoreFailed` (or :class:`PgBackRestError`) with the reason: too little
    room, the port taken, pgBackRest's error, or the server's own last words when recovery
    fails."""
    if scratch.exists():
        clear_scratch(scratch)  # a validation interrupted earlier
    process: list[ServerProcess] = []
    try:
        server = _restore_and_start(
            pgbackrest,
            target=target,
            scratch=scratch,
            port=port,
            needed_bytes=needed_bytes,
            timeout=timeout,
            bindir=bindir,
            started=process,
        )
        yield server
    finally:
        for running in process:
            running.stop(sig=signal.SIGINT, timeout=60)  # fast shutdown
        clear_scratch(scratch)


def _restore_and_start(
    pgbackrest: PgBackRest,
    *,
    target: RestoreTarget,
    scratch: Path,
    port: int,
    needed_bytes: int | None,
    timeout: float,
    bindir: Path | None,
    started: list[ServerProcess],
) -> RestoredServer:
    user = pgbackrest.user
    data, sockets, log = scratch / "data", scratch / "socket", scratch / "postgres.log"
    try:
        data.mkdir(parents=True, mode=0o700)
        sockets.mkdir()
        chown_tree(scratch, user)
        free = shutil.disk_usage(scratch).free
    except OSError as exc:
        raise RestoreFailed(f"cannot prepare the scratch folder {scratch}: {exc}") from exc
    if needed_bytes is not None and needed_bytes > free:
        raise RestoreFailed(
            f"the scratch folder {scratch} has {free / MB:.0f} MB free; the backup needs "
            f"{needed_bytes / MB:.0f} MB"
        )
    if port == 0:
        port = free_ports(1)[0]
    elif not port_is_free(port):
        raise RestoreFailed(f"port {port} of the scratch server is already in use")
    began = time.perf_counter()
    _, backup_set = pgbackrest.restore(pg_path=data, options=target.options, timeout=timeout)
    copied = time.perf_counter()
    hba = scratch / "pg_hba.conf"
    try:
        hba.write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n", "utf-8")
        chown_tree(scratch, user)
    except OSError as exc:
        raise RestoreFailed(f"cannot prepare the scratch folder {scratch}: {exc}") from exc
    process = ServerProcess(
        name="restore-validation",
        argv=[
            str(_bindir(data, bindir) / "postgres"),
            "-D",
            str(data),
            *_settings(port=port, sockets=sockets, hba=hba, data=data),
        ],
        log_path=log,
        user=user,
        cwd=scratch,
    )
    try:
        process.start()
    except BackendStartError as exc:
        raise RestoreFailed(str(exc)) from exc
    started.append(process)
    dsn = RestoredServer.dsn_for(port)
    deadline = time.monotonic() + max(1.0, timeout - (copied - began))
    while not _promoted(dsn):
        if process.exit_code() is not None:
            raise RestoreFailed(f"the restored server stopped: {_last_failure(log)}")
        if time.monotonic() > deadline:
            raise RestoreFailed(
                f"the restored server was not recovered within {timeout:.0f} s: "
                + _last_failure(log)
            )
        time.sleep(0.2)
    ready = time.perf_counter()
    return RestoredServer(
        port=port,
        backup_set=backup_set,
        restore_s=copied - began,
        recovery_s=ready - copied,
        ready_s=ready - began,
        log_path=log,
    )


def _settings(*, port: int, sockets: Path, hba: Path, data: Path) -> list[str]:
    """Command-line settings over the restored configuration: its own port, socket and access
    rules on loopback, no archiving, no synchronous standby to wait for."""
    values = {
        "port": str(port),
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": str(sockets),
        "hba_file": str(hba),
        "ident_file": str(data / "pg_ident.conf"),
        "archive_mode": "off",
        "synchronous_standby_names": "",
        "cluster_name": "restore-validation",
        "logging_collector": "off",
        "log_line_prefix": "%m [%p] ",
    }
    arguments: list[str] = []
    for key, value in values.items():
        arguments += ["-c", f"{key}={value}"]
    return arguments
