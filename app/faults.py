"""Injected slowness for drills and the closed-loop demo: ``python -m app.faults``.

The API reads a small JSON file (``INVENTORY_FAULTS_FILE``) shared by all its gunicorn workers::

    {"service_time_ms": 200, "methods": ["GET"]}

Each matching ``/api/v1`` request then holds its worker's single service slot for
``service_time_ms`` — the way a CPU-bound handler holds a core — so a worker serves at most
``1000 / service_time_ms`` of them per second and queueing appears once traffic exceeds what
the workers can serve. The wait is asynchronous: the worker still answers probes and scrapes
while its slot is busy, as a real server's metrics endpoint must. Adding
workers (TTIN) really does bring the latency back down, which is what a latency SLO burn from
overload looks like. Probes and ``/metrics`` are never slowed. No file, an empty file or
``service_time_ms: 0``: no fault. The file is re-read when it changes (checked at most every
``check_interval`` seconds); a file that cannot be parsed is ignored with one warning. While the
file is configured, responses carry an ``x-inventory-worker`` header with the serving worker's
pid (drill mode).

CLI::

    python -m app.faults set --file F --service-time-ms 200 [--methods GET]
    python -m app.faults clear --file F
    python -m app.faults show --file F
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]

#: Only requests under this prefix are slowed: probes and scrapes keep answering.
SLOWED_PREFIX = "/api/v1/"

#: With fault injection configured, every response names the worker process that served it, so
#: a drill can tell when a worker added by a scale-out starts serving traffic.
WORKER_HEADER = b"x-inventory-worker"


class Faults(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    service_time_ms: int = Field(default=0, ge=0, le=60_000)
    methods: tuple[Method, ...] = ("GET",)

    @property
    def active(self) -> bool:
        return self.service_time_ms > 0


NO_FAULTS = Faults()


def read_faults(path: Path) -> Faults:
    """The faults in ``path``; none when it is missing or empty. Raises ValueError if invalid."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return NO_FAULTS
    if not text.strip():
        return NO_FAULTS
    try:
        return Faults.model_validate_json(text)
    except ValidationError as exc:
        raise ValueError(f"{path}: {exc.errors()[0]['msg']}") from exc


def write_faults(path: Path, faults: Faults) -> None:
    """Replace the file atomically (the workers never read half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".faults-")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(faults.model_dump_json() + "\n")
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


class FaultInjector:
    """ASGI middleware applying the faults of one file to matching requests."""

    def __init__(self, app: ASGIApp, *, path: Path, check_interval: float = 0.5) -> None:
        self.app = app
        self.path = path
        self.check_interval = check_interval
        self._faults = NO_FAULTS
        self._stamp: tuple[int, int] | None = None
        self._checked = float("-inf")
        self._pid = str(os.getpid()).encode()
        self._lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    def _slot(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock[0] is not loop:
            self._lock = (loop, asyncio.Lock())
        return self._lock[1]

    def current(self) -> Faults:
        now = time.monotonic()
        if now - self._checked < self.check_interval:
            return self._faults
        self._checked = now
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._faults, self._stamp = NO_FAULTS, None
            return self._faults
        stamp = (stat.st_mtime_ns, stat.st_ino)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._faults = read_faults(self.path)
            except (OSError, ValueError) as exc:
                log.warning("fault file ignored: %s", exc)
                self._faults = NO_FAULTS
            else:
                log.warning("injected faults now: %s", self._faults.model_dump())
        return self._faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(SLOWED_PREFIX):
            faults = self.current()
            if faults.active and scope["method"] in faults.methods:
                async with self._slot():  # one request at a time holds the worker's capacity
                    await asyncio.sleep(faults.service_time_ms / 1000)

        async def send_with_worker(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((WORKER_HEADER, self._pid))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_worker)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.faults", description="Inject or clear slowness in the inventory API."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    set_ = commands.add_parser("set", help="inject slowness")
    set_.add_argument("--file", type=Path, required=True)
    set_.add_argument("--service-time-ms", type=int, required=True)
    set_.add_argument("--methods", nargs="+", default=["GET"])
    for name, text in (("clear", "remove every fault"), ("show", "print the faults in force")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--file", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "set":
            faults = Faults(service_time_ms=args.service_time_ms, methods=tuple(args.methods))
            write_faults(args.file, faults)
        elif args.command == "clear":
            write_faults(args.file, NO_FAULTS)
        sys.stdout.write(read_faults(args.file).model_dump_json() + "\n")
    except ValidationError as exc:
        error = exc.errors()[0]
        sys.stderr.write(f"error: {'.'.join(map(str, error['loc']))}: {error['msg']}\n")
        return 2
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
