"""Errors of backups, archiving and restores (the root is :class:`BackupError`)."""

from __future__ import annotations

from controlplane.core.errors import ControlPlaneError

__all__ = [
    "ArchiveReadError",
    "BackupError",
    "PgBackRestError",
    "RestoreFailed",
    "SourceSnapshotError",
]


class BackupError(ControlPlaneError):
    """A backup, restore or archive operation that failed; the message says why."""


class PgBackRestError(BackupError):
    """A pgBackRest command failed: ``message`` is pgBackRest's own error (``ERROR: [047]:
    unable to create path ...``), ``code`` its exit code (None: it did not run to the end)."""

    def __init__(self, *, command: str, code: int | None, message: str) -> None:
        super().__init__(f"pgbackrest {command}: {message}")
        self.command = command
        self.code = code
        self.message = message


class RestoreFailed(BackupError):
    """A restore into the scratch folder did not give a running, recovered server."""


class SourceSnapshotError(BackupError):
    """The source database could not be read for the validation's reference point."""


class ArchiveReadError(BackupError):
    """The primary's archiving status could not be read."""
