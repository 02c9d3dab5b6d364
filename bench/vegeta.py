"""Open-loop HTTP load with vegeta (``github.com/tsenart/vegeta``), the pinned build of
``make bootstrap`` (``<cache>/bin/vegeta-<VEGETA_VERSION>``, or ``STACK_VEGETA``).

:func:`attack` sends a list of :class:`Target` (method, URL, headers, body; vegeta's JSON target
format, taken round-robin) at a constant rate for a duration, then reads the results twice:

- ``vegeta report -type=json``: achieved rate, successes, status codes, errors and latency
  quantiles (vegeta's t-digest, the figures ``vegeta report`` prints);
- ``vegeta encode --to json``: one line per request, from which each target's *route* (its label)
  gets exact nearest-rank p50 / p99 and its status codes.

Vegeta starts a new worker whenever every worker is busy (up to ``max_workers``, by default
enough for every request of ``timeout`` seconds to be in flight), so a request goes out at its
scheduled time while the server is slow, and its latency counts its wait for a connection (at
most ``max_connections``). A report whose sent rate is below the asked one shows that the
generator itself could not keep up. The generator's own CPU (user + system seconds of the
vegeta process over its wall time) is reported with every attack: on a shared machine it is part of
the load. Every run is bounded by its duration plus the request timeout. Loopback targets only.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import math
import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from controlplane.stack.settings import StackSettings

#: Requests that take longer count as errors (vegeta's ``-timeout``).
DEFAULT_TIMEOUT_S = 10.0


class VegetaError(RuntimeError):
    """vegeta is missing, failed, or printed something this module cannot read."""


def binary() -> Path:
    """The pinned vegeta of ``make bootstrap`` (``STACK_VEGETA`` overrides it)."""
    path = StackSettings().vegeta_binary()
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise VegetaError(f"vegeta is not installed at {path} (run `make bootstrap`)")
    return path


@dataclass(frozen=True)
class Target:
    """One request; ``route`` labels it in the per-route figures (default: method and path)."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    route: str = ""

    def label(self) -> str:
        if self.route:
            return self.route
        path = self.url.split("://", 1)[-1].partition("/")[2]
        return f"{self.method} /{path.partition('?')[0]}"

    def json_line(self) -> str:
        """The target in vegeta's JSON format (``-format=json``)."""
        document: dict[str, Any] = {
            "method": self.method,
            "url": self.url,
            "header": {name: [value] for name, value in self.headers.items()},
        }
        if self.body:
            document["body"] = base64.b64encode(self.body).decode("ascii")
        return json.dumps(document, separators=(",", ":"))


@dataclass(frozen=True)
class ChildRun:
    """A finished child process: exit code, its own CPU seconds (user + system) and wall time."""

    returncode: int
    cpu_s: float
    wall_s: float

    @property
    def cpu_share(self) -> float:
        """CPU used over wall time: 1.0 is one core busy for the whole run."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else math.nan


def measured_run(
    argv: Sequence[str],
    *,
    timeout: float,
    stdout: IO[Any] | int | None = subprocess.DEVNULL,
    stderr: IO[Any] | int | None = subprocess.PIPE,
) -> tuple[ChildRun, str]:
    """Run ``argv`` to its end and reap it with ``wait4``, which gives the child's own resource
    use (not that of other children of this process). Killed after ``timeout`` seconds.
    Returns the run and what it wrote on stderr (when piped)."""
    started = time.monotonic()
    process = subprocess.Popen(
        list(argv), stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, text=True
    )
    errors: list[str] = []
    reader = None
    if process.stderr is not None:
        pipe = process.stderr
        reader = threading.Thread(target=lambda: errors.append(pipe.read()), daemon=True)
        reader.start()
    killer = threading.Timer(timeout, process.kill)
    killer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        killer.cancel()
    wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if reader is not None:
        reader.join(timeout=10)
    if process.stderr is not None:
        process.stderr.close()
    run = ChildRun(
        returncode=process.returncode, cpu_s=usage.ru_utime + usage.ru_stime, wall_s=wall
    )
    return run, "".join(errors)


@dataclass(frozen=True)
class Report:
    """``vegeta report -type=json`` of one attack (latencies in ms)."""

    requests: int
    rate: float  # requests sent per second
    throughput: float  # successful (2xx/3xx) answers per second, the tail of the last one included
    duration_s: float
    wait_s: float  # from the last request sent to its answer
    success: float  # ratio of 2xx/3xx answers
    status_codes: dict[int, int]  # 0: no answer (timeout, connection refused)
    errors: list[str]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


def parse_report(text: str) -> Report:
    try:
        data = json.loads(text)
        latencies = data["latencies"]
        return Report(
            requests=int(data["requests"]),
            rate=float(data["rate"]),
            throughput=float(data["throughput"]),
            duration_s=data["duration"] / 1e9,
            wait_s=data["wait"] / 1e9,
            success=float(data["success"]),
            status_codes={int(code): int(n) for code, n in data["status_codes"].items()},
            errors=list(data["errors"] or []),
            p50_ms=latencies["50th"] / 1e6,
            p90_ms=latencies["90th"] / 1e6,
            p99_ms=latencies["99th"] / 1e6,
            max_ms=latencies["max"] / 1e6,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise VegetaError(f"cannot read vegeta's JSON report: {exc}: {text[:300]!r}") from exc


@dataclass(frozen=True)
class RouteFigures:
    """One route of an attack: its requests, status codes and exact latency percentiles (ms)."""

    route: str
    requests: int
    statuses: dict[int, int]
    p50_ms: float
    p99_ms: float
    max_ms: float

    def count(self, *codes: int) -> int:
        return sum(n for code, n in self.statuses.items() if code in codes)


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (NaN for none)."""
    if not ordered:
        return math.nan
    rank = math.ceil(p / 100 * len(ordered))
    return ordered[min(len(ordered), max(rank, 1)) - 1]


def parse_results(
    lines: Iterable[str], routes: Mapping[tuple[str, str], str]
) -> dict[str, RouteFigures]:
    """Per-route figures from ``vegeta encode --to json`` lines; ``routes`` maps (method, URL) to
    a route label (a request of no listed target counts under ``METHOD URL``)."""
    latencies: dict[str, list[float]] = {}
    statuses: dict[str, Counter[int]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            result = json.loads(line)
            method, url = result["method"], result["url"]
            code, latency = int(result["code"]), int(result["latency"])
        except (ValueError, KeyError, TypeError) as exc:
            raise VegetaError(f"cannot read vegeta result line {number}: {exc}") from exc
        route = routes.get((method, url), f"{method} {url}")
        latencies.setdefault(route, []).append(latency / 1e6)
        statuses.setdefault(route, Counter())[code] += 1
    figures = {}
    for route, values in latencies.items():
        values.sort()
        figures[route] = RouteFigures(
            route=route,
            requests=len(values),
            statuses=dict(statuses[route]),
            p50_ms=percentile(values, 50),
            p99_ms=percentile(values, 99),
            max_ms=values[-1],
        )
    return figures


def parse_hdrplot(text: str) -> list[tuple[float, float]]:
    """(percentile, ms) rows of ``vegeta report -type=hdrplot`` (percentile in %)."""
    rows = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) == 4:
            rows.append((float(parts[1]) * 100, float(parts[0])))
    if not rows:
        raise VegetaError(f"cannot read vegeta's hdrplot report: {text[:300]!r}")
    return rows


@dataclass(frozen=True)
class Attack:
    """One constant-rate attack: what was asked, vegeta's report, per-route figures, the
    latency spectrum and the generator's own CPU."""

    target_rate: float
    duration_s: float
    report: Report
    routes: dict[str, RouteFigures]
    hdr: list[tuple[float, float]]
    generator: ChildRun

    @property
    def generator_cpu(self) -> float:
        """vegeta's CPU over its wall time (1.0 = one core)."""
        return self.generator.cpu_share

    def quantile_ms(self, percent: float) -> float:
        """Latency at ``percent`` from the hdrplot spectrum (the first row at or above it)."""
        for at, ms in self.hdr:
            if at >= percent - 1e-9:
                return ms
        return self.hdr[-1][1]


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def workers_needed(rate: float, timeout: float) -> int:
    """Workers for ``rate`` requests per second when every request may take the whole
    ``timeout``: vegeta sends a request only when a worker is free, so with fewer its pacer
    would wait for the server and the rate (and the latencies) would hide the server's queue."""
    return max(100, math.ceil(rate * (timeout + 1)))


def attack(
    targets: Sequence[Target],
    *,
    rate: float,
    duration: float,
    workdir: Path,
    max_connections: int = 64,
    max_workers: int | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    vegeta: Path | None = None,
) -> Attack:
    """``rate`` requests per second for ``duration`` seconds over ``targets`` (round-robin: give
    at least ``rate × duration`` targets where each must be unique, e.g. idempotency keys).

    ``rate=0`` is vegeta's maximum: ``max_workers`` (required then) each send their next request
    as soon as the last one is answered (a closed loop, the generator's own cost included)."""
    if not targets:
        raise ValueError("no targets")
    if rate < 0 or duration <= 0:
        raise ValueError("rate must not be negative and duration must be positive")
    if rate == 0 and not max_workers:
        raise ValueError("rate=0 (as fast as possible) needs max_workers")
    remote = sorted({t.url for t in targets if not is_loopback(t.url)})
    if remote:
        raise ValueError(f"load goes to loopback addresses only, not {remote[:3]}")
    program = str(vegeta or binary())
    workdir.mkdir(parents=True, exist_ok=True)
    targets_file = workdir / "targets.jsonl"
    results_file = workdir / "results.bin"
    with targets_file.open("w", encoding="utf-8") as handle:
        for target in targets:
            handle.write(target.json_line() + "\n")
    # Rates in requests per second with millisecond resolution: -rate=N/1ms would lose precision.
    per_second = 0 if rate == 0 else max(1, round(rate))
    workers = max_workers if max_workers is not None else workers_needed(per_second, timeout)
    run, errors = measured_run(
        [
            program,
            "attack",
            "-format=json",
            f"-targets={targets_file}",
            f"-rate={per_second}/1s" if per_second else "-rate=0",
            f"-duration={duration:g}s",
            f"-timeout={timeout:g}s",
            f"-workers={min(workers, max_connections)}",
            f"-max-workers={workers}",
            f"-connections={max_connections}",
            f"-max-connections={max_connections}",
            "-max-body=0",
            "-http2=false",
            f"-output={results_file}",
        ],
        timeout=duration + timeout + 60,
    )
    if run.returncode != 0:
        raise VegetaError(f"vegeta attack exited with {run.returncode}: {errors.strip()[-500:]}")
    report = parse_report(_vegeta(program, "report", "-type=json", str(results_file)))
    hdr = parse_hdrplot(_vegeta(program, "report", "-type=hdrplot", str(results_file)))
    encoded = workdir / "results.jsonl"
    _vegeta(program, "encode", "--to", "json", f"-output={encoded}", str(results_file))
    routes = {(t.method, t.url): t.label() for t in targets}
    with encoded.open(encoding="utf-8") as lines:
        per_route = parse_results(lines, routes)
    return Attack(
        target_rate=per_second,
        duration_s=duration,
        report=report,
        routes=per_route,
        hdr=hdr,
        generator=run,
    )


def _vegeta(program: str, *args: str) -> str:
    done = subprocess.run(
        [program, *args], capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise VegetaError(f"vegeta {args[0]} exited with {done.returncode}: {done.stderr[-500:]}")
    return done.stdout
