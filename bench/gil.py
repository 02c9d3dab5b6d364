"""The webhook writer's store write beside a busy event loop: CPython's GIL hand-over.

The control plane answers HTTP on one asyncio event loop. It used to commit webhook deliveries
in a writer thread (``alerts.batching.DeliveryBatcher``; it still does on PostgreSQL, while on
SQLite the loop now writes them itself, because of what this measures). Under load the loop
thread holds Python's GIL almost all the time and lets go of it only for a moment at each system
call. A thread that wants the GIL back waits on a condition with the switch interval as its
timeout, and only when that timeout expires does it ask the holder to let go; each release by
the loop signals the condition, the waiting thread's wait starts over, and the loop takes the
GIL again before the waiting thread runs. So a thread beside a loop that releases the GIL more
often than every switch interval (5 ms by default) barely runs, and every SQLite call of a write
(each one releases the GIL) is a new wait.

This benchmark measures one group commit of ``--batch`` new alerts (``record_deliveries`` and
its commit on a SQLite file, ``synchronous=FULL``):

- alone (the baseline);
- beside a thread that does ``--work-ms`` of Python work between GIL-releasing system calls
  (what the loop does per request under load), at Python's default switch interval;
- the same at a ``--switch-interval-ms`` switch interval.

Each configuration writes at most ``--rounds`` times and for at most ``--limit-s`` seconds (when
no write finishes in that time, the limit is reported as a lower bound). The last line printed
is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import select
import statistics
import sys
import tempfile
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import count
from pathlib import Path

from rich.console import Console
from rich.table import Table

from controlplane.store.alerts import IncomingAlert, IncomingDelivery, record_deliveries
from controlplane.store.database import Database

_numbers = count()


def delivery() -> IncomingDelivery:
    number = next(_numbers)
    alert = IncomingAlert(
        fingerprint=f"{number:016x}",
        status="firing",
        starts_at=datetime(2026, 1, 1, tzinfo=UTC),
        labels={"alertname": "BenchBurn", "slo": f"slo-{number}"},
        annotations={"summary": "bench"},
        generator_url="http://127.0.0.1:9090/graph",
    )
    return IncomingDelivery(
        receiver="controlplane", status="firing", alerts=(alert,), payload={"n": number}
    )


class BusyLoop:
    """A thread that works ``work_s`` in Python, then makes a system call that releases the
    GIL (``select`` with no wait), over and over: an event loop under load."""

    def __init__(self, *, work_s: float) -> None:
        self.work_s = work_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="busy-loop", daemon=True)

    def __enter__(self) -> BusyLoop:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            until = time.perf_counter() + self.work_s
            while time.perf_counter() < until:
                pass
            select.select([], [], [], 0)


@dataclass(frozen=True)
class Writes:
    label: str
    times_ms: list[float]
    limited: bool
    limit_s: float

    @property
    def median_ms(self) -> float:
        """The median write; the time limit (a lower bound) when no write finished in it."""
        return statistics.median(self.times_ms) if self.times_ms else self.limit_s * 1000

    def shown(self, value: float) -> str:
        return f"{value:.1f} ms" if self.times_ms else f"> {value:,.0f} ms"


def writes(
    database: Database,
    *,
    label: str,
    batch: int,
    rounds: int,
    limit_s: float,
    busy_work_s: float | None = None,
) -> Writes:
    """Write batches from a worker thread (as the webhook writer does), beside a busy loop if
    ``busy_work_s`` is given, and time each one. A write still under way at the deadline is
    finished once the busy loop has stopped, and not counted."""
    times: list[float] = []
    deadline = time.monotonic() + limit_s

    def run() -> None:
        while len(times) < rounds and time.monotonic() < deadline:
            deliveries = [(delivery(), datetime.now(UTC)) for _ in range(batch)]
            started = time.perf_counter()
            with database.write_connection() as connection:
                record_deliveries(connection, deliveries=deliveries)
            if time.monotonic() <= deadline:
                times.append((time.perf_counter() - started) * 1000)

    writer = threading.Thread(target=run, name="writer", daemon=True)
    busy: AbstractContextManager[object] = (
        BusyLoop(work_s=busy_work_s) if busy_work_s is not None else nullcontext()
    )
    with busy:
        writer.start()
        writer.join(timeout=limit_s)
    writer.join(timeout=60)
    return Writes(label=label, times_ms=times, limited=len(times) < rounds, limit_s=limit_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16, help="new alerts per group commit")
    parser.add_argument("--rounds", type=int, default=20, help="writes per configuration")
    parser.add_argument("--limit-s", type=float, default=20.0, help="seconds per configuration")
    parser.add_argument("--work-ms", type=float, default=0.5, help="busy loop: work per call")
    parser.add_argument("--switch-interval-ms", type=float, default=0.2)
    args = parser.parse_args()
    console = Console(width=150)
    default_interval = sys.getswitchinterval()
    folder = Path(tempfile.mkdtemp(prefix="bench-gil-"))
    database = Database.from_url(f"sqlite:///{folder / 'controlplane.db'}")
    database.migrate()
    results: list[Writes] = []
    try:
        options = {"batch": args.batch, "rounds": args.rounds, "limit_s": args.limit_s}
        results.append(writes(database, label="alone (baseline)", **options))
        for interval in (default_interval, args.switch_interval_ms / 1000):
            sys.setswitchinterval(interval)
            try:
                label = f"beside a busy loop, switch interval {interval * 1000:g} ms"
                busy_work_s = args.work_ms / 1000
                results.append(writes(database, label=label, busy_work_s=busy_work_s, **options))
            finally:
                sys.setswitchinterval(default_interval)
            done = results[-1]
            console.print(
                f"{done.label}: {done.shown(done.median_ms)}, {len(done.times_ms)} writes"
            )
    finally:
        database.dispose()
    table = Table(title=f"A group commit of {args.batch} new alerts on SQLite, from a thread")
    for column in ("configuration", "writes", "median", "max", "notes"):
        table.add_column(
            column, justify="left" if column in ("configuration", "notes") else "right"
        )
    for result in results:
        table.add_row(
            result.label,
            str(len(result.times_ms)),
            result.shown(result.median_ms),
            result.shown(max(result.times_ms, default=result.median_ms)),
            f"stopped at {args.limit_s:g} s" if result.limited else "",
        )
    console.print(table)
    console.print(
        f"busy loop: {args.work_ms:g} ms of Python work between GIL-releasing system calls; "
        f"Python's default switch interval {default_interval * 1000:g} ms"
    )
    alone, default, short = results
    figures = {
        "write_alone_ms": round(alone.median_ms, 2),
        # a lower bound (the time limit) when no write finished in it
        "write_beside_busy_loop_default_interval_ms": round(default.median_ms, 2),
        "writes_finished_beside_busy_loop_default_interval": len(default.times_ms),
        "write_beside_busy_loop_short_interval_ms": round(short.median_ms, 2),
        "short_switch_interval_ms": args.switch_interval_ms,
    }
    print(json.dumps(figures))  # noqa: T201 - the benchmark's last line


if __name__ == "__main__":
    main()
