"""pgBackRest for the inventory database: one repository on local disk, WAL archiving from
whichever node is primary, and the retention of the DR policy (35 days of point-in-time
recovery).

:class:`PgBackRestRepository` writes the configuration (``<base>/pgbackrest.conf``), owns the
repository, log, lock and spool folders (given to the service account PostgreSQL runs as: the
archive command runs as that account, and so do the control plane's backups and restores), and
gives the PostgreSQL settings every node runs with:

* ``archive_command`` names the data folder it runs in (``--pg1-path="$(pwd -P)"``:
  PostgreSQL runs it there), so one cluster-wide setting archives from whichever node is the
  primary, across a failover or a switchover. It logs pgBackRest's errors to
  ``<log-path>/<stanza>-archive-push.log``, where the control plane reads them.
* ``archive_timeout`` closes a WAL segment at least this often when anything was written, so
  the WAL not yet archived stays well inside the critical tier's RPO.

The stanza lists every node (``pg1-*``, ``pg2-*``, ...): pgBackRest backs up from whichever
one is the primary. Setting up is: start PostgreSQL with :meth:`postgres_parameters` (archiving
fails until the stanza exists, and PostgreSQL retries), :meth:`write_config` with the nodes,
:meth:`stanza_create`, :meth:`check` (switches WAL and waits until it is archived).
"""

from __future__ import annotations

import configparser
import io
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from controlplane.core.processes import chown_tree, require_executable, run_checked
from controlplane.stack.settings import StackSettings

__all__ = [
    "DEFAULT_ARCHIVE_TIMEOUT",
    "DEFAULT_STANZA",
    "PGBACKREST",
    "PgBackRestRepository",
    "PgInstance",
]

PGBACKREST = Path("/usr/bin/pgbackrest")
DEFAULT_STANZA = "inventory"
#: A segment is closed (and archived) at least this often when anything was written.
DEFAULT_ARCHIVE_TIMEOUT = timedelta(seconds=60)
BACKEND = "pgbackrest"


@dataclass(frozen=True, kw_only=True)
class PgInstance:
    """A PostgreSQL node of the stanza: its data folder, port and Unix socket folder (pgBackRest
    reaches a local PostgreSQL through its socket)."""

    data_dir: Path
    port: int
    socket_dir: Path


class PgBackRestRepository:
    """The pgBackRest configuration and repository of one stanza under ``base``."""

    def __init__(
        self,
        *,
        settings: StackSettings,
        base: Path,
        stanza: str = DEFAULT_STANZA,
        retention: timedelta = timedelta(days=35),
        archive_timeout: timedelta = DEFAULT_ARCHIVE_TIMEOUT,
        process_max: int = 2,
        binary: Path = PGBACKREST,
    ) -> None:
        self.settings = settings
        self.base = base
        self.stanza = stanza
        self.retention = retention
        self.archive_timeout = archive_timeout
        self.process_max = process_max
        self.binary = binary

    @property
    def retention(self) -> timedelta:
        """How far back point-in-time recovery reaches (the full backups kept, whole days)."""
        return self._retention

    @retention.setter
    def retention(self, value: timedelta) -> None:
        if value < timedelta(days=1):
            raise ValueError("pgBackRest keeps time-based retention in whole days (at least 1)")
        self._retention = value

    # -- where things are -------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.base / "pgbackrest.conf"

    @property
    def repo_path(self) -> Path:
        return self.base / "repo"

    @property
    def log_path(self) -> Path:
        return self.base / "log"

    @property
    def user(self) -> str | None:
        """The account pgBackRest runs as: PostgreSQL's (the service account when root)."""
        return self.settings.run_as

    # -- what PostgreSQL and the control plane are given ------------------------------------
    def archive_command(self) -> str:
        """The archive command of every node (run by PostgreSQL in its data folder)."""
        return (
            f"{shlex.quote(str(self.binary))} --config={shlex.quote(str(self.config_path))} "
            f'--stanza={self.stanza} --pg1-path="$(pwd -P)" --log-level-file=warn '
            "archive-push %p"
        )

    def postgres_parameters(self) -> dict[str, str]:
        """PostgreSQL settings as Patroni takes them (``parameters``: plain values)."""
        return {
            "archive_mode": "on",
            "archive_command": self.archive_command(),
            "archive_timeout": f"{int(self.archive_timeout.total_seconds())}s",
        }

    def postgres_conf(self) -> dict[str, str]:
        """The same settings as ``postgresql.conf`` lines take them (quoted strings)."""
        return {
            key: value if key == "archive_mode" else "'" + value.replace("'", "''") + "'"
            for key, value in self.postgres_parameters().items()
        }

    def control_plane_environment(self) -> dict[str, str]:
        """What ``controlplane serve`` needs to take backups and validate restores."""
        env = {
            "CONTROLPLANE_PGBACKREST_CONFIG": str(self.config_path),
            "CONTROLPLANE_PGBACKREST_STANZA": self.stanza,
            "CONTROLPLANE_PGBACKREST_BINARY": str(self.binary),
        }
        if self.user is not None:
            env["CONTROLPLANE_PGBACKREST_USER"] = self.user
        return env

    # -- configuration ------------------------------------------------------------------------
    def config_text(self, instances: Sequence[PgInstance]) -> str:
        if not instances:
            raise ValueError("a stanza needs at least one PostgreSQL node")
        config = configparser.ConfigParser(interpolation=None)
        config.optionxform = str  # type: ignore[assignment,method-assign]  # keep keys as written
        config["global"] = {
            "repo1-path": str(self.repo_path),
            # Keep every full backup (and the WAL after it) needed to recover to any instant of
            # the last `retention` days; older ones are expired after each backup.
            "repo1-retention-full-type": "time",
            "repo1-retention-full": str(max(1, self.retention.days)),
            "log-path": str(self.log_path),
            "lock-path": str(self.base / "lock"),
            "spool-path": str(self.base / "spool"),
            "log-level-console": "warn",
            "log-level-file": "info",
            "start-fast": "y",
            "compress-type": "lz4",
            "process-max": str(self.process_max),
            "archive-timeout": "60",
            "backup-standby": "n",
        }
        stanza: dict[str, str] = {}
        for index, instance in enumerate(instances, start=1):
            stanza[f"pg{index}-path"] = str(instance.data_dir)
            stanza[f"pg{index}-port"] = str(instance.port)
            stanza[f"pg{index}-socket-path"] = str(instance.socket_dir)
            stanza[f"pg{index}-user"] = "postgres"
        config[self.stanza] = stanza
        out = io.StringIO()
        config.write(out, space_around_delimiters=False)
        return out.getvalue()

    def prepare(self) -> None:
        """The folders pgBackRest writes, owned by the account it runs as (repository and logs
        readable by nobody else)."""
        for folder in (self.base, self.repo_path, self.log_path, self.base / "lock"):
            folder.mkdir(parents=True, exist_ok=True)
        (self.base / "spool").mkdir(exist_ok=True)
        self.base.chmod(0o755)
        self.repo_path.chmod(0o750)
        chown_tree(self.base, self.user)

    def write_config(self, instances: Sequence[PgInstance]) -> Path:
        """Write the configuration naming ``instances`` (every node that may be primary)."""
        self.prepare()
        self.config_path.write_text(self.config_text(instances), encoding="utf-8")
        self.config_path.chmod(0o640)
        chown_tree(self.base, self.user)
        return self.config_path

    # -- commands -----------------------------------------------------------------------------
    def run(self, *arguments: str, timeout: float = 300.0) -> str:
        """``pgbackrest --config=... --stanza=... <arguments>`` as the service account."""
        require_executable(BACKEND, self.binary, "install the Debian package pgbackrest")
        return run_checked(
            BACKEND,
            [
                str(self.binary),
                f"--config={self.config_path}",
                f"--stanza={self.stanza}",
                *arguments,
            ],
            user=self.user,
            cwd=self.base,
            timeout=timeout,
        )

    def stanza_create(self) -> None:
        """Create the stanza (idempotent: an existing valid stanza is left as it is)."""
        self.run("stanza-create")

    def check(self, timeout: float = 120.0) -> None:
        """pgBackRest's own check: the configuration, the repository, and a WAL switch that
        must reach the archive."""
        self.run("check", timeout=timeout)
