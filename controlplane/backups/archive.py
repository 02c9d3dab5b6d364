"""Where WAL archiving stands on the primary: the newest archived WAL against the current LSN.

One query on the primary reads ``pg_stat_archiver`` (the newest WAL archived and the newest
failure), the current WAL position, the segments waiting for the archive
(``pg_ls_archive_statusdir``: ``.ready`` files) and the archive settings. From them:

* ``lag_bytes``: the current LSN minus the end of the newest archived segment (with no closed
  segment waiting, the start of the open one);
* ``lag``: how old the WAL not yet archived may be. Nothing written past the newest archived
  segment: 0. Only the open segment unarchived: PostgreSQL closes it after ``archive_timeout``
  when anything important was written, so at most ``archive_timeout`` (and at most the time
  since the last archive). Closed segments waiting: the time since the last successful archive
  (the oldest waiting WAL was written after it). Unknown (None) when this primary has archived
  nothing yet and has no timeout to bound it;
* ``failing``: the newest attempt failed (``last_failed_time`` after ``last_archived_time``),
  with pgBackRest's own message read from the archive command's log when it is on this machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
from pydantic import AwareDatetime, BaseModel, ConfigDict

from controlplane.backups.errors import ArchiveReadError
from controlplane.backups.pgbackrest import error_message

__all__ = [
    "ArchiveReport",
    "ArchiveStatus",
    "read_archive_status",
    "segment_start",
    "wal_segment",
]

_SEGMENT = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(?:\..*)?$")

QUERY = """
SELECT now(),
       current_setting('archive_mode'),
       current_setting('archive_command'),
       pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint,
       pg_walfile_name(pg_current_wal_lsn()),
       (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'),
       (SELECT setting::int FROM pg_settings WHERE name = 'archive_timeout'),
       a.archived_count, a.last_archived_wal, a.last_archived_time,
       a.failed_count, a.last_failed_wal, a.last_failed_time,
       (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'),
       (SELECT min(modification) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready')
FROM pg_stat_archiver a
"""


def wal_segment(name: str | None) -> tuple[int, int, int] | None:
    """``000000010000000A000000FF[.partial|.00000028.backup]`` → (timeline, log, segment);
    None for a timeline history file or anything else."""
    if name is None:
        return None
    match = _SEGMENT.match(name)
    if match is None:
        return None
    return int(match.group(1), 16), int(match.group(2), 16), int(match.group(3), 16)


def segment_start(name: str | None, *, segment_size: int) -> int | None:
    """The LSN (bytes) where a WAL segment starts (None: not a segment name)."""
    parts = wal_segment(name)
    if parts is None:
        return None
    _, log, segment = parts
    return (log << 32) + segment * segment_size


@dataclass(frozen=True, kw_only=True)
class ArchiveStatus:
    """WAL archiving on one primary at ``observed_at`` (its clock)."""

    observed_at: datetime
    archive_mode: str
    archive_command: str
    archive_timeout: timedelta
    current_lsn: int
    current_wal: str
    segment_size: int
    archived_count: int
    last_archived_wal: str | None
    last_archived_at: datetime | None
    failed_count: int
    last_failed_wal: str | None
    last_failed_at: datetime | None
    #: Closed segments waiting for the archive command, and since when the oldest waits.
    pending_segments: int
    oldest_pending_at: datetime | None
    #: pgBackRest's message for the failure (from its archive-push log), when readable.
    error: str | None = None

    @property
    def enabled(self) -> bool:
        command = self.archive_command.strip()
        return self.archive_mode in {"on", "always"} and command not in {"", "(disabled)"}

    @property
    def failing(self) -> bool:
        if self.last_failed_at is None:
            return False
        return self.last_archived_at is None or self.last_failed_at > self.last_archived_at

    @property
    def lag_bytes(self) -> int | None:
        """Bytes written since the end of the newest archived WAL: with no closed segment
        waiting, the newest archived WAL ends where the open segment starts."""
        if self.pending_segments == 0:
            return self.current_lsn % self.segment_size
        start = segment_start(self.last_archived_wal, segment_size=self.segment_size)
        if start is None:
            return None
        return max(0, self.current_lsn - (start + self.segment_size))

    @property
    def lag(self) -> timedelta | None:
        if self.lag_bytes == 0:
            return timedelta(0)
        since_archive = (
            None if self.last_archived_at is None else self.observed_at - self.last_archived_at
        )
        if self.pending_segments > 0:
            if since_archive is not None:
                return since_archive
            assert self.oldest_pending_at is not None
            return self.observed_at - self.oldest_pending_at
        bound = self.archive_timeout if self.archive_timeout > timedelta(0) else None
        if since_archive is None:
            return bound
        return since_archive if bound is None else min(since_archive, bound)


def read_archive_status(
    dsn: str, *, timeout: float = 5.0, error_log: Path | None = None
) -> ArchiveStatus:
    """The archiving status of the primary behind ``dsn``; ``error_log``: pgBackRest's
    archive-push log, read for the message when the newest attempt failed."""
    try:
        with psycopg.connect(dsn, connect_timeout=max(1, round(timeout)), autocommit=True) as conn:
            conn.execute(f"SET statement_timeout = {int(timeout * 1000)}")
            row = conn.execute(QUERY).fetchone()
    except psycopg.Error as exc:
        raise ArchiveReadError(f"cannot read pg_stat_archiver: {exc}") from exc
    if row is None:
        raise ArchiveReadError("pg_stat_archiver returned no row")
    (
        observed_at,
        mode,
        command,
        lsn,
        current_wal,
        segment_size,
        timeout_s,
        archived,
        last_archived,
        archived_at,
        failed,
        last_failed,
        failed_at,
        pending,
        oldest_pending,
    ) = row
    status = ArchiveStatus(
        observed_at=observed_at,
        archive_mode=str(mode),
        archive_command=str(command),
        archive_timeout=timedelta(seconds=int(timeout_s or 0)),
        current_lsn=int(lsn),
        current_wal=str(current_wal),
        segment_size=int(segment_size),
        archived_count=int(archived),
        last_archived_wal=last_archived,
        last_archived_at=archived_at,
        failed_count=int(failed),
        last_failed_wal=last_failed,
        last_failed_at=failed_at,
        pending_segments=int(pending),
        oldest_pending_at=oldest_pending,
    )
    if status.failing and error_log is not None:
        return replace(status, error=last_logged_error(error_log))
    return status


def last_logged_error(log: Path, *, window: int = 256 * 1024) -> str | None:
    """The newest ``ERROR`` in the tail of a pgBackRest log file (None: none, or unreadable)."""
    try:
        with log.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - window))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    return error_message(text)


class ArchiveReport(BaseModel):
    """What the API serves of a database's archiving (null numbers: unknown, never 0)."""

    model_config = ConfigDict(frozen=True)

    database: str
    configured: bool
    rpo_s: float
    observed_at: AwareDatetime | None = None
    enabled: bool | None = None
    failing: bool | None = None
    #: pgBackRest's message for the newest failure, when readable.
    failure: str | None = None
    current_wal: str | None = None
    last_archived_wal: str | None = None
    last_archived_at: AwareDatetime | None = None
    last_failed_wal: str | None = None
    last_failed_at: AwareDatetime | None = None
    failed_count: int | None = None
    pending_segments: int | None = None
    lag_s: float | None = None
    lag_bytes: int | None = None
    #: Why the archive could not be read (no primary, not configured, ...).
    error: str | None = None

    @classmethod
    def of(cls, status: ArchiveStatus, *, database: str, rpo_s: float) -> ArchiveReport:
        lag = status.lag
        return cls(
            database=database,
            configured=True,
            rpo_s=rpo_s,
            observed_at=status.observed_at,
            enabled=status.enabled,
            failing=status.failing,
            failure=status.error,
            current_wal=status.current_wal,
            last_archived_wal=status.last_archived_wal,
            last_archived_at=status.last_archived_at,
            last_failed_wal=status.last_failed_wal,
            last_failed_at=status.last_failed_at,
            failed_count=status.failed_count,
            pending_segments=status.pending_segments,
            lag_s=None if lag is None else lag.total_seconds(),
            lag_bytes=status.lag_bytes,
        )
