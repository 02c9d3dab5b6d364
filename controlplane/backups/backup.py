"""One backup: ``pgbackrest backup`` of a type, then the new set as ``pgbackrest info`` has it
(type, start / stop, sizes, WAL range, LSNs)."""

from __future__ import annotations

from controlplane.backups.errors import PgBackRestError
from controlplane.backups.pgbackrest import BackupType, InfoBackup, PgBackRest

__all__ = ["take_backup"]


def take_backup(pgbackrest: PgBackRest, *, backup_type: BackupType, timeout: float) -> InfoBackup:
    """Take a backup and return the set it made. The stanza is created first when the
    repository has none yet. pgBackRest turns a differential with no full to base it on into a
    full one: the set returned says which it took. Raises PgBackRestError with pgBackRest's
    message when it fails."""
    before = pgbackrest.info()
    if not before.exists:
        pgbackrest.stanza_create()
    known = {backup.label for backup in before.backup}
    pgbackrest.backup(backup_type, timeout=timeout)
    after = pgbackrest.info()
    made = [backup for backup in after.backup if backup.label not in known]
    if not made:
        raise PgBackRestError(
            command="backup", code=0, message="finished, but no new backup set is in the info"
        )
    return max(made, key=lambda backup: backup.timestamp.stop)
