"""``make bench-api``: throughput and latency of the inventory API, all measured in one run.

Starts its own PostgreSQL and Redis on free loopback ports (the same backend classes as the local
stack), the API under gunicorn and the stream workers, seeds SKUs, then measures:

- constant JSON endpoint, cached stock read, naive stock read (PostgreSQL on every request),
  all on the same server with the same settings;
- the cached read again with the near cache off (Redis on every request) — for reference;
- p99 latency of the cached read under an open-loop load (vegeta, constant rate) at 80 % of its
  maximum measured by vegeta itself (closed loop, one worker per connection: the generator's
  own CPU shares the two cores with the server in both runs);
- movement ingest: accepted/s (202) and persisted/s (committed by the workers), against a
  baseline endpoint that does one INSERT per request;
- mixed load: stock reads, movement posts and reservations in the demo traffic's proportions
  (``app.traffic.Mix``) in one open-loop vegeta attack while the stream workers apply the
  movements: first the mix's own maximum (wrk, closed loop), then an open-loop attack at half of
  it: p50 / p99 per route, statuses other than the expected ones counted as errors;
- with authentication on (the default; ``--no-auth`` skips it): a Keycloak is started too, the
  API validates the bearer token of every request (the generator authenticates with OAuth2 client
  credentials as client ``inventory-traffic``), and the cached read is measured again, in the same
  interleaved rounds, on a server with authentication off: ``auth_overhead_ratio`` = cached reads
  per second with authentication / without.

Closed-loop maxima come from ``wrk`` when it is installed (``--load wrk``) or from the asyncio
generator in ``bench/loadgen.py``; the open-loop phases always use vegeta (``bench/vegeta.py``, the
pinned build of ``make bootstrap``). Every row shows the load generator's own CPU. Prints a table
and, as the last line, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from app.core.client_auth import ClientCredentials
from app.traffic import Mix
from bench import loadgen, vegeta
from controlplane.core.processes import free_ports, stop_process_group
from controlplane.stack.backends import Backend, PostgresPrimary, Redis
from controlplane.stack.keycloak import Keycloak
from controlplane.stack.settings import StackSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
#: The client the generator authenticates as (client credentials, scopes read + write).
BENCH_CLIENT = "inventory-traffic"

#: (header, value) pairs sent with every request of a phase.
Headers = list[tuple[str, str]]


@dataclass
class Phase:
    name: str
    rps: float
    ok: int
    errors: int
    seconds: float
    note: str = ""
    p50_ms: float | None = None
    p99_ms: float | None = None
    #: The load generator's own CPU over the phase's wall time (1.0 = one core busy).
    gen_cpu: float | None = None
    #: Open-loop phases: the rate asked of the generator, the rate it sent, p99.9 (vegeta).
    target_rps: float | None = None
    sent_rps: float | None = None
    p999_ms: float | None = None
    #: Open-loop phases: answers by status code (0: no answer within the timeout).
    statuses: dict[int, int] = field(default_factory=dict)


def log(message: str) -> None:
    sys.stderr.write(f"[bench] {message}\n")
    sys.stderr.flush()


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# -- backends and processes -------------------------------------------------------------------


@contextmanager
def backends(home: Path, *, auth: bool) -> Iterator[tuple[PostgresPrimary, Redis, Keycloak | None]]:
    settings = StackSettings()
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o755)
    pg_port, redis_port, kc_port, kc_management = free_ports(4)
    primary = PostgresPrimary(
        settings=settings,
        workdir=home / "postgresql",
        ports={"postgres": pg_port},
        extra_conf={"max_connections": "200", "shared_buffers": "'256MB'"},
    )
    redis = Redis(settings=settings, workdir=home / "redis", ports={"redis": redis_port})
    keycloak = None
    wanted: list[Backend] = [primary, redis]
    if auth:
        keycloak = Keycloak(
            settings=settings,
            workdir=home / "keycloak",
            ports={"http": kc_port, "management": kc_management},
        )
        wanted.append(keycloak)
    started: list[Any] = []
    try:
        for backend in wanted:
            log(f"starting {backend.describe()}")
            backend.start()
            started.append(backend)
        yield primary, redis, keycloak
    finally:
        for backend in reversed(started):
            backend.stop()


class Proc:
    def __init__(self, argv: list[str], *, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("ab") as out:
            self.popen = subprocess.Popen(
                argv,
                env=env,
                cwd=REPO_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def stop(self) -> None:
        if self.popen.poll() is None:
            stop_process_group(self.popen.pid, sig=signal.SIGTERM, timeout=20)
        self.popen.wait(timeout=10)


def app_env(base: dict[str, str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVENTORY_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(base)
    env.update(extra)
    return env


def start_api(
    *, env: dict[str, str], port: int, workers: int, logs: Path, pidfile: Path | None = None
) -> Proc:
    extra = [] if pidfile is None else ["--pidfile", str(pidfile)]
    proc = Proc(
        [
            sys.executable,
            "-m",
            "app.serve",
            "--bind",
            f"{HOST}:{port}",
            "--workers",
            str(workers),
            "--metrics-dir",
            str(logs / f"metrics-{port}"),
            *extra,
        ],
        env=env,
        log_path=logs / f"api-{port}.log",
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://{HOST}:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.popen.poll() is not None:
            raise SystemExit(f"the API exited; see {proc.log_path}")
        time.sleep(0.3)
    raise SystemExit(f"the API did not become ready; see {proc.log_path}")


# -- load -------------------------------------------------------------------------------------


def lua_headers(headers: Headers) -> str:
    return ", ".join(f'["{name}"] = "{value}"' for name, value in headers)


def wrk_lua_get(prefix: str, skus: list[str], headers: Headers) -> str:
    listing = ",".join(f'"{s}"' for s in skus)
    return (
        f"local skus = {{{listing}}}\n"
        f"local headers = {{{lua_headers(headers)}}}\n"
        "request = function()\n"
        f'  return wrk.format("GET", "{prefix}" .. skus[math.random(#skus)], headers)\n'
        "end\n"
    )


def wrk_lua_post(path: str, *, run: str, skus: list[str], headers: Headers) -> str:
    listing = ",".join(f'"{s}"' for s in skus)
    return (
        f"local skus = {{{listing}}}\n"
        "local n = 0\n"
        "local thread_id = 0\n"
        "local threads = 0\n"
        "function setup(thread) threads = threads + 1; thread:set('tid', threads) end\n"
        "function init(args) me = tostring(tid) end\n"
        "request = function()\n"
        "  n = n + 1\n"
        '  local body = \'{"kind":"receive","sku":"\' .. skus[math.random(#skus)] .. '
        '\'","warehouse":"W1","quantity":1}\'\n'
        f'  local headers = {{["Content-Type"] = "application/json", '
        f'["Idempotency-Key"] = "{run}-" .. me .. "-" .. n, {lua_headers(headers)}}}\n'
        f'  return wrk.format("POST", "{path}", headers, body)\n'
        "end\n"
    )


def wrk_lua_mixed(*, run: str, skus: list[str], headers: Headers, shares: dict[str, float]) -> str:
    """The mixed load for wrk (closed loop): each request a stock read, a movement (receive or
    ship, its own Idempotency-Key) or a reservation of one unit, drawn at the mix's shares."""
    listing = ",".join(f'"{s}"' for s in skus)
    reads = shares[READ]
    movements = reads + shares[MOVEMENT]
    return (
        f"local skus = {{{listing}}}\n"
        f"local auth = {{{lua_headers(headers)}}}\n"
        'local kinds = {"receive", "ship"}\n'
        "local n = 0\n"
        "local threads = 0\n"
        "function setup(thread) threads = threads + 1; thread:set('tid', threads) end\n"
        "function init(args) me = tostring(tid); math.randomseed(7919 * tid) end\n"
        "request = function()\n"
        "  local sku = skus[math.random(#skus)]\n"
        "  local draw = math.random()\n"
        f"  if draw < {reads!r} then\n"
        '    return wrk.format("GET", "/api/v1/stock/" .. sku, auth)\n'
        "  end\n"
        '  local headers = {["Content-Type"] = "application/json"}\n'
        "  for name, value in pairs(auth) do headers[name] = value end\n"
        f"  if draw < {movements!r} then\n"
        "    n = n + 1\n"
        f'    headers["Idempotency-Key"] = "{run}-mixed-" .. me .. "-" .. n\n'
        '    local body = \'{"kind":"\' .. kinds[math.random(2)] .. \'","sku":"\' .. sku\n'
        '      .. \'","warehouse":"W1","quantity":1}\'\n'
        '    return wrk.format("POST", "/api/v1/movements", headers, body)\n'
        "  end\n"
        '  local body = \'{"sku":"\' .. sku\n'
        '    .. \'","warehouse":"W1","quantity":1,"ttl_seconds":120}\'\n'
        '  return wrk.format("POST", "/api/v1/reservations", headers, body)\n'
        "end\n"
    )


def run_wrk(*, url: str, script: str, connections: int, duration: float, tmp: Path) -> Phase:
    script_path = tmp / f"wrk-{uuid.uuid4().hex[:6]}.lua"
    script_path.write_text(script, encoding="utf-8")
    output_path = script_path.with_suffix(".out")
    with output_path.open("w", encoding="utf-8") as output:
        run, stderr = vegeta.measured_run(
            [
                "wrk",
                "-t2",
                f"-c{connections}",
                f"-d{int(duration)}s",
                "--latency",
                "-s",
                str(script_path),
                url,
            ],
            stdout=output,
            timeout=duration + 60,
        )
    if run.returncode != 0:
        raise SystemExit(f"wrk exited with {run.returncode}: {stderr.strip()[-500:]}")
    out = output_path.read_text(encoding="utf-8")
    total_match = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    if total_match is None:
        raise SystemExit(f"cannot read wrk output:\n{out}")
    total = int(total_match.group(1))
    seconds = float(total_match.group(2)) * (0.001 if total_match.group(3) == "ms" else 1)
    bad_match = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    bad = int(bad_match.group(1)) if bad_match else 0
    errors_match = re.search(r"Socket errors: .*?timeout (\d+)", out)
    timeouts = int(errors_match.group(1)) if errors_match else 0
    errors = bad + timeouts
    if errors:
        log(f"{url}: {bad} answers not 2xx/3xx, {timeouts} timeouts (wrk: 2 s)")
    p50 = _wrk_percentile(out, "50%")
    p99 = _wrk_percentile(out, "99%")
    return Phase(
        name="",
        rps=(total - bad) / seconds,
        ok=total - bad,
        errors=errors,
        seconds=seconds,
        p50_ms=p50,
        p99_ms=p99,
        gen_cpu=run.cpu_share,
    )


def _wrk_percentile(out: str, label: str) -> float | None:
    match = re.search(rf"^\s*{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    if match is None:
        return None
    value = float(match.group(1))
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
    return value * scale


def run_python_closed(
    *, port: int, make: Callable[[], bytes], connections: int, duration: float, ok: tuple[int, ...]
) -> Phase:
    cpu_before = time.process_time()
    result = loadgen.run(
        loadgen.closed_loop(
            host=HOST,
            port=port,
            make_request=make,
            connections=connections,
            duration=duration,
            keep_latencies=True,
        )
    )
    good = result.count(*ok)
    return Phase(
        name="",
        rps=good / result.duration,
        ok=good,
        errors=result.total - good + result.errors,
        seconds=result.duration,
        p50_ms=result.percentile(50) * 1000,
        p99_ms=result.percentile(99) * 1000,
        gen_cpu=(time.process_time() - cpu_before) / result.duration,
    )


# -- the benchmark ----------------------------------------------------------------------------


def seed(dsn: str, skus: list[str]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO warehouses (code, name) VALUES ('W1', 'Bench')")
        with conn.cursor() as cur:
            with cur.copy("COPY items (sku, name) FROM STDIN") as copy:
                for sku in skus:
                    copy.write_row((sku, f"bench item {sku}"))
            with cur.copy("COPY stock_levels (sku, warehouse, on_hand) FROM STDIN") as copy:
                for sku in skus:
                    copy.write_row((sku, "W1", 1_000_000))
        conn.execute("ANALYZE")


def inventory_database(primary: PostgresPrimary, skus: list[str]) -> str:
    """Create, migrate and seed the ``inventory`` database; its DSN."""
    with psycopg.connect(primary.dsn(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE inventory")
    dsn = primary.dsn("inventory")
    from app.migrate import upgrade

    upgrade(dsn)
    seed(dsn, skus)
    return dsn


def drain(dsn: str, *, start: Callable[[], None], timeout: float) -> tuple[int, float]:
    """Start the workers on a full stream and time them: movements committed per second from
    the first commit seen to the last (polled every 50 ms). Returns (count, seconds)."""
    with psycopg.connect(dsn, autocommit=True) as conn:

        def applied() -> int:
            row = conn.execute("SELECT count(*) FROM movements").fetchone()
            return int(row[0]) if row else 0

        before = applied()
        start()
        deadline = time.monotonic() + timeout
        first_at, first_count = 0.0, before
        last, last_change = before, time.monotonic()
        while time.monotonic() < deadline:
            now_count = applied()
            now = time.monotonic()
            if now_count != last:
                if first_at == 0.0:
                    first_at, first_count = now, now_count
                last, last_change = now_count, now
            elif first_at and now - last_change > 3.0:
                break  # nothing new for 3 s: the stream is drained
            time.sleep(0.05)
        return last - first_count, max(last_change - first_at, 1e-9)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_api", description=__doc__)
    parser.add_argument("--duration", type=float, default=12.0, help="seconds per phase")
    parser.add_argument(
        "--rounds", type=int, default=4, help="interleaved rounds of the read phases"
    )
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--appliers", type=int, default=1, help="stream worker processes")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--skus", type=int, default=200)
    parser.add_argument("--load", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--trace-sample-ratio", default="0.01")
    parser.add_argument("--access-log", action="store_true", help="one ECS line per request")
    parser.add_argument(
        "--no-auth",
        dest="auth",
        action="store_false",
        help="no Keycloak, no tokens (by default the API checks a bearer token on every request)",
    )
    args = parser.parse_args(argv)

    use_wrk = args.load == "wrk" or (args.load == "auto" and shutil.which("wrk") is not None)
    if args.load == "wrk" and shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk), or use --load python")
    try:
        open_loop = vegeta.binary()
    except vegeta.VegetaError as exc:
        raise SystemExit(str(exc)) from None
    generator = (
        f"{'wrk' if use_wrk else 'python asyncio generator'} (closed loop), "
        f"{open_loop.name} (open loop)"
    )
    load_before = os.getloadavg()[0]
    home = Path(tempfile.mkdtemp(prefix="bench-api-"))
    logs = home / "logs"
    logs.mkdir()
    skus = [f"BENCH-{i:05d}" for i in range(args.skus)]
    phases: list[Phase] = []
    try:
        with backends(home, auth=args.auth) as (primary, redis, keycloak):
            dsn = inventory_database(primary, skus)
            base = {
                "INVENTORY_DATABASE_URL": dsn,
                "INVENTORY_REDIS_URL": redis.url,
                "INVENTORY_BENCH_ENDPOINTS": "true",
                "INVENTORY_ACCESS_LOG": "true" if args.access_log else "false",
                "INVENTORY_LOG_TO_STDERR": "true",
                "INVENTORY_LOG_LEVEL": "WARNING",
                "INVENTORY_TRACE_SAMPLE_RATIO": args.trace_sample_ratio,
                "INVENTORY_DB_POOL_SIZE": "10",
            }
            plain = dict(base)
            auth: ClientCredentials | None = None
            if keycloak is not None:
                base["INVENTORY_AUTH_ISSUER"] = keycloak.issuer()
                auth = ClientCredentials(
                    issuer=keycloak.issuer(),
                    client_id=BENCH_CLIENT,
                    client_secret=keycloak.client_secret(BENCH_CLIENT),
                )
            port, port2, port3 = free_ports(3)
            api = start_api(env=app_env(base), port=port, workers=args.web_workers, logs=logs)
            # Reference server: the same, with the near cache off (Redis on every cached read).
            api2 = start_api(
                env=app_env(base, INVENTORY_NEAR_CACHE="false"),
                port=port2,
                workers=args.web_workers,
                logs=logs,
            )
            # Reference server: the same, authentication off (only when it is on for the others).
            api3 = None
            if auth is not None:
                api3 = start_api(
                    env=app_env(plain), port=port3, workers=args.web_workers, logs=logs
                )
            servers = [p for p in (api, api2, api3) if p is not None]
            appliers: list[Proc] = []

            def start_appliers() -> None:
                appliers.extend(
                    Proc(
                        [sys.executable, "-m", "app.worker"],
                        env=app_env(base),
                        log_path=logs / f"worker-{i}.log",
                    )
                    for i in range(args.appliers)
                )

            try:
                phases.extend(
                    measure_reads(
                        args=args,
                        port=port,
                        reference_port=port2,
                        plain_port=None if api3 is None else port3,
                        auth=auth,
                        skus=skus,
                        use_wrk=use_wrk,
                        tmp=home,
                    )
                )
                for reference in (api2, api3):
                    if reference is not None:
                        reference.stop()
                phases.extend(
                    measure_writes(
                        args=args,
                        port=port,
                        skus=skus,
                        use_wrk=use_wrk,
                        tmp=home,
                        dsn=dsn,
                        start_appliers=start_appliers,
                        auth=auth,
                    )
                )
                by_name = {p.name: p for p in phases}
                maxima = {
                    READ: by_name[CACHED].rps,
                    MOVEMENT: by_name[ACCEPTED].rps,
                    RESERVATION: by_name[PER_ROW].rps,
                }
                phases.extend(
                    measure_mixed(
                        args=args,
                        port=port,
                        skus=skus,
                        tmp=home,
                        auth=auth,
                        maxima=maxima,
                        use_wrk=use_wrk,
                    )
                )
            finally:
                for proc in (*appliers, *reversed(servers)):
                    proc.stop()
    finally:
        if os.environ.get("KEEP_BENCH") != "1":
            shutil.rmtree(home, ignore_errors=True)
    report(phases, args=args, generator=generator, load=(load_before, os.getloadavg()[0]))


def bearer(auth: ClientCredentials | None) -> Headers:
    """The Authorization header for the next phase (a phase is far shorter than a token's
    lifetime; the client renews it before it expires)."""
    return [] if auth is None else [("Authorization", f"Bearer {auth.token()}")]


def read_phase(
    *,
    args: argparse.Namespace,
    port: int,
    prefix: str,
    skus: list[str],
    use_wrk: bool,
    tmp: Path,
    headers: Headers,
    duration: float | None = None,
) -> Phase:
    seconds = args.duration if duration is None else duration
    if use_wrk:
        return run_wrk(
            url=f"http://{HOST}:{port}{prefix}{skus[0]}",
            script=wrk_lua_get(prefix, skus, headers),
            connections=args.connections,
            duration=seconds,
            tmp=tmp,
        )
    pick = loadgen.sku_picker(skus)
    host = f"{HOST}:{port}"
    return run_python_closed(
        port=port,
        make=lambda: loadgen.get_request(prefix + pick(), host, headers),
        connections=args.connections,
        duration=seconds,
        ok=(200,),
    )


def merge(name: str, rounds: list[Phase]) -> Phase:
    """One row from several rounds: total answered over total time; worst p99, median p50."""
    ok = sum(p.ok for p in rounds)
    seconds = sum(p.seconds for p in rounds)
    p50s = sorted(p.p50_ms for p in rounds if p.p50_ms is not None)
    p99s = [p.p99_ms for p in rounds if p.p99_ms is not None]
    cpu = [(p.gen_cpu, p.seconds) for p in rounds if p.gen_cpu is not None]
    return Phase(
        name=name,
        rps=ok / seconds,
        ok=ok,
        errors=sum(p.errors for p in rounds),
        seconds=seconds,
        p50_ms=p50s[len(p50s) // 2] if p50s else None,
        p99_ms=max(p99s) if p99s else None,
        note=f"{len(rounds)} interleaved rounds",
        gen_cpu=sum(c * t for c, t in cpu) / sum(t for _, t in cpu) if cpu else None,
    )


READ = "stock read"
MOVEMENT = "movement post"
RESERVATION = "reservation"
AT80 = "cached read at 80 % of max (open loop)"
VEGETA_MAX = "cached read, maximum (vegeta, closed loop)"


def vegeta_phase(
    name: str, attack: vegeta.Attack, *, route: str, expected: tuple[int, ...], share: float = 1.0
) -> Phase:
    """One route of a vegeta attack as a table row: answers with an ``expected`` status per
    second of the attack, the others counted as errors; exact p50 / p99 of the route's requests.
    ``share``: the route's share of the attack's requests (its target rate); a row of a mixed
    attack shows no generator CPU (the attack's row does)."""
    figures = attack.routes.get(route) or vegeta.RouteFigures(
        route=route, requests=0, statuses={}, p50_ms=math.nan, p99_ms=math.nan, max_ms=math.nan
    )
    good = figures.count(*expected)
    seconds = attack.report.duration_s or attack.duration_s
    codes = " ".join(f"{code}:{n}" for code, n in sorted(figures.statuses.items()))
    return Phase(
        name=name,
        rps=good / seconds,
        ok=good,
        errors=figures.requests - good,
        seconds=seconds,
        p50_ms=figures.p50_ms,
        p99_ms=figures.p99_ms,
        gen_cpu=attack.generator_cpu if share == 1.0 else None,
        target_rps=attack.target_rate * share,
        sent_rps=figures.requests / seconds,
        statuses=figures.statuses,
        note=f"target {attack.target_rate * share:.0f}/s, sent {figures.requests / seconds:.0f}/s"
        + ("" if good == figures.requests else f"; statuses {codes}"),
    )


def measure_reads(
    *,
    args: argparse.Namespace,
    port: int,
    reference_port: int,
    plain_port: int | None,
    auth: ClientCredentials | None,
    skus: list[str],
    use_wrk: bool,
    tmp: Path,
) -> list[Phase]:
    """The read endpoints in interleaved rounds (constant, cached, naive, cached without the
    near cache, cached without authentication, then again): a machine shared with other work
    slows all of them alike."""
    for target in (port, reference_port, plain_port):
        if target is None:
            continue
        with httpx.Client(
            base_url=f"http://{HOST}:{target}", auth=None if target == plain_port else auth
        ) as client:
            for sku in skus:  # warm the cache
                client.get(f"/api/v1/stock/{sku}").raise_for_status()
    kinds = [
        ("constant JSON", port, "/api/v1/bench/constant?", [""], auth),
        ("cached stock read", port, "/api/v1/stock/", skus, auth),
        ("naive stock read (PostgreSQL each time)", port, "/api/v1/bench/stock-naive/", skus, auth),
        (NEAR_OFF, reference_port, "/api/v1/stock/", skus, auth),
    ]
    if plain_port is not None:
        kinds.append((AUTH_OFF, plain_port, "/api/v1/stock/", skus, None))
    rounds: dict[str, list[Phase]] = {name: [] for name, *_ in kinds}
    per_round = max(2.0, args.duration / args.rounds)
    for number in range(args.rounds):
        for name, target, prefix, keys, credentials in kinds:
            log(f"round {number + 1}/{args.rounds}: {name}")
            rounds[name].append(
                read_phase(
                    args=args,
                    port=target,
                    prefix=prefix,
                    skus=keys,
                    use_wrk=use_wrk,
                    tmp=tmp,
                    headers=bearer(credentials),
                    duration=per_round,
                )
            )
    merged = {name: merge(name, phases) for name, phases in rounds.items()}
    metrics = httpx.get(f"http://{HOST}:{port}/metrics", timeout=5).text
    for line in metrics.splitlines():
        refused = line.startswith("http_server_requests_total") and 'status_code="4' in line
        if line.startswith("inventory_cache_requests_total") or refused:
            log(line)
    cached = merged["cached stock read"]
    headers = dict(bearer(auth))
    targets = [
        vegeta.Target("GET", f"http://{HOST}:{port}/api/v1/stock/{sku}", headers, route=READ)
        for sku in skus
    ]
    # The maximum the open-loop run takes 80 % of is measured by the same generator (as fast as
    # its workers go, one per connection): its own CPU, on the same two cores as the server,
    # is then part of the maximum, as it is part of the open-loop run.
    log("phase: cached read, maximum with vegeta (closed loop)")
    most = vegeta.attack(
        targets,
        rate=0,
        duration=max(2.0, args.duration / 2),
        workdir=tmp / "vegeta-max",
        max_connections=args.connections,
        max_workers=args.connections,
    )
    at_max = vegeta_phase(VEGETA_MAX, most, route=READ, expected=(200,))
    at_max.note = f"closed loop, {args.connections} workers, {at_max.errors} errors"
    log("phase: open-loop latency at 80 % of the cached maximum (vegeta)")
    attack = vegeta.attack(
        targets,
        rate=0.8 * at_max.rps,
        duration=args.duration,
        workdir=tmp / "vegeta-at80",
        max_connections=args.connections,
    )
    at80 = vegeta_phase(AT80, attack, route=READ, expected=(200,))
    at80.p999_ms = attack.quantile_ms(99.9)
    at80.note = f"{at80.note}; p99.9 {at80.p999_ms:.1f} ms"
    return [
        at_max,
        merged["constant JSON"],
        cached,
        merged["naive stock read (PostgreSQL each time)"],
        at80,
        merged[NEAR_OFF],
        *([merged[AUTH_OFF]] if AUTH_OFF in merged else []),
    ]


def measure_writes(
    *,
    args: argparse.Namespace,
    port: int,
    skus: list[str],
    use_wrk: bool,
    tmp: Path,
    dsn: str,
    start_appliers: Callable[[], None],
    auth: ClientCredentials | None,
) -> list[Phase]:
    """Ingest with no worker running (the stream fills), then start the workers and time how
    fast they drain it, then the one-INSERT-per-request baseline."""
    run = f"bench-{uuid.uuid4().hex[:8]}"
    host = f"{HOST}:{port}"
    pick = loadgen.sku_picker(skus, seed=3)
    counter = iter(range(10**9))

    def post(path: str, headers: Headers) -> Callable[[], bytes]:
        def make() -> bytes:
            body = json.dumps(
                {"kind": "receive", "sku": pick(), "warehouse": "W1", "quantity": 1}
            ).encode()
            return loadgen.post_request(
                path,
                host=host,
                body=body,
                headers=[("Idempotency-Key", f"{run}-py-{next(counter)}"), *headers],
            )

        return make

    def write_phase(path: str, ok: int) -> Phase:
        headers = bearer(auth)
        if use_wrk:
            return run_wrk(
                url=f"http://{host}{path}",
                script=wrk_lua_post(path, run=run, skus=skus, headers=headers),
                connections=args.connections,
                duration=args.duration,
                tmp=tmp,
            )
        return run_python_closed(
            port=port,
            make=post(path, headers),
            connections=args.connections,
            duration=args.duration,
            ok=(ok,),
        )

    log("phase: movement ingest (workers stopped)")
    ingest = write_phase("/api/v1/movements", 202)
    ingest.name = ACCEPTED
    log("phase: workers drain the stream")
    count, span = drain(dsn, start=start_appliers, timeout=600)
    persisted = Phase(
        name="movements persisted by the workers",
        rps=count / span,
        ok=count,
        errors=0,
        seconds=span,
        note=f"{args.appliers} worker(s) draining the backlog, first to last commit",
    )
    log("phase: one INSERT per request")
    per_row = write_phase("/api/v1/bench/movements-per-row", 201)
    per_row.name = PER_ROW
    return [ingest, persisted, per_row]


#: Fraction of the mixed load's measured maximum the open-loop mixed phase runs at.
MIXED_LOAD_FRACTION = 0.5
#: Statuses a route of the mixed load may answer: 409 is a reservation refused for lack of
#: available stock (the caller's answer, not a failure of the service).
MIXED_EXPECTED = {READ: (200,), MOVEMENT: (202,), RESERVATION: (201, 409)}


def mixed_shares(mix: Mix | None = None) -> dict[str, float]:
    """The share of each route in the mixed load: the demo traffic's weights (``app.traffic.Mix``)
    of stock reads, movements (receive + ship) and reservations, normalised over those three."""
    mix = mix or Mix()
    weights = {READ: mix.read, MOVEMENT: mix.receive + mix.ship, RESERVATION: mix.reserve}
    total = sum(weights.values())
    return {route: weight / total for route, weight in weights.items()}


def mixed_capacity(shares: dict[str, float], maxima: dict[str, float]) -> float:
    """Requests per second the server can take of the mix if each route costs what its own
    closed-loop maximum says: 1 / sum(share / max)."""
    return 1.0 / sum(share / maxima[route] for route, share in shares.items())


def mixed_targets(
    *, port: int, skus: list[str], headers: dict[str, str], count: int, seed: int = 5
) -> list[vegeta.Target]:
    """``count`` requests in the mix's proportions, shuffled; every movement has its own
    Idempotency-Key, every reservation holds one unit (1,000,000 are stocked per SKU)."""
    rng = random.Random(seed)
    shares = mixed_shares()
    run = uuid.uuid4().hex[:8]
    movements = round(count * shares[MOVEMENT])
    reservations = round(count * shares[RESERVATION])
    kinds = [MOVEMENT] * movements + [RESERVATION] * reservations
    kinds += [READ] * (count - len(kinds))
    rng.shuffle(kinds)
    base = f"http://{HOST}:{port}/api/v1"
    json_headers = {**headers, "Content-Type": "application/json"}
    targets = []
    for number, kind in enumerate(kinds):
        sku = skus[rng.randrange(len(skus))]
        if kind == READ:
            targets.append(vegeta.Target("GET", f"{base}/stock/{sku}", headers, route=READ))
        elif kind == MOVEMENT:
            body: dict[str, str | int] = {
                "kind": rng.choice(("receive", "ship")),
                "sku": sku,
                "warehouse": "W1",
            }
            targets.append(
                vegeta.Target(
                    "POST",
                    f"{base}/movements",
                    {**json_headers, "Idempotency-Key": f"{run}-mixed-{number}"},
                    json.dumps({**body, "quantity": 1}).encode(),
                    route=MOVEMENT,
                )
            )
        else:
            body = {"sku": sku, "warehouse": "W1", "quantity": 1, "ttl_seconds": 120}
            targets.append(
                vegeta.Target(
                    "POST",
                    f"{base}/reservations",
                    json_headers,
                    json.dumps(body).encode(),
                    route=RESERVATION,
                )
            )
    return targets


def measure_mixed(
    *,
    args: argparse.Namespace,
    port: int,
    skus: list[str],
    tmp: Path,
    auth: ClientCredentials | None,
    maxima: dict[str, float],
    use_wrk: bool,
) -> list[Phase]:
    """Reads, movement posts and reservations in the mix's proportions while the stream workers
    apply the movements: first the mix's own maximum (wrk, closed loop), then one open-loop
    vegeta attack at MIXED_LOAD_FRACTION of it, one row per route and one for the whole mix.

    Half, not the 80 % of the read-only phase, because latency is the figure and the stream
    workers' applying competes for the same CPUs in bursts: at utilisation 0.5 a queue waits
    about as long as it serves (1 / (1 - 0.5) = 2x the service time). Without wrk the maximum
    is estimated from each route's own closed-loop maximum (1 / sum(share / max))."""
    shares = mixed_shares()
    phases: list[Phase] = []
    if use_wrk:
        log("phase: mixed load, closed-loop maximum (wrk), workers applying")
        closed = run_wrk(
            url=f"http://{HOST}:{port}/",
            script=wrk_lua_mixed(
                run=uuid.uuid4().hex[:8], skus=skus, headers=bearer(auth), shares=shares
            ),
            connections=args.connections,
            duration=args.duration,
            tmp=tmp,
        )
        closed.name = MIXED_MAX
        closed.note = "reads, movements, reservations at the mix's shares"
        phases.append(closed)
        capacity, basis = closed.rps, "measured max"
    else:
        capacity, basis = mixed_capacity(shares, maxima), "est. max"
    rate = max(1.0, MIXED_LOAD_FRACTION * capacity)
    count = math.ceil(rate * args.duration * 1.05) + 2  # every movement key used once
    log(
        f"phase: mixed load at {rate:.0f}/s ({MIXED_LOAD_FRACTION:.0%} of the {basis} "
        f"{capacity:.0f}/s), workers applying (vegeta)"
    )
    attack = vegeta.attack(
        mixed_targets(port=port, skus=skus, headers=dict(bearer(auth)), count=count),
        rate=rate,
        duration=args.duration,
        workdir=tmp / "vegeta-mixed",
        max_connections=args.connections,
    )
    rows = [
        vegeta_phase(
            f"mixed: {route} ({share:.0%})",
            attack,
            route=route,
            expected=MIXED_EXPECTED[route],
            share=share,
        )
        for route, share in shares.items()
    ]
    report = attack.report
    good = sum(row.ok for row in rows)
    seconds = report.duration_s or args.duration
    total = Phase(
        name=MIXED_ALL,
        rps=good / seconds,
        ok=good,
        errors=sum(row.errors for row in rows),
        seconds=seconds,
        p50_ms=report.p50_ms,
        p99_ms=report.p99_ms,
        gen_cpu=attack.generator_cpu,
        target_rps=attack.target_rate,
        sent_rps=report.rate,
        p999_ms=attack.quantile_ms(99.9),
        statuses=report.status_codes,
        note=f"{MIXED_LOAD_FRACTION:.0%} of the {basis} {capacity:.0f}/s; sent {report.rate:.0f}/s",
    )
    return [*phases, *rows, total]


MIXED_MAX = "mixed load, maximum (closed loop)"
MIXED_ALL = "mixed load, all routes (open loop)"


CACHED = "cached stock read"
ACCEPTED = "movement ingest, accepted (202)"
PER_ROW = "one INSERT per request (baseline)"
NEAR_OFF = "cached read, near cache off (Redis each time)"
AUTH_OFF = "cached read, authentication off"


def report(
    phases: list[Phase], *, args: argparse.Namespace, generator: str, load: tuple[float, float]
) -> None:
    by = {p.name: p for p in phases}
    constant = by["constant JSON"]
    cached = by[CACHED]
    naive = by["naive stock read (PostgreSQL each time)"]
    at80 = by[AT80]
    accepted = by[ACCEPTED]
    persisted = by["movements persisted by the workers"]
    per_row = by[PER_ROW]
    mixed = by[MIXED_ALL]
    routes = {route: by[f"mixed: {route} ({share:.0%})"] for route, share in mixed_shares().items()}
    settings = (
        f"{args.web_workers} gunicorn/uvicorn workers, {args.appliers} stream worker(s), "
        f"{args.connections} connections, {args.duration:.0f} s per phase, load: {generator}, "
        f"trace sampling {args.trace_sample_ratio}, "
        f"access log {'on' if args.access_log else 'off'}, "
        f"authentication {'on (bearer token on every request)' if args.auth else 'off'}"
    )
    out()
    out(f"inventory API benchmark — {settings}; {os.cpu_count()} CPUs shared by everything")
    header = (
        f"{'phase':<48} {'req/s':>9} {'ok':>8} {'err':>6} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'gen CPU':>8}  note"
    )
    out(header)
    out("-" * len(header))
    for p in phases:
        p50 = f"{p.p50_ms:8.1f}" if p.p50_ms is not None else f"{'':8}"
        p99 = f"{p.p99_ms:8.1f}" if p.p99_ms is not None else f"{'':8}"
        used = f"{p.gen_cpu:7.0%} " if p.gen_cpu is not None else f"{'':8}"
        out(
            f"{p.name:<48} {p.rps:9.0f} {p.ok:8d} {max(p.errors, 0):6d} {p50} {p99} {used}"
            f"  {p.note}"
        )
    out(
        "gen CPU: the load generator's own CPU (user + system) over the phase's wall time, "
        "100 % = one core; the mixed routes share one attack (its CPU on the all-routes row)"
    )

    def ms(value: float | None) -> float | None:
        return None if value is None or math.isnan(value) else round(value, 1)

    def cpu(phase: Phase) -> float | None:
        return None if phase.gen_cpu is None else round(phase.gen_cpu, 3)

    summary = {
        "cached_vs_naive_ratio": round(cached.rps / naive.rps, 2),
        "cached_vs_constant_ratio": round(cached.rps / constant.rps, 2),
        "ingest_accepted_per_s": round(accepted.rps, 1),
        "ingest_persisted_per_s": round(persisted.rps, 1),
        "ingest_persisted_vs_per_row_ratio": round(persisted.rps / per_row.rps, 2),
        "p99_ms_at_80pct": ms(at80.p99_ms),
        "p50_ms_at_80pct": ms(at80.p50_ms),
        "p999_ms_at_80pct": ms(at80.p999_ms),
        "at80pct_target_rps": round(at80.target_rps or 0.0, 1),
        "cached_max_vegeta_rps": round(by[VEGETA_MAX].rps, 1),
        "at80pct_sent_rps": round(at80.sent_rps or 0.0, 1),
        "at80pct_errors": at80.errors,
        "mixed_p99_ms": {route: ms(row.p99_ms) for route, row in routes.items()},
        "mixed_p50_ms": {route: ms(row.p50_ms) for route, row in routes.items()},
        "mixed_errors": {route: row.errors for route, row in routes.items()},
        "mixed_statuses": {
            route: {str(code): n for code, n in sorted(row.statuses.items())}
            for route, row in routes.items()
        },
        "mixed_max_rps": round(by[MIXED_MAX].rps, 1) if MIXED_MAX in by else None,
        "mixed_target_rps": round(mixed.target_rps or 0.0, 1),
        "mixed_sent_rps": round(mixed.sent_rps or 0.0, 1),
        "mixed_shares": {route: round(share, 3) for route, share in mixed_shares().items()},
        "constant_rps": round(constant.rps, 1),
        "cached_rps": round(cached.rps, 1),
        "naive_rps": round(naive.rps, 1),
        "cached_redis_only_rps": round(by[NEAR_OFF].rps, 1),
        "auth": args.auth,
        "auth_overhead_ratio": round(cached.rps / by[AUTH_OFF].rps, 2) if AUTH_OFF in by else None,
        "cached_auth_off_rps": round(by[AUTH_OFF].rps, 1) if AUTH_OFF in by else None,
        "per_row_insert_per_s": round(per_row.rps, 1),
        "generator_cpu": {
            "cached_max": cpu(cached),
            "cached_max_vegeta": cpu(by[VEGETA_MAX]),
            "at80pct": cpu(at80),
            "ingest": cpu(accepted),
            "per_row": cpu(per_row),
            "mixed": cpu(mixed),
        },
        "load_generator": generator,
        "web_workers": args.web_workers,
        "appliers": args.appliers,
        "cpus": os.cpu_count(),
        "loadavg_1m": [round(load[0], 1), round(load[1], 1)],
    }
    out()
    out(
        "targets: cached >= 3x naive, cached >= 0.5x constant, ingest >= 5000 accepted/s, "
        "persisted >= 5x per-row, p99 < 50 ms at 80 % of max, mixed p99 <= 100 ms per route, "
        "auth_overhead_ratio >= 0.8"
    )
    out(json.dumps(summary))


if __name__ == "__main__":
    main()
