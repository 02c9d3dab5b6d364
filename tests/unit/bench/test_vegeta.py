"""Reading vegeta's output, and the pieces of the benchmarks built on it.

The files in ``data/`` are real output of the pinned vegeta: one attack of 40 requests at 40/s
for 1 s, round-robin over ``GET /fast``, ``GET /slow`` (50 ms), ``POST /items`` (201) and
``GET /missing`` (404) of the loopback server in ``tests/support/tiny_http.py``, then
``vegeta report -type=json``, ``vegeta report -type=hdrplot`` and ``vegeta encode --to json`` of
its results (see data/README.md).
"""

from __future__ import annotations

import base64
import json
import math
import sys
from collections import Counter
from pathlib import Path

import pytest

from bench import bench_api, vegeta
from controlplane.stack.settings import StackSettings, read_versions

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data"
REQUESTS = 40


def results_lines() -> list[str]:
    return (DATA / "vegeta-results.jsonl").read_text(encoding="utf-8").splitlines()


def raw_results() -> list[dict[str, object]]:
    return [json.loads(line) for line in results_lines()]


def test_json_report_is_read_in_milliseconds_and_seconds() -> None:
    text = (DATA / "vegeta-report.json").read_text(encoding="utf-8")
    raw = json.loads(text)
    report = vegeta.parse_report(text)
    assert report.requests == REQUESTS
    assert report.rate == pytest.approx(REQUESTS, rel=0.05)
    assert report.p50_ms == raw["latencies"]["50th"] / 1e6
    assert report.p99_ms == raw["latencies"]["99th"] / 1e6
    assert report.max_ms == raw["latencies"]["max"] / 1e6
    assert report.p50_ms <= report.p90_ms <= report.p99_ms <= report.max_ms
    assert 0.9 < report.duration_s < 1.1
    # Three routes of four answer 2xx; the fourth 404.
    assert report.status_codes == {200: 20, 201: 10, 404: 10}
    assert report.success == pytest.approx(0.75)
    # The slowest request waited the slow route's 50 ms.
    assert report.max_ms >= 50


def test_per_route_figures_from_encoded_results() -> None:
    raw = raw_results()
    assert len(raw) == REQUESTS
    base = str(raw[0]["url"]).rsplit("/", 1)[0]
    routes = {("GET", f"{base}/fast"): "fast", ("GET", f"{base}/slow"): "slow"}
    figures = vegeta.parse_results(results_lines(), routes)
    assert set(figures) == {"fast", "slow", f"POST {base}/items", f"GET {base}/missing"}
    assert {name: f.requests for name, f in figures.items()} == dict.fromkeys(figures, 10)
    assert figures["slow"].statuses == {200: 10}
    assert figures[f"POST {base}/items"].statuses == {201: 10}
    assert figures[f"GET {base}/missing"].count(404) == 10
    # Exact nearest-rank percentiles over each route's own latencies, in ms.
    slow = sorted(int(str(r["latency"])) / 1e6 for r in raw if str(r["url"]).endswith("/slow"))
    assert figures["slow"].p50_ms == slow[4]  # ceil(0.5 * 10) = 5th
    assert figures["slow"].p99_ms == figures["slow"].max_ms == slow[-1]
    assert figures["slow"].p50_ms >= 50 > figures["fast"].p50_ms


def test_hdrplot_spectrum_is_read_in_percent_and_milliseconds() -> None:
    rows = vegeta.parse_hdrplot((DATA / "vegeta-hdrplot.txt").read_text(encoding="utf-8"))
    percents = [p for p, _ in rows]
    values = [ms for _, ms in rows]
    assert percents[0] == 0
    assert percents[-1] == 100
    assert percents == sorted(percents)
    assert values == sorted(values)
    report = vegeta.parse_report((DATA / "vegeta-report.json").read_text(encoding="utf-8"))
    assert values[-1] == pytest.approx(report.max_ms, abs=1e-3)


def test_unreadable_output_is_a_clear_error() -> None:
    with pytest.raises(vegeta.VegetaError, match="JSON report"):
        vegeta.parse_report('{"requests": 3}')
    with pytest.raises(vegeta.VegetaError, match="result line 2"):
        vegeta.parse_results([results_lines()[0], "not json"], {})
    with pytest.raises(vegeta.VegetaError, match="hdrplot"):
        vegeta.parse_hdrplot("Value(ms)  Percentile\n")


def test_nearest_rank_percentile() -> None:
    values = [float(v) for v in range(1, 101)]
    assert vegeta.percentile(values, 50) == 50
    assert vegeta.percentile(values, 99) == 99
    assert vegeta.percentile(values, 100) == 100
    assert vegeta.percentile([7.0], 99) == 7
    assert math.isnan(vegeta.percentile([], 50))


def test_enough_workers_for_every_request_to_wait_the_whole_timeout() -> None:
    # 1,000/s against a server that answers nothing for 10 s: 11,000 requests in flight.
    assert vegeta.workers_needed(1000, 10) == 11_000
    assert vegeta.workers_needed(397.5, 2) == 1193
    assert vegeta.workers_needed(5, 1) == 100


def test_load_goes_to_loopback_only(tmp_path: Path) -> None:
    assert vegeta.is_loopback("http://127.0.0.1:8000/x")
    assert vegeta.is_loopback("http://[::1]:8000/x")
    assert vegeta.is_loopback("http://localhost/x")
    assert not vegeta.is_loopback("http://example.com/x")
    assert not vegeta.is_loopback("http://10.0.0.1/x")
    targets = [
        vegeta.Target("GET", "http://127.0.0.1:1/a"),
        vegeta.Target("GET", "http://10.1.2.3/"),
    ]
    with pytest.raises(ValueError, match="loopback"):
        vegeta.attack(targets, rate=1, duration=1, workdir=tmp_path, vegeta=Path("/bin/false"))
    assert not list(tmp_path.iterdir())  # refused before anything was written or run


def test_target_is_written_in_vegeta_json_format() -> None:
    target = vegeta.Target("POST", "http://127.0.0.1:1/a?b=1", {"X-Key": "k"}, b'{"q":1}')
    document = json.loads(target.json_line())
    assert document == {
        "method": "POST",
        "url": "http://127.0.0.1:1/a?b=1",
        "header": {"X-Key": ["k"]},
        "body": base64.b64encode(b'{"q":1}').decode(),
    }
    assert target.label() == "POST /a"
    assert "body" not in json.loads(vegeta.Target("GET", "http://h/x").json_line())


def test_child_cpu_is_measured_for_that_child_only(tmp_path: Path) -> None:
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
    run, _ = vegeta.measured_run([sys.executable, "-c", burn], timeout=30)
    assert run.returncode == 0
    assert 0.3 <= run.cpu_s < run.wall_s + 0.05
    assert 0 < run.cpu_share <= 1.05
    sleep = [sys.executable, "-c", "import time; time.sleep(0.3)"]
    idle, _ = vegeta.measured_run(sleep, timeout=30)
    assert idle.cpu_share < run.cpu_share


def test_vegeta_is_the_pinned_build_in_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STACK_VEGETA", raising=False)
    monkeypatch.setenv("STACK_CACHE_DIR", "/srv/cache")
    version = read_versions()["VEGETA_VERSION"]
    assert version.startswith("v12.")
    assert StackSettings().vegeta_binary() == Path(f"/srv/cache/bin/vegeta-{version}")
    monkeypatch.setenv("STACK_VEGETA", "/opt/vegeta")
    assert StackSettings().vegeta_binary() == Path("/opt/vegeta")
    monkeypatch.setenv("STACK_VEGETA", "/nonexistent/vegeta")
    with pytest.raises(vegeta.VegetaError, match="make bootstrap"):
        vegeta.binary()


def test_mixed_load_follows_the_demo_traffic_mix() -> None:
    shares = bench_api.mixed_shares(bench_api.Mix(read=70, receive=8, ship=8, reserve=8))
    assert shares == {
        bench_api.READ: pytest.approx(70 / 94),
        bench_api.MOVEMENT: pytest.approx(16 / 94),
        bench_api.RESERVATION: pytest.approx(8 / 94),
    }
    # Capacity of the mix: the time each request costs, weighted by its share.
    maxima = {bench_api.READ: 1000.0, bench_api.MOVEMENT: 300.0, bench_api.RESERVATION: 200.0}
    capacity = bench_api.mixed_capacity(shares, maxima)
    assert capacity == pytest.approx(1 / (0.7447 / 1000 + 0.1702 / 300 + 0.0851 / 200), rel=1e-3)
    assert maxima[bench_api.RESERVATION] < capacity < maxima[bench_api.READ]


def test_mixed_targets_have_the_mix_and_unique_idempotency_keys() -> None:
    targets = bench_api.mixed_targets(
        port=8000, skus=["A", "B"], headers={"Authorization": "Bearer t"}, count=940
    )
    kinds = Counter(t.route for t in targets)
    assert kinds == {bench_api.READ: 700, bench_api.MOVEMENT: 160, bench_api.RESERVATION: 80}
    keys = [t.headers["Idempotency-Key"] for t in targets if t.route == bench_api.MOVEMENT]
    assert len(set(keys)) == len(keys)
    assert all(t.headers["Authorization"] == "Bearer t" for t in targets)
    movement = next(t for t in targets if t.route == bench_api.MOVEMENT)
    assert json.loads(movement.body)["kind"] in {"receive", "ship"}
    assert movement.url == "http://127.0.0.1:8000/api/v1/movements"
    reservation = next(t for t in targets if t.route == bench_api.RESERVATION)
    assert json.loads(reservation.body)["quantity"] == 1
    # Shuffled: the first hundred requests already mix the routes.
    assert len({t.route for t in targets[:100]}) == 3


def captured_attack() -> vegeta.Attack:
    raw = raw_results()
    base = str(raw[0]["url"]).rsplit("/", 1)[0]
    routes = {("GET", f"{base}/fast"): "fast", ("GET", f"{base}/missing"): "missing"}
    return vegeta.Attack(
        target_rate=40,
        duration_s=1.0,
        report=vegeta.parse_report((DATA / "vegeta-report.json").read_text(encoding="utf-8")),
        routes=vegeta.parse_results(results_lines(), routes),
        hdr=vegeta.parse_hdrplot((DATA / "vegeta-hdrplot.txt").read_text(encoding="utf-8")),
        generator=vegeta.ChildRun(returncode=0, cpu_s=0.25, wall_s=1.0),
    )


def test_a_route_row_counts_unexpected_statuses_as_errors_and_shows_them() -> None:
    attack = captured_attack()
    fast = bench_api.vegeta_phase("fast", attack, route="fast", expected=(200,))
    assert (fast.ok, fast.errors) == (10, 0)
    assert fast.gen_cpu == 0.25
    assert "statuses" not in fast.note
    missing = bench_api.vegeta_phase("m", attack, route="missing", expected=(200,), share=0.25)
    assert (missing.ok, missing.errors) == (0, 10)
    assert "404:10" in missing.note
    assert missing.gen_cpu is None  # a share of a mixed attack: its CPU is on the attack's row
    assert missing.target_rps == 10
    absent = bench_api.vegeta_phase("none", attack, route="no such route", expected=(200,))
    assert (absent.ok, absent.errors) == (0, 0)
    assert absent.p99_ms is not None
    assert math.isnan(absent.p99_ms)
