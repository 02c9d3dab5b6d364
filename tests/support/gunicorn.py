"""A real gunicorn master serving a small WSGI app, for tests of the local scaling path."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from controlplane.core.processes import child_pids, free_ports, read_pidfile

#: Answers every request with the pid of the worker that served it.
PID_APP = """
import os

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""


@dataclass(frozen=True)
class Gunicorn:
    pidfile: Path
    url: str
    port: int


@contextmanager
def running_gunicorn(
    folder: Path, *, app_source: str = PID_APP, module: str = "testapp", port: int | None = None
) -> Iterator[Gunicorn]:
    """Start ``gunicorn --workers 2`` on ``module:app`` in ``folder``; stop it on exit.

    Returns once the app answers, the pidfile exists and both workers run (bounded: 30 s): a
    worker still forking under load would otherwise read as one missing.
    """
    (folder / f"{module}.py").write_text(app_source, encoding="utf-8")
    pidfile = folder / "gunicorn.pid"
    (bind_port,) = free_ports(1) if port is None else (port,)
    master = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{bind_port}",
            "--pid",
            str(pidfile),
            "--chdir",
            str(folder),
            f"{module}:app",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{bind_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answered = httpx.get(url + "/", timeout=1).status_code == 200
                master_pid = read_pidfile(pidfile)
                if answered and master_pid is not None and len(child_pids(master_pid)) == 2:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.1)
        yield Gunicorn(pidfile=pidfile, url=url, port=bind_port)
    finally:
        master.terminate()
        master.wait(timeout=30)
