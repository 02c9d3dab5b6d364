"""The pgBackRest command line as the control plane's adapter.

Every command runs as the account PostgreSQL runs as (``CONTROLPLANE_PGBACKREST_USER`` when the
control plane runs as root), in a process group of its own (pgBackRest starts helper processes:
a timeout stops all of them), with the configuration file and stanza of the settings. A command
that fails raises :class:`~controlplane.backups.errors.PgBackRestError` carrying pgBackRest's
own message (``ERROR: [047]: unable to create path ...``), never a bare exit code.

``info --output=json`` is read into typed models (:class:`StanzaInfo`): the backups in the
repository with their type, start / stop, sizes, WAL range and LSNs, and the archive's range.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import pwd
import re
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from controlplane.backups.errors import PgBackRestError
from controlplane.core.config import BackupSettings

__all__ = [
    "DEFAULT_LOG_PATH",
    "BackupType",
    "InfoBackup",
    "PgBackRest",
    "PgBackRestConfig",
    "StanzaInfo",
    "error_message",
]

BackupType = Literal["full", "diff", "incr"]
#: pgBackRest's log folder when its configuration names none.
DEFAULT_LOG_PATH = Path("/var/log/pgbackrest")
_ERROR = re.compile(r"^(?:\S+ \S+ P\d+ +)?ERROR: (.*)$")


def error_message(output: str) -> str | None:
    """pgBackRest's error in its console or log output: the last ``ERROR: [nnn]: ...`` line
    with the indented lines that continue it (None when there is none)."""
    lines = output.splitlines()
    found: str | None = None
    index = 0
    while index < len(lines):
        match = _ERROR.match(lines[index].strip("\r"))
        if match is None:
            index += 1
            continue
        parts = [match.group(1).strip()]
        index += 1
        while index < len(lines) and lines[index].startswith(" ") and lines[index].strip():
            parts.append(lines[index].strip())
            index += 1
        found = " ".join(parts)
    return found


class _Info(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class InfoStatus(_Info):
    code: int
    message: str


class InfoRange(_Info):
    start: str | None = None
    stop: str | None = None


class InfoTimestamp(_Info):
    start: int
    stop: int


class InfoRepositorySize(_Info):
    size: int | None = None
    delta: int | None = None


class InfoSizes(_Info):
    size: int
    delta: int
    repository: InfoRepositorySize = InfoRepositorySize()


class InfoBackup(_Info):
    """One backup set in the repository, as ``pgbackrest info`` reports it."""

    label: str
    type: BackupType
    timestamp: InfoTimestamp
    archive: InfoRange = InfoRange()
    lsn: InfoRange = InfoRange()
    info: InfoSizes
    prior: str | None = None
    reference: list[str] | None = None
    error: bool | None = None

    @property
    def started_at(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp.start, UTC)

    @property
    def stopped_at(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp.stop, UTC)


class InfoArchive(_Info):
    id: str
    min: str | None = None
    max: str | None = None


class InfoDatabase(_Info):
    #: pgBackRest's number of the database in the repository (a new one per stanza-upgrade).
    id: int
    version: str
    system_id: int = Field(alias="system-id")


class StanzaInfo(_Info):
    """``pgbackrest info`` of one stanza."""

    name: str
    status: InfoStatus
    backup: list[InfoBackup] = Field(default_factory=list)
    archive: list[InfoArchive] = Field(default_factory=list)
    db: list[InfoDatabase] = Field(default_factory=list)

    @property
    def exists(self) -> bool:
        """The stanza has been created (status 1 is pgBackRest's "missing stanza path")."""
        return self.status.code != 1

    @property
    def system_id(self) -> int | None:
        """The system identifier of the database the stanza archives now (None: no stanza)."""
        current = max(self.db, key=lambda db: db.id, default=None)
        return None if current is None else current.system_id

    def latest(self, *, usable: bool = True) -> InfoBackup | None:
        """The newest backup (``usable``: not one pgBackRest marks as having errors)."""
        candidates = [b for b in self.backup if not (usable and b.error)]
        return max(candidates, key=lambda b: b.timestamp.stop, default=None)


@dataclass(frozen=True)
class PgBackRestConfig:
    """The options of a pgBackRest configuration file that the control plane reads itself."""

    path: Path
    log_path: Path
    repo_path: Path | None

    @classmethod
    def read(cls, path: Path, *, stanza: str) -> PgBackRestConfig:
        """``log-path`` and ``repo1-path`` from the stanza's section or ``[global]``."""
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            with path.open(encoding="utf-8") as handle:
                parser.read_file(handle)
        except (OSError, configparser.Error) as exc:
            raise PgBackRestError(
                command="config", code=None, message=f"cannot read {path}: {exc}"
            ) from exc

        def option(name: str) -> str | None:
            for section in (stanza, "global"):
                if parser.has_option(section, name):
                    return parser.get(section, name).strip()
            return None

        log = option("log-path")
        repo = option("repo1-path")
        return cls(
            path=path,
            log_path=Path(log) if log else DEFAULT_LOG_PATH,
            repo_path=Path(repo) if repo else None,
        )

    def archive_push_log(self, stanza: str) -> Path:
        """Where the archive command's errors are logged (``--log-level-file`` on its line)."""
        return self.log_path / f"{stanza}-archive-push.log"


@dataclass(frozen=True)
class PgBackRest:
    """One stanza of one configuration file, run as ``user`` (None: this process's user)."""

    config: Path
    stanza: str
    binary: Path = Path("/usr/bin/pgbackrest")
    user: str | None = None

    @classmethod
    def from_settings(cls, settings: BackupSettings) -> PgBackRest:
        if settings.pgbackrest_config is None:
            raise PgBackRestError(
                command="config",
                code=None,
                message="no pgBackRest configuration (CONTROLPLANE_PGBACKREST_CONFIG)",
            )
        return cls(
            config=settings.pgbackrest_config,
            stanza=settings.pgbackrest_stanza,
            binary=settings.pgbackrest_binary,
            user=settings.pgbackrest_user,
        )

    def read_config(self) -> PgBackRestConfig:
        return PgBackRestConfig.read(self.config, stanza=self.stanza)

    def run(
        self, command: str, *options: str, timeout: float = 300.0, cwd: Path | None = None
    ) -> str:
        """``pgbackrest --config --stanza [options] <command>``; its console output (stdout
        and stderr). Raises PgBackRestError with pgBackRest's message when it fails."""
        argv = [
            str(self.binary),
            f"--config={self.config}",
            f"--stanza={self.stanza}",
            *options,
            command,
        ]
        try:
            user = pwd.getpwnam(self.user) if self.user is not None else None
        except KeyError as exc:
            raise PgBackRestError(
                command=command, code=None, message=f"no OS account {self.user!r}"
            ) from exc
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
                user=None if user is None else user.pw_uid,
                group=None if user is None else user.pw_gid,
                extra_groups=None if user is None else [],
                cwd=cwd or "/",
                env=_environment(user),
            )
        except OSError as exc:
            raise PgBackRestError(command=command, code=None, message=str(exc)) from exc
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise PgBackRestError(
                command=command, code=None, message=f"did not finish within {timeout:.0f} s"
            ) from exc
        output = stdout + stderr
        if process.returncode != 0:
            message = error_message(output) or _last_lines(output) or "failed without a message"
            raise PgBackRestError(command=command, code=process.returncode, message=message)
        return output

    # -- commands -----------------------------------------------------------------------------
    def info(self, *, timeout: float = 60.0) -> StanzaInfo:
        output = self.run("info", "--output=json", "--log-level-console=error", timeout=timeout)
        try:
            stanzas = json.loads(output)
            found = [s for s in stanzas if isinstance(s, dict) and s.get("name") == self.stanza]
            if not found:
                raise ValueError(f"no stanza {self.stanza} in the answer")
            return StanzaInfo.model_validate(found[0])
        except (ValueError, ValidationError) as exc:
            raise PgBackRestError(
                command="info", code=0, message=f"unexpected output: {exc}"
            ) from exc

    def stanza_create(self, *, timeout: float = 120.0) -> None:
        self.run("stanza-create", timeout=timeout)

    def backup(self, backup_type: BackupType, *, timeout: float) -> None:
        self.run("backup", f"--type={backup_type}", timeout=timeout)

    def restore(
        self, *, pg_path: Path, options: Sequence[str], timeout: float
    ) -> tuple[str, str | None]:
        """Restore into ``pg_path`` with the target ``options``; the console output and the
        backup set pgBackRest restored from."""
        output = self.run(
            "restore",
            f"--pg1-path={pg_path}",
            "--archive-mode=off",
            "--log-level-console=info",
            *options,
            timeout=timeout,
        )
        chosen = re.search(r"restore backup set (\S+)", output)
        return output, None if chosen is None else chosen.group(1).rstrip(",")


def _environment(user: pwd.struct_passwd | None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PGBACKREST_") and key not in {"PGHOST", "PGPORT"}
    }
    if user is not None:
        env.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name)
    return env


def _last_lines(output: str, count: int = 3) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return " | ".join(lines[-count:])
