"""Server processes of this machine: spawning them (own process group, log file, optional
service account), telling whether they live, stopping whole process groups, reading pidfiles.

The low-level helpers of the control plane: local failover (fencing, node control), the local
actuator and orchestrator, the scheduled drill and the local stack runner use them; they know
nothing of any of those.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from controlplane.core.errors import ControlPlaneError


class BackendStartError(ControlPlaneError):
    """A backend could not be started or did not become healthy; names the backend."""

    def __init__(self, backend: str, reason: str, *, log_tail: str = "") -> None:
        self.backend = backend
        self.reason = reason
        self.log_tail = log_tail
        message = f"{backend}: {reason}"
        if log_tail:
            message += f"\n--- last lines of the {backend} log ---\n{log_tail}"
        super().__init__(message)


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct TCP ports that are free on 127.0.0.1 right now."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_is_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:``port`` (connections in TIME_WAIT do not count:
    servers bind with SO_REUSEADDR, and so does this probe)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def require_executable(backend: str, path: Path, hint: str) -> None:
    """Fail with a message naming the backend when its binary is missing or not executable."""
    if not path.is_file() or not os.access(path, os.X_OK):
        raise BackendStartError(backend, f"executable not found at {path} ({hint})")


def chown_tree(path: Path, user: str | None) -> None:
    """Give ``path`` (recursively) to ``user`` so a server running as that account can write it."""
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in (*dirs, *files):
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def run_checked(
    backend: str,
    argv: Sequence[str],
    *,
    user: str | None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120.0,
) -> str:
    """Run a setup command (initdb, pg_basebackup); raise naming the backend when it fails."""
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            user=user,
            group=_group_of(user),
            env=dict(env) if env is not None else None,
            cwd=cwd,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackendStartError(backend, f"{Path(argv[0]).name} failed: {exc}") from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()[-15:]
        raise BackendStartError(
            backend,
            f"{Path(argv[0]).name} exited with {done.returncode}: " + " | ".join(output),
        )
    return done.stdout


def _group_of(user: str | None) -> int | None:
    if user is None:
        return None
    return pwd.getpwnam(user).pw_gid


class ServerProcess:
    """One long-running server: started in its own session, output appended to a log file."""

    def __init__(
        self,
        *,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        user: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.user = user
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            try:
                self._popen = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    user=self.user,
                    group=_group_of(self.user),
                    extra_groups=[] if self.user is not None else None,
                    env=self.env,
                    cwd=self.cwd,
                )
            except OSError as exc:
                raise BackendStartError(
                    self.name, f"could not execute {self.argv[0]}: {exc}"
                ) from exc
        self.pid = self._popen.pid

    def exit_code(self) -> int | None:
        """The exit status if the process has ended, else None."""
        if self._popen is not None:
            return self._popen.poll()
        if self.pid is None:
            return None
        return None if pid_alive(self.pid) else -1

    def stop(self, *, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0) -> None:
        if self.pid is None:
            return
        stop_process_group(self.pid, sig=sig, timeout=timeout)
        if self._popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(timeout=1)


def proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (``state ppid pgrp ... utime
    stime ...``, the command name may hold spaces), or None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()


def _live_processes() -> Iterator[tuple[int, list[str]]]:
    """(pid, stat fields) of every process that is not a zombie."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = proc_stat(int(entry.name))
            if fields is not None and len(fields) > 2 and fields[0] != "Z":
                yield int(entry.name), fields


def child_pids(pid: int) -> list[int]:
    """The live (not zombie) child processes of ``pid``."""
    return [child for child, fields in _live_processes() if int(fields[1]) == pid]


def read_pidfile(path: Path) -> int | None:
    """The pid on the first line of a pidfile (gunicorn's, PostgreSQL's ``postmaster.pid``);
    None when the file is missing or holds no pid."""
    try:
        first = path.read_text(encoding="utf-8").splitlines()[0].strip()
    except (OSError, IndexError):
        return None
    return int(first) if first.isdigit() else None


def postmaster_pid(data_dir: Path) -> int | None:
    """The postmaster of a PostgreSQL data folder, from its ``postmaster.pid`` (None without)."""
    return read_pidfile(data_dir / "postmaster.pid")


def is_zombie(pid: int) -> bool:
    """A process that has exited but whose parent (maybe another program) has not reaped it."""
    fields = proc_stat(pid)
    return fields is not None and fields[:1] == ["Z"]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if is_zombie(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    # A zombie child still answers kill(0); reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def group_alive(pgid: int) -> bool:
    """True while any process of the group is running (zombies, reaped or not, do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    pid_alive(pgid)  # reap the leader if it is our zombie child
    return any(int(fields[2]) == pgid for _, fields in _live_processes())


def processes_under(folder: Path, *, program: str | None = None) -> dict[int, str]:
    """Live processes (pid → command line) working in ``folder`` or below it; with ``program``
    only those running that executable (by file name). PostgreSQL's server processes all work
    in their data folder but each leads its own process group, so this, not the postmaster's
    group, is what finds every process of a cluster."""
    root = folder.resolve()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = (entry / "cwd").resolve(strict=True)
            name = (entry / "exe").resolve(strict=True).name if program is not None else None
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, RuntimeError):
            continue
        inside = cwd == root or root in cwd.parents
        if inside and name == program and not is_zombie(int(entry.name)):
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def kill_processes_under(
    folder: Path, *, program: str | None = None, also: Iterable[int] = (), timeout: float = 10.0
) -> dict[int, str]:
    """SIGKILL every process :func:`processes_under` finds (and the pids in ``also``) until none
    is left; return the ones still alive after ``timeout`` seconds (empty when all are gone)."""
    extra = list(also)
    deadline = time.monotonic() + timeout
    while True:
        survivors = {pid: "" for pid in extra if pid_alive(pid)}
        survivors.update(processes_under(folder, program=program))
        if not survivors or time.monotonic() > deadline:
            return survivors
        for pid in survivors:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def stop_process_group(pgid: int, *, sig: signal.Signals, timeout: float) -> None:
    """Signal a whole process group, wait for it to go, and SIGKILL whatever is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid_alive(pgid)  # reaps the leader if it is our child
        if not group_alive(pgid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    for _ in range(50):
        pid_alive(pgid)
        if not group_alive(pgid):
            return
        time.sleep(0.1)


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file ('' if it does not exist)."""
    if not path.is_file():
        return ""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 64 * 1024))
        data = handle.read().decode("utf-8", errors="replace")
    return "\n".join(data.splitlines()[-lines:])


def which(candidates: Iterable[str]) -> Path | None:
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return Path(found)
    return None
