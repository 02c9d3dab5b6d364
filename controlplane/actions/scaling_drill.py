"""The scaling drill: inject slowness into a running inventory API under load and measure how long
the control plane takes to add a worker that serves traffic.

1. Open-loop GET load at ``rate`` per second (each latency measured from its *scheduled* send time,
   so queueing cannot hide); a warm-up notes which workers serve (the API names the worker in the
   ``x-inventory-worker`` header while fault injection is configured).
2. Onset: the faults file gets ``service_time_ms`` — each read now holds its worker, the API is
   over capacity and the read-latency SLO burns.
3. Reaction: the first response served by a worker that was not serving before. The drill itself
   never scales anything: whatever reacted (the control plane's engine) did.
4. Settle, then the fault is cleared (always, even on error or timeout).

Every loop is bounded by its deadline. Loopback targets only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

WORKER_HEADER = "x-inventory-worker"


def set_slowness(faults_file: Path, service_time_ms: int) -> None:
    """Write the API's faults file (format: ``app/faults.py``) atomically; 0 clears it."""
    faults_file.parent.mkdir(parents=True, exist_ok=True)
    temporary = faults_file.with_name(f".{faults_file.name}.{os.getpid()}")
    body = {"service_time_ms": service_time_ms, "methods": ["GET"]}
    temporary.write_text(json.dumps(body) + "\n", encoding="utf-8")
    temporary.chmod(0o644)
    os.replace(temporary, faults_file)


#: Requests in flight above which the generator stops sending (and counts what it skipped).
MAX_IN_FLIGHT = 400


@dataclass(frozen=True)
class Sample:
    scheduled: float
    latency: float | None  # None: no answer (timeout, connection error)
    status: int | None
    worker: str | None

    @property
    def done(self) -> float:
        return self.scheduled + (self.latency or 0.0)


@dataclass
class LoadRecorder:
    samples: list[Sample] = field(default_factory=list)
    skipped: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, sample: Sample) -> None:
        with self.lock:
            self.samples.append(sample)

    def between(self, start: float, end: float) -> list[Sample]:
        with self.lock:
            return [s for s in self.samples if start <= s.scheduled < end]

    def workers_before(self, moment: float) -> set[str]:
        with self.lock:
            return {s.worker for s in self.samples if s.worker and s.done < moment}

    def first_new_worker(self, known: set[str], after: float) -> Sample | None:
        with self.lock:
            new = [s for s in self.samples if s.worker and s.worker not in known and s.done > after]
        return min(new, key=lambda s: s.done) if new else None


class OpenLoopLoad:
    """GETs at a fixed rate from a background thread until :meth:`stop` (or ``max_seconds``)."""

    def __init__(
        self,
        *,
        url: str,
        path: Callable[[], str],
        rate: float,
        max_seconds: float = 900.0,
        auth: httpx.Auth | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.url = url
        self.path = path
        self.rate = rate
        self.max_seconds = max_seconds
        #: How the requests authenticate to the API (client credentials), None: no token.
        self.auth = auth
        self.recorder = LoadRecorder()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="drill-load", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        # A new connection per request: each one goes to whichever worker accepts it, as behind
        # a load balancer; kept-alive connections would pin the load to the first worker.
        limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=0)
        async with httpx.AsyncClient(
            base_url=self.url, timeout=15.0, limits=limits, auth=self.auth
        ) as client:
            tasks: set[asyncio.Task[None]] = set()
            start = time.monotonic()
            sent = 0
            while not self._stop.is_set() and time.monotonic() - start < self.max_seconds:
                scheduled = start + sent / self.rate
                delay = scheduled - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent += 1
                if len(tasks) >= MAX_IN_FLIGHT:
                    self.recorder.skipped += 1
                    continue
                task = asyncio.create_task(self._one(client, scheduled))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            for task in list(tasks):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(self, client: httpx.AsyncClient, scheduled: float) -> None:
        try:
            response = await client.get(self.path())
        except httpx.HTTPError:
            self.recorder.add(Sample(scheduled, None, None, None))
            return
        self.recorder.add(
            Sample(
                scheduled,
                time.monotonic() - scheduled,
                response.status_code,
                response.headers.get(WORKER_HEADER),
            )
        )


@dataclass(frozen=True)
class Phase:
    requests: int
    p50_ms: float | None
    p95_ms: float | None
    over_threshold: float  # share of requests slower than the SLO threshold (or unanswered)


def phase(samples: list[Sample], *, threshold_s: float) -> Phase:
    answered = sorted(s.latency for s in samples if s.latency is not None)
    slow = sum(1 for s in samples if s.latency is None or s.latency > threshold_s)

    def pct(q: float) -> float | None:
        if not answered:
            return None
        index = min(len(answered) - 1, int(q * len(answered)))
        return round(answered[index] * 1000, 1)

    return Phase(
        requests=len(samples),
        p50_ms=round(statistics.median(answered) * 1000, 1) if answered else None,
        p95_ms=pct(0.95),
        over_threshold=round(slow / len(samples), 4) if samples else 0.0,
    )


@dataclass(frozen=True)
class ScalingDrillResult:
    reacted: bool
    reaction_s: float | None
    workers_before: tuple[str, ...]
    new_worker: str | None
    before: Phase
    during: Phase
    after: Phase | None
    skipped_requests: int


def run_scaling_drill(
    *,
    api_url: str,
    faults_file: Path,
    path: Callable[[], str],
    rate: float = 20.0,
    service_time_ms: int = 100,
    threshold_s: float = 0.25,
    warmup_s: float = 5.0,
    timeout_s: float = 240.0,
    settle_s: float = 30.0,
    on_progress: Callable[[str], None] = lambda line: None,
    on_onset: Callable[[], None] = lambda: None,
    auth: httpx.Auth | None = None,
) -> ScalingDrillResult:
    """Run the drill against ``api_url`` (see the module docstring). ``on_onset`` is called at
    the moment the slowness starts (benchmarks start their own clocks there); ``auth`` is how
    the reads authenticate (the control plane's client credentials)."""
    load = OpenLoopLoad(
        url=api_url, path=path, rate=rate, max_seconds=warmup_s + timeout_s + 60, auth=auth
    )
    load.start()
    recorder = load.recorder
    try:
        time.sleep(warmup_s)
        onset = time.monotonic()
        known = recorder.workers_before(onset)
        if not known:
            raise RuntimeError(
                f"no response named its worker during the warm-up: is {api_url} up, and does it "
                "run with INVENTORY_FAULTS_FILE set (drill mode)?"
            )
        set_slowness(faults_file, service_time_ms)
        on_onset()
        on_progress(
            f"slowness injected: {service_time_ms} ms per read at {rate:g}/s; "
            f"{len(known)} worker(s) serving"
        )
        deadline = onset + timeout_s
        first = None
        while time.monotonic() < deadline:
            first = recorder.first_new_worker(known, after=onset)
            if first is not None:
                break
            time.sleep(0.2)
        reacted_at = first.done if first is not None else None
        if first is not None:
            on_progress(f"new worker {first.worker} served traffic {first.done - onset:.1f} s in")
            time.sleep(settle_s)
        end = time.monotonic()
    finally:
        set_slowness(faults_file, 0)
        load.stop()
    before = phase(recorder.between(onset - warmup_s, onset), threshold_s=threshold_s)
    during = phase(recorder.between(onset, reacted_at or end), threshold_s=threshold_s)
    after = (
        phase(recorder.between(max(reacted_at, end - settle_s / 2), end), threshold_s=threshold_s)
        if reacted_at is not None
        else None
    )
    return ScalingDrillResult(
        reacted=first is not None,
        reaction_s=None if reacted_at is None else round(reacted_at - onset, 2),
        workers_before=tuple(sorted(known)),
        new_worker=None if first is None else first.worker,
        before=before,
        during=during,
        after=after,
        skipped_requests=recorder.skipped,
    )
